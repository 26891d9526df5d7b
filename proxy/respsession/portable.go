package respsession

import (
	"errors"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
)

// Portable serves RESP sessions with goroutines, on net.Conns: any system, and listeners with TLS on
// either side (crypto/tls needs a net.Conn). A session has a reader and a writer goroutine for each of
// its two connections; the conversation is shared under a mutex, never held across I/O.
var Portable proxy.Handler = portable{}

type portable struct{}

func (portable) Name() string { return "resp-portable" }

// SessionsHoldCommands implements proxy.HoldingHandler.
func (portable) SessionsHoldCommands() bool { return true }

var (
	_ proxy.HoldingHandler = portable{}
	_ proxy.CommandHolder  = (*psession)(nil)
)

func (portable) Serve(c *proxy.Client) {
	s := &psession{c: c, client: c.Conn}
	s.cond = sync.NewCond(&s.mu)
	s.conv = newConv(s, s, int64(c.HoldTimeout()))
	backends, start := c.Backends()
	conn, addr, err := s.dialAny(backends, start)
	if err != nil {
		c.ConnectFailed(err)
		return
	}
	s.addr = addr
	counters, ok := c.Established(s)
	if !ok {
		conn.Close()
		c.Release()
		return
	}
	s.counters = counters
	s.mu.Lock()
	if h := c.CommandHold(); h != nil && !h.Released() {
		// Held from its first command. Checked under mu, as ReleaseCommands looks at s.hold: a release
		// either came before (Released) or finds the hold taken.
		s.hold = h
		s.conv.holdCommands()
	}
	s.attachLocked(conn)
	if !c.Routed(addr) {
		s.backendGoneLocked(true) // retired while connecting: its retirement did not see this session
	}
	s.mu.Unlock()
	go s.writeLoop(s.client, &s.clientOut, nil)
	s.readClient()
	s.finish()
}

// psession is one client in resp mode on goroutines.
type psession struct {
	c        *proxy.Client
	client   net.Conn
	counters proxy.Counters

	mu         sync.Mutex
	cond       *sync.Cond // signalled on every change below
	conv       *conv
	backend    net.Conn // nil between backends
	addr       string   // the backend now, "" between backends
	gen        int      // counts backend connections: a reader or writer of an older one stops
	clientOut  []byte   // for the client, not yet written
	backendOut []byte   // for the backend, not yet written
	connecting bool
	closing    bool // close once clientOut is written
	closed     bool
	holdTimer  *time.Timer
	lastActive time.Time
	// hold is the listener's hold in force (HoldCommands); holdWaits until the session told it that
	// what it sent before is answered.
	hold      *proxy.CommandHold
	holdWaits bool
}

// Backend implements proxy.Session.
func (s *psession) Backend() string {
	return s.addr // read by the registry under the session's lock or on its own goroutine (Established, Moved, Ended)
}

// Close implements proxy.Session.
func (s *psession) Close() {
	s.mu.Lock()
	s.closeLocked()
	s.mu.Unlock()
}

// Retire implements proxy.Session.
func (s *psession) Retire(backend string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addr == backend && !s.closed {
		s.backendGoneLocked(true)
	}
}

// HoldCommands implements proxy.CommandHolder.
func (s *psession) HoldCommands(h *proxy.CommandHold) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || h.Released() {
		h.Answered(s)
		return
	}
	s.hold, s.holdWaits = h, true
	s.conv.holdCommands()
	s.afterLocked()
}

// ReleaseCommands implements proxy.CommandHolder.
func (s *psession) ReleaseCommands(h *proxy.CommandHold) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.hold != h {
		return
	}
	s.hold, s.holdWaits = nil, false
	// The held commands go to the route in force now: a session on a backend the route left, which was
	// not cut because it connected as the cut was made, moves first.
	if s.backend != nil {
		if backends, _, _ := s.c.Route(); len(backends) > 0 && !slices.Contains(backends, s.addr) {
			s.backendGoneLocked(true)
		}
	}
	s.toBackend(s.conv.releaseCommands())
	s.afterLocked()
}

func (s *psession) now() int64 { return time.Now().UnixNano() }

