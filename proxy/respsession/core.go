package respsession

import (
	"errors"
	"slices"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
)

// core is one resp-mode client session, whatever drives its sockets: what the listener sees of it
// (proxy.Session and proxy.CommandHolder), its registration at a backend, its moves from one backend to
// the next, the switchover's hold, and the retries while no backend can be reached. It decides; its
// driver (epoll.go: an event loop; portable.go: goroutines) does the I/O and tells it what happened.
// Every method but the proxy.Session ones runs in the session's turn: on its loop, or under its lock.
type core struct {
	d        driver
	c        *proxy.Client
	conv     *conv
	counters proxy.Counters
	addr     string // the backend the session is registered at; "" between backends
	pending  string // the backend being connected to

	established bool // registered with the listener (its first backend connected)
	linked      bool // a backend connection is up (its own, or a shared one)
	connecting  bool
	// checking: the backend connection closed while its node is routed, and a connect to the node says
	// whether it is alive (checkKill): a kill closes the client, a dead node moves it.
	checking bool
	closing  bool // close once what the client is owed is written
	closed   bool

	// hold is the listener's hold in force (HoldCommands); holdWaits until the session told it that
	// what it sent before is answered.
	hold      *proxy.CommandHold
	holdWaits bool

	// The drain of a master the route left (drain.go): draining until drainUntil; verdictBy is when
	// replies still waiting for the new master's word are given up on. unblocking is told when the
	// released blocking command answered.
	draining   bool
	drainUntil int64
	// drainCounted: the listener counts the drain (drainRound: proxy.Client.DrainDone). listening: a
	// subscriber kept on the old backend while others drain it (listenOn).
	drainCounted, listening bool
	drainRound              uint64
	verdictBy               int64
	unblocking              *unblockJob

	// resubscribing: the session left a backend with subscriptions, and the listener's other sessions
	// wait for it to subscribe again (proxy.Client.ResubscribeStarted), round resubRound.
	resubscribing bool
	resubRound    uint64

	retryAt   int64  // when to walk the route again, 0 if not waiting for it (unix nanoseconds)
	holdNext  int64  // the earliest deadline of a command held for want of a backend
	stopWatch func() // while waiting for the route to change
}

// driver is what a core asks of the code that owns its sockets. Each method runs in the session's turn.
type driver interface {
	output // what the conversation writes: to the backend connection, to the client
	// walkRoute connects to the listener's route (proxy.Client.Attempts: its backends in turn) in the
	// background, and tells the core how it went: connectingTo each, then arrived, or unreachable.
	walkRoute()
	// dropBackend closes the backend connection (or leaves a shared one), or stops connecting.
	dropBackend()
	// handBack gives a client whose first connect failed back to the listener, which holds and
	// retries it, or refuses it.
	handBack(err error)
	// admitted is told that the session is registered, the first time: the client is read from now on.
	admitted() error
	// ending is told that the session ends once the client's output is written: read nothing more.
	ending()
	// closeNow closes the session at once.
	closeNow()
	// run runs fn in the session's turn, then lets the session act on what changed; called from any
	// goroutine, in order, and it must not block.
	run(fn func())
	clock() int64 // unix nanoseconds
}

// retryEvery is how often a session without a backend walks its route again when the route did not
// change (its backend refused, and may be back: a restart).
const retryEvery = 250 * time.Millisecond

// highWater is how much output a side may have waiting before the side that feeds it stops being
// read: a slow reader slows its writer instead of making the proxy buffer without bound.
const highWater = 64 << 10

func (s *core) init(d driver, c *proxy.Client, out output) {
	s.d, s.c = d, c
	s.conv = newConv(out, s, int64(c.HoldTimeout()))
	if dur, ok := c.SessionConfig().(*Durability); ok {
		s.conv.dur = dur // the group's wait_replicas (durable.go)
	}
}

var (
	_ proxy.CommandHolder      = (*core)(nil)
	_ proxy.SubscribingSession = (*core)(nil)
	_ env                      = (*core)(nil)
)

// Backend implements proxy.Session: the listener's registry files the session under it.
func (s *core) Backend() string { return s.addr }

// Close implements proxy.Session: an operator's kill, or the listener closing.
func (s *core) Close() { s.d.run(func() { s.d.closeNow() }) }

// Retire implements proxy.Session: the backend left its pool; the session moves to the route's next.
func (s *core) Retire(backend string) {
	s.d.run(func() {
		if s.addr == backend && !s.closed && !s.draining && !(s.linked && s.drain()) {
			s.backendGone(true)
		}
	})
}

