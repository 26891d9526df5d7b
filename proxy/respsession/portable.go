package respsession

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
)

// Portable serves RESP sessions with goroutines, on net.Conns: any system, and listeners with TLS on
// either side (crypto/tls needs a net.Conn). A session's client has a reader (the goroutine Serve runs
// on) and a writer; each backend connection a reader and a writer; connects run on a goroutine of their
// own. The core and its conversation are shared under a mutex, never held across I/O.
var Portable proxy.Handler = portable{}

type portable struct{}

func (portable) Name() string { return "resp-portable" }

// SessionsHoldCommands implements proxy.HoldingHandler.
func (portable) SessionsHoldCommands() bool { return true }

var _ proxy.HoldingHandler = portable{}

// Serve connects the client to its route and, once it is in session, reads it until it ends.
func (portable) Serve(c *proxy.Client) {
	s := &psession{client: c.Conn}
	s.cond = sync.NewCond(&s.mu)
	s.init(s, c, s)
	s.mu.Lock()
	s.core.connect()
	for !s.established && !s.closed {
		s.cond.Wait()
	}
	if s.handBackErr != nil {
		err := s.handBackErr
		s.mu.Unlock()
		c.ConnectFailed(err) // the listener holds and retries the client, or refuses it
		return
	}
	if !s.established {
		s.released() // closed while connecting (the listener is closing)
		s.mu.Unlock()
		s.client.Close()
		return
	}
	s.mu.Unlock()
	s.readClient()
	s.finish()
}

// psession is one client in resp mode on goroutines: the core's driver there.
type psession struct {
	core
	client net.Conn

	mu         sync.Mutex
	cond       *sync.Cond // signalled on every change below
	backend    *pbackend  // nil between backends
	dialGen    int        // counts route walks: an older one's outcome is dropped
	clientOut  []byte     // for the client, not yet written
	holdTimer  *time.Timer
	lastActive time.Time
	// handBackErr: the first connect failed; Serve gives the client back to the listener with it.
	handBackErr error
}

// pbackend is one backend connection of a session, with what waits to be written to it. Its reader
// and writer are bound to it when they start: once the session moves on (s.backend is another), they
// stop, and what was queued for it is dropped with it, never written to the next connection.
type pbackend struct {
	conn net.Conn
	out  []byte
}

// run implements driver.
func (s *psession) run(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn()
	s.afterLocked()
}

// clock implements driver.
func (s *psession) clock() int64 { return time.Now().UnixNano() }

// toBackend and toClient implement output; they run with mu held.
func (s *psession) toBackend(b []byte) {
	if s.backend != nil && len(b) > 0 {
		s.backend.out = append(s.backend.out, b...)
		s.cond.Broadcast()
	}
}

func (s *psession) toClient(b []byte) {
	s.clientOut = append(s.clientOut, b...)
	s.cond.Broadcast()
}

// walkRoute implements driver: the route's backends are dialled in turn on a goroutine.
func (s *psession) walkRoute() {
	s.dialGen++
	go s.dialRoute(s.dialGen, s.c.Attempts())
}

// dialRoute connects to the first backend of tries that answers, and tells the core, unless the walk
// was called off meanwhile (gen).
func (s *psession) dialRoute(gen int, tries proxy.Attempts) {
	for {
		s.mu.Lock()
		if gen != s.dialGen || s.closed {
			s.mu.Unlock()
			return
		}
		addr, ok := tries.Next()
		if !ok {
			s.unreachable(tries.Err())
			s.afterLocked()
			s.mu.Unlock()
			return
		}
		s.connectingTo(addr)
		s.mu.Unlock()
		conn, err := s.c.Dial(addr)
		s.mu.Lock()
		stale := gen != s.dialGen || s.closed || s.closing
		switch {
		case stale && conn != nil:
			conn.Close()
		case !stale && err != nil:
			tries.Failed(addr, err)
		case !stale:
			s.backend = &pbackend{conn: conn}
			if s.arrived(addr) {
				s.attachLocked()
			}
			s.afterLocked()
		}
		s.mu.Unlock()
		if stale || err == nil {
			return
		}
	}
}

// admitted implements driver: the client's writer starts, and Serve's goroutine reads the client.
func (s *psession) admitted() error {
	go s.writeClient()
	s.cond.Broadcast()
	return nil
}

