package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// session is one proxied client connection and its backend connection.
type session struct {
	client, backend net.Conn
	backendAddr     string
	l               *Listener
	stats           *backendCounters
	lastActive      atomic.Int64 // unix nanos of the last byte moved either way
	closeOnce       sync.Once
}

func newSession(client, backend net.Conn, addr string, l *Listener) *session {
	s := &session{client: client, backend: backend, backendAddr: addr, l: l}
	s.lastActive.Store(time.Now().UnixNano())
	return s
}

func (s *session) target() string { return s.backendAddr }
func (s *session) kill()          { s.close() }

// close ends the session at once, both ways; the forwarding goroutines then return.
func (s *session) close() {
	s.closeOnce.Do(func() {
		s.client.Close()
		s.backend.Close()
	})
}

// halfCloser is the part of *net.TCPConn used to forward a half-close.
type halfCloser interface{ CloseWrite() error }

var _ halfCloser = (*net.TCPConn)(nil)

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// forward moves bytes both ways until both directions are finished, then closes both connections.
func (s *session) forward(idle time.Duration) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.pipe(s.backend, s.client, idle, &s.l.bytesIn, &s.stats.bytesIn)
	}()
	s.pipe(s.client, s.backend, idle, &s.l.bytesOut, &s.stats.bytesOut)
	<-done
	s.close()
}

// pipe copies src to dst. On EOF it forwards the half-close (the other direction goes on, as Redis
// clients that shut down their write side still read replies); on any error it closes the whole
// session so the other direction ends too.
func (s *session) pipe(dst, src net.Conn, idle time.Duration, total, perBackend *atomic.Uint64) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		if idle > 0 {
			_ = src.SetReadDeadline(time.Now().Add(idle))
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			s.lastActive.Store(time.Now().UnixNano())
			if _, werr := dst.Write(buf[:n]); werr != nil {
				s.close()
				return
			}
			total.Add(uint64(n))
			perBackend.Add(uint64(n))
		}
		if rerr == nil {
			continue
		}
		if idle > 0 && errors.Is(rerr, os.ErrDeadlineExceeded) &&
			time.Since(time.Unix(0, s.lastActive.Load())) < idle {
			continue // the other direction was active: the session is not idle
		}
		if errors.Is(rerr, io.EOF) {
			if hc, ok := dst.(halfCloser); ok {
				_ = hc.CloseWrite()
				return
			}
		}
		s.close()
		return
	}
}

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

// tracked is a live session as the registry sees it, whichever engine runs it.
type tracked interface {
	target() string // the backend address
	kill()          // close at once, from any goroutine
}

// registry tracks live sessions by backend, so all sessions to one backend can be closed at once.
type registry struct {
	mu       sync.Mutex
	closed   bool
	byAddr   map[string]map[tracked]struct{}
	counters map[string]*backendCounters
}

// add registers t and returns its backend's counters; nil when the registry is closed (the listener
// is shutting down).
func (r *registry) add(t tracked) *backendCounters {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	if r.byAddr == nil {
		r.byAddr = map[string]map[tracked]struct{}{}
		r.counters = map[string]*backendCounters{}
	}
	addr := t.target()
	set := r.byAddr[addr]
	if set == nil {
		set = map[tracked]struct{}{}
		r.byAddr[addr] = set
	}
	set[t] = struct{}{}
	c := r.counters[addr]
	if c == nil {
		c = &backendCounters{}
		r.counters[addr] = c
	}
	c.current.Add(1)
	c.total.Add(1)
	return c
}

func (r *registry) remove(t tracked) {
	r.mu.Lock()
	defer r.mu.Unlock()
	addr := t.target()
	if set := r.byAddr[addr]; set != nil {
		if _, ok := set[t]; ok {
			delete(set, t)
			r.counters[addr].current.Add(-1)
		}
		if len(set) == 0 {
			delete(r.byAddr, addr)
		}
	}
}

// closeBackend closes every session to addr. The sessions are collected under the lock and closed
// outside it, so a slow close never blocks new sessions.
func (r *registry) closeBackend(addr string) int {
	r.mu.Lock()
	victims := make([]tracked, 0, len(r.byAddr[addr]))
	for t := range r.byAddr[addr] {
		victims = append(victims, t)
	}
	r.mu.Unlock()
	for _, t := range victims {
		t.kill()
	}
	return len(victims)
}

// closeAll closes every session and refuses new ones.
func (r *registry) closeAll() {
	r.mu.Lock()
	r.closed = true
	var victims []tracked
	for _, set := range r.byAddr {
		for t := range set {
			victims = append(victims, t)
		}
	}
	r.mu.Unlock()
	for _, t := range victims {
		t.kill()
	}
}

func (r *registry) stats() map[string]BackendStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]BackendStats, len(r.counters))
	for addr, c := range r.counters {
		out[addr] = BackendStats{Current: c.current.Load(), Total: c.total.Load(), BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load()}
	}
	return out
}
