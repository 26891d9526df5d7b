package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
	"github.com/sentinel-proxy/sentinel-proxy/server"
)

func statsRequest(t *testing.T, method, addr, path, user, password string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+addr+path, nil)
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err != nil
}

// TestReloadKeepsValidSessions reloads a running proxy with live sessions: a moved replica port, an
// added group, new check settings and stats credentials; then a broken file (rejected, nothing
// changes); then the added group removed again.
func TestReloadKeepsValidSessions(t *testing.T) {
	topo := newTopology(t, 2)
	path := filepath.Join(t.TempDir(), "sentinel-proxy.toml")
	doc := testConfigDoc(t, topo, topo.Name)
	write := func(doc string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(doc)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxyWith(t, cfg, server.Options{Reload: func() (*config.Config, error) { return config.Load(path) }})
	master, replicaB := topo.Nodes[0].Addr, topo.Nodes[1].Addr
	waitRoutedTo(t, p.master, master, 10*time.Second)
	ms := sessionsOn(t, p.master, 2, master)[master]
	if _, err := ms[0].Do("SET", "before-reload", "1"); err != nil {
		t.Fatal(err)
	}
	rs := sessionsOn(t, p.replica, 1, replicaB)[replicaB]

	// 1. A valid reload.
	two := freeAddrs(t, 2)
	newReplica, other := two[0].(string), two[1].(string)
	doc2 := strings.Replace(doc, fmt.Sprintf("replica_listen = %q", cfg.Masters[0].ReplicaListen),
		fmt.Sprintf("replica_listen = %q", newReplica), 1)
	doc2 = strings.Replace(doc2, `interval = "200ms"`, `interval = "100ms"`, 1)
	doc2 = strings.Replace(doc2, `shutdown_timeout = "1s"`, "shutdown_timeout = \"1s\"\nfailover_hold = \"0s\"", 1)
	doc2 = strings.Replace(doc2, `password = "stats-pw"`, `password = "stats-pw-2"`, 1)
	doc2 = strings.Replace(doc2, "[stats]", fmt.Sprintf("[[masters]]\nname = \"other\"\nmaster_listen = %q\n[stats]", other), 1)
	write(doc2)
	if code, body := statsRequest(t, "POST", p.stats, "/-/reload", "admin", "stats-pw"); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	for i, c := range ms {
		if r, err := c.Do("GET", "before-reload"); err != nil || r != "1" {
			t.Errorf("master session %d after the reload: %q %v", i, r, err)
		}
	}
	if err := alive(rs); err != nil {
		t.Errorf("the replica session must survive its port moving: %v", err)
	}
	if !refused(p.replica) {
		t.Errorf("the old replica port %s still accepts", p.replica)
	}
	if _, err := servedBy(newReplica); err != nil {
		t.Errorf("the new replica port %s does not serve: %v", newReplica, err)
	}
	if _, err := redistest.Do(other, testPassword, "PING"); err == nil || !strings.Contains(err.Error(), `no verified master for "other"`) {
		t.Errorf("the added group's port: want a RESP error naming it, got %v", err)
	}
	if code, _ := statsRequest(t, "GET", p.stats, "/stats.json", "admin", "stats-pw"); code != http.StatusUnauthorized {
		t.Errorf("the old stats password still works: %d", code)
	}
	if code, body := statsRequest(t, "GET", p.stats, "/stats.json", "admin", "stats-pw-2"); code != 200 || !strings.Contains(body, `"name": "other"`) {
		t.Errorf("stats after reload: %d, other group shown: %v", code, strings.Contains(body, `"name": "other"`))
	}
	logs := p.logs.String()
	if !strings.Contains(logs, `"event":"config_reloaded","trigger":"POST /-/reload","changed":["check","proxy","masters","stats"]`) ||
		!strings.Contains(logs, `"restart_needed":["proxy"]`) {
		t.Errorf("config_reloaded line:\n%s", grepLines(logs, "config_reloaded"))
	}

	// 2. A broken file: every problem reported, nothing changes.
	write(strings.Replace(doc2, `interval = "100ms"`, "interval = \"100ms\"\nintervall = \"1s\"\nrise = 0", 1))
	code, body := statsRequest(t, "POST", p.stats, "/-/reload", "admin", "stats-pw-2")
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "check.intervall: unknown key") || !strings.Contains(body, "check.rise") {
		t.Errorf("a broken config: %d %s", code, body)
	}
	if !strings.Contains(p.logs.String(), `"event":"config_rejected"`) {
		t.Errorf("no config_rejected line")
	}
	if err := alive(ms); err != nil {
		t.Errorf("master sessions after a rejected reload: %v", err)
	}
	if code, _ := statsRequest(t, "GET", p.stats, "/stats.json", "admin", "stats-pw-2"); code != 200 {
		t.Errorf("the running config must be kept: %d", code)
	}

	// 3. The added group removed: its port closes, the others' sessions stay.
	write(strings.Replace(doc2, fmt.Sprintf("[[masters]]\nname = \"other\"\nmaster_listen = %q\n", other), "", 1))
	if code, body := statsRequest(t, "POST", p.stats, "/-/reload", "admin", "stats-pw-2"); code != 200 {
		t.Fatalf("reload 3: %d %s", code, body)
	}
	if !refused(other) {
		t.Errorf("the removed group's port %s still accepts", other)
	}
	if err := alive(ms); err != nil {
		t.Errorf("master sessions after removing another group: %v", err)
	}
	// And failover still works after the reloads: the new settings are in force.
	if _, err := topo.Failover(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	newMaster := waitNewMaster(t, topo, master)
	waitRoutedTo(t, p.master, newMaster, 10*time.Second)
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestGracefulShutdown: after SIGTERM no new client is accepted, an established session works until it
// ends, and run returns 0 once it has; a session still open at shutdown_timeout is closed.
func TestGracefulShutdown(t *testing.T) {
	topo := newTopology(t, 1)
	cfg := testConfig(t, topo, topo.Name)
	cfg.Proxy.ShutdownTimeout.Duration = 30 * time.Second
	p := startProxy(t, cfg)
	master := topo.Nodes[0].Addr
	waitRoutedTo(t, p.master, master, 10*time.Second)
	conn, err := redistest.Dial(p.master, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	p.stop() // SIGTERM
	if err := redistest.Eventually(5*time.Second, func() error {
		if !refused(p.master) {
			return fmt.Errorf("still accepting")
		}
		return nil
	}); err != nil {
		t.Fatalf("the master port after SIGTERM: %v", err)
	}
	if code, body := statsRequest(t, "GET", p.stats, "/readyz", "", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Errorf("readyz while draining: %d %q", code, body)
	}
	for i := 0; i < 5; i++ {
		if r, err := conn.Do("INCR", "drain"); err != nil {
			t.Fatalf("an established session during the drain: %q %v", r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case <-p.finished:
		t.Fatalf("run returned while a session was open")
	default:
	}
	conn.Close()
	select {
	case <-p.finished:
		if p.runErr != nil {
			t.Fatalf("run: %v", p.runErr)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("run did not return after the last session ended")
	}
	if !strings.Contains(p.logs.String(), `"event":"proxy_stopped","sessions_closed":0`) {
		t.Errorf("proxy_stopped:\n%s", grepLines(p.logs.String(), "proxy_stopped"))
	}

	// A session that outlives shutdown_timeout is closed.
	cfg = testConfig(t, topo, topo.Name)
	cfg.Proxy.ShutdownTimeout.Duration = 300 * time.Millisecond
	p = startProxy(t, cfg)
	waitRoutedTo(t, p.master, master, 10*time.Second)
	conn, err = redistest.Dial(p.master, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	p.stop()
	select {
	case <-p.finished:
	case <-time.After(5 * time.Second):
		t.Fatalf("run did not return after shutdown_timeout")
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("run returned after %v, before shutdown_timeout", d)
	}
	if r, err := conn.Do("PING"); err == nil {
		t.Errorf("a session past shutdown_timeout still answers: %q", r)
	}
	if !strings.Contains(p.logs.String(), `"sessions_closed":1`) {
		t.Errorf("proxy_stopped must count the closed session:\n%s", grepLines(p.logs.String(), "proxy_stopped"))
	}
}
