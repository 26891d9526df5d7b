//go:build linux

package respsession

import (
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/eventloop"
)

// Epoll serves RESP sessions on event loops: a session's client and backend sockets live on one loop,
// edge-triggered, with the loop's read buffer and no goroutine per session.
type Epoll struct {
	loops *eventloop.Loops
	// pools: with multiplexing, each loop's shared backend connections (read-only map: a loop uses
	// only its own pool)
	pools map[*eventloop.Loop]*pool
	// muxLoops are the loops multiplexed sessions run on, taken in turn (next): half of them, at
	// least one. Measured on 2 cores (docs/benchmarks.md): one loop gave each shared connection
	// twice the commands per write and left a core to Redis and its clients, for more throughput and
	// a lower p99 than two.
	muxLoops []*eventloop.Loop
	next     atomic.Uint64
	stats    muxStats
}

// MuxCounts reports the shared backend connections open, and how many sessions moved from one to a
// connection of their own, since the start (zeros without multiplexing).
func (e *Epoll) MuxCounts() (conns, unshared uint64) {
	return uint64(max(0, e.stats.conns.Load())), e.stats.unshared.Load()
}

// NewEpoll returns the RESP session handler on loops, which the caller closes after every listener
// using it has stopped.
func NewEpoll(loops *eventloop.Loops) *Epoll { return &Epoll{loops: loops} }

// NewEpollMux returns the RESP session handler on loops whose sessions share backend connections
// (multiplex = true; see mux.go and shared_linux.go).
func NewEpollMux(loops *eventloop.Loops) *Epoll {
	all := loops.All()
	e := &Epoll{loops: loops, pools: map[*eventloop.Loop]*pool{}, muxLoops: all[:max(1, len(all)/2)]}
	for _, lp := range e.muxLoops {
		e.pools[lp] = &pool{lp: lp, conns: map[poolKey]*sharedConn{}, spares: map[poolKey]*sharedConn{}, stats: &e.stats}
	}
	return e
}

// Name implements proxy.Handler.
func (e *Epoll) Name() string {
	if e.pools != nil {
		return "resp-multiplex"
	}
	return "resp"
}

// SessionsHoldCommands implements proxy.HoldingHandler.
func (e *Epoll) SessionsHoldCommands() bool { return true }

var (
	_ proxy.HoldingHandler = (*Epoll)(nil)
	_ proxy.CommandHolder  = (*session)(nil)
)

// Serve implements proxy.Handler.
func (e *Epoll) Serve(c *proxy.Client) {
	fd, err := eventloop.Detach(c.Conn)
	if err != nil {
		c.Refuse("out of file descriptors; try again later")
		return
	}
	c.Conn = nil
	var lp *eventloop.Loop
	var p *pool
	if e.pools != nil {
		lp = e.muxLoops[e.next.Add(1)%uint64(len(e.muxLoops))]
		p = e.pools[lp]
	} else {
		lp = e.loops.Next()
	}
	lp.Post(func() { startSession(lp, c, fd, p) })
}

// highWater is how much output a side may have waiting before the side that feeds it stops being
// read: a slow reader slows its writer instead of making the proxy buffer without bound.
const highWater = 64 << 10

// retryEvery is how often a session without a backend tries its route again when the route did not
// change (its backend refused, and may be back: a restart).
const retryEvery = 250 * time.Millisecond

// side is one socket of a session.
type side struct {
	s      *session
	fd     int
	out    []byte // written but not yet taken by the socket
	paused bool   // not read: the other side's output is full
	hup    bool   // the peer hung up: read to the EOF
	broken bool   // a write failed: the session acts on it after the current step
	later  bool   // read its fair share: it is read again after the loop's next look at the events
}

