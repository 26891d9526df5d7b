package stats

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/check"
	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
	"github.com/sentinel-proxy/sentinel-proxy/sentinel"
)

// TestDrawChart places points, a missing stretch, bands and grid on a chart of a known window.
func TestDrawChart(t *testing.T) {
	from, to := t0, t0.Add(time.Hour)
	every := 10 * time.Second
	series := []chartSeries{{class: "s-master", label: "g/master", points: []point{
		{t0.Add(30 * time.Minute), 5}, {t0.Add(30*time.Minute + every), 10},
		{t0.Add(45 * time.Minute), 2}, // after a stretch without samples: a new stroke, a dot alone
	}}}
	bands := []Band{
		{Kind: BandNoMaster, From: t0.Add(15 * time.Minute), To: t0.Add(30 * time.Minute), Old: "a", New: "b"},
		{Kind: BandFailover, From: t0.Add(30 * time.Minute), To: t0.Add(30 * time.Minute), Old: "a", New: "b"},
		{Kind: BandNoMaster, From: t0.Add(-2 * time.Hour), To: t0.Add(-time.Hour)}, // before the window
	}
	c := drawChart("chart-g-sessions", "new sessions /s", series, bands, from, to, every, compact, niceCeil)
	if c.Empty || len(c.Lines) != 1 {
		t.Fatalf("chart: %+v", c)
	}
	// x: 48 + f × 604; y: 130 − v/10 × 122.
	if want := "M350.0 69.0 L351.7 8.0 M501.0 105.6 h1"; c.Lines[0].D != want {
		t.Errorf("path %q, want %q", c.Lines[0].D, want)
	}
	if len(c.Bands) != 2 || c.Bands[0].X != 199 || c.Bands[0].W != 151 || c.Bands[0].Class != "band band-no-master" {
		t.Fatalf("bands: %+v", c.Bands)
	}
	if b := c.Bands[1]; b.X != 350 || b.W != 2 || b.Kind != BandFailover || !strings.HasPrefix(b.Title, "failover a → b") {
		t.Errorf("a switch of no length still gets a 2-unit stripe: %+v", b)
	}
	var ys, xs []string
	for _, tk := range c.YTicks {
		ys = append(ys, tk.Label)
	}
	for _, tk := range c.XTicks {
		xs = append(xs, tk.Label)
	}
	if strings.Join(ys, " ") != "0 5 10" || strings.Join(xs, " ") != "03:00 03:10 03:20 03:30 03:40 03:50 04:00" {
		t.Errorf("y ticks %v, x ticks %v", ys, xs)
	}
	if empty := drawChart("c", "t", []chartSeries{{class: "s-master"}}, nil, from, to, every, compact, niceCeil); !empty.Empty || empty.Lines[0].D != "" {
		t.Errorf("no samples yet: %+v", empty)
	}
}

func TestAxisNumbers(t *testing.T) {
	for _, c := range []struct {
		v, ceil, ceilBytes float64
		compact, bytes     string
	}{
		{0, 1, 1, "0", "0 B"},
		{0.03, 0.05, 0.05, "0.03", "0.03 B"},
		{0.7, 1, 1, "0.7", "0.7 B"},
		{7, 10, 10, "7", "7 B"},
		{420, 500, 500, "420", "420 B"},
		{1500, 2000, 2048, "1.5k", "1.5 KiB"},
		{600 << 10, 1e6, 1 << 20, "614k", "600 KiB"},
		{3.2e9, 5e9, 5 << 30, "3.2G", "3 GiB"},
	} {
		if got := niceCeil(c.v); got != c.ceil {
			t.Errorf("niceCeil(%g) = %g, want %g", c.v, got, c.ceil)
		}
		if got := niceCeilBytes(c.v); got != c.ceilBytes {
			t.Errorf("niceCeilBytes(%g) = %g, want %g", c.v, got, c.ceilBytes)
		}
		if got := compact(c.v); got != c.compact {
			t.Errorf("compact(%g) = %q, want %q", c.v, got, c.compact)
		}
		if got := compactBytes(c.v); got != c.bytes {
			t.Errorf("compactBytes(%g) = %q, want %q", c.v, got, c.bytes)
		}
	}
}

