//go:build linux

package respsession

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sentinel-proxy/sentinel-proxy/proxy/eventloop"
	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// poolKey names a shared backend connection of a loop: a node, and the connection state of every
// session that shares it.
type poolKey struct {
	addr string
	muxKeyOf
}

// pool is a loop's shared backend connections, one per key. Only its loop touches it.
type pool struct {
	lp    *eventloop.Loop
	conns map[poolKey]*sharedConn
	// spares: for each key with a shared connection, one more connection with its state, ready for a
	// session that moves to a connection of its own: it needs no connect and no replay, which Redis
	// refuses while a script keeps it busy (SELECT), when SCRIPT KILL or a MULTI must get through.
	spares map[poolKey]*sharedConn
	stats  *muxStats
}

// muxStats count, over every loop, the shared connections open and the sessions that left one for a
// connection of their own (Epoll.MuxCounts).
type muxStats struct {
	conns    atomic.Int64
	unshared atomic.Uint64
}

// get returns the connection for key, connecting one (and its spare) when there is none.
func (p *pool) get(key poolKey) (*sharedConn, error) {
	if sc := p.conns[key]; sc != nil {
		return sc, nil
	}
	sc, err := p.dial(key, false)
	if err != nil {
		return nil, err
	}
	p.conns[key] = sc
	p.replenish(key)
	return sc, nil
}

// replenish connects a spare for key when it has none.
func (p *pool) replenish(key poolKey) {
	if p.spares[key] == nil {
		if sp, err := p.dial(key, true); err == nil {
			p.spares[key] = sp
		}
	}
}

// takeSpare returns the descriptor of key's spare connection when one is ready (connected, its
// handshake answered), for the caller to own; -1 when none is. Another is connected in its place.
func (p *pool) takeSpare(key poolKey) int {
	sp := p.spares[key]
	if sp == nil || sp.connecting || sp.handshake > 0 || len(sp.out) > 0 || sp.closed {
		return -1
	}
	delete(p.spares, key)
	sp.closed = true // handed over: its descriptor is the taker's
	p.stats.conns.Add(-1)
	fd := sp.fd
	sp.fd = -1
	if p.conns[key] != nil {
		p.replenish(key)
	}
	return fd
}

// dial connects a connection for key, its handshake queued.
func (p *pool) dial(key poolKey, spare bool) (*sharedConn, error) {
	fd, err := eventloop.Connect(key.addr)
	if err != nil {
		return nil, err
	}
	sc := &sharedConn{pool: p, key: key, fd: fd, connecting: true, spare: spare, users: map[*session]struct{}{}}
	sc.reader.sc = sc
	if err := p.lp.Add(fd, sc); err != nil {
		eventloop.Close(fd)
		return nil, err
	}
	st := key.state()
	handshake, replies, _ := st.replay(nil)
	sc.out, sc.handshake = handshake, int32(replies)
	sc.scan.Limits = replyLimits
	p.stats.conns.Add(1)
	return sc, nil
}

// maxSharedReply is the longest reply a session gets on a shared connection before it moves to one of
// its own: head-of-line blocking is bounded by what one reply of this size costs the sessions behind it.
const maxSharedReply = 256 << 10

// owed is a session's claim on the replies of a shared connection, in the order of its commands.
type owed struct {
	s  *session // nil: the session left; its replies are read and dropped
	n  int32    // replies still to come
	at int64    // when the commands went out (the loop's clock, unix nanoseconds)
}

// stuckAfter is how long a shared connection's oldest command may go unanswered before commands sent
// after it go on a new connection: Redis runs one command of a connection at a time, so behind a long
// script they would wait for its end, where a client of its own gets Redis's answer at once (-BUSY
// past busy-reply-threshold, or the reply of a command allowed while it runs).
const stuckAfter = 100 * time.Millisecond

// stuck reports whether the connection should take no more commands: its oldest command is unanswered
// after stuckAfter (it is then taken out of its pool), or it was taken out already.
func (sc *sharedConn) stuck(now int64) bool {
	if !sc.bad && sc.head < len(sc.fifo) && now-sc.fifo[sc.head].at > int64(stuckAfter) {
		sc.spoil()
	}
	return sc.bad
}