// session is one client in resp mode, owned by a loop.
type session struct {
	lp       *eventloop.Loop
	c        *proxy.Client
	conv     *conv
	client   side
	backend  side
	counters proxy.Counters
	addr     string // the backend now, "" between backends; what the listener's registry keys it by

	established bool // registered with the listener (the first backend connected)
	connecting  bool
	pendingAddr string // the backend being connected to
	connectBy   int64
	backends    []string // the route being tried
	start       uint64
	tried       int
	retryAt     int64 // when to try the route again, 0 if not waiting
	holdNext    int64 // the earliest deadline of a held command
	lastActive  int64
	stopWatch   func()
	closing     bool // close once the client's output is flushed
	closed      bool
	timer       eventloop.Timer
	// hold is the listener's hold in force (HoldCommands); holdWaits until the session told it that
	// what it sent before is answered.
	hold      *proxy.CommandHold
	holdWaits bool
	// keptFull is set while the client is not read because the session keeps too many of its commands
	// (conv.keptFull); after reads it again once there is room.
	keptFull bool
	// mux: the session shares a backend connection (multiplex); nil once it has one of its own.
	mux *muxSession
}

// muxSession is what a session sharing a backend connection knows of it.
type muxSession struct {
	pool *pool
	slot *sharedConn // the connection it is on, or waits for
	owed int32       // replies the connection owes it
	// partial: bytes forwarded of commands that did not go out yet: the command being read (a shared
	// connection takes whole commands), or any while it moves to a connection of its own.
	partial []byte
	// partialPaused: the client is not read while partial is too long.
	partialPaused bool
	// keyWait: a command that changes the connection's state is in flight (AUTH, SELECT, HELLO): what
	// follows waits for its reply, which says which connection it goes on.
	keyWait bool
	// private: the session moves to a connection of its own once nothing is owed.
	private   bool
	lastTouch *sharedConn // set while a delivery lists the session (sharedConn.deliver)
}

// maxPartial is the longest command a session sharing a connection gathers before it goes out: a
// longer one moves the session to a connection of its own, where it streams.
const maxPartial = 64 << 10

func startSession(lp *eventloop.Loop, c *proxy.Client, fd int, p *pool) {
	s := &session{lp: lp, c: c}
	s.timer.Owner = s
	s.client = side{s: s, fd: fd}
	s.backend = side{s: s, fd: -1}
	hold := int64(c.HoldTimeout())
	s.conv = newConv(s, s, hold)
	if p != nil {
		s.mux = &muxSession{pool: p}
		s.conv.mux = s
	}
	s.backends, s.start = c.Backends()
	s.lastActive = lp.NowNs()
	s.tryNext(nil)
}

// Backend implements proxy.Session.
func (s *session) Backend() string { return s.addr }

// Close implements proxy.Session: an operator's kill.
func (s *session) Close() { s.lp.Post(func() { s.close() }) }

// Retire implements proxy.Session: the backend left its pool; the session moves to the next route.
func (s *session) Retire(backend string) {
	s.lp.Post(func() {
		if s.addr == backend && !s.closed {
			s.backendGone(true)
			s.after()
		}
	})
}

// HoldCommands implements proxy.CommandHolder, on the session's loop like every change of its state.
func (s *session) HoldCommands(h *proxy.CommandHold) {
	s.lp.Post(func() {
		if s.closed || h.Released() {
			h.Answered(s)
			return
		}
		s.hold, s.holdWaits = h, true
		s.conv.holdCommands()
		s.after()
	})
}

// ReleaseCommands implements proxy.CommandHolder.
func (s *session) ReleaseCommands(h *proxy.CommandHold) {
	s.lp.Post(func() {
		if s.closed || s.hold != h {
			return
		}
		s.hold, s.holdWaits = nil, false
		// The held commands go to the route in force now. A session still on (or on its way to) a
		// backend the route left, which was not cut because it connected as the cut was made, moves
		// first, as a cut session does.
		if (s.conv.attached && !s.routeHas(s.addr)) || (s.connecting && s.established && !s.routeHas(s.pendingAddr)) {
			s.backendGone(true)
		}
		s.toBackend(s.conv.releaseCommands())
		s.after()
	})
}

// routeHas reports whether the listener's route has addr, or no backend at all (then the session
// stays where it is: nothing is better).
func (s *session) routeHas(addr string) bool {
	backends, _, _ := s.c.Route()
	return len(backends) == 0 || slices.Contains(backends, addr)
}

// now implements env.
func (s *session) now() int64 { return s.lp.NowNs() }

// refusal implements env.
func (s *session) refusal() string {
	_, _, refusal := s.c.Route()
	return refusal
}

