package pipe

import (
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/eventloop"
)

// Epoll forwards on event loops: both legs of a session live on one loop. Sockets are edge-triggered;
// bytes are read into the loop's buffer and written straight to the peer; a short write keeps only the
// remainder and pauses the source until the peer drains, so a slow reader never makes the proxy buffer
// without bound. Backends are connected on the loop (eventloop.Dial: non-blocking, host names resolved
// off the loop); connect and idle timeouts share the loop's timer wheel. A client whose socket cannot be
// taken out of Go's poller goes to Portable. Off Linux there are no loops (eventloop.New fails), and
// the proxy uses Portable.
type Epoll struct{ loops *eventloop.Loops }

// NewEpoll returns the event-loop forwarder on loops, which the caller closes after every listener
// using it has stopped.
func NewEpoll(loops *eventloop.Loops) *Epoll { return &Epoll{loops: loops} }

// Name implements proxy.Handler.
func (e *Epoll) Name() string { return "epoll" }

// Serve implements proxy.Handler.
func (e *Epoll) Serve(c *proxy.Client) {
	fd, err := eventloop.Detach(c.Conn)
	if err != nil {
		// Out of file descriptors, most likely: the portable forwarder may still manage.
		Portable.Serve(c)
		return
	}
	c.Conn = nil // the loop owns the socket now
	lp := e.loops.Next()
	lp.Post(func() { startSession(lp, c, fd) })
}

// leg is one socket of a session.
type leg struct {
	sess    *esession
	peer    *leg
	out     eventloop.Output // bytes read from peer that this socket did not take yet
	fd      int32
	paused  bool // not reading this socket: its peer has bytes waiting
	eof     bool // read EOF from this socket
	shut    bool // shutdown(SHUT_WR) done on this socket
	shutReq bool // shutdown wanted once out is flushed
	hup     bool // the peer hung up: read until EOF
}

// esession is a session owned by a loop. It is kept small: thousands of idle ones are what a proxy
// holds most of the time.
type esession struct {
	lp          *eventloop.Loop
	c           proxy.Client // the listener's view of the client: a copy, one object less per session
	counters    proxy.Counters
	client      leg
	backend     leg
	backendAddr string
	dial        *dialing // while connecting
	closed      bool
	registered  bool
	lastActive  int64 // unix nanoseconds
	timer       eventloop.Timer
}

// dialing is what only connecting needs: the route's backends in turn, the connect in progress.
type dialing struct {
	tries proxy.Attempts
	conn  *eventloop.Dialing
	addr  string
}

// Backend implements proxy.Session.
func (s *esession) Backend() string { return s.backendAddr }

// Close implements proxy.Session: the loop closes the session.
func (s *esession) Close() {
	s.lp.Post(func() {
		if !s.closed {
			s.closeSession()
		}
	})
}

// Retire implements proxy.Session: a byte pipe cannot move its client, so it closes.
func (s *esession) Retire(string) { s.Close() }

// Event implements eventloop.Handler for each leg.
func (lg *leg) Event(events eventloop.Events) { lg.sess.handle(lg, events) }

// Stop implements eventloop.Handler: the loop is stopping.
func (lg *leg) Stop() {
	if !lg.sess.closed {
		lg.sess.closeSession()
	}
}

// startSession begins connecting a new client to its route, in round-robin order; the client's socket
// is watched meanwhile, for a client that gives up.
func startSession(lp *eventloop.Loop, c *proxy.Client, fd int) {
	s := &esession{lp: lp, c: *c}
	s.timer.Owner = s
	s.client = leg{fd: int32(fd), sess: s}
	s.backend = leg{fd: -1, sess: s}
	s.client.peer, s.backend.peer = &s.backend, &s.client
	s.dial = &dialing{tries: s.c.Attempts()}
	if err := lp.Add(fd, &s.client); err != nil {
		s.handBack(err)
		return
	}
	s.tryNextBackend()
}

// tryNextBackend connects to the next backend of the route, or gives the client back to the listener
// (which holds and retries it, or refuses it) after each was tried once.
func (s *esession) tryNextBackend() {
	d := s.dial
	for {
		addr, ok := d.tries.Next()
		if !ok {
			s.handBack(d.tries.Err())
			return
		}
		conn, err := s.lp.Dial(addr, s.c.ConnectTimeout(), s)
		if err != nil {
			d.tries.Failed(addr, err)
			continue
		}
		d.conn, d.addr = conn, addr
		return
	}
}

