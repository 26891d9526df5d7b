package stats

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/routing"
)

// Admin actions, as on HAProxy's page: set the node's state, or kill its sessions.
const (
	actionReady = "READY"
	actionDrain = "DRAIN"
	actionMaint = "MAINT"
	actionKill  = "KILL"
	// actionSwitchover only asks for its confirmation page here: the page's form posts to /-/switchover.
	actionSwitchover = "SWITCHOVER"
)

// csrfToken is bound to the process (a random key made at start) and to the user: a page rendered for
// one user cannot be replayed by a cross-site form, which cannot read the page to learn the token.
func (s *Server) csrfToken(user string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte("admin\x00" + user))
	return hex.EncodeToString(m.Sum(nil))
}

// csrfOK checks the form's CSRF token against the user's; when it is missing or wrong it logs and
// answers the refusal (403).
func (s *Server) csrfOK(w http.ResponseWriter, r *http.Request, user string) bool {
	if hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(s.csrfToken(user))) {
		return true
	}
	s.Log.Warn().Str("event", "admin_rejected").Str("user", user).Str("remote", r.RemoteAddr).
		Str("reason", "missing or wrong CSRF token").Msg("admin request rejected")
	http.Error(w, "missing or wrong CSRF token: reload the stats page and try again", http.StatusForbidden)
	return false
}

func (s *Server) actions() []AdminAction {
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	out := make([]AdminAction, len(s.adminLog))
	for i, a := range s.adminLog {
		out[len(s.adminLog)-1-i] = a
	}
	return out
}

func (s *Server) remember(a AdminAction) {
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	s.adminLog = append(s.adminLog, a)
	if len(s.adminLog) > adminLogLen {
		s.adminLog = append([]AdminAction(nil), s.adminLog[len(s.adminLog)-adminLogLen:]...)
	}
}

// notPromotable tells the operator what the proxy cannot: Sentinel does not know about DRAIN and MAINT.
const notPromotable = " Sentinel does not know about this state: if it promotes this node, the master port gets no " +
	"master until the node is READY again. To keep Sentinel from promoting it, set `replica-priority 0` on the node."

// confirmation is what the confirmation page shows before an action is applied.
type confirmation struct {
	Node, Action, Group, CSRF string
	Consequence               string
	Warning                   string // set when the action affects the master port

	// A switchover's page also offers its targets, the healthy replicas (none: Sentinel's choice only),
	// and the timeout, the CLI's by default.
	Switchover bool
	Targets    []string
	Timeout    string
	MaxTimeout string
}

// admin applies an action in two steps: the first POST answers with a page saying what the action
// will do (the master port's clients are warned about before anything happens), the second, with
// confirm=yes, applies it and redirects to the page.
func (s *Server) admin(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	user := userOf(r)
	if !s.csrfOK(w, r, user) {
		return
	}
	node, action := r.PostForm.Get("node"), strings.ToUpper(r.PostForm.Get("action"))
	page := s.build(r)
	group, row := page.groupOf(node)
	if row == nil {
		http.Error(w, fmt.Sprintf("unknown node %q", node), http.StatusBadRequest)
		return
	}
	switch action {
	case actionReady, actionDrain, actionMaint, actionKill:
	case actionSwitchover:
		s.confirmSwitchover(w, page.CSRF, group, row)
		return
	default:
		http.Error(w, fmt.Sprintf("unknown action %q (want READY, DRAIN, MAINT or KILL)", action), http.StatusBadRequest)
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		c := s.consequence(group, row, action)
		c.CSRF = page.CSRF
		if err := s.confirmTm.Execute(w, c); err != nil {
			s.Log.Error().Err(err).Msg("render confirmation page")
		}
		return
	}

	rec := AdminAction{At: time.Now(), User: user, Remote: r.RemoteAddr, Group: group.Name, Node: node, Action: action}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	var err error
	switch action {
	case actionKill:
		rec.SessionsClosed = s.Control.KillSessions(node)
	default:
		st, _ := routing.ParseAdminState(action)
		before := row.CurrentSessions
		err = s.Control.SetAdminState(ctx, node, st)
		if action == actionMaint {
			rec.SessionsClosed = int(before)
		}
	}
	ev := s.Log.Warn().Str("event", "admin_action").Str("user", user).Str("remote", r.RemoteAddr).
		Str("group", group.Name).Str("node", node).Str("action", action).Str("previous_state", row.Admin).
		Int("sessions_closed", rec.SessionsClosed)
	if err != nil {
		rec.Error = err.Error()
		ev.Err(err)
	}
	ev.Msg("admin action from the stats page")
	s.remember(rec)
	if s.Metrics != nil {
		s.Metrics.adminActions.WithLabelValues(action).Inc()
	}
	notice := fmt.Sprintf("%s on %s by %s: done", action, node, user)
	if err != nil {
		notice = fmt.Sprintf("%s on %s failed: %v", action, node, err)
	}
	http.Redirect(w, r, "/stats?notice="+url.QueryEscape(notice), http.StatusSeeOther)
}

