package proxy

import (
	"sync"
	"time"
)

// subscriberGate keeps, after a route change, the commands of the listener's sessions off the new
// backend until the sessions with subscriptions are subscribed there again: a message published through
// the proxy right after a failover must reach every subscriber, and Redis delivers a PUBLISH only to
// whoever is subscribed when it runs. Sessions that resp mode moves (it can carry subscriptions over)
// say when they start and finish re-subscribing; a session that arrives meanwhile waits for the last of
// them, at most gateLimit from when the first one waited.
type subscriberGate struct {
	mu      sync.Mutex
	gen     uint64 // the round of re-subscriptions: a late word from an expired round counts for nothing
	pending int
	waiters []func()
	timer   *time.Timer
}

// gateLimit bounds a wait for re-subscriptions: a subscriber whose new connection is slow in coming
// must not keep every other client waiting.
const gateLimit = time.Second

// start counts a session that will subscribe again, and returns its round.
func (g *subscriberGate) start() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pending++
	return g.gen
}

// startN counts n sessions that are told their backend left and may carry subscriptions to the next
// (RetireBackend): each says done once it knows it has none, or once it subscribed again.
func (g *subscriberGate) startN(n int) uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pending += n
	return g.gen
}

// done counts a session of round gen subscribed again (or gone).
func (g *subscriberGate) done(gen uint64) {
	g.mu.Lock()
	if gen != g.gen || g.pending == 0 {
		g.mu.Unlock()
		return
	}
	g.pending--
	if g.pending > 0 {
		g.mu.Unlock()
		return
	}
	g.openLocked()
}

// await returns false when no session is re-subscribing; otherwise fn is called once they all did, or
// the bound passed, from another goroutine.
func (g *subscriberGate) await(fn func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending == 0 {
		return false
	}
	g.waiters = append(g.waiters, fn)
	if g.timer == nil {
		gen := g.gen
		g.timer = time.AfterFunc(gateLimit, func() { g.expire(gen) })
	}
	return true
}

// expire opens the gate of round gen whatever is still pending.
func (g *subscriberGate) expire(gen uint64) {
	g.mu.Lock()
	if gen != g.gen {
		g.mu.Unlock()
		return
	}
	g.openLocked()
}

// openLocked starts the next round and calls the waiters; it unlocks g.
func (g *subscriberGate) openLocked() {
	waiters := g.waiters
	g.waiters, g.pending = nil, 0
	g.gen++
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	g.mu.Unlock()
	for _, fn := range waiters {
		fn()
	}
}