func (s *psession) refusal() string {
	_, _, refusal := s.c.Route()
	return refusal
}

// toBackend and toClient implement output; they run with mu held.
func (s *psession) toBackend(b []byte) {
	if s.backend != nil {
		s.backendOut = append(s.backendOut, b...)
		s.cond.Broadcast()
	}
}

func (s *psession) toClient(b []byte) {
	s.clientOut = append(s.clientOut, b...)
	s.cond.Broadcast()
}

// readClient reads the client until it closes, or the session does.
func (s *psession) readClient() {
	buf := make([]byte, 32<<10)
	idle := s.c.IdleTimeout()
	for {
		if idle > 0 {
			_ = s.client.SetReadDeadline(time.Now().Add(idle))
		}
		n, err := s.client.Read(buf)
		s.mu.Lock()
		if n > 0 {
			s.lastActive = time.Now()
			s.counters.In(n)
			if cerr := s.conv.fromClient(buf[:n]); cerr != nil {
				s.endLocked()
			}
			s.afterLocked()
			// A slow backend slows the client: wait while too much waits for it.
			for len(s.backendOut) > highWater && !s.closed && s.backend != nil {
				s.cond.Wait()
			}
			// Nor read more while the session keeps too many of its commands (conv.keptFull).
			if s.conv.keptFull() {
				for !s.conv.keptRoom() && !s.closed && !s.closing {
					s.cond.Wait()
				}
			}
		}
		done := s.closed || s.closing
		if err != nil && !done && idle > 0 && errors.Is(err, os.ErrDeadlineExceeded) && time.Since(s.lastActive) < idle {
			err = nil // the other direction was active: the session is not idle
		}
		s.mu.Unlock()
		if err != nil || done {
			return
		}
	}
}

// readBackend reads one backend connection until it closes or is replaced.
func (s *psession) readBackend(conn net.Conn, gen int) {
	buf := make([]byte, 32<<10)
	for {
		n, err := conn.Read(buf)
		s.mu.Lock()
		if gen != s.gen || s.closed {
			s.mu.Unlock()
			return
		}
		if n > 0 {
			s.lastActive = time.Now()
			s.counters.Out(n)
			if cerr := s.conv.fromBackend(buf[:n]); cerr != nil {
				if errors.Is(cerr, errQuit) || errors.Is(cerr, errCannotMove) {
					s.endLocked()
				} else {
					err = cerr // the backend broke the protocol: leave it
				}
			}
			s.afterLocked()
			for len(s.clientOut) > highWater && !s.closed && gen == s.gen {
				s.cond.Wait()
			}
		}
		if err != nil && gen == s.gen && !s.closed && !s.closing {
			s.backendGoneLocked(false)
		}
		stop := err != nil || gen != s.gen || s.closed
		s.mu.Unlock()
		if stop {
			return
		}
	}
}

// writeLoop writes what is queued in *out to conn until the session closes, or the backend connection
// gen is replaced (gen nil: the client's).
func (s *psession) writeLoop(conn net.Conn, out *[]byte, gen *int) {
	mine := 0
	if gen != nil {
		s.mu.Lock()
		mine = *gen
		s.mu.Unlock()
	}
	for {
		s.mu.Lock()
		for len(*out) == 0 && !s.closed && !(gen != nil && *gen != mine) && !(gen == nil && s.closing) {
			s.cond.Wait()
		}
		if s.closed || (gen != nil && *gen != mine) || len(*out) == 0 {
			closing := gen == nil && s.closing && len(*out) == 0
			s.mu.Unlock()
			if closing {
				s.Close()
			}
			return
		}
		b := *out
		*out = nil
		s.mu.Unlock()
		if _, err := conn.Write(b); err != nil {
			if gen == nil {
				s.Close()
			} else {
				conn.Close() // its reader sees the error and the session moves on
			}
			return
		}
		s.mu.Lock()
		s.cond.Broadcast() // room for whoever waits to read more
		s.mu.Unlock()
	}
}