// TestTimeTicks picks round times at a spacing that gives at most 8 lines, for the hour of the default
// interval and for the shorter windows of short intervals.
func TestTimeTicks(t *testing.T) {
	for _, c := range []struct {
		from, to time.Time
		want     string
	}{
		{t0.Add(95 * time.Second), t0.Add(time.Hour + 95*time.Second), "03:10 03:20 03:30 03:40 03:50 04:00"},
		{t0.Add(3 * time.Second), t0.Add(93 * time.Second), "03:00:15 03:00:30 03:00:45 03:01:00 03:01:15 03:01:30"},
	} {
		var got []string
		for _, tk := range timeTicks(c.from, c.to) {
			got = append(got, tickLabel(tk, c.to.Sub(c.from)))
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("ticks %v, want %s", got, c.want)
		}
	}
}

// TestChartsAndHistorySeries: a failover of the fixture's router is a band on every chart, with the old
// and new master on hover, and /stats.json's history_series carries the same samples and bands. The page
// stays free of script under the same Content-Security-Policy.
func TestChartsAndHistorySeries(t *testing.T) {
	f := newFixture(t, false)
	now := time.Now()
	f.s.history.record(statsOf(f.s.cur().Groups, f.s.Snapshot()), now.Add(-10*time.Second))
	f.s.history.record(statsOf(f.s.cur().Groups, f.s.Snapshot()), now)
	ctx := context.Background()
	f.router.Submit(ctx, routing.ViewInput{View: sentinel.View{Sentinel: "127.0.0.1:26379", MasterName: "mymaster", At: now,
		MasterAddr: replicaAddr, ConfigEpoch: 4, MasterFlags: "master",
		Replicas: []sentinel.Replica{{Addr: masterAddr, Flags: "slave"}, {Addr: downAddr, Flags: "slave"}}}})
	f.router.Submit(ctx, routing.ProbeInput{Result: check.Result{Addr: replicaAddr, Status: check.L7OK, At: now,
		Replication: check.Replication{Role: "master"}}})
	waitFor(t, "the failover", func() bool { return len(f.router.History("mymaster")) == 1 })

	_, body := get(t, f.srv.URL+"/stats.json", "haproxy", "password")
	var p Page
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	hs := p.Groups[0].HistorySeries
	if hs == nil || hs.IntervalSeconds != 10 || !hs.To.After(hs.From) || len(hs.Listeners) != 2 {
		t.Fatalf("history_series: %s", body)
	}
	for _, ls := range hs.Listeners {
		if len(ls.At) != 1 || len(ls.SessionsPerSecond) != 1 || len(ls.TLSHandshakeErrorsPerSecond) != 1 || ls.Role == "" {
			t.Errorf("listener series %+v", ls)
		}
	}
	var failover *Band
	for i, b := range hs.Bands {
		if b.Kind == BandFailover {
			failover = &hs.Bands[i]
		}
	}
	if failover == nil || failover.Old != masterAddr || failover.New != replicaAddr {
		t.Fatalf("bands %+v, want the failover %s → %s", hs.Bands, masterAddr, replicaAddr)
	}

	resp, page := get(t, f.srv.URL+"/stats", "haproxy", "password")
	hover := "failover " + masterAddr + " → " + replicaAddr
	for _, id := range []string{"sessions", "current", "bytes", "errors"} {
		chart := page[strings.Index(page, `id="chart-mymaster-`+id+`"`):]
		chart = chart[:strings.Index(chart, "</figure>")]
		if !strings.Contains(chart, `<rect class="band band-failover" data-kind="failover"`) || !strings.Contains(chart, hover) ||
			!strings.Contains(chart, `<path class="line `) {
			t.Errorf("chart %s lacks the failover band (%q) or a line:\n%s", id, hover, chart)
		}
	}
	if strings.Contains(page, "<script") || resp.Header.Get("Content-Security-Policy") !=
		"default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'" {
		t.Errorf("the charts need no script and no change of policy: %v", resp.Header)
	}
}

