package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

func TestBucketOfRoundsDown(t *testing.T) {
	cut := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]int64{
		0: 0, 99 * time.Millisecond: 0, 100 * time.Millisecond: 1, 250 * time.Millisecond: 2,
		-time.Millisecond: -1, -100 * time.Millisecond: -1, -101 * time.Millisecond: -2,
	} {
		if got := bucketOf(cut.Add(d), cut); got != want {
			t.Errorf("bucketOf(cut%+v) = %d, want %d", d, got, want)
		}
	}
}

func TestDualBucketsCountsIntervalsWithTwoNodes(t *testing.T) {
	cut := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ack := func(ms int, node string) redistest.Ack {
		return redistest.Ack{At: cut.Add(time.Duration(ms) * time.Millisecond), Node: node}
	}
	acks := []redistest.Ack{
		ack(-50, "a"), ack(-10, "b"), // one bucket before the cut, two nodes
		ack(10, "a"), ack(90, "a"), // one node
		ack(110, "a"), ack(150, "b"), ack(190, "c"), // three nodes: still one bucket
		ack(210, "b"),
	}
	if got := dualBuckets(acks, cut); got != 2 {
		t.Errorf("dualBuckets = %d, want 2", got)
	}
}

func TestSwitchesAndTiltsFromSentinelEvents(t *testing.T) {
	ev := func(ch, payload string) redistest.SentinelEvent {
		return redistest.SentinelEvent{Channel: ch, Payload: payload}
	}
	events := []redistest.SentinelEvent{
		ev("+switch-master", "m 10.0.0.1 6381 10.0.0.2 6382"), ev("+switch-master", "m 10.0.0.1 6381 10.0.0.2 6382"),
		ev("+sdown", "master m 10.0.0.1 6381"), ev("+switch-master", "m 10.0.0.2 6382 10.0.0.3 6383"),
	}
	if got := switches(events); got != 2 {
		t.Errorf("switches = %d, want 2", got)
	}
	if got := tilts(append(events, ev("+tilt", "#tilt mode entered"), ev("-tilt", "#tilt mode exited"))); got != 1 {
		t.Errorf("tilts = %d, want 1", got)
	}
}

func TestFenceEventsTimesTheFirstFenceFromTheCut(t *testing.T) {
	cut := time.Date(2026, 11, 29, 20, 0, 0, 0, time.UTC)
	log := `{"level":"info","event":"master_verified","time":"2026-11-29T19:59:59.000000Z"}
{"level":"warn","event":"master_fenced","group":"mymaster","time":"2026-11-29T20:00:03.500000Z"}
{"level":"info","event":"master_unfenced","group":"mymaster","time":"2026-11-29T20:00:09.000000Z"}
{"level":"warn","event":"master_fenced","group":"mymaster","time":"2026-11-29T20:00:02.250000Z"}
`
	path := filepath.Join(t.TempDir(), "proxy.log")
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	r := result{isProxy: true}
	if err := fenceEvents(&r, path, cut); err != nil {
		t.Fatal(err)
	}
	if r.fenced != 2 || r.unfenced != 1 || !r.haveFenced || r.firstFenced != 2250*time.Millisecond {
		t.Errorf("fenced %d unfenced %d first %s (%v)", r.fenced, r.unfenced, r.firstFenced, r.haveFenced)
	}
	if got := fence(r); got != "+2250 ms (2 / 1)" {
		t.Errorf("fence column %q", got)
	}
	if got := fence(result{isProxy: true}); got != "- (0 / 0)" {
		t.Errorf("fence column without events %q", got)
	}
}

