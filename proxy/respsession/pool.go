package respsession

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/proxy/eventloop"
	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// A loop's shared backend connections (multiplex = true). A session and a shared connection meet only
// through a claim: the session joins a connection (pool.join) and gets its claim, sends whole commands
// through it, and cancels it when it leaves; the connection gives the replies, in order, to the claim's
// receiver, and tells it when it is up, when it failed, and when its output has room again. A shared
// connection touches nothing else of a session's: it can be tested with receivers of the test's own.

// receiver is a session as a shared connection sees it. The connection calls it on its loop.
type receiver interface {
	// sharedReplies gives the next bytes of the replies the connection owes the session, in order.
	sharedReplies(b []byte)
	// sharedSettled is told that the replies of one read were given: the session acts on them.
	sharedSettled()
	// sharedReady is told that the connection, which was connecting when the session joined it, is up.
	sharedReady()
	// sharedFailed is told that the connection of claim cl failed (err): nothing more comes on it.
	sharedFailed(cl *claim, err error)
	// sharedRoom is told that the connection's output, too full for more when the session last sent
	// (claim.send), has room again.
	sharedRoom()
	// sharedHeld says which write replies the session holds for a WAIT now (durable.go): those up to
	// the returned count of all it ever held, 0 for none. The pool's next WAIT, sent after they were
	// answered, covers them.
	sharedHeld() int
	// sharedConfirmed is told what a WAIT covering the write replies up to upto (as sharedHeld counted
	// them) answered: replicas that have them, or err.
	sharedConfirmed(replicas int64, err error, upto int)
}

// poolKey names a shared backend connection of a loop: a node, and the connection state of every
// session that shares it.
type poolKey struct {
	addr string
	muxKeyOf
	dur *Durability // the group's wait_replicas: the connection's WAITs use it (nil: none)
}

// pool is a loop's shared backend connections, one per key. Only its loop touches it.
type pool struct {
	lp    *eventloop.Loop
	conns map[poolKey]*sharedConn
	// spares: for each key with a shared connection, one more connection with its state, ready for a
	// session that moves to a connection of its own: it needs no connect and no replay, which Redis
	// refuses while a script keeps it busy (SELECT), when SCRIPT KILL or a MULTI must get through.
	spares map[poolKey]*sharedConn
	// confirmers: for each key whose group has wait_replicas, the connection its WAITs go on
	// (confirm.go), so that no shared connection is ever blocked in one.
	confirmers map[poolKey]*confirmer
	stats      *muxStats
	timeout    time.Duration // to connect a confirmer: the connect timeout sessions last joined with
}

func newPool(lp *eventloop.Loop, stats *muxStats) *pool {
	return &pool{lp: lp, conns: map[poolKey]*sharedConn{}, spares: map[poolKey]*sharedConn{},
		confirmers: map[poolKey]*confirmer{}, stats: stats}
}

// muxStats count, over every loop and per node, the shared connections open and the sessions that left
// one for a connection of their own (Epoll.MuxCountsOf; Epoll.MuxCounts adds the nodes up).
type muxStats struct {
	mu    sync.Mutex
	nodes map[string]*nodeMuxStats
}

type nodeMuxStats struct {
	conns    atomic.Int64
	unshared atomic.Uint64
}

// node returns addr's counters; connections open and close seldom, so a lock is cheap enough.
func (m *muxStats) node(addr string) *nodeMuxStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.nodes == nil {
		m.nodes = map[string]*nodeMuxStats{}
	}
	n := m.nodes[addr]
	if n == nil {
		n = &nodeMuxStats{}
		m.nodes[addr] = n
	}
	return n
}

// opened counts d shared connections to addr opened (d < 0: closed).
func (m *muxStats) opened(addr string, d int64) { m.node(addr).conns.Add(d) }

// left counts a session that left its shared connection to addr for one of its own.
func (m *muxStats) left(addr string) { m.node(addr).unshared.Add(1) }

// total adds up every node's counts.
func (m *muxStats) total() (conns int64, unshared uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.nodes {
		conns += n.conns.Load()
		unshared += n.unshared.Load()
	}
	return conns, unshared
}

