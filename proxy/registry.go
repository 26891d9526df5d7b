package proxy

import (
	"sync"
	"sync/atomic"
)

// backendCounters are one backend's session and byte counters, shared by its sessions.
type backendCounters struct {
	current  atomic.Int64
	total    atomic.Uint64
	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64
}

// BackendStats are one backend's counters as seen by one listener.
type BackendStats struct {
	Current  int64
	Total    uint64
	BytesIn  uint64
	BytesOut uint64
}

// registry tracks live sessions by backend, so all sessions to one backend can be closed or retired at
// once.
type registry struct {
	mu       sync.Mutex
	closed   bool
	held     *CommandHold // the listener's HoldCommands in force, nil for none
	byAddr   map[string]map[Session]struct{}
	counters map[string]*backendCounters
}

// add registers s under its backend and returns that backend's counters, and the hold in force (nil
// for none): registered under the same lock as a hold begins, a session either is among those the hold
// tells, or learns of it here. Counters are nil when the registry is closed (the listener is shutting
// down).
func (r *registry) add(s Session) (*backendCounters, *CommandHold) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, nil
	}
	c := r.insertLocked(s)
	c.total.Add(1)
	return c, r.held
}

// move takes s from under from and registers it under s.Backend() now, returning that backend's
// counters (a detached session, with no backend, is kept under "").
func (r *registry) move(s Session, from string) *backendCounters {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deleteLocked(from, s)
	c := r.insertLocked(s)
	if s.Backend() != "" {
		c.total.Add(1)
	}
	return c
}

// insertLocked registers s under s.Backend() and counts it there as current; r.mu is held.
func (r *registry) insertLocked(s Session) *backendCounters {
	if r.byAddr == nil {
		r.byAddr = map[string]map[Session]struct{}{}
		r.counters = map[string]*backendCounters{}
	}
	addr := s.Backend()
	set := r.byAddr[addr]
	if set == nil {
		set = map[Session]struct{}{}
		r.byAddr[addr] = set
	}
	set[s] = struct{}{}
	c := r.counters[addr]
	if c == nil {
		c = &backendCounters{}
		r.counters[addr] = c
	}
	c.current.Add(1)
	return c
}

// deleteLocked takes s from under addr, if it is there; r.mu is held.
func (r *registry) deleteLocked(addr string, s Session) {
	set := r.byAddr[addr]
	if set == nil {
		return
	}
	if _, ok := set[s]; ok {
		delete(set, s)
		r.counters[addr].current.Add(-1)
	}
	if len(set) == 0 {
		delete(r.byAddr, addr)
	}
}

// allLocked is every registered session; r.mu is held.
func (r *registry) allLocked() []Session {
	var sessions []Session
	for _, set := range r.byAddr {
		for s := range set {
			sessions = append(sessions, s)
		}
	}
	return sessions
}

func (r *registry) remove(s Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held != nil {
		r.held.Answered(s) // a session that ended has nothing in flight
	}
	r.deleteLocked(s.Backend(), s)
}

// sessionsTo collects the sessions of addr under the lock; they are acted on outside it, so a slow
// close never blocks new sessions.
func (r *registry) sessionsTo(addr string) []Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Session, 0, len(r.byAddr[addr]))
	for s := range r.byAddr[addr] {
		out = append(out, s)
	}
	return out
}

// hold begins a hold of every registered session's commands and returns it with the sessions to tell;
// sessions registered from now on get it from add. ErrHoldUnsupported when a session cannot hold.
func (r *registry) hold() (*CommandHold, []Session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held != nil {
		return nil, nil, errHoldInForce
	}
	sessions := r.allLocked()
	for _, s := range sessions {
		if _, ok := s.(CommandHolder); !ok {
			return nil, nil, ErrHoldUnsupported
		}
	}
	r.held = newCommandHold(sessions)
	return r.held, sessions, nil
}

// unhold ends h and returns the sessions to tell: every session registered now, whether it was told of
// h or got it from add.
func (r *registry) unhold(h *CommandHold) []Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held != h {
		return nil
	}
	r.held = nil
	return r.allLocked()
}

// closeAll closes every session and refuses new ones.
func (r *registry) closeAll() {
	r.mu.Lock()
	r.closed = true
	victims := r.allLocked()
	r.mu.Unlock()
	for _, s := range victims {
		s.Close()
	}
}

func (r *registry) stats() map[string]BackendStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]BackendStats, len(r.counters))
	for addr, c := range r.counters {
		if addr == "" {
			continue // sessions between backends
		}
		out[addr] = BackendStats{Current: c.current.Load(), Total: c.total.Load(), BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load()}
	}
	return out
}
