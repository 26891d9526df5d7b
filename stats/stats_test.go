package stats

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/check"
	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
	"github.com/sentinel-proxy/sentinel-proxy/sentinel"
)

func testServer(t *testing.T) *httptest.Server {
	st := routing.NewState([]string{"mymaster"}, 2, 3)
	st.Apply(routing.ViewInput{View: sentinel.View{Sentinel: "127.0.0.1:26379", MasterName: "mymaster", At: time.Now(),
		MasterAddr: "127.0.0.1:6379", ConfigEpoch: 3, MasterFlags: "master",
		Replicas: []sentinel.Replica{{Addr: "127.0.0.1:6380", Flags: "slave"}}}})
	st.Apply(routing.ProbeInput{Result: check.Result{Addr: "127.0.0.1:6379", Status: check.L7OK, At: time.Now(),
		Replication: check.Replication{Role: "master"}}})
	st.Apply(routing.ProbeInput{Result: check.Result{Addr: "127.0.0.1:6380", Status: check.L4CON, At: time.Now()}})
	snap := routing.Decide(st, []string{"mymaster"}, time.Now())
	master := &proxy.Listener{Name: "mymaster/master", MaxConns: 10}
	master.SetRoute(proxy.Route{Backends: []string{"127.0.0.1:6379"}})
	s := &Server{User: "haproxy", Password: "password", Snapshot: func() *routing.Snapshot { return snap },
		Groups: []Group{{Name: "mymaster", Master: master}}, Version: "test", Log: zerolog.Nop(), Started: time.Now()}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url, user, pass string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestHealthzNeedsNoAuth(t *testing.T) {
	srv := testServer(t)
	resp, body := get(t, srv.URL+"/healthz", "", "")
	if resp.StatusCode != 200 || body != "ok\n" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}
}

func TestStatsRequireAuth(t *testing.T) {
	srv := testServer(t)
	for _, path := range []string{"/stats", "/stats.json"} {
		for _, creds := range [][2]string{{"", ""}, {"haproxy", "wrong"}, {"other", "password"}} {
			resp, _ := get(t, srv.URL+path, creds[0], creds[1])
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s with %v: status %d", path, creds, resp.StatusCode)
			}
		}
	}
}

func TestStatsPage(t *testing.T) {
	srv := testServer(t)
	resp, body := get(t, srv.URL+"/stats", "haproxy", "password")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, want := range []string{"mymaster", "127.0.0.1:6379", "127.0.0.1:6380", "mymaster/master", "L4CON",
		"Layer4 connection problem", "127.0.0.1:26379", "config-epoch 3"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("page may be framed")
	}
}

func TestStatsJSON(t *testing.T) {
	srv := testServer(t)
	_, body := get(t, srv.URL+"/stats.json", "haproxy", "password")
	var p Page
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Groups) != 1 || p.Groups[0].Master != "127.0.0.1:6379" || len(p.Groups[0].Nodes) != 2 {
		t.Fatalf("json: %+v", p)
	}
	for _, n := range p.Groups[0].Nodes {
		if n.Addr == "127.0.0.1:6380" && (n.Status != "DOWN" || n.CheckStatus != "L4CON") {
			t.Errorf("replica row: %+v", n)
		}
	}
	if !p.Groups[0].ReplicaFallback {
		t.Errorf("no healthy replica should show as fallback")
	}
}