// join puts rcv on the connection for key, connecting one (and its spare, within timeout) when there is
// none, and returns its claim there.
func (p *pool) join(key poolKey, rcv receiver, timeout time.Duration) (*claim, error) {
	p.timeout = timeout
	sc := p.conns[key]
	if sc == nil {
		var err error
		if sc, err = p.dial(key, false, timeout); err != nil {
			return nil, err
		}
		p.conns[key] = sc
		p.replenish(key, timeout)
	}
	cl := &claim{conn: sc, rcv: rcv}
	sc.claims[cl] = struct{}{}
	return cl, nil
}

// replenish connects a spare for key when it has none.
func (p *pool) replenish(key poolKey, timeout time.Duration) {
	if p.spares[key] == nil {
		if sp, err := p.dial(key, true, timeout); err == nil {
			p.spares[key] = sp
		}
	}
}

// takeSpare returns the descriptor of key's spare connection when one is ready (connected, its
// handshake answered), registered with the loop, for the caller to own (eventloop.Loop.Rebind); -1 when
// none is. Another is connected in its place.
func (p *pool) takeSpare(key poolKey) int {
	sp := p.spares[key]
	if sp == nil || sp.connecting || sp.handshake > 0 || sp.out.Len() > 0 || sp.closed {
		return -1
	}
	delete(p.spares, key)
	sp.closed = true // handed over: its descriptor is the taker's
	p.stats.opened(key.addr, -1)
	fd := sp.fd
	sp.fd = -1
	if p.conns[key] != nil {
		p.replenish(key, sp.timeout)
	}
	return fd
}

// countUnshared counts a session that left its shared connection to addr for one of its own.
func (p *pool) countUnshared(addr string) { p.stats.left(addr) }

// dial connects a connection for key, its handshake queued.
func (p *pool) dial(key poolKey, spare bool, timeout time.Duration) (*sharedConn, error) {
	sc := &sharedConn{pool: p, key: key, fd: -1, connecting: true, spare: spare, timeout: timeout,
		claims: map[*claim]struct{}{}}
	sc.reader.sc = sc
	sc.out.Retain = !spare
	d, err := p.lp.Dial(key.addr, timeout, sc)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", key.addr, err)
	}
	sc.dialing = d
	st := key.state()
	handshake, replies, _ := st.replay(nil)
	sc.out.Append(handshake)
	sc.handshake = int32(replies)
	sc.scan.Limits = replyLimits
	p.stats.opened(key.addr, 1)
	return sc, nil
}

// maxSharedReply is the longest reply a session gets on a shared connection before it moves to one of
// its own: head-of-line blocking is bounded by what one reply of this size costs the sessions behind it.
const maxSharedReply = 256 << 10

// stuckAfter is how long a shared connection's oldest command may go unanswered before commands sent
// after it go on a new connection: Redis runs one command of a connection at a time, so behind a long
// script they would wait for its end, where a client of its own gets Redis's answer at once (-BUSY
// past busy-reply-threshold, or the reply of a command allowed while it runs).
const stuckAfter = 100 * time.Millisecond

// claim is a session's place on a shared connection: what it sent there and the replies owed to it.
// The session holds it; the connection writes only the fields below (owed, long) and calls its
// receiver.
type claim struct {
	conn    *sharedConn
	rcv     receiver // nil once cancelled: the replies still owed are read and dropped
	owed    int32    // replies still to come
	long    bool     // a reply to it passed maxSharedReply
	touched bool     // listed in the delivery under way
	waits   bool     // waits for room (sharedConn.blocked)
	covered bool     // listed for the confirmer's next WAIT (confirmer.pending)
}

// addr is the node of the claim's connection.
func (cl *claim) addr() string { return cl.conn.key.addr }

// key is the claim's connection's key.
func (cl *claim) key() poolKey { return cl.conn.key }

// ready reports whether the connection is up: its commands go out at the end of the loop's wake-up.
func (cl *claim) ready() bool { return !cl.conn.connecting }

// usable reports whether the connection still takes new sessions' commands (it is in its pool).
func (cl *claim) usable() bool { return !cl.conn.bad && !cl.conn.closed }