// RetireCounted implements proxy.SubscribingSession: Retire, and the listener's gate told when the
// session knows whether it carries subscriptions.
func (s *core) RetireCounted(backend string, round, drains uint64) {
	s.d.run(func() {
		owned, counted := false, true
		if s.addr == backend && !s.closed && !s.draining && !s.listening {
			if s.conv.st.subscribed() && !s.resubscribing {
				s.resubRound, s.resubscribing, owned = round, true, true
			}
			switch {
			case s.linked && s.drain():
				s.drainRound, s.drainCounted, counted = drains, true, false
			case s.linked && s.listenOn(drains):
				counted = false // said done in listenOn, before waiting for the others
			default:
				s.backendGone(true)
			}
		}
		if !owned {
			s.c.ResubscribeDone(round)
		}
		if counted {
			s.c.DrainDone(drains)
		}
	})
}

// listenOn keeps a subscriber on the backend the route left while other sessions drain it: a message a
// drained PUBLISH delivers there reaches it. Its commands wait meanwhile; it moves once they are done
// (at most a second). It says its own part of drains done first.
func (s *core) listenOn(drains uint64) bool {
	if !s.conv.canListenOn() {
		return false
	}
	s.c.DrainDone(drains)
	if !s.c.AwaitDrains(func() { s.d.run(s.listened) }) {
		s.backendGone(true)
		return true
	}
	s.listening = true
	s.conv.draining = true // nothing goes to the old backend: commands wait
	return true
}

// listened moves a subscriber that listened on while others drained.
func (s *core) listened() {
	if s.listening && !s.closed {
		s.backendGone(true)
	}
}

// drainLimit bounds a drain: how long a session waits for the replies of a master the route left
// before it answers what is still in flight as before (a paused master).
const drainLimit = time.Second

// drain starts the drain of the master the session is on, which the route left (drain.go), and
// reports whether it did.
func (s *core) drain() bool {
	ok, id := s.conv.startDrain(s.d.clock())
	if !ok {
		return false
	}
	s.draining = true
	s.drainUntil = s.d.clock() + int64(drainLimit)
	if id != 0 {
		s.unblocking = s.unblock(s.addr, id)
	}
	return true
}

// endDrain leaves the drained master: the conversation's replies wait for the new master's word (its
// drain done), or, cut short by drainLimit, what is still in flight is answered as without a drain.
func (s *core) endDrain() {
	s.verdictBy = s.d.clock() + max(int64(s.c.HoldTimeout()), int64(drainLimit))
	s.backendGone(true)
}

// drainOver forgets the drain, however it ended.
func (s *core) drainOver() {
	s.draining, s.listening = false, false
	if s.drainCounted {
		s.drainCounted = false
		s.c.DrainDone(s.drainRound)
	}
	if s.unblocking != nil {
		s.unblocking.stop.Store(true)
		s.unblocking = nil
	}
}

// HoldCommands implements proxy.CommandHolder.
func (s *core) HoldCommands(h *proxy.CommandHold) {
	s.d.run(func() {
		if s.closed || h.Released() {
			h.Answered(s)
			return
		}
		s.hold, s.holdWaits = h, true
		s.conv.holdCommands()
	})
}

// ReleaseCommands implements proxy.CommandHolder.
func (s *core) ReleaseCommands(h *proxy.CommandHold) {
	s.d.run(func() {
		if s.closed || s.hold != h {
			return
		}
		s.hold, s.holdWaits = nil, false
		// The held commands go to the route in force now. A session still on (or on its way to) a
		// backend the route left, which was not cut because it connected as the cut was made, moves
		// first, as a cut session does.
		if (s.conv.attached && !s.routeHas(s.addr)) || (s.connecting && s.established && !s.routeHas(s.pending)) {
			s.backendGone(true)
		}
		s.d.toBackend(s.conv.releaseCommands())
	})
}

// routeHas reports whether the listener's route has addr, or no backend at all (then the session
// stays where it is: nothing is better).
func (s *core) routeHas(addr string) bool {
	backends, _, _ := s.c.Route()
	return len(backends) == 0 || slices.Contains(backends, addr)
}

// now implements env.
func (s *core) now() int64 { return s.d.clock() }

// refusal implements env: why a command held for want of a backend is refused when its time is up.
func (s *core) refusal() string {
	_, _, refusal := s.c.Route()
	if refusal == "" {
		return "no backend of the route could be reached" // the route has backends, none answered in time
	}
	return refusal
}