// Event implements eventloop.Handler for both sides.
func (sd *side) Event(events uint32) { sd.s.event(sd, events) }

// EventsHandled implements eventloop.EndHandler: the side's turn came again (pump).
func (sd *side) EventsHandled() {
	sd.later = false
	if s := sd.s; !s.closed {
		s.pump(sd)
		s.after()
	}
}

// Stop implements eventloop.Handler: the loop is stopping.
func (sd *side) Stop() { sd.s.close() }

func (s *session) event(sd *side, events uint32) {
	if s.closed {
		return
	}
	sd.hup = sd.hup || events&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0
	if sd == &s.backend && s.connecting {
		if events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			s.connected()
		}
		s.after()
		return
	}
	if events&unix.EPOLLOUT != 0 && len(sd.out) > 0 {
		s.flush(sd)
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		s.pump(sd)
	}
	s.after()
}

// after acts on what the last step left: a broken side, a session to close, the timer.
func (s *session) after() {
	if s.closed {
		return
	}
	if s.keptFull && s.conv.keptRoom() {
		s.keptFull, s.client.paused = false, false
		s.pump(&s.client)
	}
	if s.client.broken {
		s.close()
		return
	}
	if s.backend.broken {
		s.backendGone(false)
		if s.closed {
			return
		}
	}
	if s.closing && len(s.client.out) == 0 {
		s.close()
		return
	}
	if m := s.mux; m != nil {
		if m.partialPaused && len(m.partial) <= highWater/2 {
			m.partialPaused, s.client.paused = false, false
			s.pump(&s.client)
		}
		if !m.private && len(m.partial) > maxPartial && s.conv.mux != nil {
			m.private, s.conv.muxHeld = true, true // it streams on a connection of its own
		}
		if s.conv.attached && !s.connecting && !s.closed {
			s.dispatch()
		}
	}
	if !s.conv.attached && !s.connecting && s.retryAt == 0 && s.conv.needsBackend() {
		s.connect()
	}
	if s.holdWaits && s.conv.answered() {
		s.holdWaits = false
		s.hold.Answered(s)
	}
	s.armTimer()
}

// fairShare is how much a session reads from one side before the other sessions of its loop have a
// turn: a client streaming a 50 MB value, or a backend sending one, does not hold the loop for the whole
// of it.
const fairShare = 256 << 10

// pump reads sd until the kernel has nothing more (edge-triggered), or its fair share for now (then it
// goes on after the loop's next look at the events), and hands the bytes to the conversation.
func (s *session) pump(sd *side) {
	buf := s.lp.Buf()
	share := fairShare
	for !sd.paused && !s.closed && !s.closing && sd.fd >= 0 && !sd.broken {
		if share <= 0 {
			if !sd.later {
				sd.later = true
				s.lp.Later(sd)
			}
			return
		}
		n, err := eventloop.Read(sd.fd, buf)
		share -= n
		if n > 0 {
			s.lastActive = s.lp.NowNs()
			var cerr error
			if sd == &s.client {
				s.counters.In(n)
				cerr = s.conv.fromClient(buf[:n])
				if cerr == nil && s.conv.keptFull() {
					s.keptFull, sd.paused = true, true
				}
			} else {
				s.counters.Out(n)
				cerr = s.conv.fromBackend(buf[:n])
			}
			if cerr != nil {
				s.ended(sd, cerr)
				return
			}
			if s.backend.broken || s.client.broken || (n < len(buf) && !sd.hup) {
				return
			}
			continue
		}
		if err == unix.EAGAIN || err == unix.EINTR {
			return
		}
		// EOF or an error.
		if sd == &s.client {
			// Redis drops a client whose connection is closed, half or whole, and so does the session.
			s.close()
			return
		}
		s.backend.broken = true
		return
	}
}

// ended acts on a conversation's error: the client is told (the conversation wrote its answer) and
// closed once that is flushed; a backend that sent what is not RESP is left.
func (s *session) ended(sd *side, err error) {
	if sd == &s.backend && !errors.Is(err, errQuit) && !errors.Is(err, errCannotMove) {
		// The backend broke the protocol: leave it as a failed backend.
		s.backend.broken = true
		return
	}
	s.closing = true
	s.client.paused, s.backend.paused = true, true
}