// Dialed implements eventloop.DialHandler: the backend is connected, or the next one is tried.
func (s *esession) Dialed(fd int, err error) {
	d := s.dial
	if err != nil {
		d.tries.Failed(d.addr, err)
		s.tryNextBackend()
		return
	}
	s.lp.Rebind(fd, &s.backend)
	s.backend.fd, s.backend.hup, s.backendAddr, s.dial = int32(fd), d.conn.Seen().HungUp(), d.addr, nil
	s.lastActive = s.lp.NowNs()
	counters, arrival := s.c.Arrived(s, "")
	s.counters, s.registered = counters, arrival != proxy.ListenerClosing
	if arrival != proxy.Registered {
		s.closeSession() // the listener is closing, or the route left the backend as it connected
		return
	}
	eventloop.NoDelay(int(s.client.fd))
	if idle := s.c.IdleTimeout(); idle > 0 {
		s.lp.Schedule(&s.timer, s.lp.Now().Add(idle))
	}
	// Edge-triggered: whatever arrived while connecting raised no new edge, so read both now.
	s.pump(&s.client)
	if !s.closed {
		s.pump(&s.backend)
	}
}

// handBack takes a connecting client out of the loop and gives it back to the listener.
func (s *esession) handBack(err error) {
	s.closed = true
	s.lp.Remove(int(s.client.fd))
	conn, _ := eventloop.Reattach(int(s.client.fd), s.c.OutOfDescriptors())
	s.c.HandBack(conn, err)
}

func (s *esession) handle(lg *leg, events eventloop.Events) {
	// Remember a hang-up even while connecting: the edge will not come again, and the reads after the
	// connect must go on to the EOF.
	lg.hup = lg.hup || events.HungUp()
	if s.dial != nil {
		if lg == &s.client && (events.Failed() || events.Gone()) {
			s.closeSession() // the client gave up while we were connecting
		}
		return
	}
	if events.Failed() {
		s.closeSession()
		return
	}
	if events.Writable() && lg.out.Len() > 0 {
		s.flush(lg)
		if s.closed {
			return
		}
	}
	if events.Readable() {
		s.pump(lg)
	}
}

// pump reads src until the kernel has nothing more (edge-triggered) and writes each chunk to its peer.
func (s *esession) pump(src *leg) {
	dst := src.peer
	buf := s.lp.Buf()
	for !src.paused && !src.eof && !s.closed {
		n, err := eventloop.Read(int(src.fd), buf)
		if n > 0 {
			s.lastActive = s.lp.NowNs()
			if src == &s.client {
				s.counters.In(n)
			} else {
				s.counters.Out(n)
			}
			if !s.send(dst, buf[:n]) {
				return
			}
			if n < len(buf) && !src.hup {
				// A short read drained the socket: data arriving later raises a new edge, so the read
				// that would only say ErrAgain is saved. After a hang-up, read on to the EOF.
				return
			}
			continue
		}
		if err == eventloop.ErrAgain {
			return
		}
		if err != nil {
			s.closeSession()
			return
		}
		// EOF: pass the half-close on once everything read before it is written.
		src.eof = true
		dst.shutReq = true
		if dst.out.Len() == 0 {
			s.shutWrite(dst)
		}
	}
}

// send writes b to dst; what dst does not take is kept and the source paused. It returns false when
// the source must stop reading.
func (s *esession) send(dst *leg, b []byte) bool {
	if err := dst.out.Write(int(dst.fd), b); err != nil {
		s.closeSession()
		return false
	}
	if dst.out.Len() > 0 {
		dst.peer.paused = true
		return false
	}
	return true
}

// flush writes dst's waiting bytes; once they are gone the paused source resumes.
func (s *esession) flush(dst *leg) {
	if err := dst.out.Flush(int(dst.fd)); err != nil {
		s.closeSession()
		return
	}
	if dst.out.Len() > 0 {
		return
	}
	if dst.shutReq {
		s.shutWrite(dst)
	}
	src := dst.peer
	src.paused = false
	s.pump(src)
}

func (s *esession) shutWrite(lg *leg) {
	if lg.shut || s.closed {
		return
	}
	lg.shut = true
	if err := eventloop.Shutdown(int(lg.fd)); err != nil {
		s.closeSession()
		return
	}
	// Both directions finished: nothing more can move.
	if lg.peer.shut && lg.eof && lg.peer.eof {
		s.closeSession()
	}
}

func (s *esession) closeSession() {
	if s.closed {
		return
	}
	s.closed = true
	s.lp.Cancel(&s.timer)
	if s.dial != nil && s.dial.conn != nil {
		s.dial.conn.Cancel()
	}
	for _, lg := range []*leg{&s.client, &s.backend} {
		if lg.fd >= 0 {
			s.lp.Forget(int(lg.fd))
			eventloop.Close(int(lg.fd))
			lg.fd = -1
		}
		lg.out.Reset()
	}
	if s.registered {
		s.c.Ended(s)
	} else {
		s.c.Release()
	}
}

// Expire implements eventloop.Expirer: a session idle too long.
func (s *esession) Expire() {
	if s.closed || s.dial != nil {
		return
	}
	if idle := s.c.IdleTimeout(); idle > 0 {
		if due := s.lastActive + int64(idle); s.lp.NowNs() < due {
			s.lp.Schedule(&s.timer, time.Unix(0, due))
			return
		}
		s.closeSession()
	}
}
