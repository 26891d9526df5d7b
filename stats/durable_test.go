package stats

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/respsession"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
	"github.com/sentinel-proxy/sentinel-proxy/resp"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
)

// durableRedis is a fake Redis for resp sessions with wait_replicas on: it answers every command +OK,
// and WAIT with how many replicas acked is set to; once release is closed, when it is set.
type durableRedis struct {
	addr    string
	acked   atomic.Int64
	release chan struct{}
}

func newDurableRedis(t *testing.T) *durableRedis {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	r := &durableRedis{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go r.serve(c)
		}
	}()
	return r
}

func (r *durableRedis) serve(c net.Conn) {
	rd := bufio.NewReader(c)
	for {
		v, err := resp.ReadValue(rd, resp.Limits{})
		if err != nil {
			return
		}
		reply := resp.AppendSimple(nil, "OK")
		if len(v.Elems) > 0 && strings.EqualFold(v.Elems[0].Str, "WAIT") {
			if r.release != nil {
				<-r.release
			}
			reply = resp.AppendInt(nil, r.acked.Load())
		}
		if _, err := c.Write(reply); err != nil {
			return
		}
	}
}

// durablePort serves a resp-mode master port whose sessions apply d, routed to backend, until the test
// ends, and returns its address: real sessions count d's writes, as in the proxy.
func durablePort(t *testing.T, d *respsession.Durability, backend *durableRedis) string {
	t.Helper()
	l := &proxy.Listener{Name: "durable/master", Handler: respsession.Portable, SessionConfig: d}
	l.SetRoute(proxy.Route{Backends: []string{backend.addr}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { _ = l.Serve(ctx, ln); close(served) }()
	t.Cleanup(func() { cancel(); <-served })
	return ln.Addr().String()
}

// durableWrites sends writes SETs, one client each, through a durablePort to a fake Redis whose WAITs
// answer acked, and returns the replies (errors as their text).
func durableWrites(t *testing.T, d *respsession.Durability, acked int64, writes int) []string {
	t.Helper()
	backend := newDurableRedis(t)
	backend.acked.Store(acked)
	addr := durablePort(t, d, backend)
	var replies []string
	for i := range writes {
		r, err := redistest.Do(addr, "", "SET", fmt.Sprint("k", i), "v")
		var re resp.Error
		if errors.As(err, &re) {
			r, err = "-"+string(re), nil
		}
		if err != nil {
			t.Fatalf("SET %d: %v", i, err)
		}
		replies = append(replies, r)
	}
	return replies
}

// withDurability makes the fixture's group resp mode with wait_replicas = 2 (300 ms), after three
// writes two replicas confirmed and two that only one replica had.
func withDurability(t *testing.T) func(*Server) {
	t.Helper()
	d := respsession.NewDurability("mymaster", zerolog.Nop())
	d.Set(2, 300*time.Millisecond)
	if got := durableWrites(t, d, 2, 3); strings.Join(got, " ") != "OK OK OK" {
		t.Fatalf("confirmed writes got %q", got)
	}
	for _, r := range durableWrites(t, d, 1, 2) {
		if !strings.HasPrefix(r, "-NOREPLICAS ") {
			t.Fatalf("a write one replica of two had got %q", r)
		}
	}
	return func(s *Server) {
		s.Groups[0].Mode = "resp"
		s.Groups[0].Durability = d
	}
}

// TestDurableGroup shows a group whose writes went unconfirmed: the setting and the counts on the page
// (with a banner), in /stats.json, /stats.csv (the master port's row) and the metrics.
func TestDurableGroup(t *testing.T) {
	f := newFixture(t, false, withDurability(t))

	_, body := get(t, f.srv.URL+"/stats.json", "haproxy", "password")
	var p Page
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	d := p.Groups[0].Durability
	if d == nil || d.WaitReplicas != 2 || d.WaitTimeoutMS != 300 || d.Waiting != 0 || d.Confirmed != 3 ||
		d.Unconfirmed != 2 || d.Waits != 5 || d.ReplicasAcked != 1 || !d.UnconfirmedRecently ||
		d.UnconfirmedInRun != 2 || d.UnconfirmedSince.IsZero() || d.LastUnconfirmed.IsZero() {
		t.Errorf("json durability: %+v", d)
	}
	for _, want := range []string{`"wait_replicas": 2`, `"writes_unconfirmed": 2`, `"replicas_acked": 1`, `"unconfirmed_recently": true`} {
		if !strings.Contains(body, want) {
			t.Errorf("json lacks %s", want)
		}
	}

	_, page := get(t, f.srv.URL+"/stats", "haproxy", "password")
	for _, want := range []string{`id="durable-mymaster"`, "<h3>Durable acknowledgements</h3>",
		"2 replica(s) within 300 ms", `<td class="n unconfirmed">2<span class="sub">last `,
		`<span class="down">1</span> of 2`, `<div class="alert" id="unconfirmed-mymaster">WRITES UNCONFIRMED: 2 write(s) since `,
		"the last WAIT found 1 of 2 replicas", "their clients got NOREPLICAS"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}

	_, csvBody := get(t, f.srv.URL+"/stats.csv", "haproxy", "password")
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(csvBody, "# "))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	head := rows[0]
	if got := strings.Join(head[len(head)-durableColumns:], ","); got != "durable_wait_replicas,durable_wait_timeout_ms,"+
		"durable_writes_waiting,durable_writes_confirmed,durable_writes_unconfirmed,durable_replicas_acked" {
		t.Errorf("the last columns are %s", got)
	}
	for _, r := range rows[1:] {
		got := strings.Join(r[len(r)-durableColumns:], ",")
		want := ",,,,,"
		if r[0] == "mymaster/master" {
			want = "2,300,0,3,2,1"
		}
		if got != want {
			t.Errorf("row %s %s: durable columns %q, want %q", r[0], r[1], got, want)
		}
	}

	_, metrics := get(t, f.srv.URL+"/metrics", "haproxy", "password")
	for _, want := range []string{
		`sentinel_proxy_durable_wait_replicas{group="mymaster"} 2`,
		`sentinel_proxy_durable_wait_timeout_seconds{group="mymaster"} 0.3`,
		`sentinel_proxy_durable_writes_waiting{group="mymaster"} 0`,
		`sentinel_proxy_durable_writes_confirmed_total{group="mymaster"} 3`,
		`sentinel_proxy_durable_writes_unconfirmed_total{group="mymaster"} 2`,
		`sentinel_proxy_durable_replicas_acked{group="mymaster"} 1`,
		`sentinel_proxy_durable_wait_seconds_bucket{group="mymaster",le="2.5"} 5`,
		`sentinel_proxy_durable_wait_seconds_bucket{group="mymaster",le="+Inf"} 5`,
		`sentinel_proxy_durable_wait_seconds_count{group="mymaster"} 5`,
		"# TYPE sentinel_proxy_durable_wait_seconds histogram",
		"# TYPE sentinel_proxy_durable_writes_unconfirmed_total counter",
		"# TYPE sentinel_proxy_durable_replicas_acked gauge",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestDurableWritesWaiting: a write whose WAIT is not answered yet counts as waiting, in /stats.json
// and the metrics, and as confirmed once the WAIT says enough replicas have it.
func TestDurableWritesWaiting(t *testing.T) {
	d := respsession.NewDurability("g", zerolog.Nop())
	d.Set(1, time.Second)
	backend := newDurableRedis(t)
	backend.acked.Store(1)
	backend.release = make(chan struct{})
	release := sync.OnceFunc(func() { close(backend.release) })
	defer release()
	c, err := net.Dial("tcp", durablePort(t, d, backend))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(resp.AppendCommand(nil, "SET", "k", "v")); err != nil {
		t.Fatal(err)
	}
	snap := routing.Decide(routing.NewState([]string{"g"}, 1, 1), []string{"g"}, time.Now())
	s := &Server{User: "ops", Password: "pw", Snapshot: func() *routing.Snapshot { return snap },
		Groups:  []GroupPorts{{Name: "g", Mode: "resp", Master: &proxy.Listener{Name: "g/master"}, Durability: d}},
		Metrics: NewMetrics(), Log: zerolog.Nop(), Started: time.Now()}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	waitFor(t, "the write to wait for its WAIT", func() bool { return d.Counts().Waiting == 1 })

	_, body := get(t, srv.URL+"/stats.json", "ops", "pw")
	if !strings.Contains(body, `"writes_waiting": 1`) || !strings.Contains(body, `"writes_confirmed": 0`) {
		t.Errorf("json while the write waits:\n%s", body)
	}
	_, metrics := get(t, srv.URL+"/metrics", "ops", "pw")
	if !strings.Contains(metrics, `sentinel_proxy_durable_writes_waiting{group="g"} 1`) {
		t.Errorf("metrics lack the waiting write")
	}

	release()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if v, err := resp.ReadValue(bufio.NewReader(c), resp.Limits{}); err != nil || v.Str != "OK" {
		t.Fatalf("the write's reply once its WAIT answered: %+v %v", v, err)
	}
	_, metrics = get(t, srv.URL+"/metrics", "ops", "pw")
	for _, want := range []string{`sentinel_proxy_durable_writes_waiting{group="g"} 0`,
		`sentinel_proxy_durable_writes_confirmed_total{group="g"} 1`, `sentinel_proxy_durable_replicas_acked{group="g"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestDurabilityOffOrTCP: a resp group with wait_replicas = 0 has its (zero) series, so that increase()
// sees the first unconfirmed write once it is turned on, and durability in the JSON, but no table on the
// page; a tcp group has neither. No replicas_acked before the first WAIT.
func TestDurabilityOffOrTCP(t *testing.T) {
	snap := routing.Decide(routing.NewState([]string{"r", "t"}, 1, 1), []string{"r", "t"}, time.Now())
	s := &Server{User: "ops", Password: "pw", Snapshot: func() *routing.Snapshot { return snap },
		Groups: []GroupPorts{
			{Name: "r", Mode: "resp", Master: &proxy.Listener{Name: "r/master"}, Durability: respsession.NewDurability("r", zerolog.Nop())},
			{Name: "t", Mode: "tcp", Master: &proxy.Listener{Name: "t/master"}},
		},
		Metrics: NewMetrics(), Log: zerolog.Nop(), Started: time.Now()}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	_, page := get(t, srv.URL+"/stats", "ops", "pw")
	if strings.Contains(page, "Durable acknowledgements") || strings.Contains(page, "WRITES UNCONFIRMED") {
		t.Errorf("wait_replicas = 0: the page shows durability")
	}
	_, body := get(t, srv.URL+"/stats.json", "ops", "pw")
	var p Page
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Groups) != 2 || p.Groups[1].Durability != nil {
		t.Fatalf("json: %s", body)
	}
	if d := p.Groups[0].Durability; d == nil || d.WaitReplicas != 0 || d.WaitTimeoutMS != 200 || d.ReplicasAcked != -1 || d.UnconfirmedRecently {
		t.Errorf("wait_replicas = 0: json durability %+v", d)
	}
	if strings.Contains(body, "unconfirmed_since") || strings.Contains(body, "last_unconfirmed_at") {
		t.Errorf("times of unconfirmed writes that never were:\n%s", body)
	}
	_, metrics := get(t, srv.URL+"/metrics", "ops", "pw")
	for _, want := range []string{
		`sentinel_proxy_durable_wait_replicas{group="r"} 0`,
		`sentinel_proxy_durable_writes_confirmed_total{group="r"} 0`,
		`sentinel_proxy_durable_writes_unconfirmed_total{group="r"} 0`,
		`sentinel_proxy_durable_wait_seconds_count{group="r"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(metrics, `sentinel_proxy_durable_wait_replicas{group="t"}`) ||
		strings.Contains(metrics, "sentinel_proxy_durable_replicas_acked") {
		t.Errorf("a tcp group has durable series, or replicas_acked before any WAIT:\n%s", metrics)
	}
}

// TestUnconfirmedRun: the page flags unconfirmed writes for unconfirmedRecent after the counter last
// grew, and counts a run from its first growth after a quiet stretch.
func TestUnconfirmedRun(t *testing.T) {
	var r unconfirmedRun
	steps := []struct {
		at     time.Duration
		count  uint64
		recent bool
		since  time.Duration
		inRun  uint64
	}{
		{0, 0, false, 0, 0},
		{10 * time.Second, 3, true, 10 * time.Second, 3},
		{20 * time.Second, 5, true, 10 * time.Second, 5},
		{20*time.Second + unconfirmedRecent, 5, true, 10 * time.Second, 5}, // the last growth, just in
		{21*time.Second + unconfirmedRecent, 5, false, 0, 0},
		{30*time.Second + unconfirmedRecent, 9, true, 30*time.Second + unconfirmedRecent, 4}, // a new run
	}
	for _, st := range steps {
		now := t0.Add(st.at)
		r = r.seen(st.count, now)
		v := durabilityView(respsession.DurabilityCounts{Replicas: 1, Unconfirmed: st.count}, r, now)
		var since time.Time
		if st.recent {
			since = t0.Add(st.since)
		}
		if v.UnconfirmedRecently != st.recent || !v.UnconfirmedSince.Equal(since) || v.UnconfirmedInRun != st.inRun ||
			v.LastUnconfirmed.IsZero() != (st.count == 0) {
			t.Errorf("at %v, count %d: recently %v since %v in run %d; want %v %v %d", st.at, st.count,
				v.UnconfirmedRecently, v.UnconfirmedSince, v.UnconfirmedInRun, st.recent, since, st.inRun)
		}
	}
}

// TestUnconfirmedWatchForgetsRemovedGroups: the sampler dates unconfirmed writes of every group, and
// forgets a Durability that a reload dropped.
func TestUnconfirmedWatchForgetsRemovedGroups(t *testing.T) {
	d := respsession.NewDurability("g", zerolog.Nop())
	var w unconfirmedWatch
	w.sample([]GroupPorts{{Name: "g", Durability: d}, {Name: "tcp"}}, t0)
	if len(w.runs) != 1 {
		t.Fatalf("runs %v", w.runs)
	}
	w.sample(nil, t0.Add(time.Second))
	if len(w.runs) != 0 {
		t.Errorf("a removed group is remembered: %v", w.runs)
	}
}