// stuck reports whether the connection should take no more commands: its oldest command is unanswered
// after stuckAfter (it is then taken out of its pool), or it was taken out already.
func (cl *claim) stuck(now int64) bool { return cl.conn.stuck(now) }

// send queues b, whole commands owed replies replies, for the end of this wake-up, and reports whether
// the connection's output is too full for more: the session then stops reading its client, and is
// told when there is room (receiver.sharedRoom).
func (cl *claim) send(b []byte, replies int32) (full bool) {
	sc := cl.conn
	if replies > 0 {
		sc.fifo = append(sc.fifo, pendingReplies{cl: cl, n: replies, at: sc.pool.lp.NowNs()})
		cl.owed += replies
	}
	sc.out.Append(b)
	if sc.out.Len() >= flushEarly && !sc.connecting && !sc.full {
		// Enough for one write: gathering more only grows the buffer past what it keeps (big values
		// from many clients made a megabyte of garbage per wake-up: 0.26× HAProxy on SET of 16 KB).
		// Nothing is told from inside a session's send: the sessions it stopped reading hear at the
		// end of the wake-up, and so do all of them of an error (the write there fails again).
		_ = sc.out.Flush(sc.fd)
		sc.full = sc.out.Len() > 0
	}
	if !sc.flushing && !sc.connecting {
		sc.flushing = true
		sc.pool.lp.AtEnd(sc)
	}
	if sc.out.Len() > highWater {
		if !cl.waits {
			cl.waits = true
			sc.blocked = append(sc.blocked, cl)
		}
		return true
	}
	return false
}

// cancel takes the session off the connection: the replies still owed to it are read and dropped as
// they come, a reply part-way through included. A connection no session uses and that owes nothing is
// closed.
func (cl *claim) cancel() {
	if cl.rcv == nil {
		return
	}
	cl.rcv = nil
	sc := cl.conn
	delete(sc.claims, cl)
	if len(sc.claims) == 0 && (sc.head == len(sc.fifo) || sc.bad) {
		sc.close()
	}
}

// flushEarly is how much a shared connection gathers over a wake-up before it writes without waiting
// for the end of it: past a few commands of 16 KB, one write more costs less than the memory.
const flushEarly = 128 << 10

// pendingReplies is a claim's commands sent together on a shared connection, in the order of the
// connection's commands; on a confirmer, its PING (cl nil) or its WAIT (wait set).
type pendingReplies struct {
	cl   *claim
	n    int32 // replies still to come
	wait bool  // a confirmer's WAIT
	at   int64 // when the commands went out (the loop's clock, unix nanoseconds)
}

