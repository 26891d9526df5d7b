package routing

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

func TestRouterLogsOneSwitchAcrossTheGap(t *testing.T) {
	logs := &redistest.SyncBuffer{}
	r := NewRouter([]string{"g"}, 2, 3, 0, zerolog.New(logs))
	var mu sync.Mutex
	var probed []string
	var changes int
	r.ProbeNow = func(a string) { mu.Lock(); probed = append(probed, a); mu.Unlock() }
	r.OnChange = func(prev, next *Snapshot) map[string]int {
		mu.Lock()
		changes++
		mu.Unlock()
		return map[string]int{"g": 2}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	for _, in := range with(healthy(), switchMaster(s1, nodeA, nodeB), view(s1, nodeB, 2, nodeA, nodeC), probeMaster(nodeB)) {
		r.Submit(ctx, in)
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.Snapshot().Group("g").Master != nodeB {
		if time.Now().After(deadline) {
			t.Fatalf("never switched: %+v", r.Snapshot().Group("g"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	out := logs.String()
	if strings.Count(out, `"event":"master_switched"`) != 1 ||
		!strings.Contains(out, `"old":"`+nodeA+`","new":"`+nodeB+`"`) ||
		!strings.Contains(out, `"trigger":"probe of `+nodeB+`"`) ||
		!strings.Contains(out, `"sessions_closed":4`) {
		t.Errorf("want one master_switched A->B with both closures counted; logs:\n%s", out)
	}
	if !strings.Contains(out, `"event":"dual_master_detected"`) || !strings.Contains(out, `"claimant_replid"`) {
		t.Errorf("the old master still says master after the switch: want dual_master_detected with replication ids:\n%s", out)
	}
	if strings.Count(out, `"event":"master_verified"`) != 1 || strings.Count(out, `"event":"no_master"`) != 1 {
		t.Errorf("want one master_verified (start) and one no_master (gap):\n%s", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if changes < 2 {
		t.Errorf("OnChange called %d times", changes)
	}
	found := false
	for _, a := range probed {
		found = found || a == nodeB
	}
	if !found {
		t.Errorf("the announced master was not probed at once: %v", probed)
	}
}

func TestRouterLogsTiltOncePerSentinel(t *testing.T) {
	logs := &redistest.SyncBuffer{}
	r := NewRouter([]string{"g"}, 2, 3, 0, zerolog.New(logs))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for _, in := range with(healthy(), event(s1, "+tilt", "#tilt mode entered")) {
		r.Submit(ctx, in)
	}
	waitLog := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(logs.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s in:\n%s", want, logs.String())
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	waitLog(`"event":"sentinel_tilt","sentinel":"` + s1 + `","tilt":true`)
	r.Submit(ctx, event(s1, "-tilt", "#tilt mode exited"))
	waitLog(`"event":"sentinel_tilt","sentinel":"` + s1 + `","tilt":false`)
	if n := strings.Count(logs.String(), `"event":"sentinel_tilt"`); n != 2 {
		t.Errorf("want 2 sentinel_tilt lines, got %d", n)
	}
}

// TestRouterLogsTheFence follows a proxy that loses the Sentinel majority, keeps the master while its
// replicas follow, fences it when they stop, and opens again when the majority answers: each step is one
// line, the fence is counted once, and the first views at start-up are no "regained" majority.
func TestRouterLogsTheFence(t *testing.T) {
	logs := &redistest.SyncBuffer{}
	r := NewRouter([]string{"g"}, 2, 3, 0, zerolog.New(logs))
	r.Now = func() time.Time { return fenceNow }
	var fences int
	var mu sync.Mutex
	r.OnFence = func(string) { mu.Lock(); fences++; mu.Unlock() }
	ctx, wait := runRouter(t, r, logs)
	r.Submit(ctx, ConfigInput{Groups: []string{"g"}, Rise: 2, Fall: 3, Sentinels: []string{s1, s2, s3},
		Fence: FenceSettings{Enabled: true, ReplicaTimeout: 3 * time.Second}})
	for _, in := range []Input{view(s1, nodeA, 1, nodeB), view(s2, nodeA, 1, nodeB), view(s3, nodeA, 1, nodeB),
		probeReplica(nodeB, "up"), masterLinks(nodeA, 0, nodeB+"=0")} {
		r.Submit(ctx, in)
	}
	wait("routed", func(g *GroupSnapshot) bool { return g.Master == nodeA && g.Majority })
	for _, in := range []Input{unreachable(s2), unreachable(s3)} {
		r.Submit(ctx, in)
	}
	wait("armed", func(g *GroupSnapshot) bool { return !g.Majority && g.Master == nodeA })
	r.Submit(ctx, masterLinks(nodeA, 0, nodeB+"=5"))
	wait("fenced", func(g *GroupSnapshot) bool { return g.Fenced })
	r.Submit(ctx, masterLinks(nodeA, 0, nodeB+"=6")) // still fenced: no second line
	r.Submit(ctx, view(s2, nodeA, 1, nodeB))
	wait("unfenced", func(g *GroupSnapshot) bool { return !g.Fenced && g.Master == nodeA })

	out := logs.String()
	for event, n := range map[string]int{"sentinel_majority_lost": 1, "master_fenced": 1, "master_unfenced": 1,
		"sentinel_majority_regained": 1} {
		if got := strings.Count(out, `"event":"`+event+`"`); got != n {
			t.Errorf("%d %s lines, want %d:\n%s", got, event, n, out)
		}
	}
	if !strings.Contains(out, `"reason":"1 of 3 Sentinels answer; replica `+nodeB+` has not acknowledged `+nodeA+` for 5s"`) ||
		!strings.Contains(out, `"reason":"2 of 3 Sentinels answer"`) {
		t.Errorf("the fence's reasons:\n%s", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if fences != 1 {
		t.Errorf("OnFence called %d times, want 1", fences)
	}
}

// TestRouterRecordsStretchesWithoutMaster keeps every stretch without a master: one that ended in a
// switch (old and new master), one still going on, and one that ended on the same master again, which
// the switch history does not show.
func TestRouterRecordsStretchesWithoutMaster(t *testing.T) {
	r := NewRouter([]string{"g"}, 2, 3, 0, zerolog.Nop())
	var clock int64 // seconds; one tick per input, read on the router's goroutine only
	r.Now = func() time.Time { clock++; return time.Unix(clock, 0) }
	ctx, wait := runRouter(t, r, nil)
	for _, in := range healthy() {
		r.Submit(ctx, in)
	}
	wait("the first master", func(g *GroupSnapshot) bool { return g.Master == nodeA })
	if spans := r.NoMasterSpans("g"); len(spans) != 0 {
		t.Fatalf("the start-up is no stretch without a master: %+v", spans)
	}

	// The Sentinels name B before its probe says role:master: no verified master meanwhile.
	for _, s := range []string{s1, s2, s3} {
		r.Submit(ctx, view(s, nodeB, 2, nodeA, nodeC))
	}
	wait("no master", func(g *GroupSnapshot) bool { return g.Master == "" })
	spans := r.NoMasterSpans("g")
	if len(spans) != 1 || spans[0].Old != nodeA || spans[0].New != "" || !spans[0].Until.IsZero() || spans[0].Reason == "" {
		t.Fatalf("while it lasts: %+v", spans)
	}
	r.Submit(ctx, probeMaster(nodeB))
	wait("the new master", func(g *GroupSnapshot) bool { return g.Master == nodeB })

	r.Submit(ctx, admin(nodeB, AdminMaint))
	wait("no master again", func(g *GroupSnapshot) bool { return g.Master == "" })
	r.Submit(ctx, admin(nodeB, AdminReady))
	wait("the same master again", func(g *GroupSnapshot) bool { return g.Master == nodeB })

	spans = r.NoMasterSpans("g")
	if len(spans) != 2 {
		t.Fatalf("want 2 stretches, got %+v", spans)
	}
	again, switched := spans[0], spans[1] // newest first
	if switched.Old != nodeA || switched.New != nodeB || !switched.Until.After(switched.Since) {
		t.Errorf("the stretch that ended in a switch: %+v", switched)
	}
	if again.Old != nodeB || again.New != nodeB || !again.Until.After(again.Since) || !again.Since.After(switched.Until) {
		t.Errorf("the stretch that ended on the same master: %+v", again)
	}
	h := r.History("g")
	if len(h) != 1 || h[0].NoMaster != switched.Until.Sub(switched.Since) || !h[0].At.Equal(switched.Until) {
		t.Errorf("the switch and its stretch disagree: %+v and %+v", h, switched)
	}
}

// TestRouterMarksAPlannedSwitchover: the switch to the target of an announced switchover is recorded and
// logged as one; the mark ends with the switchover and changes no route by itself.
func TestRouterMarksAPlannedSwitchover(t *testing.T) {
	logs := &redistest.SyncBuffer{}
	r := NewRouter([]string{"g"}, 2, 3, 0, zerolog.New(logs))
	ctx, wait := runRouter(t, r, logs)
	for _, in := range healthy() {
		r.Submit(ctx, in)
	}
	wait("routed", func(g *GroupSnapshot) bool { return g.Master == nodeA })
	applied := make(chan struct{})
	r.Submit(ctx, SwitchoverInput{Group: "g", Target: nodeB, By: "admin", Active: true, Done: applied})
	<-applied
	if sw := r.Snapshot().Group("g").Switchover; sw == nil || sw.Target != nodeB || sw.By != "admin" {
		t.Fatalf("snapshot switchover = %+v", sw)
	}
	if g := r.Snapshot().Group("g"); g.Master != nodeA {
		t.Fatalf("the mark moved the route: %+v", g)
	}
	for _, in := range []Input{switchMaster(s1, nodeA, nodeB), view(s1, nodeB, 2, nodeA, nodeC), probeMaster(nodeB)} {
		r.Submit(ctx, in)
	}
	wait("switched", func(g *GroupSnapshot) bool { return g.Master == nodeB })
	ended := make(chan struct{})
	r.Submit(ctx, SwitchoverInput{Group: "g", Done: ended})
	<-ended
	if sw := r.Snapshot().Group("g").Switchover; sw != nil {
		t.Errorf("switchover still marked after its end: %+v", sw)
	}
	h := r.History("g")
	if len(h) != 1 || !h[0].Switchover || h[0].New != nodeB || !strings.HasPrefix(h[0].Trigger, "switchover by admin; ") {
		t.Errorf("history = %+v, want one switch to %s marked as a switchover, its trigger starting \"switchover by admin; \"", h, nodeB)
	}
	if !strings.Contains(logs.String(), `"switchover":true,"switchover_by":"admin"`) {
		t.Errorf("master_switched does not say it was a switchover:\n%s", logs.String())
	}
}

// runRouter runs r until the test ends. It returns the context to submit with, and a wait that polls group
// g's snapshot until cond holds, failing the test after 5 s with the snapshot and logs (if any).
func runRouter(t *testing.T, r *Router, logs *redistest.SyncBuffer) (context.Context, func(what string, cond func(g *GroupSnapshot) bool)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	wait := func(what string, cond func(g *GroupSnapshot) bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond(r.Snapshot().Group("g")) {
			if time.Now().After(deadline) {
				var logged string
				if logs != nil {
					logged = logs.String()
				}
				t.Fatalf("%s: %+v\n%s", what, r.Snapshot().Group("g"), logged)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return ctx, wait
}

// TestRouterWarnsWhenTheFenceRacesTheFailover: a Sentinel whose down-after-milliseconds is within a
// second of the fence's replica_timeout is warned of once, by name, and the warning ends when its
// setting is raised; a fence that is off, or Sentinels that leave it time, give no line.
func TestRouterWarnsWhenTheFenceRacesTheFailover(t *testing.T) {
	viewAfter := func(addr string, downAfter time.Duration) Input {
		in := view(addr, nodeA, 1, nodeB).(ViewInput)
		in.View.DownAfter = downAfter
		return in
	}
	for _, tc := range []struct {
		name      string
		fence     FenceSettings
		downAfter []time.Duration // s1, s2, s3, then s2 raised to the last
		lines     []string
	}{
		{"races, then mended", FenceSettings{Enabled: true, ReplicaTimeout: 3 * time.Second},
			[]time.Duration{5 * time.Second, 2 * time.Second, 30 * time.Second, 4 * time.Second},
			[]string{`"races":true,"reason":"Sentinel ` + s2 + ` judges the master down after 2s and the fence closes up to 3s after a cut: set down-after-milliseconds to 4000 or more ([fence].replica_timeout + 1 s)"`,
				`"races":false`}},
		{"fence off", FenceSettings{Enabled: false, ReplicaTimeout: 3 * time.Second},
			[]time.Duration{time.Second, time.Second, time.Second, time.Second}, nil},
		{"time enough", FenceSettings{Enabled: true, ReplicaTimeout: 3 * time.Second},
			[]time.Duration{4 * time.Second, 5 * time.Second, 0, 30 * time.Second}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &redistest.SyncBuffer{}
			r := NewRouter([]string{"g"}, 2, 3, 0, zerolog.New(logs))
			ctx, wait := runRouter(t, r, logs)
			r.Submit(ctx, ConfigInput{Groups: []string{"g"}, Rise: 2, Fall: 3, Sentinels: []string{s1, s2, s3}, Fence: tc.fence})
			d := tc.downAfter
			for _, in := range []Input{viewAfter(s1, d[0]), viewAfter(s2, d[1]), viewAfter(s3, d[2]), probeMaster(nodeA),
				probeReplica(nodeB, "up")} {
				r.Submit(ctx, in)
			}
			wait("routed", func(g *GroupSnapshot) bool { return g.Master == nodeA })
			r.Submit(ctx, viewAfter(s2, d[3]))
			wait("s2 raised", func(g *GroupSnapshot) bool {
				for _, ss := range g.Sentinels {
					if ss.Addr == s2 {
						return ss.DownAfter == d[3]
					}
				}
				return false
			})
			out := logs.String()
			if got := strings.Count(out, `"event":"fence_races_failover"`); got != len(tc.lines) {
				t.Errorf("%d fence_races_failover lines, want %d:\n%s", got, len(tc.lines), out)
			}
			for _, want := range tc.lines {
				if !strings.Contains(out, want) {
					t.Errorf("no %s in:\n%s", want, out)
				}
			}
		})
	}
}

// TestRouterCallsASwitchPlannedOnlyWhenAskedFor: a failover whose first sign is +try-failover (SENTINEL
// FAILOVER) is logged planned; one whose first sign is +sdown, or a later step because the earlier ones
// were missed (+elected-leader, or the +switch-master announcement itself), is not.
func TestRouterCallsASwitchPlannedOnlyWhenAskedFor(t *testing.T) {
	for _, tc := range []struct {
		first   string // the first sign's channel; "" for none before +switch-master
		planned bool
	}{{"+try-failover", true}, {"+sdown", false}, {"+elected-leader", false}, {"", false}} {
		t.Run(tc.first, func(t *testing.T) {
			logs := &redistest.SyncBuffer{}
			r := NewRouter([]string{"g"}, 2, 3, 0, zerolog.New(logs))
			ctx, wait := runRouter(t, r, logs)
			for _, in := range healthy() {
				r.Submit(ctx, in)
			}
			wait("the first master", func(g *GroupSnapshot) bool { return g.Master == nodeA })
			var failover []Input
			if tc.first != "" {
				failover = append(failover, event(s1, tc.first, "master g 10.0.0.1 6379"))
			}
			failover = append(failover, switchMaster(s1, nodeA, nodeB), view(s1, nodeB, 2, nodeA, nodeC), view(s2, nodeB, 2, nodeA, nodeC),
				view(s3, nodeB, 2, nodeA, nodeC), probeMaster(nodeB))
			for _, in := range failover {
				r.Submit(ctx, in)
			}
			wait("the switch", func(g *GroupSnapshot) bool { return g.Master == nodeB })
			want := `"planned":` + strconv.FormatBool(tc.planned)
			if out := logs.String(); !strings.Contains(out, want) {
				t.Errorf("no %s in:\n%s", want, out)
			}
		})
	}
}