// sharedConn is one backend connection that many sessions of a loop send their commands on. Commands
// go out whole, each session's in its order, gathered over one wake-up of the loop into one write; the
// replies come back in the same order, and each goes to the session that owes it (fifo).
type sharedConn struct {
	pool       *pool
	key        poolKey
	fd         int
	connecting bool
	spare      bool // a spare (pool.spares): no session uses it until one takes it whole
	// bad: the handshake was refused (a password changed, a database gone): no session starts using it.
	bad       bool
	closed    bool
	handshake int32 // replies to the handshake still to read (dropped)
	out       []byte
	flushing  bool // asked the loop for the end of this wake-up
	// full: the socket took less than was written (EAGAIN): the rest goes when it says it has room.
	// Until then output waits for the end of the wake-up, so that many sessions' commands go together.
	full bool
	fifo []owed
	head int
	scan resp.Scanner
	// replyBytes: how much of the current reply passed so far
	replyBytes int64
	users      map[*session]struct{} // sessions on it, or waiting for its connect
	// blocked are sessions whose client is not read while the connection's output is full.
	blocked []*session
	touched []*session   // the sessions a delivery gave replies to (deliver), reused
	reader  sharedReader // asks the loop to go on reading after others had their turn (pump)
	later   bool
}

// sharedReader goes on reading a shared connection once the loop's other sessions had a turn.
type sharedReader struct{ sc *sharedConn }

// EventsHandled implements eventloop.EndHandler.
func (r sharedReader) EventsHandled() {
	r.sc.later = false
	if !r.sc.closed {
		r.sc.pump()
	}
}

// send queues b, whole commands of s owing n replies, for the end of this wake-up.
func (sc *sharedConn) send(s *session, b []byte, n int32) {
	if n > 0 {
		sc.fifo = append(sc.fifo, owed{s: s, n: n, at: sc.pool.lp.NowNs()})
	}
	sc.out = append(sc.out, b...)
	if !sc.flushing && !sc.connecting {
		sc.flushing = true
		sc.pool.lp.AtEnd(sc)
	}
	if len(sc.out) > highWater && !s.client.paused {
		s.client.paused = true
		sc.blocked = append(sc.blocked, s)
	}
}

// EventsHandled implements eventloop.EndHandler: what the sessions sent in this wake-up goes out.
func (sc *sharedConn) EventsHandled() {
	sc.flushing = false
	if !sc.closed {
		sc.flush()
	}
}

// flush writes what waits; once all is written, the sessions it stopped reading are read again.
func (sc *sharedConn) flush() {
	full, err := writeOut(sc.fd, &sc.out)
	sc.full = full
	if err != nil {
		sc.fail(fmt.Errorf("write to %s: %w", sc.key.addr, err))
		return
	}
	if full {
		return
	}
	if cap(sc.out) > 4*highWater {
		sc.out = nil
	}
	blocked := sc.blocked
	sc.blocked = nil
	for _, s := range blocked {
		if !s.closed && s.client.paused && !s.closing {
			s.client.paused = false
			s.pump(&s.client)
			s.after()
		}
	}
}

// Event implements eventloop.Handler.
func (sc *sharedConn) Event(events uint32) {
	if sc.closed {
		return
	}
	if sc.connecting {
		if events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return
		}
		if err := eventloop.SocketError(sc.fd); err != nil {
			sc.fail(err)
			return
		}
		sc.connecting = false
		eventloop.NoDelay(sc.fd)
		waiting := make([]*session, 0, len(sc.users))
		for s := range sc.users {
			if s.connecting && s.mux.slot == sc {
				waiting = append(waiting, s)
			}
		}
		sc.flush()
		for _, s := range waiting {
			if !s.closed && s.connecting && s.mux.slot == sc {
				s.slotReady()
				s.after()
			}
		}
		if sc.closed {
			return
		}
	}
	if events&unix.EPOLLOUT != 0 && sc.full {
		sc.flush()
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		sc.pump()
	}
}

// Stop implements eventloop.Handler: the loop is stopping.
func (sc *sharedConn) Stop() { sc.close() }

// pump reads the replies until the kernel has no more and gives each to the session that owes it.
func (sc *sharedConn) pump() {
	buf := sc.pool.lp.Buf()
	share := fairShare
	for !sc.closed {
		if share <= 0 {
			if !sc.later {
				sc.later = true
				sc.pool.lp.Later(sc.reader)
			}
			return
		}
		n, err := eventloop.Read(sc.fd, buf)
		share -= n
		if n > 0 {
			// The list is the connection's, reused; a delivery nested in the sessions' after() (a
			// stalled connection read again) makes its own.
			touched, err := sc.deliver(buf[:n], sc.touched[:0])
			sc.touched = nil
			for _, s := range touched {
				if !s.closed {
					s.after() // may read its client into buf: the bytes of buf are delivered
				}
			}
			clear(touched)
			sc.touched = touched[:0]
			if err != nil {
				sc.fail(err)
				return
			}
			if len(sc.users) == 0 && sc.head == len(sc.fifo) && !sc.spare {
				sc.close() // its last sessions left while it owed them replies
				return
			}
			if n < len(buf) {
				return
			}
			continue
		}
		if err == unix.EAGAIN || err == unix.EINTR {
			return
		}
		if err == nil {
			err = errors.New("closed by the backend")
		}
		sc.fail(fmt.Errorf("read from %s: %w", sc.key.addr, err))
		return
	}
}