// toBackend and toClient implement output.
func (s *session) toBackend(b []byte) {
	if m := s.mux; m != nil {
		m.partial = append(m.partial, b...)
		if len(m.partial) > highWater && !s.client.paused {
			m.partialPaused, s.client.paused = true, true
		}
		return
	}
	s.write(&s.backend, &s.client, b)
}
func (s *session) toClient(b []byte) { s.write(&s.client, s.feeder(&s.client), b) }

// feeder is the side whose reading feeds sd's output: the other one, except for the client of a
// session on a shared connection, whose replies come as it asks for them: a client that does not read
// them is not read (it sends no more commands), and the connection it shares goes on for the others.
func (s *session) feeder(sd *side) *side {
	switch {
	case sd == &s.backend:
		return &s.client
	case s.mux != nil:
		return &s.client
	}
	return &s.backend
}

// write writes b to sd at once, keeping what the socket does not take; when too much waits, feeder
// is not read until sd drains.
func (s *session) write(sd, feeder *side, b []byte) {
	if sd.fd < 0 || sd.broken || len(b) == 0 {
		return
	}
	if len(sd.out) == 0 {
		for len(b) > 0 {
			n, err := eventloop.Write(sd.fd, b)
			if n > 0 {
				b = b[n:]
				continue
			}
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN {
				break
			}
			sd.broken = true
			return
		}
		if len(b) == 0 {
			return
		}
	}
	sd.out = append(sd.out, b...)
	if len(sd.out) > highWater {
		feeder.paused = true
	}
}

// writeOut writes what out holds to fd until it is all gone or the socket is full (full true; out then
// holds the rest, moved to its start), or a write fails (err).
func writeOut(fd int, out *[]byte) (full bool, err error) {
	for len(*out) > 0 {
		n, err := eventloop.Write(fd, *out)
		if n > 0 {
			*out = (*out)[:copy(*out, (*out)[n:])]
			continue
		}
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return true, nil
		}
		return false, err
	}
	return false, nil
}

// flush writes sd's waiting output; once it is gone the side that feeds it is read again.
func (s *session) flush(sd *side) {
	full, err := writeOut(sd.fd, &sd.out)
	if err != nil {
		sd.broken = true
	}
	if full || err != nil {
		return
	}
	sd.out = nil // an idle session keeps no buffer
	feeder := s.feeder(sd)
	if feeder.paused && !s.closing {
		feeder.paused = false
		s.pump(feeder)
	}
}

// connect tries the listener's route now.
func (s *session) connect() {
	backends, start, _ := s.c.Route()
	s.backends, s.start, s.tried = backends, start, 0
	s.tryNext(nil)
}

// tryNext connects to the next backend of the route being tried, or waits when each was tried.
func (s *session) tryNext(errs []error) {
	for s.tried < len(s.backends) {
		addr := s.backends[(s.start+uint64(s.tried))%uint64(len(s.backends))]
		s.tried++
		if m := s.mux; m != nil && !m.private {
			sc, err := m.pool.get(poolKey{addr: addr, muxKeyOf: s.conv.st.muxKey()})
			if err != nil {
				errs = append(errs, err)
				s.c.BackendFailed(addr)
				continue
			}
			sc.users[s] = struct{}{}
			m.slot = sc
			s.connecting, s.retryAt = true, 0
			s.connectBy = s.lp.NowNs() + int64(s.c.ConnectTimeout())
			s.pendingAddr = addr
			if !sc.connecting {
				s.slotReady()
			}
			return
		}
		if s.mux != nil && s.conv.mux != nil {
			s.conv.leaveMux() // it was to move to a connection of its own when its backend left
		}
		fd, err := eventloop.Connect(addr)
		if err != nil {
			errs = append(errs, err)
			s.c.BackendFailed(addr)
			continue
		}
		if err := s.lp.Add(fd, &s.backend); err != nil {
			eventloop.Close(fd)
			errs = append(errs, err)
			continue
		}
		s.backend.fd, s.backend.broken, s.backend.hup, s.backend.paused = fd, false, false, false
		s.connecting, s.retryAt = true, 0
		s.connectBy = s.lp.NowNs() + int64(s.c.ConnectTimeout())
		s.pendingAddr = addr
		return
	}
	if !s.established {
		// The first connect: the listener holds the client and tries the next route, or refuses it,
		// as for any handler.
		s.handOff(errors.Join(errs...))
		return
	}
	s.waitRoute()
}

