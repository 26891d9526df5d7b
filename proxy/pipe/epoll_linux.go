//go:build linux

package pipe

import (
	"errors"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/eventloop"
)

// Epoll forwards on event loops: both legs of a session live on one loop. Sockets are edge-triggered;
// bytes are read into the loop's buffer and written straight to the peer; a short write keeps only the
// remainder and pauses the source until the peer drains, so a slow reader never makes the proxy buffer
// without bound. Backends are connected non-blockingly on the loop; connect and idle timeouts share the
// loop's timer wheel. A client that cannot be served that way (its descriptor cannot be detached, or a
// backend is a host name, which would block the loop to resolve) goes to Portable.
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
	lp.Post(func() { startConnect(lp, c, fd) })
}

// leg is one socket of a session.
type leg struct {
	sess    *esession
	peer    *leg
	pending *[]byte // bytes read from peer that this socket did not take yet
	off     int32   // start of the unwritten part of pending (a 64 KiB buffer)
	end     int32   // end of it
	fd      int32
	paused  bool // not reading this socket: its peer has pending bytes
	eof     bool // read EOF from this socket
	shut    bool // shutdown(SHUT_WR) done on this socket
	shutReq bool // shutdown wanted once pending is flushed
	hup     bool // the peer hung up (EPOLLRDHUP): read until EOF
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

// dialing is what only connecting needs: the route's backends, which were tried, the deadline.
type dialing struct {
	backends []string
	start    uint64
	attempt  int
	by       int64 // unix nanoseconds
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
func (lg *leg) Event(events uint32) { lg.sess.handle(lg, events) }

// Stop implements eventloop.Handler: the loop is stopping.
func (lg *leg) Stop() {
	if !lg.sess.closed {
		lg.sess.closeSession()
	}
}

// startConnect begins a non-blocking connect of a new client to its route, in round-robin order.
func startConnect(lp *eventloop.Loop, c *proxy.Client, fd int) {
	s := &esession{lp: lp, c: *c, dial: &dialing{}}
	s.timer.Owner = s
	s.dial.backends, s.dial.start = c.Backends()
	s.client = leg{fd: int32(fd), sess: s}
	s.backend = leg{fd: -1, sess: s}
	s.client.peer, s.backend.peer = &s.backend, &s.client
	if err := lp.Add(fd, &s.client); err != nil {
		s.connectFailed(err)
		return
	}
	s.tryNextBackend(nil)
}

// tryNextBackend connects to the next backend of the route, or gives up after each was tried once.
func (s *esession) tryNextBackend(errs []error) {
	d := s.dial
	for d.attempt < len(d.backends) {
		addr := d.backends[(d.start+uint64(d.attempt))%uint64(len(d.backends))]
		d.attempt++
		fd, err := eventloop.Connect(addr)
		if errors.Is(err, eventloop.ErrNotIP) {
			// A host name: resolving it would block the loop, so this client goes the portable way.
			s.handOff(func() { Portable.Serve(&s.c) })
			return
		}
		if err != nil {
			errs = append(errs, errBackend(addr, err))
			continue
		}
		s.backend.fd, s.backendAddr = int32(fd), addr
		d.by = s.lp.Now().Add(s.c.ConnectTimeout()).UnixNano()
		if err := s.lp.Add(fd, &s.backend); err != nil {
			eventloop.Close(fd)
			s.backend.fd = -1
			errs = append(errs, errBackend(addr, err))
			continue
		}
		s.lp.Schedule(&s.timer, s.lp.Now().Add(s.c.ConnectTimeout()))
		return
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no backend"))
	}
	s.connectFailed(errors.Join(errs...))
}

// connected finishes a connect once the backend socket is writable.
func (s *esession) connected() {
	if err := eventloop.SocketError(int(s.backend.fd)); err != nil {
		addr := s.backendAddr
		s.dropBackend()
		s.tryNextBackend([]error{errBackend(addr, err)})
		return
	}
	s.dial = nil
	s.lastActive = s.lp.NowNs()
	counters, ok := s.c.Established(s)
	if !ok {
		s.closeSession() // the listener is closing
		return
	}
	s.counters, s.registered = counters, true
	if !s.c.Routed(s.backendAddr) {
		s.closeSession() // retired while connecting: its retirement did not see this session
		return
	}
	eventloop.NoDelay(int(s.client.fd))
	s.lp.Cancel(&s.timer)
	if idle := s.c.IdleTimeout(); idle > 0 {
		s.lp.Schedule(&s.timer, s.lp.Now().Add(idle))
	}
	// Edge-triggered: whatever arrived while connecting raised no new edge, so read both now.
	s.pump(&s.client)
	if !s.closed {
		s.pump(&s.backend)
	}
}

func (s *esession) dropBackend() {
	if s.backend.fd >= 0 {
		s.lp.Forget(int(s.backend.fd))
		eventloop.Close(int(s.backend.fd))
		s.backend.fd = -1
	}
}

// connectFailed gives the client back to the listener, which holds and retries it or refuses it.
func (s *esession) connectFailed(err error) {
	s.handOff(func() { s.c.ConnectFailed(err) })
}

// handOff takes a connecting client out of the loop and runs next with it as a net.Conn again, on a
// goroutine (the listener may hold it).
func (s *esession) handOff(next func()) {
	s.lp.Cancel(&s.timer)
	s.dropBackend()
	s.closed = true
	s.lp.Remove(int(s.client.fd))
	conn, err := eventloop.Reattach(int(s.client.fd), s.c.OutOfDescriptors())
	if err != nil {
		s.c.Refused()
		return
	}
	s.c.Conn = conn
	go next()
}

func (s *esession) handle(lg *leg, events uint32) {
	// Remember a hang-up even while connecting: the edge will not come again, and the reads after the
	// connect must go on to the EOF.
	lg.hup = lg.hup || events&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0
	if s.dial != nil {
		if lg == &s.backend && events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			s.connected()
		} else if lg == &s.client && events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			s.closeSession() // the client gave up while we were connecting
		}
		return
	}
	if events&unix.EPOLLERR != 0 {
		s.closeSession()
		return
	}
	if events&unix.EPOLLOUT != 0 && lg.pending != nil {
		s.flush(lg)
		if s.closed {
			return
		}
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
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
				// that would only say EAGAIN is saved. After a hang-up, read on to the EOF.
				return
			}
			continue
		}
		if err == unix.EAGAIN || err == unix.EINTR {
			return
		}
		if err != nil {
			s.closeSession()
			return
		}
		// EOF: pass the half-close on once everything read before it is written.
		src.eof = true
		dst.shutReq = true
		if dst.pending == nil {
			s.shutWrite(dst)
		}
	}
}

