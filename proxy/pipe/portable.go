// Package pipe is the byte forwarder: a proxy.Handler that connects each client to a backend and moves
// bytes both ways until either side is done, with half-closes passed on and a slow reader slowing its
// writer, never buffering without bound. It never reads what it forwards. Two implementations pass the
// conformance suite every data path passes (proxy/conformance_test.go): Portable (two goroutines per
// session, any system, and the one that carries TLS) and, on Linux, Epoll (event loops, both legs of a
// session on one loop). The end of a client's admission is proxy.Client's (Attempts, Arrived,
// HandBack), as for every handler.
package pipe

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
)

// Portable forwards each session with two goroutines, one each way: any system, any net.Conn (TLS).
var Portable proxy.Handler = portable{}

type portable struct{}

func (portable) Name() string { return "portable" }

func (portable) Serve(c *proxy.Client) {
	conn, addr, err := dialBackend(c)
	if err != nil {
		c.ConnectFailed(err)
		return
	}
	s := &session{client: c.Conn, backend: conn, backendAddr: addr}
	s.lastActive.Store(time.Now().UnixNano())
	counters, arrival := c.Arrived(s, "")
	if arrival == proxy.ListenerClosing {
		s.Close()
		c.Release()
		return
	}
	s.counters = counters
	if arrival == proxy.RouteMoved {
		s.Close() // a byte pipe cannot move: it ends as a retired one would
	}
	s.forward(c.IdleTimeout())
	c.Ended(s)
}

// dialBackend tries the route's backends in round-robin order, each once.
func dialBackend(c *proxy.Client) (net.Conn, string, error) {
	tries := c.Attempts()
	for {
		addr, ok := tries.Next()
		if !ok {
			return nil, "", tries.Err()
		}
		conn, err := c.Dial(addr)
		if err == nil {
			return conn, addr, nil
		}
		tries.Failed(addr, err)
	}
}

// session is one proxied client connection and its backend connection.
type session struct {
	client, backend net.Conn
	backendAddr     string
	counters        proxy.Counters
	lastActive      atomic.Int64 // unix nanos of the last byte moved either way
	closeOnce       sync.Once
}

func (s *session) Backend() string { return s.backendAddr }

// Retire closes the session: a byte pipe cannot move its client to another backend.
func (s *session) Retire(string) { s.Close() }

// Close ends the session at once, both ways; the forwarding goroutines then return.
func (s *session) Close() {
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
		s.pipe(s.backend, s.client, idle, s.counters.In)
	}()
	s.pipe(s.client, s.backend, idle, s.counters.Out)
	<-done
	s.Close()
}

// pipe copies src to dst. On EOF it forwards the half-close (the other direction goes on, as Redis
// clients that shut down their write side still read replies); on any error it closes the whole
// session so the other direction ends too.
func (s *session) pipe(dst, src net.Conn, idle time.Duration, count func(int)) {
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
				s.Close()
				return
			}
			count(n)
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
		s.Close()
		return
	}
}
