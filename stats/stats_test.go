package stats

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/sentinel-proxy/sentinel-proxy/check"
	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
	"github.com/sentinel-proxy/sentinel-proxy/sentinel"
)

const (
	masterAddr  = "127.0.0.1:6379"
	replicaAddr = "127.0.0.1:6380"
	downAddr    = "127.0.0.1:6381"
)

type fixture struct {
	s      *Server
	srv    *httptest.Server
	router *routing.Router
	logs   *redistest.SyncBuffer
}

// newFixture runs a real Router fed with one Sentinel's view and probes: a verified master, a synced
// replica and a replica that refuses connections. Each of with sets more of the server before it serves.
func newFixture(t *testing.T, admin bool, with ...func(*Server)) *fixture {
	t.Helper()
	logs := &redistest.SyncBuffer{}
	log := zerolog.New(logs)
	router := routing.NewRouter([]string{"mymaster"}, 2, 3, 0, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { router.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	now := time.Now()
	for _, in := range []routing.Input{
		routing.ViewInput{View: sentinel.View{Sentinel: "127.0.0.1:26379", MasterName: "mymaster", At: now,
			MasterAddr: masterAddr, ConfigEpoch: 3, MasterFlags: "master",
			Replicas: []sentinel.Replica{{Addr: replicaAddr, Flags: "slave"}, {Addr: downAddr, Flags: "slave"}}}},
		routing.ProbeInput{Result: check.Result{Addr: masterAddr, Status: check.L7OK, At: now,
			Replication: check.Replication{Role: "master", MasterReplOffset: 1000,
				Replicas: []check.ReplicaLink{{Addr: replicaAddr, State: "online", Offset: 990, Lag: 1}}}}},
		routing.ProbeInput{Result: check.Result{Addr: replicaAddr, Status: check.L7OK, At: now,
			Replication: check.Replication{Role: "slave", MasterLinkStatus: "up", MasterReplOffset: 990}}},
		routing.ProbeInput{Result: check.Result{Addr: downAddr, Status: check.L4CON, At: now}},
	} {
		router.Submit(ctx, in)
	}
	waitFor(t, "the router to verify the master", func() bool {
		g := router.Snapshot().Group("mymaster")
		return g.Master == masterAddr && len(g.Nodes) == 3 && g.Nodes[2].Health.Known
	})

	master := &proxy.Listener{Name: "mymaster/master", MaxConns: 10, HoldTimeout: 3 * time.Second}
	master.SetRoute(proxy.Route{Backends: []string{masterAddr}})
	replica := &proxy.Listener{Name: "mymaster/replica"}
	replica.SetRoute(proxy.Route{Backends: []string{replicaAddr}})
	groups := []GroupPorts{{Name: "mymaster", Master: master, Replica: replica}}
	metrics := NewMetrics()
	router.OnSwitch = metrics.ObserveSwitch
	s := &Server{User: "haproxy", Password: "password", Admin: admin, Control: routerControl{router, groups},
		Snapshot: router.Snapshot, History: router.History, NoMasterSpans: router.NoMasterSpans, Metrics: metrics,
		Groups: groups, Version: "test", Log: log, Started: time.Now()}
	for _, w := range with {
		w(s)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &fixture{s: s, srv: srv, router: router, logs: logs}
}

// routerControl carries admin actions to the fixture's router and listeners, as the proxy's own Control
// (package server) does: a new state through the router, waiting for the decision that follows.
type routerControl struct {
	router *routing.Router
	groups []GroupPorts
}

func (c routerControl) SetAdminState(ctx context.Context, node string, st routing.AdminState) error {
	done := make(chan struct{})
	c.router.Submit(ctx, routing.AdminInput{Node: node, State: st, Done: done})
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if st == routing.AdminMaint {
		c.KillSessions(node)
	}
	return nil
}

func (c routerControl) KillSessions(node string) int {
	n := 0
	for _, g := range c.groups {
		n += g.Master.CloseSessionsTo(node)
		if g.Replica != nil {
			n += g.Replica.CloseSessionsTo(node)
		}
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := redistest.Eventually(5*time.Second, func() error {
		if !cond() {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// noRedirect lets a test see the admin handler's 303 itself.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func get(t *testing.T, url, user, pass string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	return do(t, req)
}

func post(t *testing.T, base string, form url.Values, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/admin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("haproxy", "password")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return do(t, req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func csrfOf(t *testing.T, base string) string {
	t.Helper()
	_, body := get(t, base+"/stats", "haproxy", "password")
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token on the page")
	}
	return m[1]
}

func TestHealthzNeedsNoAuth(t *testing.T) {
	f := newFixture(t, false)
	resp, body := get(t, f.srv.URL+"/healthz", "", "")
	if resp.StatusCode != 200 || body != "ok\n" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}
}

func TestReadyz(t *testing.T) {
	f := newFixture(t, true)
	if resp, body := get(t, f.srv.URL+"/readyz", "", ""); resp.StatusCode != 200 || body != "ready\n" {
		t.Fatalf("verified master: readyz %d %q", resp.StatusCode, body)
	}
	f.router.Submit(context.Background(), routing.AdminInput{Node: masterAddr, State: routing.AdminMaint})
	waitFor(t, "MAINT on the master", func() bool { return f.router.Snapshot().Group("mymaster").Master == "" })
	resp, body := get(t, f.srv.URL+"/readyz", "", "")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "mymaster: master "+masterAddr+" is in MAINT") {
		t.Fatalf("no master: readyz %d %q", resp.StatusCode, body)
	}
}

func TestEndpointsRequireAuth(t *testing.T) {
	f := newFixture(t, true)
	for _, path := range []string{"/stats", "/stats.json", "/stats.csv", "/metrics"} {
		for _, creds := range [][2]string{{"", ""}, {"haproxy", "wrong"}, {"other", "password"}} {
			resp, _ := get(t, f.srv.URL+path, creds[0], creds[1])
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s with %v: status %d", path, creds, resp.StatusCode)
			}
		}
		if resp, _ := get(t, f.srv.URL+path, "haproxy", "password"); resp.StatusCode != 200 {
			t.Errorf("%s with the right credentials: status %d", path, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("POST", f.srv.URL+"/admin", strings.NewReader("node=x"))
	if resp, _ := do(t, req); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /admin without credentials: status %d", resp.StatusCode)
	}
}

func TestStatsPage(t *testing.T) {
	f := newFixture(t, false)
	resp, body := get(t, f.srv.URL+"/stats?refresh=5", "haproxy", "password")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, want := range []string{"mymaster", masterAddr, replicaAddr, "mymaster/master", "mymaster/replica", "L4CON",
		"Layer4 connection problem", "127.0.0.1:26379", "config-epoch 3", `http-equiv="refresh" content="5"`,
		"Failover history", "no master switch since the proxy started", "1s, 10 B"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, `action="/admin"`) {
		t.Errorf("admin = false, yet the page has admin forms")
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("page may be framed: %v", resp.Header)
	}
}

func TestStatsJSON(t *testing.T) {
	f := newFixture(t, false)
	_, body := get(t, f.srv.URL+"/stats.json", "haproxy", "password")
	var p Page
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Groups) != 1 || p.Groups[0].Master != masterAddr || len(p.Groups[0].Nodes) != 3 || len(p.Groups[0].Listeners) != 2 {
		t.Fatalf("json: %+v", p)
	}
	status := map[string]string{}
	for _, n := range p.Groups[0].Nodes {
		status[n.Addr] = n.Status
		if n.Addr == replicaAddr && (n.LagSeconds != 1 || n.LagBytes != 10 || n.Admin != "READY") {
			t.Errorf("replica row: %+v", n)
		}
		if n.Addr == downAddr && (n.CheckStatus != "L4CON" || n.Downs != 1 || n.CheckFailures != 1) {
			t.Errorf("down row: %+v", n)
		}
	}
	want := map[string]string{masterAddr: "UP", replicaAddr: "UP", downAddr: "DOWN"}
	for addr, st := range want {
		if status[addr] != st {
			t.Errorf("%s status %q, want %q", addr, status[addr], st)
		}
	}
	if p.Groups[0].History == nil || len(p.Groups[0].Sentinels) != 1 {
		t.Errorf("history must be an empty list, sentinels one: %s", body)
	}
}

func TestStatsCSV(t *testing.T) {
	f := newFixture(t, false)
	resp, body := get(t, f.srv.URL+"/stats.csv", "haproxy", "password")
	if !strings.HasPrefix(body, "# pxname,svname,scur,smax,slim,stot,bin,bout,ereq,econ,status,") ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv header: %q", body[:min(len(body), 120)])
	}
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(body, "# "))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+2+3 {
		t.Fatalf("want header + 2 listeners + 3 nodes, got %d rows:\n%s", len(rows), body)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	for _, r := range rows[1:] {
		if len(r) != len(rows[0]) {
			t.Errorf("row %v has %d columns, header %d", r, len(r), len(rows[0]))
		}
		if r[col["svname"]] == downAddr && (r[col["status"]] != "DOWN" || r[col["check_status"]] != "L4CON" || r[col["type"]] != "2") {
			t.Errorf("down node row: %v", r)
		}
		if r[col["pxname"]] == "mymaster/master" && (r[col["svname"]] != "FRONTEND" || r[col["slim"]] != "10") {
			t.Errorf("master listener row: %v", r)
		}
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, false)
	_, body := get(t, f.srv.URL+"/metrics", "haproxy", "password")
	for _, want := range []string{
		`sentinel_proxy_node_status{group="mymaster",node="127.0.0.1:6381",state="DOWN"} 1`,
		`sentinel_proxy_node_status{group="mymaster",node="127.0.0.1:6381",state="UP"} 0`,
		`sentinel_proxy_node_status{group="mymaster",node="127.0.0.1:6379",state="UP"} 1`,
		`sentinel_proxy_node_is_master{group="mymaster",node="127.0.0.1:6379"} 1`,
		`sentinel_proxy_node_check_failures_total{group="mymaster",node="127.0.0.1:6381"} 1`,
		`sentinel_proxy_node_replication_lag_bytes{group="mymaster",node="127.0.0.1:6380"} 10`,
		`sentinel_proxy_master_verified{group="mymaster"} 1`,
		`sentinel_proxy_group_mode{group="mymaster",mode="tcp"} 1`,
		`sentinel_proxy_group_mode{group="mymaster",mode="resp"} 0`,
		`sentinel_proxy_failovers_total{group="mymaster"} 0`,
		`sentinel_proxy_detect_to_switch_seconds_bucket{group="mymaster",le="0.1"} 0`,
		`sentinel_proxy_listener_limit_sessions{group="mymaster",listener="mymaster/master",role="master"} 10`,
		`sentinel_proxy_sentinel_reachable{group="mymaster",sentinel="127.0.0.1:26379"} 1`,
		`sentinel_proxy_sentinel_events_received_total{group="mymaster",sentinel="127.0.0.1:26379"} 0`,
		`sentinel_proxy_dual_master_detections_total{group="mymaster"} 0`,
		`sentinel_proxy_build_info{`, `go_goroutines`, `process_resident_memory_bytes`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestStalledMaster shows a master that answers its checks -BUSY: still UP and routed, with its stall on
// the page, in /stats.json, /stats.csv and the metrics.
func TestStalledMaster(t *testing.T) {
	f := newFixture(t, false)
	busy := check.Result{Addr: masterAddr, Status: check.L7STS, At: time.Now(),
		Err: fmt.Errorf("PING: %w", check.RedisError("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."))}
	for range 5 {
		f.router.Submit(context.Background(), routing.ProbeInput{Result: busy})
	}
	waitFor(t, "the stall", func() bool {
		g := f.router.Snapshot().Group("mymaster")
		return g.Nodes[0].StalledChecks == 5
	})
	if g := f.router.Snapshot().Group("mymaster"); g.Master != masterAddr {
		t.Fatalf("a busy master stays routed: %q (%s)", g.Master, g.NoMasterReason)
	}

	_, page := get(t, f.srv.URL+"/stats", "haproxy", "password")
	for _, want := range []string{`id="stall-mymaster"`, "is <b>busy</b>", `<span class="stall"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	_, body := get(t, f.srv.URL+"/stats.json", "haproxy", "password")
	var p Page
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	g := p.Groups[0]
	if g.Master != masterAddr || g.MasterStall != "busy" || g.Nodes[0].Stall != "busy" || g.Nodes[0].Status != "UP" ||
		g.Nodes[0].StalledChecks != 5 || g.Nodes[0].Stalls != 1 || g.Nodes[1].Stall != "" {
		t.Errorf("json: master %q stall %q, master row %+v", g.Master, g.MasterStall, g.Nodes[0])
	}
	_, csvBody := get(t, f.srv.URL+"/stats.csv", "haproxy", "password")
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(csvBody, "# "))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	for _, r := range rows[1:] {
		if r[col["svname"]] == masterAddr && (r[col["stall"]] != "busy" || r[col["stalled_checks"]] != "5" || r[col["status"]] != "UP") {
			t.Errorf("master csv row: %v", r)
		}
	}
	_, metrics := get(t, f.srv.URL+"/metrics", "haproxy", "password")
	for _, want := range []string{
		`sentinel_proxy_node_stalled{group="mymaster",node="127.0.0.1:6379",stall="busy"} 1`,
		`sentinel_proxy_node_stalled{group="mymaster",node="127.0.0.1:6379",stall="unresponsive"} 0`,
		`sentinel_proxy_node_stalled{group="mymaster",node="127.0.0.1:6380",stall="busy"} 0`,
		`sentinel_proxy_node_stalled_checks_total{group="mymaster",node="127.0.0.1:6379"} 5`,
		`sentinel_proxy_node_stalls_total{group="mymaster",node="127.0.0.1:6379"} 1`,
		`sentinel_proxy_node_status{group="mymaster",node="127.0.0.1:6379",state="UP"} 1`,
		`sentinel_proxy_master_verified{group="mymaster"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(f.logs.String(), `"event":"node_stalled","node":"127.0.0.1:6379","stall":"busy"`) {
		t.Errorf("no node_stalled line:\n%s", f.logs.String())
	}
}

// TestFenceRaceShown: a Sentinel whose down-after-milliseconds leaves the fence no time is named on the
// page and in /stats.json.
func TestFenceRaceShown(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	f.router.Submit(ctx, routing.ConfigInput{Groups: []string{"mymaster"}, Rise: 2, Fall: 3, Sentinels: []string{"127.0.0.1:26379"},
		Fence: routing.FenceSettings{Enabled: true, ReplicaTimeout: 3 * time.Second}})
	f.router.Submit(ctx, routing.ViewInput{View: sentinel.View{Sentinel: "127.0.0.1:26379", MasterName: "mymaster", At: time.Now(),
		MasterAddr: masterAddr, ConfigEpoch: 3, MasterFlags: "master", DownAfter: 2 * time.Second,
		Replicas: []sentinel.Replica{{Addr: replicaAddr, Flags: "slave"}, {Addr: downAddr, Flags: "slave"}}}})
	waitFor(t, "the race", func() bool { return f.router.Snapshot().Group("mymaster").FenceRace != "" })
	_, page := get(t, f.srv.URL+"/stats", "haproxy", "password")
	if !strings.Contains(page, `id="fence-race-mymaster"`) || !strings.Contains(page, "down-after-milliseconds to 4000 or more") {
		t.Errorf("page lacks the fence race line")
	}
	_, body := get(t, f.srv.URL+"/stats.json", "haproxy", "password")
	var p Page
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Groups[0].FenceRace, "127.0.0.1:26379 judges the master down after 2s") {
		t.Errorf("fence_race %q", p.Groups[0].FenceRace)
	}
}

func TestAdminActions(t *testing.T) {
	f := newFixture(t, true)
	token := csrfOf(t, f.srv.URL)

	// Without the token, with a wrong one, or from another site: refused, nothing changes.
	for name, tc := range map[string]struct {
		form   url.Values
		header map[string]string
	}{
		"no token":    {url.Values{"node": {replicaAddr}, "action": {"MAINT"}, "confirm": {"yes"}}, nil},
		"wrong token": {url.Values{"node": {replicaAddr}, "action": {"MAINT"}, "confirm": {"yes"}, "csrf": {strings.Repeat("0", 64)}}, nil},
		"cross-site": {url.Values{"node": {replicaAddr}, "action": {"MAINT"}, "confirm": {"yes"}, "csrf": {token}},
			map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}},
	} {
		if resp, body := post(t, f.srv.URL, tc.form, tc.header); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: status %d %q", name, resp.StatusCode, body)
		}
	}
	if n := node(f, replicaAddr); n.Admin != routing.AdminReady {
		t.Fatalf("a refused request changed the node: %s", n.Admin)
	}
	if resp, _ := post(t, f.srv.URL, url.Values{"node": {"10.9.9.9:1"}, "action": {"MAINT"}, "csrf": {token}}, nil); resp.StatusCode != 400 {
		t.Errorf("unknown node: status %d", resp.StatusCode)
	}
	if resp, _ := post(t, f.srv.URL, url.Values{"node": {replicaAddr}, "action": {"REBOOT"}, "csrf": {token}}, nil); resp.StatusCode != 400 {
		t.Errorf("unknown action: status %d", resp.StatusCode)
	}

	// The first POST asks for confirmation; for the master it warns about the master port.
	resp, body := post(t, f.srv.URL, url.Values{"node": {masterAddr}, "action": {"MAINT"}, "csrf": {token}}, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "is the MASTER of mymaster") || !strings.Contains(body, `name="confirm" value="yes"`) {
		t.Errorf("MAINT on the master must warn before confirming: %d\n%s", resp.StatusCode, body)
	}
	if n := node(f, masterAddr); n.Admin != routing.AdminReady {
		t.Fatalf("unconfirmed action applied: %s", n.Admin)
	}
	_, body = post(t, f.srv.URL, url.Values{"node": {replicaAddr}, "action": {"MAINT"}, "csrf": {token}}, nil)
	if strings.Contains(body, "MASTER") || !strings.Contains(body, "established sessions are closed") {
		t.Errorf("MAINT on a replica: no master warning, but the consequence:\n%s", body)
	}

	// Confirmed: applied before the redirect, logged, shown on the page.
	resp, _ = post(t, f.srv.URL, url.Values{"node": {replicaAddr}, "action": {"MAINT"}, "csrf": {token}, "confirm": {"yes"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/stats?notice=") {
		t.Fatalf("confirmed action: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := node(f, replicaAddr); n.Admin != routing.AdminMaint || n.InReplicaPool {
		t.Errorf("MAINT not applied when the response came: %+v", n)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `"event":"admin_action","user":"haproxy"`) || !strings.Contains(logs, `"node":"`+replicaAddr+`","action":"MAINT"`) {
		t.Errorf("admin_action not logged:\n%s", logs)
	}
	if !strings.Contains(logs, `"event":"admin_rejected"`) {
		t.Errorf("rejected CSRF not logged:\n%s", logs)
	}
	_, page := get(t, f.srv.URL+"/stats", "haproxy", "password")
	if !strings.Contains(page, `<td class="MAINT status">MAINT</td>`) || !strings.Contains(page, "Admin actions") {
		t.Errorf("page does not show MAINT and the action")
	}
	_, js := get(t, f.srv.URL+"/stats.json", "haproxy", "password")
	var p Page
	_ = json.Unmarshal([]byte(js), &p)
	if len(p.Actions) != 1 || p.Actions[0].Action != "MAINT" || p.Actions[0].User != "haproxy" {
		t.Errorf("json admin_actions: %+v", p.Actions)
	}
	_, metrics := get(t, f.srv.URL+"/metrics", "haproxy", "password")
	if !strings.Contains(metrics, `sentinel_proxy_admin_actions_total{action="MAINT"} 1`) ||
		!strings.Contains(metrics, `sentinel_proxy_node_status{group="mymaster",node="127.0.0.1:6380",state="MAINT"} 1`) {
		t.Errorf("metrics do not show the action")
	}

	post(t, f.srv.URL, url.Values{"node": {replicaAddr}, "action": {"READY"}, "csrf": {token}, "confirm": {"yes"}}, nil)
	if n := node(f, replicaAddr); n.Admin != routing.AdminReady || !n.InReplicaPool {
		t.Errorf("READY not applied: %+v", n)
	}
}

func TestAdminDisabled(t *testing.T) {
	f := newFixture(t, false)
	resp, _ := post(t, f.srv.URL, url.Values{"node": {replicaAddr}, "action": {"MAINT"}, "confirm": {"yes"}}, nil)
	if resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusNotFound {
		t.Errorf("admin = false: POST /admin status %d", resp.StatusCode)
	}
}

func node(f *fixture, addr string) routing.NodeSnapshot {
	for _, n := range f.router.Snapshot().Group("mymaster").Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return routing.NodeSnapshot{}
}

// TestMetricsDocumented keeps docs/metrics.md and /metrics in step: alert rules are written against the
// document, so a metric missing from either side is a broken interface.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	name := regexp.MustCompile("`([a-z_]+)`")
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.Split(line, "|")[1]
		for _, m := range name.FindAllStringSubmatch(first, -1) {
			documented[m[1]] = true
		}
	}
	// resp mode, multiplexed, writes behind it: every metric is exported
	f := newFixture(t, true, withDurability(t), func(s *Server) {
		s.Groups[0].Multiplex = func([]string) (uint64, uint64) { return 1, 0 }
	})
	_, body := get(t, f.srv.URL+"/metrics", "haproxy", "password")
	exported := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE sentinel_proxy_([a-z_]+) `).FindAllStringSubmatch(body, -1) {
		exported[m[1]] = true
	}
	if len(exported) < 20 {
		t.Fatalf("found only %d metrics; the pattern no longer matches", len(exported))
	}
	for m := range exported {
		if !documented[m] {
			t.Errorf("sentinel_proxy_%s is exported but not in docs/metrics.md", m)
		}
	}
	for m := range documented {
		if !exported[m] {
			t.Errorf("docs/metrics.md lists %s, which /metrics does not export", m)
		}
	}
}

// TestRespModeGroup shows a resp-mode group: its mode on the page, in the JSON and the metrics, and the
// sessions a failover moved (not closed) per listener.
func TestRespModeGroup(t *testing.T) {
	snap := routing.Decide(routing.NewState([]string{"g"}, 1, 1), []string{"g"}, time.Now())
	s := &Server{User: "ops", Password: "pw", Snapshot: func() *routing.Snapshot { return snap },
		Groups: []GroupPorts{{Name: "g", Mode: "resp", Master: &proxy.Listener{Name: "g/master"},
			Multiplex: func([]string) (uint64, uint64) { return 3, 17 }}},
		Metrics: NewMetrics(), Log: zerolog.Nop(), Started: time.Now()}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	_, page := get(t, srv.URL+"/stats", "ops", "pw")
	if !strings.Contains(page, `id="mode-g"`) || !strings.Contains(page, "<th rowspan=\"2\">moved</th>") {
		t.Errorf("page lacks the mode or the moved column:\n%s", page)
	}
	if !regexp.MustCompile(`(?s)id="multiplex-g".*<td class="n">3</td><td class="n">17</td>`).MatchString(page) {
		t.Errorf("page lacks the group's shared connections (3) and unshared sessions (17):\n%s", page)
	}
	_, body := get(t, srv.URL+"/stats.json", "ops", "pw")
	var p Page
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Groups) != 1 || p.Groups[0].Mode != "resp" || !strings.Contains(body, `"sessions_moved": 0`) ||
		p.Groups[0].Multiplex == nil || p.Groups[0].Multiplex.SharedConns != 3 || p.Groups[0].Multiplex.Unshared != 17 {
		t.Errorf("json: %s", body)
	}
	_, metrics := get(t, srv.URL+"/metrics", "ops", "pw")
	for _, want := range []string{`sentinel_proxy_group_mode{group="g",mode="resp"} 1`,
		`sentinel_proxy_listener_sessions_moved_total{group="g",listener="g/master",role="master"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestBcryptPasswordAndFailedLogins(t *testing.T) {
	logs := &redistest.SyncBuffer{}
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-stats"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	snap := routing.Decide(routing.NewState([]string{"g"}, 1, 1), []string{"g"}, time.Now())
	s := &Server{User: "ops", PasswordHash: string(hash), Snapshot: func() *routing.Snapshot { return snap },
		Groups: []GroupPorts{{Name: "g", Master: &proxy.Listener{Name: "g/master"}}}, Log: zerolog.New(logs), Started: time.Now()}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for i := 0; i < 3; i++ { // the second and third hit the cache of the accepted password
		if resp, _ := get(t, srv.URL+"/stats.json", "ops", "s3cret-stats"); resp.StatusCode != 200 {
			t.Fatalf("bcrypt password refused: %d", resp.StatusCode)
		}
	}
	for i := 0; i < loginFailures; i++ {
		if resp, _ := get(t, srv.URL+"/stats.json", "ops", "guess"+fmt.Sprint(i)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i, resp.StatusCode)
		}
	}
	resp, _ := get(t, srv.URL+"/stats.json", "ops", "s3cret-stats")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("after %d failures even the right password must wait: %d", loginFailures, resp.StatusCode)
	}
	if resp, _ := get(t, srv.URL+"/healthz", "", ""); resp.StatusCode != 200 {
		t.Errorf("healthz must stay open: %d", resp.StatusCode)
	}
	out := logs.String()
	if !strings.Contains(out, `"event":"stats_auth_failed","remote":"127.0.0.1","user":"ops"`) {
		t.Errorf("failed logins not logged:\n%s", out)
	}
	if n := strings.Count(out, "stats_auth_failed"); n > 2 {
		t.Errorf("failed logins must be logged at most once a second per address, got %d lines", n)
	}
	if strings.Contains(out, "guess") || strings.Contains(out, "s3cret") {
		t.Errorf("a password reached the log:\n%s", out)
	}
}

// TestSlowClientsCannotHoldTheStatsPort opens connections that send their headers a byte at a time
// (slowloris): the server drops them after ReadHeaderTimeout and answers normal requests meanwhile.
func TestSlowClientsCannotHoldTheStatsPort(t *testing.T) {
	f := newFixture(t, false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := NewHTTPServer(f.srv.Config.Handler)
	hs.ReadHeaderTimeout = 500 * time.Millisecond // the production value is 5s; the mechanism is the same
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	addr := ln.Addr().String()

	const slow = 50
	closed := make(chan time.Duration, slow)
	for i := 0; i < slow; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			start := time.Now()
			if _, err := c.Write([]byte("GET /stats HTTP/1.1\r\nHost: x\r\n")); err != nil {
				closed <- time.Since(start)
				return
			}
			for {
				time.Sleep(100 * time.Millisecond)
				if _, err := c.Write([]byte("X")); err != nil {
					closed <- time.Since(start)
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
				if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					closed <- time.Since(start)
					return
				}
			}
		}()
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("a normal request while %d slow clients hang on: %v", slow, err)
	}
	resp.Body.Close()
	deadline := time.After(10 * time.Second)
	for i := 0; i < slow; i++ {
		select {
		case d := <-closed:
			if d > 5*time.Second {
				t.Errorf("a slow client was held %v", d)
			}
		case <-deadline:
			t.Fatalf("only %d of %d slow clients were dropped", i, slow)
		}
	}
}