func TestFleetResultIsOverEveryMember(t *testing.T) {
	cut := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ack := func(ms int, key, node string) redistest.Ack {
		return redistest.Ack{Key: key, At: cut.Add(time.Duration(ms) * time.Millisecond), Node: node}
	}
	hp := &redistest.LoadResult{Acks: []redistest.Ack{ack(-5, "hp-w0:0", "a"), ack(20, "hp-w0:1", "a")}, Errors: 2, End: cut.Add(time.Second)}
	hq := &redistest.LoadResult{Acks: []redistest.Ack{ack(-3, "hq-w0:0", "a"), ack(30, "hq-w0:1", "b")}, Errors: 1, Unconfirmed: 1,
		End: cut.Add(2 * time.Second)}
	all := mergeLoads([]*redistest.LoadResult{hp, hq})
	var keys []string
	for _, a := range all.Acks {
		keys = append(keys, a.Key)
	}
	if want := []string{"hp-w0:0", "hq-w0:0", "hp-w0:1", "hq-w0:1"}; !slices.Equal(keys, want) {
		t.Errorf("merged acks %v, want %v (in time order)", keys, want)
	}
	if all.Errors != 3 || all.Unconfirmed != 1 || !all.End.Equal(hq.End) {
		t.Errorf("merged errors %d, unconfirmed %d, end %s", all.Errors, all.Unconfirmed, all.End)
	}
	if got := dualBuckets(all.Acks, cut); got != 1 {
		t.Errorf("dualBuckets over the fleet = %d, want 1 (a and b in +0..100 ms): none is seen through one proxy alone", got)
	}

	members := []result{
		{lostAcks: []redistest.Ack{hp.Acks[1]}, fenced: 1, unfenced: 1, firstFenced: 2900 * time.Millisecond, haveFenced: true},
		{lostAcks: []redistest.Ack{hp.Acks[0]}, fenced: 2, unfenced: 1, firstFenced: 2700 * time.Millisecond, haveFenced: true},
		{}, // with the majority: never fenced
	}
	if lost := mergeLost(members); len(lost) != 2 || lost[0].Key != "hp-w0:0" {
		t.Errorf("merged lost %v, want both, in time order", lost)
	}
	var fleet result
	fleetFence(&fleet, members)
	if fleet.fenced != 3 || fleet.unfenced != 2 || !fleet.haveFenced || fleet.firstFenced != 2700*time.Millisecond {
		t.Errorf("fleet fenced %d unfenced %d first %s (%v)", fleet.fenced, fleet.unfenced, fleet.firstFenced, fleet.haveFenced)
	}
}

func TestFirstSwitchAndItsColumns(t *testing.T) {
	cut := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	events := []redistest.SentinelEvent{
		{Channel: "+sdown", At: cut.Add(5 * time.Second)},
		{Channel: "+switch-master", At: cut.Add(6500 * time.Millisecond)},
		{Channel: "+switch-master", At: cut.Add(6501 * time.Millisecond)},
	}
	at, ok := firstSwitch(events)
	if !ok || at.Sub(cut) != 6500*time.Millisecond {
		t.Errorf("firstSwitch = +%s, %v", at.Sub(cut), ok)
	}
	if _, ok := firstSwitch(events[:1]); ok {
		t.Error("firstSwitch found a switch without +switch-master")
	}
	r := result{switches: 1, failoverAt: 6500 * time.Millisecond, haveFailover: true, tilts: 1,
		firstOnFinal: 5690 * time.Millisecond, haveOnFinal: true, healed: 8016 * time.Millisecond}
	if got := failovers(r); got != "1 (first +6500 ms) (Sentinel TILT ×1)" {
		t.Errorf("failovers column %q", got)
	}
	if got := onFinal(r); got != "+5690 ms (+8016 ms)" {
		t.Errorf("first write on the final master column %q", got)
	}
	if got := onFinal(result{healed: 8 * time.Second}); got != "- (+8000 ms)" {
		t.Errorf("first write on the final master column without one %q", got)
	}
}

func TestPickScenariosByNameOrNumber(t *testing.T) {
	got, err := pickScenarios("1, split-fleet,6")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range got {
		names = append(names, s.name)
	}
	if want := []string{"split", "split-fleet", "split-fleet"}; !slices.Equal(names, want) {
		t.Errorf("picked %v, want %v", names, want)
	}
	if hosts := got[1].proxyHosts(); !slices.Equal(hosts, []string{"hp", "hp2", "hq"}) || got[1].downAfter == 0 {
		t.Errorf("split-fleet runs proxies on %v with down-after %s", hosts, got[1].downAfter)
	}
	if hosts := got[0].proxyHosts(); !slices.Equal(hosts, []string{"hp"}) {
		t.Errorf("split runs proxies on %v, want hp alone", hosts)
	}
	if _, err := pickScenarios("nope"); err == nil || !strings.Contains(err.Error(), "split-fleet") {
		t.Errorf("an unknown scenario: %v", err)
	}
}
