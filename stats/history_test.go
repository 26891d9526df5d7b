package stats

import (
	"context"
	"testing"
	"time"
	"unsafe"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
)

var t0 = time.Date(2025, 3, 1, 3, 0, 0, 0, time.UTC)

func listenerAt(name string, total, bytesIn, refused uint64, current int64) portStats {
	return portStats{role: "master", st: proxy.Stats{Name: name, Total: total, BytesIn: bytesIn, BytesOut: 2 * bytesIn,
		Refused: refused, Current: current}}
}

// TestHistoryRates: a sample is the counters' difference over the time that really passed, the gauges
// as they are; the first sight of a listener only sets where it starts, and a counter that went back
// (a new listener under the same name) counts from zero.
func TestHistoryRates(t *testing.T) {
	var h history
	h.record([]portStats{listenerAt("g/master", 100, 1000, 0, 5)}, t0)
	if got, _ := h.samples("g/master"); len(got) != 0 {
		t.Fatalf("the first sight is no sample: %+v", got)
	}
	h.record([]portStats{listenerAt("g/master", 150, 6000, 2, 7)}, t0.Add(10*time.Second))
	h.record([]portStats{listenerAt("g/master", 170, 6000, 2, 3)}, t0.Add(30*time.Second)) // a late tick: 20 s
	h.record([]portStats{listenerAt("g/master", 4, 0, 0, 1)}, t0.Add(40*time.Second))      // counters reset
	got, role := h.samples("g/master")
	want := []sample{
		{at: t0.Add(10 * time.Second).UnixNano(), current: 7, sessions: 5, bytesIn: 500, bytesOut: 1000, refused: 0.2},
		{at: t0.Add(30 * time.Second).UnixNano(), current: 3, sessions: 1, bytesIn: 0, bytesOut: 0, refused: 0},
		{at: t0.Add(40 * time.Second).UnixNano(), current: 1, sessions: 0.4, bytesIn: 0, bytesOut: 0, refused: 0},
	}
	if role != "master" || len(got) != len(want) {
		t.Fatalf("role %q, samples %+v", role, got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("sample %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	h.record(nil, t0.Add(50*time.Second))
	if got, _ := h.samples("g/master"); got != nil {
		t.Errorf("a listener no longer served is forgotten: %+v", got)
	}
}

// multiplexedAt is a multiplexed group's master port with its group's shared connections and the
// sessions that left them.
func multiplexedAt(name string, total, conns, unshared uint64) portStats {
	p := listenerAt(name, total, 0, 0, 0)
	p.shared = &sharedCounts{conns: conns, unshared: unshared}
	return p
}

// TestHistoryMultiplexRates: a multiplexed group's samples are taken with its master port's, at the
// same times: the connections as they are, the unshared sessions per second over the time that really
// passed. Their first counts only set where the counter starts, also when a reload turns multiplexing
// on later; a counter that went back counts from zero; turning it off forgets them; a replica port has
// none.
func TestHistoryMultiplexRates(t *testing.T) {
	var h history
	replica := portStats{role: "replica", st: proxy.Stats{Name: "g/replica"}}
	h.record([]portStats{multiplexedAt("g/master", 0, 2, 100), replica}, t0)
	if got := h.sharedSamples("g/master"); len(got) != 0 {
		t.Fatalf("the first counts are no sample: %+v", got)
	}
	h.record([]portStats{multiplexedAt("g/master", 0, 3, 150), replica}, t0.Add(10*time.Second))
	h.record([]portStats{multiplexedAt("g/master", 0, 3, 170), replica}, t0.Add(30*time.Second)) // a late tick: 20 s
	h.record([]portStats{multiplexedAt("g/master", 0, 1, 4), replica}, t0.Add(40*time.Second))   // counter restarted
	want := []sharedPoint{
		{t0.Add(10 * time.Second).UnixNano(), sharedSample{conns: 3, unshared: 5}},
		{t0.Add(30 * time.Second).UnixNano(), sharedSample{conns: 3, unshared: 1}},
		{t0.Add(40 * time.Second).UnixNano(), sharedSample{conns: 1, unshared: 0.4}},
	}
	checkShared(t, h.sharedSamples("g/master"), want)
	if got := h.sharedSamples("g/replica"); got != nil {
		t.Errorf("a replica port keeps no multiplex samples: %+v", got)
	}

	h.record([]portStats{listenerAt("g/master", 0, 0, 0, 0)}, t0.Add(50*time.Second)) // a reload turned it off
	if got := h.sharedSamples("g/master"); got != nil {
		t.Errorf("multiplexing off: its samples are forgotten, %+v", got)
	}
	h.record([]portStats{multiplexedAt("g/master", 0, 2, 500)}, t0.Add(60*time.Second)) // ... and on again
	h.record([]portStats{multiplexedAt("g/master", 0, 2, 510)}, t0.Add(70*time.Second))
	checkShared(t, h.sharedSamples("g/master"), []sharedPoint{{t0.Add(70 * time.Second).UnixNano(), sharedSample{conns: 2, unshared: 1}}})
	if got, _ := h.samples("g/master"); len(got) != 6 {
		t.Errorf("the port's own samples go on: %d, want 6", len(got))
	}
}

func checkShared(t *testing.T, got, want []sharedPoint) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("multiplex samples %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("multiplex sample %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestHistoryRingWraps keeps the newest historyLen samples, oldest first, and a multiplexed group's in
// step with its master port's.
func TestHistoryRingWraps(t *testing.T) {
	var h history
	for i := range historyLen + 25 {
		h.record([]portStats{multiplexedAt("g/master", uint64(i), uint64(i), 2*uint64(i))}, t0.Add(time.Duration(i)*time.Second))
	}
	got, _ := h.samples("g/master")
	if len(got) != historyLen {
		t.Fatalf("%d samples, want %d", len(got), historyLen)
	}
	for i, s := range got {
		if want := int32(i + 25); s.current != 0 || s.sessions != 1 || s.at != t0.Add(time.Duration(want)*time.Second).UnixNano() {
			t.Fatalf("sample %d: %+v, want the one of second %d", i, s, want)
		}
	}
	shared := h.sharedSamples("g/master")
	if len(shared) != historyLen {
		t.Fatalf("%d multiplex samples, want %d", len(shared), historyLen)
	}
	for i, s := range shared {
		if want := uint32(i + 25); s.conns != want || s.unshared != 2 || s.at != got[i].at {
			t.Fatalf("multiplex sample %d: %+v, want %d connections at the port's sample's time %d", i, s, want, got[i].at)
		}
	}
}

// TestHistoryMemoryIsBounded holds the charts' memory to what the history comment promises, whatever
// the traffic: about 14 KiB a listener and 2.8 KiB more for a multiplexed group, so that both ports of 8
// groups, all of them multiplexed, take less than 256 KiB (255,360 bytes: 6.8 KiB to spare). These are
// the structures' sizes; the allocator rounds each ring up to its size class (16 KiB and 3 KiB).
func TestHistoryMemoryIsBounded(t *testing.T) {
	perListener, perGroup := unsafe.Sizeof(ring{}), unsafe.Sizeof(sharedRing{})
	if perListener > 16<<10 {
		t.Errorf("a listener's ring takes %d bytes; the promise is 14 KiB", perListener)
	}
	if perGroup > 3<<10 {
		t.Errorf("a multiplexed group's samples take %d bytes; the promise is 2.8 KiB", perGroup)
	}
	if total := 16*perListener + 8*perGroup; total > 256<<10 {
		t.Errorf("16 listeners of 8 multiplexed groups take %d bytes; the promise is under 256 KiB", total)
	}
}

// TestStatsOfMultiplexCounts: a multiplexed group's counts come with its master port, over the nodes
// the snapshot has for it; not before the snapshot knows the group, nor for a group that does not
// multiplex.
func TestStatsOfMultiplexCounts(t *testing.T) {
	var counted [][]string
	groups := []GroupPorts{
		{Name: "m", Master: &proxy.Listener{Name: "m/master"}, Replica: &proxy.Listener{Name: "m/replica"},
			Multiplex: func(nodes []string) (uint64, uint64) { counted = append(counted, nodes); return 4, 9 }},
		{Name: "t", Master: &proxy.Listener{Name: "t/master"}},
	}
	snap := &routing.Snapshot{Groups: []routing.GroupSnapshot{
		{Name: "m", Nodes: []routing.NodeSnapshot{{Addr: "10.0.0.1:6379"}, {Addr: "10.0.0.2:6379"}}}, {Name: "t"}}}
	ports := statsOf(groups, snap)
	if len(ports) != 3 || ports[0].shared == nil || *ports[0].shared != (sharedCounts{conns: 4, unshared: 9}) ||
		ports[1].shared != nil || ports[2].shared != nil {
		t.Fatalf("ports %+v", ports)
	}
	if len(counted) != 1 || len(counted[0]) != 2 || counted[0][0] != "10.0.0.1:6379" || counted[0][1] != "10.0.0.2:6379" {
		t.Errorf("counted over %v, want the group's two nodes", counted)
	}
	for _, early := range []*routing.Snapshot{nil, {Groups: []routing.GroupSnapshot{{Name: "t"}}}} {
		if ports := statsOf(groups, early); ports[0].shared != nil {
			t.Errorf("snapshot %+v without the group: counts %+v", early, ports[0].shared)
		}
	}
}

// TestBands: every stretch without a master, every switch and the failover in progress that reach into
// the window are bands, oldest first; a planned switchover is told apart by its trigger; what lasts ends
// now.
func TestBands(t *testing.T) {
	from, now := t0, t0.Add(time.Hour)
	switches := []routing.Switch{ // newest first, as History gives them
		{At: t0.Add(40 * time.Minute), Old: "b:1", New: "a:1", Trigger: "switchover requested by ops", DetectToSwitch: -1},
		{At: t0.Add(20 * time.Minute), Old: "a:1", New: "b:1", Trigger: "probe of b:1", DetectedBy: "+sdown from s:1",
			DetectToSwitch: 5 * time.Second, NoMaster: 100 * time.Millisecond},
		{At: t0.Add(-time.Minute), Old: "c:1", New: "a:1", Trigger: "probe of a:1", DetectToSwitch: -1}, // before the window
	}
	gaps := []routing.NoMasterSpan{ // newest first
		{Old: "a:1", Since: t0.Add(50 * time.Minute), Reason: "a:1 is in MAINT"},
		{Old: "a:1", New: "b:1", Since: t0.Add(20*time.Minute - 100*time.Millisecond), Until: t0.Add(20 * time.Minute), Reason: "not verified"},
	}
	failover := &routing.Failover{Leader: "s:2", Since: t0.Add(55 * time.Minute), Stage: "+selected-slave", OldMaster: "a:1", Promoting: "b:1"}
	got := bands(switches, gaps, failover, from, now)
	want := []Band{
		{Kind: BandFailover, From: t0.Add(20*time.Minute - 5*time.Second), To: t0.Add(20 * time.Minute), Old: "a:1", New: "b:1",
			Trigger: "probe of b:1", DetectedBy: "+sdown from s:1", NoMasterMS: 100},
		{Kind: BandNoMaster, From: t0.Add(20*time.Minute - 100*time.Millisecond), To: t0.Add(20 * time.Minute), Old: "a:1", New: "b:1", Reason: "not verified"},
		{Kind: BandSwitchover, From: t0.Add(40 * time.Minute), To: t0.Add(40 * time.Minute), Old: "b:1", New: "a:1", Trigger: "switchover requested by ops"},
		{Kind: BandNoMaster, From: t0.Add(50 * time.Minute), To: now, Ongoing: true, Old: "a:1", Reason: "a:1 is in MAINT"},
		{Kind: BandFailover, From: t0.Add(55 * time.Minute), To: now, Ongoing: true, Old: "a:1", New: "b:1", Trigger: "Sentinel s:2 at +selected-slave"},
	}
	if len(got) != len(want) {
		t.Fatalf("bands:\n%+v\nwant\n%+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("band %d:\n%+v\nwant\n%+v", i, got[i], want[i])
		}
	}
	for _, c := range []struct {
		b    Band
		want string
	}{
		{want[0], "failover a:1 → b:1 at 03:20:00.000 UTC; first sign 5s before (+sdown from s:1); no master for 100ms; trigger probe of b:1"},
		{want[1], "no master 03:19:59.900 – 03:20:00.000 UTC (100ms): not verified; was a:1, then b:1"},
		{want[2], "switchover b:1 → a:1 at 03:40:00.000 UTC; trigger switchover requested by ops"},
		{want[3], "no master 03:50:00.000 – 04:00:00.000 UTC (10m0s): a:1 is in MAINT; was a:1, still none"},
		{want[4], "failover in progress since 03:55:00.000 UTC (5m0s): old master a:1, promoting b:1; Sentinel s:2 at +selected-slave"},
	} {
		if got := c.b.describe(); got != c.want {
			t.Errorf("hover text:\n%s\nwant\n%s", got, c.want)
		}
	}
}

// TestRecordHistoryRunsUntilCancelled: the sampler the server's owner starts samples at the injected
// interval and returns when its context ends.
func TestRecordHistoryRunsUntilCancelled(t *testing.T) {
	l := &proxy.Listener{Name: "g/master"}
	s := &Server{Groups: []GroupPorts{{Name: "g", Master: l}}, SampleEvery: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.RecordHistory(ctx); close(done) }()
	waitFor(t, "three samples", func() bool { got, _ := s.history.samples("g/master"); return len(got) >= 3 })
	cancel()
	<-done
}

func TestWindowStart(t *testing.T) {
	now, every := t0.Add(2*time.Hour), 10*time.Second
	for _, c := range []struct {
		started, want time.Time
	}{
		{t0, now.Add(-time.Hour)},                                 // up for longer than the window
		{now.Add(-20 * time.Minute), now.Add(-20 * time.Minute)},  // a young proxy: since its start
		{now.Add(-30 * time.Second), now.Add(-100 * time.Second)}, // ... but ten samples at least
		{time.Time{}, now.Add(-time.Hour)},
	} {
		if got := windowStart(now, c.started, every); !got.Equal(c.want) {
			t.Errorf("started %v: window from %v, want %v", c.started, got, c.want)
		}
	}
}