// send writes b to dst; what dst does not take is kept and the source paused. It returns false when
// the source must stop reading.
func (s *esession) send(dst *leg, b []byte) bool {
	for len(b) > 0 {
		n, err := eventloop.Write(int(dst.fd), b)
		if n > 0 {
			b = b[n:]
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			bp := pendingBufs.Get().(*[]byte)
			dst.pending, dst.off, dst.end = bp, 0, int32(copy(*bp, b))
			dst.peer.paused = true
			return false
		}
		s.closeSession()
		return false
	}
	return true
}

// flush writes dst's pending bytes; once they are gone the paused source resumes.
func (s *esession) flush(dst *leg) {
	buf := *dst.pending
	for dst.off < dst.end {
		n, err := eventloop.Write(int(dst.fd), buf[dst.off:dst.end])
		if n > 0 {
			dst.off += int32(n)
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		s.closeSession()
		return
	}
	pendingBufs.Put(dst.pending)
	dst.pending = nil
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
	for _, lg := range []*leg{&s.client, &s.backend} {
		if lg.fd >= 0 {
			s.lp.Forget(int(lg.fd))
			eventloop.Close(int(lg.fd))
			lg.fd = -1
		}
		if lg.pending != nil {
			pendingBufs.Put(lg.pending)
			lg.pending = nil
		}
	}
	if s.registered {
		s.c.Ended(s)
	} else {
		s.c.Release()
	}
}

// Expire implements eventloop.Expirer: a connect that took too long, or a session idle too long.
func (s *esession) Expire() {
	if s.closed {
		return
	}
	now := s.lp.NowNs()
	if s.dial != nil {
		if now >= s.dial.by {
			addr := s.backendAddr
			s.dropBackend()
			s.tryNextBackend([]error{errBackend(addr, errors.New("connect timeout"))})
		} else {
			s.lp.Schedule(&s.timer, timeOf(s.dial.by))
		}
		return
	}
	if idle := s.c.IdleTimeout(); idle > 0 {
		if due := s.lastActive + int64(idle); now < due {
			s.lp.Schedule(&s.timer, timeOf(due))
			return
		}
		s.closeSession()
	}
}

// timeOf turns the loop's nanosecond times back into a time.Time for the wheel.
func timeOf(ns int64) time.Time { return time.Unix(0, ns) }

var pendingBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}