// handBack implements driver: Serve gives the client back to the listener.
func (s *psession) handBack(err error) {
	s.handBackErr = err
	s.cond.Broadcast()
}

// ending implements driver.
func (s *psession) ending() { s.cond.Broadcast() }

// closeNow implements driver.
func (s *psession) closeNow() { s.closeLocked() }

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
				s.end()
			}
			s.afterLocked()
			// A slow backend slows the client: wait while too much waits for it.
			for s.backend != nil && len(s.backend.out) > highWater && !s.closed {
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

// readBackend reads b until it closes or the session moves off it.
func (s *psession) readBackend(b *pbackend) {
	buf := make([]byte, 32<<10)
	for {
		n, err := b.conn.Read(buf)
		s.mu.Lock()
		if s.backend != b || s.closed {
			s.mu.Unlock()
			return
		}
		if n > 0 {
			s.lastActive = time.Now()
			s.counters.Out(n)
			if cerr := s.conv.fromBackend(buf[:n]); cerr != nil && !s.conversationEnded(true, cerr) {
				err = cerr // the backend broke the protocol: leave it
			}
			s.afterLocked()
			for len(s.clientOut) > highWater && !s.closed && s.backend == b {
				s.cond.Wait()
			}
		}
		if err != nil && s.backend == b && !s.closed && !s.closing {
			s.backendGone(false)
			s.afterLocked()
		}
		stop := err != nil || s.backend != b || s.closed
		s.mu.Unlock()
		if stop {
			return
		}
	}
}

// writeBackend writes what is queued for b until the session closes or moves off b.
func (s *psession) writeBackend(b *pbackend) {
	for {
		s.mu.Lock()
		for len(b.out) == 0 && !s.closed && s.backend == b {
			s.cond.Wait()
		}
		if s.closed || s.backend != b {
			s.mu.Unlock()
			return
		}
		out := b.out
		b.out = nil
		s.mu.Unlock()
		if _, err := b.conn.Write(out); err != nil {
			b.conn.Close() // its reader sees the error and the session moves on
			return
		}
		s.mu.Lock()
		s.cond.Broadcast() // room for whoever waits to read more
		s.mu.Unlock()
	}
}

// writeClient writes what is queued for the client until the session closes, or ends and everything
// was written.
func (s *psession) writeClient() {
	for {
		s.mu.Lock()
		for len(s.clientOut) == 0 && !s.closed && !s.closing {
			s.cond.Wait()
		}
		if s.closed || len(s.clientOut) == 0 {
			closing := s.closing && !s.closed
			s.mu.Unlock()
			if closing {
				s.Close()
			}
			return
		}
		out := s.clientOut
		s.clientOut = nil
		s.mu.Unlock()
		if _, err := s.client.Write(out); err != nil {
			s.Close()
			return
		}
		s.mu.Lock()
		s.cond.Broadcast() // room for whoever waits to read more
		s.mu.Unlock()
	}
}

// attachLocked starts the conversation on s.backend, the session's backend connection now, and its
// reader and writer, bound to it.
func (s *psession) attachLocked() {
	s.attach(nil, true)
	go s.readBackend(s.backend)
	go s.writeBackend(s.backend)
}

// dropBackend implements driver.
func (s *psession) dropBackend() {
	s.dialGen++ // a walk under way is called off
	if s.backend != nil {
		s.backend.conn.Close()
		s.backend = nil // its reader and writer stop; what was queued for it goes with it
	}
	s.cond.Broadcast()
}

// afterLocked lets the core settle, and keeps the timer of its next deadline.
func (s *psession) afterLocked() {
	s.cond.Broadcast() // a reader waiting for room (keptFull) looks again
	s.settle()
	if s.holdTimer != nil {
		s.holdTimer.Stop()
		s.holdTimer = nil
	}
	if next := s.deadline(); next > 0 && !s.closed {
		s.holdTimer = time.AfterFunc(time.Duration(next-s.clock()), func() {
			s.mu.Lock()
			s.expire(s.clock())
			s.afterLocked()
			s.mu.Unlock()
		})
	}
}

func (s *psession) closeLocked() {
	if s.closed {
		return
	}
	s.closed = true
	s.client.Close()
	s.dropBackend()
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
	s.released()
	s.mu.Unlock()
}