// connect starts walking the listener's route.
func (s *core) connect() {
	s.retryAt = 0
	s.connecting = true
	s.d.walkRoute()
}

// connectingTo is told which backend the driver connects to now.
func (s *core) connectingTo(addr string) { s.pending = addr }

// arrived is told that the session's backend connection to addr is up: it registers the session there
// (the end of the client's admission, the first time) and reports whether it stays. False when the
// listener is closing (the session closed) or the route left addr while it connected (it moved on).
func (s *core) arrived(addr string) bool {
	s.connecting = false
	s.linked = true
	if s.stopWatch != nil {
		s.stopWatch()
		s.stopWatch = nil
	}
	from := s.addr
	s.addr = addr
	counters, arrival := s.c.Arrived(s, from)
	if arrival == proxy.ListenerClosing {
		s.d.closeNow()
		return false
	}
	s.counters = counters
	if !s.established {
		s.established = true
		if h := s.c.CommandHold(); h != nil && !h.Released() {
			// Held from its first command: the release, which comes in the session's turn, comes after.
			s.hold = h
			s.conv.holdCommands()
		}
		if err := s.d.admitted(); err != nil {
			s.d.closeNow()
			return false
		}
	}
	if arrival == proxy.RouteMoved {
		s.backendGone(true)
		return false
	}
	return true
}

// attach starts the conversation on a backend connection of the session's own: the client's state is
// replayed (unless the connection has it: replay false), then what waited is sent (between first: what
// the session forwarded to a shared connection and did not send there).
func (s *core) attach(between []byte, replay bool) {
	s.gate()
	s.d.toBackend(s.conv.attachWith(between, replay))
}

// gate holds the commands of a session arriving at a backend while sessions with subscriptions are
// subscribing there again (proxy.Client.AwaitSubscribers); a subscriber itself goes on.
func (s *core) gate() {
	if s.conv.st.subscribed() || s.conv.gated {
		return
	}
	if s.c.AwaitSubscribers(func() { s.d.run(s.ungate) }) {
		s.conv.gated = true
	}
}

// ungate sends what the gate held.
func (s *core) ungate() {
	if !s.closed {
		s.d.toBackend(s.conv.ungate())
	}
}

// unreachable is told that no backend of the route could be reached (err says why): a client being
// admitted goes back to the listener; one in session waits for the route to change, and walks it again
// every retryEvery meanwhile.
func (s *core) unreachable(err error) {
	s.connecting = false
	if !s.established {
		s.closed = true
		s.stopWatching()
		s.d.handBack(err)
		return
	}
	s.retryAt = s.d.clock() + int64(retryEvery)
	if s.stopWatch == nil {
		s.stopWatch = s.c.WatchRoute(func() {
			s.d.run(func() {
				if !s.closed && !s.linked && !s.connecting && s.retryAt != 0 {
					s.connect()
				}
			})
		})
	}
}

func (s *core) stopWatching() {
	if s.stopWatch != nil {
		s.stopWatch()
		s.stopWatch = nil
	}
}

// backendGone acts on the backend leaving: retired by the listener (its node left the pool), or its
// connection closed or broken. The conversation keeps the client: it is moved to the next backend when
// it needs one.
func (s *core) backendGone(retired bool) {
	if s.closed || !s.established || (!s.linked && !s.connecting) {
		return
	}
	s.drainOver()
	wasConnecting := s.connecting
	addr := s.addr
	s.d.dropBackend()
	s.linked, s.connecting = false, false
	if !retired && !wasConnecting && addr != "" && s.c.Routed(addr) && s.conv.mayBeKilled() {
		s.conv.suspend()
		s.checkKill(addr)
		return
	}
	s.moveOff(addr, !retired && !wasConnecting)
}

// checkKill finds out why the connection to addr, a routed node, closed: Redis closes a client's
// connection while it stays up (CLIENT KILL, client-output-buffer-limit, timeout, maxclients), and a
// client connected directly is then disconnected; so is this one. A node that died does not answer a
// PING on a new connection (a connect alone is not enough: a killed process's client sockets may close
// before its listening one), and the session moves as in a failover. Until the answer the conversation
// sends nothing (suspend).
func (s *core) checkKill(addr string) {
	s.checking = true
	c := s.c
	st := s.conv.st
	go func() {
		why := whyClosed(c.Dial, addr, st, c.Reconfiguring())
		s.d.run(func() { s.killChecked(addr, why) })
	}()
}