// sharedConn is one backend connection that many sessions of a loop send their commands on. Commands
// go out whole, each session's in its order, gathered over one wake-up of the loop into one write; the
// replies come back in the same order, and each goes to the claim that owes it (fifo).
type sharedConn struct {
	pool       *pool
	key        poolKey
	fd         int
	dialing    *eventloop.Dialing // while connecting
	timeout    time.Duration      // to connect (and its spares)
	connecting bool
	spare      bool // a spare (pool.spares): no session uses it until one takes it whole
	// bad: the handshake was refused (a password changed, a database gone), or the connection is
	// stuck: no session starts using it.
	bad       bool
	closed    bool
	handshake int32 // replies to the handshake still to read (dropped)
	out       eventloop.Output
	flushing  bool // asked the loop for the end of this wake-up
	// full: the socket took less than was written: the rest goes when it says it has room. Until then
	// output waits for the end of the wake-up, so that many sessions' commands go together.
	full bool
	fifo []pendingReplies
	head int
	scan resp.Scanner
	// replyBytes: how much of the current reply passed so far
	replyBytes int64
	claims     map[*claim]struct{} // the sessions on it, or waiting for its connect
	// blocked are claims whose session stopped reading its client while the output is full.
	blocked []*claim
	// confirm: the connection is a lane of its key's confirmer (confirm.go): it carries PINGs and WAITs
	// only. waitReply gathers a WAIT's reply.
	confirm   *lane
	waitReply []byte
	touched   []*claim     // the claims a delivery gave replies to (deliver), reused
	reader    sharedReader // asks the loop to go on reading after others had their turn (pump)
	later     bool
	hup       bool // the backend hung up: read to the EOF
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

// stuck: see claim.stuck.
func (sc *sharedConn) stuck(now int64) bool {
	if !sc.bad && sc.head < len(sc.fifo) && now-sc.fifo[sc.head].at > int64(stuckAfter) {
		sc.spoil()
	}
	return sc.bad
}

// Dialed implements eventloop.DialHandler: once connected, the handshake and what the sessions sent
// meanwhile go out, and the sessions waiting for the connection start.
func (sc *sharedConn) Dialed(fd int, err error) {
	d := sc.dialing
	sc.dialing = nil
	if err != nil {
		sc.fail(err)
		return
	}
	sc.hup = d.Seen().HungUp()
	sc.fd, sc.connecting = fd, false
	sc.pool.lp.Rebind(fd, sc)
	sc.flush()
	if sc.closed {
		return
	}
	waiting := make([]*claim, 0, len(sc.claims))
	for cl := range sc.claims {
		waiting = append(waiting, cl)
	}
	for _, cl := range waiting {
		if cl.rcv != nil && !sc.closed {
			cl.rcv.sharedReady()
		}
	}
	if !sc.closed {
		sc.pump() // what arrived meanwhile raised no new edge
	}
}

// EventsHandled implements eventloop.EndHandler: what the sessions sent in this wake-up goes out.
func (sc *sharedConn) EventsHandled() {
	sc.flushing = false
	if !sc.closed {
		sc.flush()
	}
}

// flush writes what waits; once all is written, the sessions it stopped reading are told.
func (sc *sharedConn) flush() {
	err := sc.out.Flush(sc.fd)
	if err != nil {
		sc.fail(fmt.Errorf("write to %s: %w", sc.key.addr, err))
		return
	}
	if sc.full = sc.out.Len() > 0; sc.full {
		return
	}
	blocked := sc.blocked
	sc.blocked = nil
	for _, cl := range blocked {
		cl.waits = false
		if cl.rcv != nil {
			cl.rcv.sharedRoom()
		}
	}
}

// Event implements eventloop.Handler.
func (sc *sharedConn) Event(events eventloop.Events) {
	if sc.closed {
		return
	}
	sc.hup = sc.hup || events.HungUp()
	if events.Writable() && sc.full {
		sc.flush()
	}
	if events.Readable() {
		sc.pump()
	}
}

// Stop implements eventloop.Handler: the loop is stopping.
func (sc *sharedConn) Stop() { sc.close() }

// pump reads the replies until the kernel has no more, or its fair share for now, and gives each to
// the claim that owes it.
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
			// The list is the connection's, reused; a delivery nested in the sessions' settling (a
			// stalled connection read again) makes its own.
			touched, err := sc.deliver(buf[:n], sc.touched[:0])
			sc.touched = nil
			if sc.key.dur != nil && sc.confirm == nil {
				// Write replies this read gave are held for a WAIT: their commands ran, so the
				// confirmer's next WAIT, sent from now on, covers them.
				sc.pool.cover(sc.key, touched)
			}
			for _, cl := range touched {
				if cl.rcv != nil {
					cl.rcv.sharedSettled() // may read its client into buf: the bytes of buf are delivered
				}
			}
			clear(touched)
			sc.touched = touched[:0]
			if err != nil {
				sc.fail(err)
				return
			}
			if len(sc.claims) == 0 && sc.head == len(sc.fifo) && !sc.spare && sc.confirm == nil {
				sc.close() // its last sessions left while it owed them replies
				return
			}
			if n < len(buf) && !sc.hup {
				return // drained: more raises a new edge
			}
			continue
		}
		if err == eventloop.ErrAgain {
			return
		}
		if err == nil {
			err = errors.New("closed by the backend")
		}
		sc.fail(fmt.Errorf("read from %s: %w", sc.key.addr, err))
		return
	}
}

