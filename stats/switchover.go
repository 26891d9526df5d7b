package stats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
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
// come, flushed one by one: 200 and the lines, 409 when one runs already, 400 for a bad request.
func (s *Server) switchover(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	req := SwitchoverRequest{Group: r.PostForm.Get("group"), To: r.PostForm.Get("to"), Timeout: defaultSwitchoverTimeout,
		User: userOf(r), Remote: r.RemoteAddr}
	if v := r.PostForm.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > maxSwitchoverTimeout {
			http.Error(w, fmt.Sprintf("timeout %q: want a duration above 0 and at most %s, e.g. 5s", v, maxSwitchoverTimeout),
				http.StatusBadRequest)
			return
		}
		req.Timeout = d
	}
	rc := http.NewResponseController(w)
	// The server's write timeout is shorter than the longest switchover; the answer is written all along.
	_ = rc.SetWriteDeadline(time.Now().Add(req.Timeout + time.Minute))
	started := false
	progress := func(line string) {
		if !started {
			started = true
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusOK)
		}
		_, _ = io.WriteString(w, line+"\n")
		_ = rc.Flush()
	}
	err := s.Switchover.Switchover(r.Context(), req, progress)
	switch {
	case started || err == nil:
	case errors.Is(err, ErrSwitchoverRunning):
		http.Error(w, err.Error(), http.StatusConflict)
	default:
		http.Error(w, err.Error(), http.StatusBadRequest)
	}
}
