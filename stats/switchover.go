package stats

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// Switchover runs planned switchovers for POST /-/switchover (sentinel-proxy switchover). Package server
// implements it.
type Switchover interface {
	// Switchover moves the group's master and reports each step through progress, one line each, as it
	// finishes; the last line starts with "switchover completed" when it returns nil and with
	// "switchover aborted" otherwise. Before any line it returns ErrSwitchoverRunning when a switchover is
	// running already, and other errors for a request it cannot start (an unknown group).
	Switchover(ctx context.Context, req SwitchoverRequest, progress func(line string)) error
}

// SwitchoverRequest is one POST /-/switchover.
type SwitchoverRequest struct {
	Group   string        // empty: the only group, when there is one
	To      string        // the replica to promote; empty lets the proxy choose
	Timeout time.Duration // for the whole switchover
	User    string        // the stats user who asked
	Remote  string        // and from where
}

// ErrSwitchoverRunning refuses a second switchover while one runs (409).
var ErrSwitchoverRunning = errors.New("a switchover is already running")

// Bounds of the timeout a request may ask for: long enough for a Sentinel without SENTINEL DEBUG to read
// the steered priorities (every 10 s), short enough that a pause on the master stays an incident's length.
const (
	defaultSwitchoverTimeout = 5 * time.Second
	maxSwitchoverTimeout     = 2 * time.Minute
)

// switchover answers POST /-/switchover (form values group, to, timeout) with the progress lines as they
// come, flushed one by one: 200 and the lines, 409 when one runs already, 400 for a bad request. A form
// that carries the page's CSRF token (csrf) comes from the stats page's confirmation page: the token is
// checked (403 when wrong) and the answer is an HTML page with the same lines and a link back.
func (s *Server) switchover(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	user := userOf(r)
	_, fromPage := r.PostForm["csrf"]
	if fromPage && !s.csrfOK(w, r, user) {
		return
	}
	out := switchoverOutput{w: w, tmpl: s.switchTm, log: s.Log}
	if fromPage {
		out.page = &switchoverPage{Group: r.PostForm.Get("group"), To: r.PostForm.Get("to")}
	}
	req := SwitchoverRequest{Group: r.PostForm.Get("group"), To: r.PostForm.Get("to"), Timeout: defaultSwitchoverTimeout,
		User: user, Remote: r.RemoteAddr}
	if v := r.PostForm.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > maxSwitchoverTimeout {
			out.refuse(fmt.Sprintf("timeout %q: want a duration above 0 and at most %s, e.g. 5s", v, maxSwitchoverTimeout),
				http.StatusBadRequest)
			return
		}
		req.Timeout = d
	}
	out.rc = http.NewResponseController(w)
	// The server's write timeout is shorter than the longest switchover; the answer is written all along.
	_ = out.rc.SetWriteDeadline(time.Now().Add(req.Timeout + time.Minute))
	group, old := s.masterOf(req.Group)
	err := s.Switchover.Switchover(r.Context(), req, out.line)
	switch {
	case out.started || err == nil:
		out.finish(err)
		rec := AdminAction{At: time.Now(), User: user, Remote: r.RemoteAddr, Group: group, Node: old, Action: actionSwitchover}
		if err != nil {
			rec.Error = err.Error()
		}
		s.remember(rec)
	case errors.Is(err, ErrSwitchoverRunning):
		out.refuse(err.Error(), http.StatusConflict)
	default:
		out.refuse(err.Error(), http.StatusBadRequest)
	}
}

// masterOf is the group a switchover request names (or the only one) and the master it moves, the
// routed one, for the admin actions' list.
func (s *Server) masterOf(name string) (group, master string) {
	groups := s.cur().Groups
	for _, g := range groups {
		if g.Name == name || name == "" && len(groups) == 1 {
			if gs := s.Snapshot().Group(g.Name); gs != nil {
				return g.Name, gs.Master
			}
			return g.Name, ""
		}
	}
	return name, ""
}

// switchoverPage is what templates/switchover.html shows around the progress lines.
type switchoverPage struct {
	Group, To string
	Line      string // one progress line
	Done      bool   // the switchover completed
	Refused   string // why it did not start
	Status    int    // and the status that says so
}

// switchoverOutput writes one switchover's answer: plain lines for the CLI, or the HTML page for the
// stats page's form (page set), line by line as they come.
type switchoverOutput struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	tmpl    *template.Template
	log     zerolog.Logger
	page    *switchoverPage
	started bool
}

func (o *switchoverOutput) start() {
	if o.started {
		return
	}
	o.started = true
	if o.page == nil {
		o.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		o.w.WriteHeader(http.StatusOK)
		return
	}
	o.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	o.w.WriteHeader(http.StatusOK)
	o.render("switchover-head")
}

func (o *switchoverOutput) line(line string) {
	o.start()
	if o.page == nil {
		_, _ = io.WriteString(o.w, line+"\n")
	} else {
		o.page.Line = line
		o.render("switchover-line")
	}
	_ = o.rc.Flush()
}

// finish ends the HTML page once the switchover has returned err.
func (o *switchoverOutput) finish(err error) {
	if o.page == nil {
		return
	}
	o.start()
	o.page.Done = err == nil
	o.render("switchover-end")
}

// refuse answers a switchover that did not start.
func (o *switchoverOutput) refuse(msg string, status int) {
	if o.page == nil {
		http.Error(o.w, msg, status)
		return
	}
	o.page.Refused, o.page.Status = msg, status
	o.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	o.w.WriteHeader(status)
	o.render("switchover-head")
	o.render("switchover-end")
}

func (o *switchoverOutput) render(name string) {
	if err := o.tmpl.ExecuteTemplate(o.w, name, o.page); err != nil {
		o.log.Error().Err(err).Str("template", name).Msg("render switchover page")
	}
}
