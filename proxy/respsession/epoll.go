package respsession

import (
	"sync/atomic"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/eventloop"
)

// Epoll serves RESP sessions on event loops: a session's client and backend sockets live on one loop,
// edge-triggered, with the loop's read buffer and no goroutine per session. Off Linux there are no
// loops (eventloop.New fails) and resp mode runs on Portable.
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
	open, unshared := e.stats.total()
	return uint64(max(0, open)), unshared
}

// MuxCountsOf is MuxCounts for the connections to nodes (a group's), and the sessions that left those.
func (e *Epoll) MuxCountsOf(nodes []string) (conns, unshared uint64) {
	for _, addr := range nodes {
		n := e.stats.node(addr)
		conns += uint64(max(0, n.conns.Load()))
		unshared += n.unshared.Load()
	}
	return conns, unshared
}

// NewEpoll returns the RESP session handler on loops, which the caller closes after every listener
// using it has stopped.
func NewEpoll(loops *eventloop.Loops) *Epoll { return &Epoll{loops: loops} }

// NewEpollMux returns the RESP session handler on loops whose sessions share backend connections
// (multiplex = true; see mux.go, pool.go and shared.go).
func NewEpollMux(loops *eventloop.Loops) *Epoll {
	all := loops.All()
	e := &Epoll{loops: loops, pools: map[*eventloop.Loop]*pool{}, muxLoops: all[:max(1, len(all)/2)]}
	for _, lp := range e.muxLoops {
		e.pools[lp] = newPool(lp, &e.stats)
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

var _ proxy.HoldingHandler = (*Epoll)(nil)

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

// side is one socket of a session.
type side struct {
	s      *session
	fd     int
	out    eventloop.Output // written but not yet taken by the socket
	paused bool             // not read: the other side's output is full
	hup    bool             // the peer hung up: read to the EOF
	broken bool             // a write failed: the session acts on it after the current step
	later  bool             // read its fair share: it is read again after the loop's next look at the events
}

// session is one client in resp mode, on a loop: the core's driver there. It owns the sockets, reads
// them when the loop says they are ready, and hands the bytes to the conversation.
type session struct {
	core
	lp      *eventloop.Loop
	client  side
	backend side
	dial    *dialing // while connecting
	// lastActive is when a byte last moved either way, for the idle timeout (unix nanoseconds).
	lastActive int64
	timer      eventloop.Timer
	// keptFull is set while the client is not read because the session keeps too many of its commands
	// (conv.keptFull); after reads it again once there is room.
	keptFull bool
	// reread: the client was not read for the old backend's sake when it left: read it again.
	reread bool
	// mux: the session shares backend connections (multiplex); nil once it has one of its own.
	mux *muxSession
}

// dialing is what only connecting needs: the route's backends in turn, the connect in progress.
type dialing struct {
	tries proxy.Attempts
	conn  *eventloop.Dialing
	addr  string
}

func startSession(lp *eventloop.Loop, c *proxy.Client, fd int, p *pool) {
	s := &session{lp: lp}
	s.init(s, c, s)
	s.timer.Owner = s
	s.client = side{s: s, fd: fd}
	s.backend = side{s: s, fd: -1}
	if p != nil {
		s.mux = &muxSession{pool: p}
		s.conv.mux = s
	}
	s.lastActive = lp.NowNs()
	s.core.connect()
	s.after()
}

// run implements driver: functions from other goroutines run in the loop's turn.
func (s *session) run(fn func()) {
	s.lp.Post(func() {
		fn()
		s.after()
	})
}

// clock implements driver.
func (s *session) clock() int64 { return s.lp.NowNs() }

// Event implements eventloop.Handler for both sides.
func (sd *side) Event(events eventloop.Events) { sd.s.event(sd, events) }

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

// shut closes the side's socket, if it has one, and drops what waited to be written to it.
func (sd *side) shut() {
	if sd.fd >= 0 {
		sd.s.lp.Forget(sd.fd)
		eventloop.Close(sd.fd)
		sd.fd = -1
	}
	sd.out.Reset()
}

func (s *session) event(sd *side, events eventloop.Events) {
	if s.closed {
		return
	}
	sd.hup = sd.hup || events.HungUp()
	if events.Writable() && sd.out.Len() > 0 {
		s.flush(sd)
	}
	if events.Readable() {
		s.pump(sd)
	}
	s.after()
}

// after acts on what the last step left: a broken side, a session to close, what the core must
// settle, the timer.
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
	if s.reread {
		s.reread = false
		s.pump(&s.client)
	}
	if s.closing && s.client.out.Len() == 0 {
		s.close()
		return
	}
	if s.mux != nil {
		s.afterShared()
	}
	s.settle()
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
				if !s.conversationEnded(sd == &s.backend, cerr) {
					s.backend.broken = true // it broke the protocol: leave it as a failed backend
				}
				return
			}
			if s.backend.broken || s.client.broken || (n < len(buf) && !sd.hup) {
				return
			}
			continue
		}
		if err == eventloop.ErrAgain {
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

// ending implements driver: nothing more is read either way; after() closes once the client's output
// is written.
func (s *session) ending() { s.client.paused, s.backend.paused = true, true }

// toBackend and toClient implement output.
func (s *session) toBackend(b []byte) {
	if s.mux != nil {
		s.gather(b)
		return
	}
	s.write(&s.backend, &s.client, b)
}
func (s *session) toClient(b []byte) { s.write(&s.client, s.feeder(&s.client), b) }

// feeder is the side whose reading feeds sd's output: the other one, except for the client of a
// session on a shared connection, whose replies come as it asks for them: a client that does not read
// them is not read (it sends no more commands), and the connection it shares goes on for the others.
func (s *session) feeder(sd *side) *side {
	if sd == &s.backend || s.mux != nil {
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
	if err := sd.out.Write(sd.fd, b); err != nil {
		sd.broken = true
		return
	}
	if sd.out.Len() > highWater {
		feeder.paused = true
	}
}

// flush writes sd's waiting output; once it is gone the side that feeds it is read again.
func (s *session) flush(sd *side) {
	if err := sd.out.Flush(sd.fd); err != nil {
		sd.broken = true
		return
	}
	if sd.out.Len() > 0 {
		return
	}
	feeder := s.feeder(sd)
	if feeder.paused && !s.closing {
		feeder.paused = false
		s.pump(feeder)
	}
}

// walkRoute implements driver: the listener's route, its backends in turn.
func (s *session) walkRoute() {
	s.dial = &dialing{tries: s.c.Attempts()}
	s.tryNext()
}

// tryNext connects to the next backend of the route being tried (a shared connection when the session
// shares), or tells the core that none could be reached.
func (s *session) tryNext() {
	d := s.dial
	for {
		addr, ok := d.tries.Next()
		if !ok {
			s.dial = nil
			s.unreachable(d.tries.Err())
			return
		}
		s.connectingTo(addr)
		d.addr = addr
		if s.mux != nil && s.conv.sharing() {
			if s.joinShared(addr) {
				return
			}
			continue
		}
		if s.mux != nil && s.conv.mux != nil {
			s.conv.leaveMux() // it was to move to a connection of its own when its backend left
		}
		conn, err := s.lp.Dial(addr, s.c.ConnectTimeout(), s)
		if err != nil {
			d.tries.Failed(addr, err)
			continue
		}
		d.conn = conn
		return
	}
}

// Dialed implements eventloop.DialHandler: the connection of the session's own is up, or the next
// backend is tried.
func (s *session) Dialed(fd int, err error) {
	d := s.dial
	if err != nil {
		d.conn = nil
		d.tries.Failed(d.addr, err)
		s.tryNext()
		s.after()
		return
	}
	s.dial = nil
	s.lp.Rebind(fd, &s.backend)
	s.backend.fd, s.backend.broken, s.backend.hup, s.backend.paused = fd, false, d.conn.Seen().HungUp(), false
	if s.arrived(d.addr) {
		s.attachOwn(true)
	} else if !s.closed {
		s.pump(&s.client) // it moved on before sending anything: what the client sent raised no edge
	}
	s.after()
}

// admitted implements driver: the client is read from now on.
func (s *session) admitted() error {
	if err := s.lp.Add(s.client.fd, &s.client); err != nil {
		return err
	}
	eventloop.NoDelay(s.client.fd)
	return nil
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
	s.attach(between, replay)
	// Edge-triggered: what arrived meanwhile raised no new edge, so read both now.
	s.pump(&s.client)
	s.pump(&s.backend)
}

// dropBackend implements driver.
func (s *session) dropBackend() {
	if s.dial != nil {
		if s.dial.conn != nil {
			s.dial.conn.Cancel()
		}
		s.dial = nil
	}
	if s.mux != nil {
		s.dropShared()
	}
	s.backend.shut()
	s.backend.broken, s.backend.paused, s.backend.hup = false, false, false
	if s.client.paused && !s.keptFull && !s.closing {
		s.client.paused, s.reread = false, true
	}
}

// handBack implements driver: the client, whose socket the loop never watched, goes back to the
// listener as a net.Conn.
func (s *session) handBack(err error) {
	s.lp.Cancel(&s.timer)
	conn, _ := eventloop.Reattach(s.client.fd, s.c.OutOfDescriptors())
	s.client.fd = -1
	s.c.HandBack(conn, err)
}

// closeNow implements driver.
func (s *session) closeNow() { s.close() }

// close ends the session at once.
func (s *session) close() {
	if s.closed {
		return
	}
	s.closed = true
	s.lp.Cancel(&s.timer)
	s.dropBackend()
	s.client.shut()
	s.released()
}

// armTimer schedules the session's next deadline: a retry, a held command, the idle timeout.
func (s *session) armTimer() {
	next := s.deadline()
	if idle := s.c.IdleTimeout(); idle > 0 && s.established {
		if t := s.lastActive + int64(idle); next == 0 || t < next {
			next = t
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
	s.expire(now)
	if idle := s.c.IdleTimeout(); idle > 0 && s.established && now-s.lastActive >= int64(idle) {
		s.close()
		return
	}
	s.after()
}
