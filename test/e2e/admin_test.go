package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/redistest"
	"github.com/sentinel-proxy/sentinel-proxy/stats"
)

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// adminAction confirms action on node through the stats page, as a browser would: read the token from
// the page, POST, follow the redirect.
func adminAction(t *testing.T, p *runningProxy, node, action string) {
	t.Helper()
	body := statsGet(t, p, "/stats")
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no admin form on the page")
	}
	form := url.Values{"csrf": {m[1]}, "node": {node}, "action": {action}, "confirm": {"yes"}}
	req, _ := http.NewRequest("POST", "http://"+p.stats+"/admin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("admin", "stats-pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(page), action+" on "+node+" by admin: done") {
		t.Fatalf("%s on %s: status %d\n%s", action, node, resp.StatusCode, page)
	}
}

// statsGet is a GET on the stats port with testConfig's credentials.
func statsGet(t *testing.T, p *runningProxy, path string) string {
	t.Helper()
	_, body := statsRequest(t, "GET", p.stats, path, "admin", "stats-pw")
	return body
}

// sessionsOn opens clients on addr until it holds n on each of the given nodes, and returns them by node.
func sessionsOn(t *testing.T, addr string, n int, nodes ...string) map[string][]*redistest.Conn {
	t.Helper()
	out := map[string][]*redistest.Conn{}
	for tries := 0; tries < 10*n*len(nodes); tries++ {
		done := true
		for _, node := range nodes {
			done = done && len(out[node]) >= n
		}
		if done {
			return out
		}
		c, err := redistest.Dial(addr, testPassword)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		info, err := c.Do("INFO", "server")
		if err != nil {
			t.Fatal(err)
		}
		node, err := nodeOf(info)
		if err != nil {
			t.Fatal(err)
		}
		out[node] = append(out[node], c)
	}
	t.Fatalf("could not open %d sessions on each of %v through %s: %v", n, nodes, addr, out)
	return nil
}

// alive reports whether every session still answers PING.
func alive(conns []*redistest.Conn) error {
	for _, c := range conns {
		if r, err := c.Do("PING"); err != nil || r != "PONG" {
			return fmt.Errorf("PING: %q %v", r, err)
		}
	}
	return nil
}

func nodeRow(t *testing.T, p *runningProxy, addr string) stats.NodeView {
	t.Helper()
	var page stats.Page
	if err := json.Unmarshal([]byte(statsGet(t, p, "/stats.json")), &page); err != nil {
		t.Fatal(err)
	}
	for _, n := range page.Groups[0].Nodes {
		if n.Addr == addr {
			return n
		}
	}
	t.Fatalf("%s not on the page", addr)
	return stats.NodeView{}
}

// TestAdminActionsOnRealSessions drives the admin actions against a real topology and checks their
// effect with real client connections.
func TestAdminActionsOnRealSessions(t *testing.T) {
	topo := newTopology(t, 2)
	cfg := testConfig(t, topo, topo.Name)
	cfg.Stats.Admin = true
	p := startProxy(t, cfg)
	master, b, c := topo.Nodes[0].Addr, topo.Nodes[1].Addr, topo.Nodes[2].Addr
	waitRoutedTo(t, p.master, master, 10*time.Second)
	if err := redistest.Eventually(10*time.Second, func() error {
		if got := nodeRow(t, p, c).Status; got != "UP" {
			return fmt.Errorf("%s is %s", c, got)
		}
		if got := nodeRow(t, p, b).Status; got != "UP" {
			return fmt.Errorf("%s is %s", b, got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// DRAIN: no new sessions, established ones stay.
	before := sessionsOn(t, p.replica, 2, b, c)
	adminAction(t, p, b, "DRAIN")
	if err := alive(before[b]); err != nil {
		t.Fatalf("DRAIN must keep established sessions: %v", err)
	}
	for i := 0; i < 6; i++ {
		if got, err := servedBy(p.replica); err != nil || got != c {
			t.Fatalf("new client during DRAIN went to %s (%v), want %s", got, err, c)
		}
	}
	if row := nodeRow(t, p, b); row.Status != "DRAIN" || row.CurrentSessions != int64(len(before[b])) {
		t.Errorf("DRAIN row: status %s, sessions %d (want %d)", row.Status, row.CurrentSessions, len(before[b]))
	}

	// MAINT: the established sessions are closed too; the other replica's stay.
	adminAction(t, p, b, "MAINT")
	for _, conn := range before[b] {
		if r, err := conn.Do("PING"); err == nil {
			t.Errorf("a session to %s in MAINT still answers: %q", b, r)
		}
	}
	if err := alive(before[c]); err != nil {
		t.Errorf("sessions to %s must survive MAINT on %s: %v", c, b, err)
	}
	if row := nodeRow(t, p, b); row.Status != "MAINT" || row.CurrentSessions != 0 {
		t.Errorf("MAINT row: status %s, sessions %d", row.Status, row.CurrentSessions)
	}

	// READY: back in rotation.
	adminAction(t, p, b, "READY")
	sessionsOn(t, p.replica, 1, b, c)

	// KILL on the master: its sessions are closed, new clients still reach it.
	ms := sessionsOn(t, p.master, 3, master)
	adminAction(t, p, master, "KILL")
	for _, conn := range ms[master] {
		if r, err := conn.Do("PING"); err == nil {
			t.Errorf("a killed master session still answers: %q", r)
		}
	}
	waitRoutedTo(t, p.master, master, 2*time.Second)
	if !strings.Contains(statsGet(t, p, "/stats"), "<td>KILL</td>") && !strings.Contains(statsGet(t, p, "/stats"), `class="kill">KILL`) {
		t.Errorf("the page does not list the KILL action")
	}

	// MAINT on the master: the master port refuses new clients with a RESP error (after the hold).
	adminAction(t, p, master, "MAINT")
	if _, err := redistest.Do(p.master, testPassword, "PING"); err == nil || !strings.Contains(err.Error(), "is in MAINT") {
		t.Errorf("master in MAINT: want a RESP error naming MAINT, got %v", err)
	}
	adminAction(t, p, master, "READY")
	waitRoutedTo(t, p.master, master, 5*time.Second)
	logs := p.logs.String()
	if n := strings.Count(logs, `"event":"admin_action"`); n != 6 {
		t.Errorf("want 6 admin_action lines, got %d", n)
	}
}