// waitRoute waits for the route to change, trying it again every retryEvery meanwhile.
func (s *session) waitRoute() {
	s.retryAt = s.lp.NowNs() + int64(retryEvery)
	if s.stopWatch == nil {
		s.stopWatch = s.c.WatchRoute(func() {
			s.lp.Post(func() {
				if !s.closed && !s.conv.attached && !s.connecting && s.retryAt != 0 {
					s.retryAt = 0
					s.connect()
					s.after()
				}
			})
		})
	}
}

// connected finishes a connect once the backend socket is writable.
func (s *session) connected() {
	addr := s.pendingAddr
	if err := eventloop.SocketError(s.backend.fd); err != nil {
		s.dropBackendFD()
		s.c.BackendFailed(addr)
		s.tryNext([]error{err})
		return
	}
	if !s.arrived(addr) {
		return
	}
	s.attachOwn(true)
}

// attachOwn starts the session on its backend connection, up in s.backend; replay is false for one
// that has the client's state already (a shared connection's spare). A session leaving a shared
// connection sends what it gathered for it there, after the replay.
func (s *session) attachOwn(replay bool) {
	var between []byte
	if m := s.mux; m != nil {
		between = m.partial
		if m.partialPaused {
			s.client.paused = false
		}
		s.mux = nil
	}
	s.toBackend(s.conv.attachWith(between, replay))
	// Edge-triggered: what arrived meanwhile raised no new edge, so read both now.
	s.pump(&s.client)
	s.pump(&s.backend)
}

// slotReady finishes a connect to a shared connection, once it is up.
func (s *session) slotReady() {
	if !s.arrived(s.mux.slot.key.addr) {
		return
	}
	s.conv.attachShared()
	s.dispatch()
	s.pump(&s.client)
}

// slotFailed is told that the shared connection the session is on, or waits for, failed.
func (s *session) slotFailed(err error) {
	if s.connecting {
		addr := s.pendingAddr
		s.connecting = false
		s.leaveSlot()
		s.c.BackendFailed(addr)
		s.tryNext([]error{err})
		return
	}
	s.backendGone(false)
}

// arrived registers the session on the backend it connected to, and reports whether it stays: false
// when the listener is closing or the route left addr meanwhile (the session then moved on).
func (s *session) arrived(addr string) bool {
	s.connecting = false
	if s.stopWatch != nil {
		s.stopWatch()
		s.stopWatch = nil
	}
	from := s.addr
	s.addr = addr
	if !s.established {
		counters, ok := s.c.Established(s)
		if !ok {
			s.close() // the listener is closing
			return false
		}
		s.counters, s.established = counters, true
		if h := s.c.CommandHold(); h != nil && !h.Released() {
			// Held from its first command: the release, posted to this loop, comes after.
			s.hold = h
			s.conv.holdCommands()
		}
		if err := s.lp.Add(s.client.fd, &s.client); err != nil {
			s.close()
			return false
		}
		eventloop.NoDelay(s.client.fd)
	} else {
		s.counters = s.c.Moved(s, from)
	}
	if !s.c.Routed(addr) {
		// The route moved off addr while connecting, and its retirement did not see this session:
		// move on before sending anything. (The client's bytes that arrived meanwhile raised no edge.)
		s.backendGone(true)
		s.pump(&s.client)
		return false
	}
	return true
}

// backendGone acts on the backend leaving: retired by the listener (its node left the pool), or its
// connection closed or broken. The conversation keeps the client: it is moved to the next backend
// when it needs one.
func (s *session) backendGone(retired bool) {
	if s.closed || (s.backend.fd < 0 && !s.connecting && (s.mux == nil || s.mux.slot == nil)) {
		return
	}
	wasConnecting := s.connecting
	addr := s.addr
	s.dropBackendFD()
	if wasConnecting {
		s.connecting = false
		if !s.established {
			s.tryNext(nil)
			return
		}
	}
	if !retired && !wasConnecting && addr != "" {
		s.c.BackendFailed(addr)
	}
	if err := s.conv.detach(); err != nil {
		s.closing = true
		s.client.paused = true
		if len(s.client.out) == 0 {
			s.close()
		}
		return
	}
	s.addr = ""
	s.counters = s.c.Moved(s, addr)
	if s.conv.needsBackend() {
		s.connect()
	}
}

