package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Engine moves bytes between admitted clients and backends. The Listener decides who may connect and
// where to; the engine connects and forwards. The portable engine runs on every system; NewEngine
// returns the fastest one for this system. Engines are sealed: only this package implements them.
type Engine interface {
	// forward connects client a to one of route's backends and forwards until the session ends, then
	// calls l.release. When no backend can be reached it calls l.connectFailed instead. It may return
	// before the session ends.
	forward(ctx context.Context, l *Listener, a *admission, route *Route)
	// Name says which engine it is, for logs and the stats page.
	Name() string
	// Close stops the engine once every listener using it has stopped.
	Close()
}

// EngineOptions tune the epoll engine; the portable engine has none.
type EngineOptions struct {
	// Loops is the number of event loops, at most GOMAXPROCS; zero or less means GOMAXPROCS.
	Loops int
	// BatchScheduling puts each loop's thread under SCHED_BATCH: when traffic wakes it, it does not
	// preempt the task running on that CPU but runs when that task blocks or its slice ends. On a machine
	// the proxy shares with Redis and its clients this lets each of them work through bigger batches.
	BatchScheduling bool
}

// Portable is the engine that works everywhere: per session, one goroutine each way.
var Portable Engine = portable{}

type portable struct{}

func (portable) Name() string { return "portable" }
func (portable) Close()       {}

func (portable) forward(ctx context.Context, l *Listener, a *admission, route *Route) {
	conn, addr, err := dialBackend(ctx, l, *route)
	if err != nil {
		l.connectFailed(ctx, a, route, err)
		return
	}
	s := newSession(a.client, conn, addr, l)
	if s.stats = l.sessions.add(s); s.stats == nil {
		s.close() // the listener closed while this session was being set up
		l.release()
		return
	}
	s.forward(l.IdleTimeout)
	l.sessions.remove(s)
	l.release()
}

// dialBackend tries the route's backends in round-robin order, each once, so one dead replica costs a
// client a retry rather than an error.
func dialBackend(ctx context.Context, l *Listener, route Route) (net.Conn, string, error) {
	dial := l.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	start := l.rr.Add(1)
	var errs []error
	for i := range route.Backends {
		addr := route.Backends[(start+uint64(i))%uint64(len(route.Backends))]
		dctx, cancel := context.WithTimeout(ctx, l.connectTimeout())
		conn, err := dial(dctx, "tcp", addr)
		cancel()
		if err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetNoDelay(true)
				_ = tc.SetKeepAlive(true)
			}
			return conn, addr, nil
		}
		errs = append(errs, fmt.Errorf("backend %s: %w", addr, err))
	}
	return nil, "", errors.Join(errs...)
}

func (l *Listener) connectTimeout() time.Duration {
	if l.ConnectTimeout <= 0 {
		return 4 * time.Second
	}
	return l.ConnectTimeout
}
