package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRESPAdminKillClosesSessions checks that the stats page's KILL still closes resp-mode sessions
// (they are not moved: the operator asked for them to end), on the master port and on the replica port,
// and leaves the other nodes' sessions alone. MAINT on a replica leaves none of its sessions there.
func TestRESPAdminKillClosesSessions(t *testing.T) {
	topo := newTopology(t, 2)
	cfg := inMode(testConfig(t, topo, topo.Name), "resp")
	cfg.Stats.Admin = true
	p := startProxy(t, cfg)
	master, b, c := topo.Nodes[0].Addr, topo.Nodes[1].Addr, topo.Nodes[2].Addr
	waitRoutedTo(t, p.master, master, 10*time.Second)
	replicaPool(t, p, []string{b, c})

	var onMaster []*respConn
	for i := 0; i < 5; i++ {
		onMaster = append(onMaster, dialRESP(t, p.master, pooled(fmt.Sprintf("m-%d", i))...))
	}
	onReplica := replicaSessions(t, p.replica, 2, b, c)
	closed := func(what string, conns ...*respConn) {
		t.Helper()
		for i, conn := range conns {
			v, err := conn.read(5 * time.Second) // nothing sent: only the close can end this
			if err == nil || !closedByPeer(err) {
				t.Errorf("%s session %d after KILL: read %q, %v; want it closed", what, i, v.Text(), err)
			}
		}
	}
	alive := func(what string, ss []*replicaSession) {
		t.Helper()
		for _, s := range ss {
			f, err := s.c.whoAmI()
			if err == nil {
				err = wantState(f, s.name)
			}
			if err == nil && f["laddr"] != s.node {
				err = fmt.Errorf("moved from %s to %s", s.node, f["laddr"])
			}
			if err != nil {
				t.Errorf("%s: %s: %v", what, s.name, err)
			}
		}
	}

	logFrom := len(p.logs.String())
	adminAction(t, p, master, "KILL")
	closed("master", onMaster...)
	alive("replica sessions after KILL on the master", append(onReplica[b], onReplica[c]...))
	// At least the 5: a session of waitRoutedTo's, closed by its client, may not have ended yet.
	if n := killCount(p.logs.String()[logFrom:]); n < 5 {
		t.Errorf("the KILL's log line counts %d sessions closed, want at least the 5 pooled ones", n)
	}
	waitRoutedTo(t, p.master, master, 5*time.Second)

	adminAction(t, p, b, "KILL")
	var bConns []*respConn
	for _, s := range onReplica[b] {
		bConns = append(bConns, s.c)
	}
	closed("replica "+b, bConns...)
	alive("sessions on "+c+" after KILL on "+b, onReplica[c])

	// MAINT: the node's sessions are closed (tcp mode) or moved (resp mode may): none stays on it.
	more := replicaSessions(t, p.replica, 2, c)
	adminAction(t, p, c, "MAINT")
	movedN, closedN := 0, 0
	for _, s := range append(onReplica[c], more[c]...) {
		f, err := s.c.whoAmI()
		switch {
		case err != nil && closedByPeer(err):
			closedN++
		case err != nil:
			t.Errorf("%s after MAINT on its replica: %v", s.name, err)
		case f["laddr"] == c:
			t.Errorf("%s is still on %s, in MAINT", s.name, c)
		default:
			if err := wantState(f, s.name); err != nil {
				t.Errorf("%s moved off the replica in MAINT: %v", s.name, err)
			}
			movedN++
		}
	}
	t.Logf("MAINT on %s: %d sessions closed, %d moved", c, closedN, movedN)
}

// killCount reads sessions_closed from the first KILL's admin_action line in log; -1 if there is none.
func killCount(log string) int {
	line := grepLines(log, `"action":"KILL"`)
	_, rest, ok := strings.Cut(line, `"sessions_closed":`)
	if !ok {
		return -1
	}
	n := 0
	for _, d := range rest {
		if d < '0' || d > '9' {
			break
		}
		n = n*10 + int(d-'0')
	}
	return n
}