func (s *session) dropBackendFD() {
	if m := s.mux; m != nil {
		s.leaveSlot()
		m.keyWait = false
		if s.conv.attached {
			// What it gathered was for the shared connection, and the conversation's detach accounts
			// for it (a read is sent again, a write gets the "may or may not" error, a command being read
			// is kept whole). While it moves to a connection of its own (not attached), what it gathered
			// waits for that connection.
			m.partial = m.partial[:0]
			if m.partialPaused {
				m.partialPaused, s.client.paused = false, false
			}
		}
	}
	if s.backend.fd >= 0 {
		s.lp.Forget(s.backend.fd)
		eventloop.Close(s.backend.fd)
		s.backend.fd = -1
	}
	s.backend.out, s.backend.broken, s.backend.paused, s.backend.hup = nil, false, false, false
	s.client.paused = false
}

// handOff gives a client whose first connect failed back to the listener, on a goroutine: it holds
// and retries it, or refuses it.
func (s *session) handOff(err error) {
	s.closed = true
	s.lp.Cancel(&s.timer)
	if s.stopWatch != nil {
		s.stopWatch()
	}
	conn, rerr := eventloop.Reattach(s.client.fd, s.c.OutOfDescriptors())
	if rerr != nil {
		s.c.Refused()
		return
	}
	s.c.Conn = conn
	if err == nil {
		err = errors.New("no backend")
	}
	go s.c.ConnectFailed(err)
}

// close ends the session at once.
func (s *session) close() {
	if s.closed {
		return
	}
	s.closed = true
	s.lp.Cancel(&s.timer)
	if s.stopWatch != nil {
		s.stopWatch()
		s.stopWatch = nil
	}
	s.leaveSlot()
	for _, sd := range []*side{&s.client, &s.backend} {
		if sd.fd >= 0 {
			s.lp.Forget(sd.fd)
			eventloop.Close(sd.fd)
			sd.fd = -1
		}
		sd.out = nil
	}
	if s.established {
		s.c.Ended(s)
	} else {
		s.c.Release()
	}
}

// armTimer schedules the session's next deadline: a connect, a held command, a retry, the idle timeout.
func (s *session) armTimer() {
	next := int64(0)
	consider := func(t int64) {
		if t > 0 && (next == 0 || t < next) {
			next = t
		}
	}
	if s.connecting {
		consider(s.connectBy)
	}
	consider(s.holdNext)
	consider(s.retryAt)
	if idle := s.c.IdleTimeout(); idle > 0 && s.established {
		consider(s.lastActive + int64(idle))
	}
	if !s.conv.attached {
		if n, _ := s.conv.expireHolds(s.lp.NowNs()); n > 0 {
			consider(n)
			s.holdNext = n
		}
	}
	if next == 0 {
		s.lp.Cancel(&s.timer)
		return
	}
	s.lp.Schedule(&s.timer, time.Unix(0, next))
}

// Expire implements eventloop.Expirer.
func (s *session) Expire() {
	if s.closed {
		return
	}
	now := s.lp.NowNs()
	switch {
	case s.connecting && now >= s.connectBy:
		addr := s.pendingAddr
		s.dropBackendFD()
		s.connecting = false
		s.c.BackendFailed(addr)
		s.tryNext([]error{errors.New("connect timeout")})
	case s.retryAt != 0 && now >= s.retryAt:
		s.retryAt = 0
		if s.conv.needsBackend() {
			s.connect()
		}
	}
	if s.holdNext != 0 && now >= s.holdNext {
		s.holdNext = 0
		if _, err := s.conv.expireHolds(now); err != nil {
			s.ended(&s.client, err)
		}
	}
	if idle := s.c.IdleTimeout(); idle > 0 && s.established && now-s.lastActive >= int64(idle) {
		s.close()
		return
	}
	s.after()
}