// attachLocked makes conn the session's backend connection and starts its goroutines.
func (s *psession) attachLocked(conn net.Conn) {
	s.gen++
	s.backend = conn
	s.backendOut = nil
	s.toBackend(s.conv.attach())
	gen := s.gen
	go s.readBackend(conn, gen)
	go s.writeLoop(conn, &s.backendOut, &s.gen)
}

// backendGoneLocked acts on the backend leaving (retired, closed or broken): the client stays, moved
// to the next backend when it needs one.
func (s *psession) backendGoneLocked(retired bool) {
	if s.backend == nil {
		return
	}
	s.backend.Close()
	s.backend, s.backendOut = nil, nil
	s.gen++
	from := s.addr
	if !retired && from != "" {
		s.c.BackendFailed(from)
	}
	if err := s.conv.detach(); err != nil {
		s.endLocked()
		return
	}
	s.addr = ""
	s.counters = s.c.Moved(s, from)
	s.cond.Broadcast()
	s.afterLocked()
}

// afterLocked connects when the conversation needs a backend, and keeps the hold timer.
func (s *psession) afterLocked() {
	s.cond.Broadcast() // a reader waiting for room (keptFull) looks again
	if s.holdWaits && s.conv.answered() {
		s.holdWaits = false
		s.hold.Answered(s)
	}
	if s.closed || s.closing {
		return
	}
	if s.backend == nil && !s.connecting && s.conv.needsBackend() {
		s.connecting = true
		go s.connect()
	}
	if s.backend == nil {
		next, err := s.conv.expireHolds(s.now())
		if err != nil {
			s.endLocked()
			return
		}
		if s.holdTimer != nil {
			s.holdTimer.Stop()
			s.holdTimer = nil
		}
		if next > 0 {
			s.holdTimer = time.AfterFunc(time.Duration(next-s.now()), func() {
				s.mu.Lock()
				s.afterLocked()
				s.mu.Unlock()
			})
		}
	}
}

// connect finds a backend on the listener's route, waiting for the route to change (and retrying
// every retryEvery) while there is none it can reach.
func (s *psession) connect() {
	changed := make(chan struct{}, 1)
	stop := s.c.WatchRoute(func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	defer stop()
	for {
		backends, start, _ := s.c.Route()
		conn, addr, err := s.dialAny(backends, start)
		s.mu.Lock()
		if s.closed || s.closing {
			s.connecting = false
			s.mu.Unlock()
			if conn != nil {
				conn.Close()
			}
			return
		}
		if err == nil {
			s.connecting = false
			s.addr = addr
			s.counters = s.c.Moved(s, "")
			s.attachLocked(conn)
			if !s.c.Routed(addr) {
				s.backendGoneLocked(true) // retired while connecting: its retirement did not see this session
			}
			s.afterLocked()
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		select {
		case <-changed:
		case <-time.After(retryEvery):
		}
	}
}

// dialAny connects to the first backend that answers, in round-robin order.
func (s *psession) dialAny(backends []string, start uint64) (net.Conn, string, error) {
	var errs []error
	for i := range backends {
		addr := backends[(start+uint64(i))%uint64(len(backends))]
		conn, err := s.c.Dial(addr)
		if err == nil {
			return conn, addr, nil
		}
		errs = append(errs, err)
		s.c.BackendFailed(addr)
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no backend"))
	}
	return nil, "", errors.Join(errs...)
}

// endLocked ends the session once what the client is owed is written.
func (s *psession) endLocked() {
	s.closing = true
	s.cond.Broadcast()
}

func (s *psession) closeLocked() {
	if s.closed {
		return
	}
	s.closed = true
	s.client.Close()
	if s.backend != nil {
		s.backend.Close()
	}
	if s.holdTimer != nil {
		s.holdTimer.Stop()
	}
	s.cond.Broadcast()
}

// finish ends the session after the client's reader returned, and tells the listener.
func (s *psession) finish() {
	s.mu.Lock()
	for s.closing && !s.closed && len(s.clientOut) > 0 {
		s.cond.Wait() // the writer flushes what the client is owed, then closes
	}
	s.closeLocked()
	s.mu.Unlock()
	s.c.Ended(s)
}