// consequence says, in the operator's terms, what action on the node will do.
func (s *Server) consequence(g *GroupView, n *NodeView, action string) confirmation {
	c := confirmation{Node: n.Addr, Action: action, Group: g.Name}
	masterPort := ""
	for _, l := range g.Listeners {
		if l.Role == "master" {
			masterPort = l.Addr
		}
	}
	isMaster := n.IsMaster || n.Addr == g.Master || (n.Addr == g.Named && n.Admin != string(routing.AdminReady))
	hold := time.Duration(0)
	for _, sg := range s.cur().Groups {
		if sg.Name == g.Name && sg.Master != nil {
			hold = sg.Master.HoldTimeout
		}
	}
	switch action {
	case actionReady:
		c.Consequence = "The node takes traffic again as soon as its checks and the Sentinels allow."
		if isMaster {
			c.Consequence += fmt.Sprintf(" The master port %s routes to it again.", masterPort)
		}
	case actionDrain:
		c.Consequence = fmt.Sprintf("The node gets no new sessions; its %d established sessions stay until they end.", n.CurrentSessions)
		if isMaster {
			c.Warning = fmt.Sprintf("%s is the MASTER of %s. New clients of the master port %s get no master: "+
				"they are held for up to %s and then refused with a RESP error, until the node is READY again "+
				"or Sentinel promotes another.", n.Addr, g.Name, masterPort, hold)
		} else {
			c.Consequence += notPromotable
		}
	case actionMaint:
		c.Consequence = fmt.Sprintf("The node gets no new sessions and its %d established sessions are closed now.", n.CurrentSessions)
		if isMaster {
			c.Warning = fmt.Sprintf("%s is the MASTER of %s. Every client of the master port %s is disconnected, "+
				"and new ones are held for up to %s and then refused with a RESP error, until the node is READY "+
				"again or Sentinel promotes another. Writes stop.", n.Addr, g.Name, masterPort, hold)
		} else {
			c.Consequence += notPromotable
		}
	case actionKill:
		c.Consequence = fmt.Sprintf("Its %d established sessions are closed now; clients that reconnect are routed as usual.", n.CurrentSessions)
		if isMaster {
			c.Warning = fmt.Sprintf("%s is the MASTER of %s: every client of the master port %s is disconnected.",
				n.Addr, g.Name, masterPort)
		}
	}
	return c
}

// confirmSwitchover answers the master row's switchover button with the confirmation page, whose form
// posts to /-/switchover.
func (s *Server) confirmSwitchover(w http.ResponseWriter, csrf string, g *GroupView, n *NodeView) {
	if s.Switchover == nil {
		http.Error(w, "this proxy runs no switchovers", http.StatusNotFound)
		return
	}
	if n.Addr != g.Master {
		http.Error(w, fmt.Sprintf("%s is not the routed master of %s: a switchover moves the master", n.Addr, g.Name),
			http.StatusBadRequest)
		return
	}
	c := confirmation{Node: n.Addr, Action: actionSwitchover, Group: g.Name, CSRF: csrf, Switchover: true,
		Targets: switchoverTargets(g), Timeout: defaultSwitchoverTimeout.String(), MaxTimeout: maxSwitchoverTimeout.String()}
	masterPort := ""
	for _, l := range g.Listeners {
		if l.Role == "master" {
			masterPort = l.Addr
		}
	}
	c.Consequence = fmt.Sprintf("sentinel-proxy holds the writes to %s, waits until the target has every write, has "+
		"Sentinel promote exactly the target and sends the held writes to it. If any step fails or the timeout "+
		"passes, everything it changed is put back and %s stays the master.", n.Addr, n.Addr)
	if g.Mode == "resp" {
		c.Consequence += fmt.Sprintf(" Clients of the master port %s stay connected: their commands wait in the proxy for the switch.", masterPort)
	} else {
		c.Consequence += fmt.Sprintf(" Writes are paused on %s (CLIENT PAUSE WRITE); at the switch the master port %s "+
			"closes its sessions to it, as in any failover.", n.Addr, masterPort)
	}
	if len(c.Targets) == 0 {
		c.Warning = fmt.Sprintf("%s has no healthy replica with its link up: the switchover will abort.", g.Name)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.confirmTm.Execute(w, c); err != nil {
		s.Log.Error().Err(err).Msg("render switchover confirmation page")
	}
}

// switchoverTargets are the replicas a switchover may promote: up, READY, their link to the master up.
func switchoverTargets(g *GroupView) []string {
	var out []string
	for _, n := range g.Nodes {
		if n.Addr != g.Master && (n.Status == "UP" || n.Status == "NOLB") && n.LinkStatus == "up" {
			out = append(out, n.Addr)
		}
	}
	return out
}
