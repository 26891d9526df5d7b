package main

import (
	"os"
	"path/filepath"
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