// deliver gives the replies in b to their sessions, each session's consecutive replies in one piece,
// and returns the sessions it gave replies to.
func (sc *sharedConn) deliver(b []byte, touched []*session) ([]*session, error) {
	var run *session // the session the bytes b[from:pos] go to
	from, pos := 0, 0
	give := func() {
		if run != nil && pos > from {
			if cerr := run.conv.fromBackend(b[from:pos]); cerr != nil {
				run.ended(&run.backend, cerr)
			}
		}
		run = nil
	}
	for pos < len(b) {
		n, done, serr := sc.scan.Next(b[pos:])
		if serr != nil {
			give()
			return touched, fmt.Errorf("backend reply: %w", serr)
		}
		if sc.handshake > 0 {
			give()
			pos += n
			from = pos
			if done {
				sc.handshake--
				if k := sc.scan.Kind(); k == '-' || k == '!' {
					sc.spoil()
					if sc.spare {
						sc.close()
						return touched, nil
					}
				}
			}
			continue
		}
		if sc.scan.Kind() == '>' {
			// A push is nobody's reply, and nothing a shared connection does asks for one.
			give()
			pos += n
			from = pos
			continue
		}
		if sc.head == len(sc.fifo) {
			give()
			return touched, errors.New("backend sent a reply nobody asked for")
		}
		w := &sc.fifo[sc.head]
		if w.s != run {
			give()
			from, run = pos, w.s
			if run != nil && run.mux.lastTouch != sc {
				run.mux.lastTouch = sc
				touched = append(touched, run)
			}
		}
		pos += n
		if w.s != nil {
			sc.replyBytes += int64(n)
			if sc.replyBytes > maxSharedReply {
				// A reply this long holds every session behind it on the connection; the session that
				// asks for such values gets a connection of its own once this one is in.
				w.s.mux.private = true
			}
		}
		if !done {
			continue
		}
		sc.replyBytes = 0
		if w.s != nil {
			w.s.mux.owed--
		}
		if w.n--; w.n == 0 {
			sc.head++
			if sc.head == len(sc.fifo) {
				sc.fifo, sc.head = sc.fifo[:0], 0
			} else if sc.head >= 1024 && sc.head*2 >= len(sc.fifo) {
				sc.fifo, sc.head = sc.fifo[:copy(sc.fifo, sc.fifo[sc.head:])], 0
			}
		}
	}
	give()
	for _, s := range touched {
		s.mux.lastTouch = nil
	}
	return touched, nil
}

// spoil takes the connection out of its pool: its state is not its key's. The sessions on it keep
// their replies; the next ones get a new connection.
func (sc *sharedConn) spoil() {
	sc.bad = true
	if sc.pool.conns[sc.key] == sc {
		delete(sc.pool.conns, sc.key)
	}
	if sc.pool.spares[sc.key] == sc {
		delete(sc.pool.spares, sc.key)
	}
}

// leave takes s off the connection: the replies it still owes are dropped as they come. A connection
// no session uses and owes nothing to is closed.
func (sc *sharedConn) leave(s *session) {
	delete(sc.users, s)
	for i := sc.head; i < len(sc.fifo); i++ {
		if sc.fifo[i].s == s {
			sc.fifo[i].s = nil
		}
	}
	if len(sc.users) == 0 && (sc.head == len(sc.fifo) || sc.bad) {
		sc.close()
	}
}

// fail closes the connection and tells each session on it that its backend is gone.
func (sc *sharedConn) fail(err error) {
	if sc.closed {
		return
	}
	sc.close()
	for s := range sc.users {
		if s.closed || s.mux == nil || s.mux.slot != sc {
			continue
		}
		s.slotFailed(err)
		s.after()
	}
}

func (sc *sharedConn) close() {
	if sc.closed {
		return
	}
	sc.closed = true
	sc.pool.stats.conns.Add(-1)
	sc.spoil()
	if sp := sc.pool.spares[sc.key]; sp != nil && !sc.spare && sc.pool.conns[sc.key] == nil {
		sp.close() // a key nobody shares needs no spare
	}
	sc.pool.lp.Forget(sc.fd)
	eventloop.Close(sc.fd)
	sc.fd = -1
	sc.out = nil
	sc.fifo = nil
	for _, s := range sc.blocked {
		if !s.closed && !s.closing {
			s.client.paused = false
		}
	}
	sc.blocked = nil
}