// killChecked acts on checkKill's answer. A replica Sentinel just reconfigured closed its clients for
// them to find the new topology, which the session follows for its client: it moves.
func (s *core) killChecked(addr string, why closedBy) {
	s.checking = false
	if s.closed || s.closing {
		return
	}
	if why == nodeKilled && s.c.Routed(addr) {
		s.c.BackendClosed(addr)
		s.end()
		return
	}
	s.moveOff(addr, true)
}

// moveOff moves the conversation off addr, the backend it left (failed: unreachable, not retired),
// and on to the route's next backend when it needs one.
func (s *core) moveOff(addr string, failed bool) {
	if failed && addr != "" {
		s.c.BackendFailed(addr)
	}
	if err := s.conv.detach(); err != nil {
		s.end()
		return
	}
	s.addr = ""
	s.counters = s.c.Moved(s, addr)
	if s.conv.st.subscribed() && !s.resubscribing {
		s.resubRound, s.resubscribing = s.c.ResubscribeStarted(), true
	}
	if s.conv.needsBackend() {
		s.connect()
	}
}

// conversationEnded acts on an error of the conversation: the client was told (it wrote its answer)
// and is closed once that is written; a backend that sent what is not RESP is left as a failed one.
// It reports whether the session ends.
func (s *core) conversationEnded(fromBackend bool, err error) bool {
	if fromBackend && !errors.Is(err, errQuit) && !errors.Is(err, errCannotMove) {
		return false
	}
	s.end()
	return true
}

// end closes the session once what the client is owed is written.
func (s *core) end() {
	if s.closing || s.closed {
		return
	}
	s.closing = true
	s.d.ending()
}

// settle acts on what the last step left, before the session waits again: the hold told once what was
// sent before it is answered; a backend looked for when the conversation needs one; commands held for
// want of a backend refused once their time is up.
func (s *core) settle() {
	if s.closed {
		return
	}
	if s.holdWaits && s.conv.answered() {
		s.holdWaits = false
		s.hold.Answered(s)
	}
	if s.closing {
		return
	}
	if s.draining && s.conv.drainDone {
		s.endDrain()
		if s.closed || s.closing {
			return
		}
	}
	if s.unblocking != nil && !s.conv.unblockPending() {
		s.unblocking.stop.Store(true)
		s.unblocking = nil
	}
	if !s.conv.verdictPending {
		s.verdictBy = 0
	}
	if s.resubscribing && s.conv.resubscribed() {
		s.resubscribing = false
		s.c.ResubscribeDone(s.resubRound)
	}
	if !s.linked && !s.connecting && !s.checking && s.retryAt == 0 && s.conv.needsBackend() {
		s.connect()
	}
	s.holdNext = 0
	// A command held while its session moves from a shared connection to one of its own waits for
	// that connection (its connect timeout bounds it), not for a master: failover_hold, even 0, does
	// not apply to it.
	if !s.conv.attached && !(s.connecting && s.conv.privateSoon) {
		next, err := s.conv.expireHolds(s.d.clock())
		if err != nil {
			s.end()
			return
		}
		s.holdNext = next
	}
}

// expire acts on the session's deadlines that passed by now; settle follows.
func (s *core) expire(now int64) {
	if s.draining && now >= s.drainUntil && !s.closed && !s.closing {
		s.endDrain() // the old master did not answer in time
	}
	if s.verdictBy != 0 && now >= s.verdictBy && !s.closed && !s.closing {
		s.verdictBy = 0
		s.conv.verdict(false) // no new master said where it stands in time
	}
	if s.retryAt != 0 && now >= s.retryAt && !s.closed && !s.closing {
		s.retryAt = 0
		if !s.linked && !s.connecting && !s.checking && s.conv.needsBackend() {
			s.connect()
		}
	}
}

// deadline is the session's next deadline (0 for none): a retry of the route, or a held command's.
func (s *core) deadline() int64 {
	next := s.retryAt
	if s.draining && (next == 0 || s.drainUntil < next) {
		next = s.drainUntil
	}
	if s.verdictBy > 0 && (next == 0 || s.verdictBy < next) {
		next = s.verdictBy
	}
	if s.holdNext > 0 && (next == 0 || s.holdNext < next) {
		next = s.holdNext
	}
	return next
}

// released is told that the session is over: it leaves the listener.
func (s *core) released() {
	s.closed = true
	s.stopWatching()
	s.drainOver()
	s.conv.dropHeld()
	if s.resubscribing {
		s.resubscribing = false
		s.c.ResubscribeDone(s.resubRound)
	}
	if s.established {
		s.c.Ended(s)
	} else {
		s.c.Release()
	}
}
