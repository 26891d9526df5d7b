package proxy

import (
	"testing"
	"time"
)

// TestSubscriberGate: a session arriving while subscribers re-subscribe waits for the last of them; a
// round that outlives its bound opens anyway, and a late word from it does not count in the next.
func TestSubscriberGate(t *testing.T) {
	var g subscriberGate
	if g.await(func() { t.Error("called with nothing pending") }) {
		t.Fatal("await waits with nothing pending")
	}
	r1, r2 := g.start(), g.start()
	opened := make(chan struct{})
	if !g.await(func() { close(opened) }) {
		t.Fatal("await does not wait while two re-subscribe")
	}
	g.done(r1)
	select {
	case <-opened:
		t.Fatal("opened with one still re-subscribing")
	default:
	}
	g.done(r2)
	select {
	case <-opened:
	case <-time.After(time.Second):
		t.Fatal("not opened once both re-subscribed")
	}

	stale := g.start()
	expired := make(chan struct{})
	start := time.Now()
	g.await(func() { close(expired) })
	select {
	case <-expired:
		if d := time.Since(start); d < gateLimit/2 {
			t.Errorf("opened after %s, before its bound", d)
		}
	case <-time.After(3 * gateLimit):
		t.Fatal("the bound did not open the gate")
	}
	r3 := g.start()
	g.done(stale) // from the expired round: counts for nothing
	if !g.await(func() {}) {
		t.Fatal("a late word from an expired round opened the next")
	}
	g.done(r3)
}