// commandSent implements muxOutput: a command forwarded in full goes out on the shared connection,
// unless the session is moving (then it waits in partial for the connection it moves to).
func (s *session) commandSent(replies int32) {
	m := s.mux
	if m == nil || m.private || m.slot == nil || s.connecting || !s.conv.attached {
		return
	}
	if m.owed == 0 && m.slot.stuck(s.lp.NowNs()) && !s.useSlot(m.slot.key.muxKeyOf) {
		return // its backend is gone: after() moves it on
	}
	m.slot.send(s, m.partial, replies)
	m.owed += replies
	m.partial = m.partial[:0]
}

// dispatch sends the commands the conversation holds for the session, in order, each where it may go:
// a plain one on the session's shared connection; one that changes the connection's state on the
// connection of its new state, once nothing else is owed, and nothing after it until its reply; one
// that needs a connection of its own moves the session there once nothing is owed. With nothing held,
// commands stream again.
func (s *session) dispatch() {
	m, c := s.mux, s.conv
	if m.slot == nil || c.holding || c.mux == nil || (!c.muxHeld && !m.keyWait && !m.private) {
		return
	}
	if m.keyWait {
		if m.owed > 0 {
			return
		}
		m.keyWait = false
		if !s.useSlot(c.st.muxKey()) { // the state the reply left: the new one, or the old if refused
			return
		}
	}
	for !m.private {
		e := c.nextHeld()
		if e == nil {
			break
		}
		switch e.mx {
		case muxPrivate:
			m.private = true
			continue
		case muxKey:
			if m.owed > 0 || !s.useSlot(c.st.muxKey().after(e)) {
				return
			}
			if s.sendHeld(e) {
				m.keyWait = true
			}
			return
		}
		if !s.sendHeld(e) {
			return
		}
	}
	if m.private {
		c.muxHeld = true
		if m.owed == 0 {
			s.goPrivate()
		}
		return
	}
	if c.cmd.InCommand() && c.disp == hold {
		// Its turn came while it streams in: the rest streams too, unless it is one that must wait
		// whole for its turn (its class is known once it is read).
		if c.muxClassNow() != muxPlain {
			return
		}
		b := c.streamHeld()
		c.muxHeld = false
		s.toBackend(b)
		return
	}
	c.muxHeld = false
}

// sendHeld sends e, a held command, on the session's shared connection; false when there was none to
// be had (its backend is gone: after() moves it on).
func (s *session) sendHeld(e *entry) bool {
	m := s.mux
	if m.owed == 0 && m.slot.stuck(s.lp.NowNs()) && !s.useSlot(m.slot.key.muxKeyOf) {
		return false
	}
	e.sent = true
	m.slot.send(s, s.conv.kept.get(e.raw), e.replies)
	m.owed += e.replies
	return true
}

// useSlot puts the session on the shared connection for key on its node, which nothing is owed on;
// false when there is none to be had (the session's backend is then gone).
func (s *session) useSlot(k muxKeyOf) bool {
	m := s.mux
	key := poolKey{addr: m.slot.key.addr, muxKeyOf: k}
	if m.slot.key == key && !m.slot.bad && !m.slot.closed {
		return true
	}
	sc, err := m.pool.get(key)
	if err != nil {
		s.backend.broken = true // after() moves it on
		return false
	}
	old := m.slot
	m.slot = sc
	sc.users[s] = struct{}{}
	old.leave(s)
	return true
}

// goPrivate moves the session, which owes nothing on its shared connection, to a connection of its
// own, with its state replayed there.
func (s *session) goPrivate() {
	m := s.mux
	m.pool.stats.unshared.Add(1)
	fd := -1
	if m.slot != nil {
		fd = m.pool.takeSpare(m.slot.key) // before leaving: the last to leave closes the spare
	}
	s.leaveSlot()
	s.conv.leaveMux()
	if fd < 0 {
		s.connect()
		return
	}
	// The spare is on the same node, with the session's state: the session stays registered where it
	// is, and nothing is replayed.
	s.lp.Rebind(fd, &s.backend)
	s.backend.fd, s.backend.broken, s.backend.hup, s.backend.paused = fd, false, false, false
	s.attachOwn(false)
}

// leaveSlot takes the session off its shared connection.
func (s *session) leaveSlot() {
	if m := s.mux; m != nil && m.slot != nil {
		sc := m.slot
		m.slot, m.owed = nil, 0
		sc.leave(s)
	}
}