// TestMultiplexCharts: a multiplexed group's shared backend connections and its sessions unshared per
// second (from the cumulative count, which here starts again from zero at the last sample, as after a
// reload) are sampled with its ports, are /stats.json's history_series.multiplex, and are two more
// charts on the page. A group that does not multiplex has neither.
func TestMultiplexCharts(t *testing.T) {
	var conns, unshared atomic.Uint64
	snap := &routing.Snapshot{Groups: []routing.GroupSnapshot{
		{Name: "m", Master: masterAddr, Nodes: []routing.NodeSnapshot{{Addr: masterAddr}}}, {Name: "t"}}}
	s := &Server{User: "ops", Password: "pw", Snapshot: func() *routing.Snapshot { return snap },
		Groups: []GroupPorts{
			{Name: "m", Mode: "resp", Master: &proxy.Listener{Name: "m/master"}, Replica: &proxy.Listener{Name: "m/replica"},
				Multiplex: func([]string) (uint64, uint64) { return conns.Load(), unshared.Load() }},
			{Name: "t", Master: &proxy.Listener{Name: "t/master"}},
		},
		Log: zerolog.Nop(), Started: time.Now().Add(-time.Hour)}
	now := time.Now()
	for i, c := range []sharedCounts{{2, 100}, {3, 150}, {3, 150}, {1, 20}} {
		conns.Store(c.conns)
		unshared.Store(c.unshared)
		s.sample(now.Add(time.Duration(i-3) * 10 * time.Second))
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	_, body := get(t, srv.URL+"/stats.json", "ops", "pw")
	var raw struct {
		Groups []struct {
			HistorySeries map[string]json.RawMessage `json:"history_series"`
		} `json:"groups"`
	}
	if err := json.Unmarshal([]byte(body), &raw); err != nil || len(raw.Groups) != 2 {
		t.Fatalf("%v: %s", err, body)
	}
	var columns map[string]json.RawMessage
	if err := json.Unmarshal(raw.Groups[0].HistorySeries["multiplex"], &columns); err != nil || len(columns) != 3 ||
		columns["at"] == nil || columns["shared_backend_connections"] == nil || columns["sessions_unshared_per_second"] == nil {
		t.Errorf("the multiplexed group's history_series.multiplex has at, shared_backend_connections and sessions_unshared_per_second: %v, %s", err, body)
	}
	if _, ok := raw.Groups[1].HistorySeries["multiplex"]; ok {
		t.Errorf("a group that does not multiplex has no history_series.multiplex: %s", body)
	}
	var p Page
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	hs := p.Groups[0].HistorySeries
	if m := hs.Multiplex; m == nil || !slices.Equal(m.SharedConns, []int64{3, 3, 1}) ||
		!slices.Equal(m.SessionsUnsharedPerSecond, []float64{5, 0, 2}) || !slices.EqualFunc(m.At, hs.Listeners[0].At, time.Time.Equal) {
		t.Errorf("multiplex series %+v, want connections 3 3 1 and unshared 5 0 2 /s at the master port's times %v", m, hs.Listeners[0].At)
	}

	_, page := get(t, srv.URL+"/stats", "ops", "pw")
	for _, id := range []string{"shared", "unshared"} {
		chart := regexp.MustCompile(`(?s)<figure class="chart" id="chart-m-` + id + `">.*?</figure>`).FindString(page)
		if !regexp.MustCompile(`<path class="line s-` + id + `" d="M[0-9.]+ [0-9.]+ L[0-9.]+ [0-9.]+ L[0-9.]+ [0-9.]+">`).MatchString(chart) {
			t.Errorf("chart %s lacks its line through the three samples:\n%s", id, chart)
		}
	}
	if !strings.Contains(page, `id="chart-t-sessions"`) || strings.Contains(page, `id="chart-t-shared"`) ||
		strings.Contains(page, `id="chart-t-unshared"`) {
		t.Errorf("a group that does not multiplex has the four charts and no more:\n%s", page)
	}
}