// deliver gives the replies in b to their claims, each claim's consecutive replies in one piece, and
// returns the claims it gave replies to.
func (sc *sharedConn) deliver(b []byte, touched []*claim) ([]*claim, error) {
	var run *claim // the claim the bytes b[from:pos] go to
	from, pos := 0, 0
	give := func() {
		if run != nil && pos > from && run.rcv != nil {
			run.rcv.sharedReplies(b[from:pos])
		}
		run = nil
	}
	defer func() {
		for _, cl := range touched {
			cl.touched = false
		}
	}()
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
				if sc.scan.IsError() {
					sc.spoil()
					if sc.spare {
						sc.close()
						return touched, nil
					}
				}
			}
			continue
		}
		if sc.scan.IsPush() {
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
		if w.cl == nil {
			// A confirmer's PING, whose reply is dropped, or its WAIT, whose answer goes to the
			// sessions it covers.
			give()
			if w.wait && len(sc.waitReply) < maxWaitReply {
				sc.waitReply = append(sc.waitReply, b[pos:pos+min(n, maxWaitReply-len(sc.waitReply))]...)
			}
			pos += n
			from = pos
			if !done {
				continue
			}
			wait, at := w.wait, w.at
			sc.advance()
			if wait {
				touched = sc.confirm.answered(sc.waitReply, at, touched)
				sc.waitReply = sc.waitReply[:0]
			}
			continue
		}
		if w.cl != run {
			give()
			from, run = pos, w.cl
			if run.rcv != nil && !run.touched {
				run.touched = true
				touched = append(touched, run)
			}
		}
		pos += n
		if w.cl.rcv != nil {
			sc.replyBytes += int64(n)
			if sc.replyBytes > maxSharedReply {
				// A reply this long holds every session behind it on the connection; the session that
				// asks for such values gets a connection of its own once this one is in.
				w.cl.long = true
			}
		}
		if !done {
			continue
		}
		sc.replyBytes = 0
		w.cl.owed--
		if w.n--; w.n == 0 {
			sc.advance()
		}
	}
	give()
	return touched, nil
}

// advance drops the fifo's head, whose replies all came.
func (sc *sharedConn) advance() {
	sc.fifo[sc.head] = pendingReplies{}
	sc.head++
	if sc.head == len(sc.fifo) {
		sc.fifo, sc.head = sc.fifo[:0], 0
	} else if sc.head >= 1024 && sc.head*2 >= len(sc.fifo) {
		sc.fifo, sc.head = sc.fifo[:copy(sc.fifo, sc.fifo[sc.head:])], 0
	}
}

// maxWaitReply is how much of a WAIT's reply is kept to read it: an integer, or the start of an error.
const maxWaitReply = 256

// spoil takes the connection out of its pool: its state is not its key's, or it is stuck. The
// sessions on it keep their replies; the next ones get a new connection.
func (sc *sharedConn) spoil() {
	sc.bad = true
	if sc.pool.conns[sc.key] == sc {
		delete(sc.pool.conns, sc.key)
	}
	if sc.pool.spares[sc.key] == sc {
		delete(sc.pool.spares, sc.key)
	}
}

// fail closes the connection and tells each session on it that its backend is gone.
func (sc *sharedConn) fail(err error) {
	if sc.closed {
		return
	}
	sc.close()
	if sc.confirm != nil {
		sc.confirm.failed(err)
		return
	}
	for cl := range sc.claims {
		if cl.rcv != nil {
			cl.rcv.sharedFailed(cl, err)
		}
	}
}

func (sc *sharedConn) close() {
	if sc.closed {
		return
	}
	sc.closed = true
	sc.pool.stats.opened(sc.key.addr, -1)
	sc.spoil()
	if !sc.spare && sc.confirm == nil && sc.pool.conns[sc.key] == nil {
		// A key nobody shares needs no spare, and no confirmer once nobody waits on it.
		if sp := sc.pool.spares[sc.key]; sp != nil {
			sp.close()
		}
		if cf := sc.pool.confirmers[sc.key]; cf != nil {
			cf.closeIfIdle()
		}
	}
	if sc.dialing != nil {
		sc.dialing.Cancel()
		sc.dialing = nil
	}
	if sc.fd >= 0 {
		sc.pool.lp.Forget(sc.fd)
		eventloop.Close(sc.fd)
		sc.fd = -1
	}
	sc.out.Reset()
	sc.fifo = nil
	for _, cl := range sc.blocked {
		cl.waits = false
	}
	sc.blocked = nil
}
