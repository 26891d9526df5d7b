package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Listener forwards every client accepted on one address to a backend of its Route. The zero value
// is not usable: set Name and call Serve.
type Listener struct {
	Name string // shown in logs and stats, e.g. "mymaster/master"
	// MaxConns bounds concurrent sessions. If zero, there is no bound.
	MaxConns int
	// ConnectTimeout bounds dialling a backend. If zero, 4s is used (HAProxy's seed `timeout connect`).
	ConnectTimeout time.Duration
	// IdleTimeout closes a session with no traffic in either direction for that long. Zero means never.
	IdleTimeout time.Duration
	// HoldTimeout is how long a new client waits, accepted but not forwarded, for a route when there is
	// none (a failover in progress). It is forwarded as soon as SetRoute gives one, and refused with the
	// route's Refusal when the time is up. Zero means refuse at once. Held clients count against MaxConns.
	HoldTimeout time.Duration
	// OnBackendFailure, if set, is called with each backend of a route none of which could be dialled,
	// so the owner can check it at once. It must not block.
	OnBackendFailure func(addr string)
	// DialContext connects to backends for handlers that use net.Conns (Client.Dial). If nil, a
	// net.Dialer is used. A TLS dialer here makes the backend leg TLS (event loops cannot carry TLS: such
	// a listener needs a handler that uses goroutines).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLS, if set, terminates TLS from clients: each is handshaken (within HandshakeTimeout, 10s if
	// zero) before it is admitted. It needs a handler that uses goroutines.
	TLS              *tls.Config
	HandshakeTimeout time.Duration
	// Handler serves the admitted clients (package proxy/pipe forwards bytes). Required.
	Handler Handler
	// SessionConfig is what the Handler reads for this listener's sessions, of a type the Handler
	// defines (resp mode: a group's *respsession.Durability); nil for none. The listener never reads it.
	SessionConfig any
	Log           zerolog.Logger

	route    atomic.Pointer[Route]
	routeMu  sync.Mutex
	routeNew chan struct{} // closed and replaced by SetRoute, waking held clients
	watchers map[uint64]func()
	watchSeq uint64
	held     atomic.Int64
	rr       atomic.Uint64
	current  atomic.Int64
	peak     atomic.Int64 // the most concurrent sessions seen (HAProxy's smax)
	rate     rateCounter  // new sessions per second
	total    atomic.Uint64
	refused  atomic.Uint64 // no route or max_conns
	connErrs atomic.Uint64 // backend dial failures
	moved    atomic.Uint64 // sessions that left a backend and stayed open (resp mode)
	moves    countLog      // the moves not logged yet
	// killed counts sessions closed because Redis closed their backend connection while its node stayed
	// alive and routed (resp mode: CLIENT KILL, an output-buffer limit, timeout).
	killed atomic.Uint64
	subs   subscriberGate // re-subscriptions before other commands, after a route change
	// drains counts the sessions draining a backend the route left (resp mode): a subscriber keeps
	// listening there until they are done, so that a message they publish there reaches it.
	drains subscriberGate
	// masterChanged is when the group's master last changed (unix nanos; MasterChanged): Sentinel then
	// reconfigures nodes, and closes their clients as it does.
	masterChanged atomic.Int64
	kills         countLog      // the sessions closed by their backend not logged yet
	tlsErrs       atomic.Uint64 // client TLS handshakes that failed
	bytesIn       atomic.Uint64 // client to backend
	bytesOut      atomic.Uint64 // backend to client
	atLimit       atomic.Bool
	lastLog       atomic.Int64 // unix nanos of the last backend_connect_failed line
	sessions      registry
	wg            sync.WaitGroup
	closeOnce     sync.Once
	closed        chan struct{}
	spareMu       sync.Mutex
	spares        [2]io.Closer // descriptors held in reserve to refuse clients when none is left
	mu            sync.Mutex
	lns           []net.Listener  // every address accepting now, oldest first
	serveCtx      context.Context // the context of the first Serve: what sessions dial under later
}

// Stats are a listener's counters.
type Stats struct {
	Name            string
	Addr            string
	Current         int64
	Peak            int64  // the most concurrent sessions seen
	Rate, RateMax   uint64 // new sessions per second, now and at most
	Max             int
	Total           uint64
	Refused         uint64
	HandshakeErrors uint64 // client TLS handshakes that failed
	Held            int64  // clients waiting for a route now
	Moved           uint64 // sessions that left a backend without closing (resp mode: a failover moved them)
	// ClosedByBackend counts sessions closed because Redis closed their backend connection while the node
	// stayed alive and routed (resp mode; in tcp mode such a close ends the byte pipe and is not told apart).
	ClosedByBackend uint64
	ConnectErrors   uint64
	BytesIn         uint64
	BytesOut        uint64
	PerBackend      map[string]BackendStats
	Route           Route
	LimitReachedNow bool
}

// SetRoute replaces the route for new clients. Established sessions are not touched: closing them is
// CloseSessionsTo's job.
func (l *Listener) SetRoute(r Route) {
	r.Backends = append([]string(nil), r.Backends...)
	l.routeMu.Lock()
	l.route.Store(&r)
	if l.routeNew != nil {
		close(l.routeNew)
		l.routeNew = nil
	}
	watchers := make([]func(), 0, len(l.watchers))
	for _, fn := range l.watchers {
		watchers = append(watchers, fn)
	}
	l.routeMu.Unlock()
	for _, fn := range watchers {
		fn()
	}
}

// watchRoute calls fn after each SetRoute until stop is called. fn runs on SetRoute's goroutine and
// must not block.
func (l *Listener) watchRoute(fn func()) (stop func()) {
	l.routeMu.Lock()
	defer l.routeMu.Unlock()
	if l.watchers == nil {
		l.watchers = map[uint64]func(){}
	}
	l.watchSeq++
	id := l.watchSeq
	l.watchers[id] = fn
	return func() {
		l.routeMu.Lock()
		delete(l.watchers, id)
		l.routeMu.Unlock()
	}
}

// waitRoute returns the current route once it has backends and is not stale (the route whose backends
// just failed), waiting for SetRoute until deadline. At the deadline, or when the listener closes, it
// returns the current route as it is.
func (l *Listener) waitRoute(closed <-chan struct{}, deadline time.Time, stale *Route) *Route {
	ready := func(r *Route) bool { return r != nil && len(r.Backends) > 0 && r != stale }
	if r := l.route.Load(); ready(r) || !time.Now().Before(deadline) {
		return r
	}
	l.held.Add(1)
	defer l.held.Add(-1)
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		l.routeMu.Lock()
		r := l.route.Load()
		if ready(r) {
			l.routeMu.Unlock()
			return r
		}
		if l.routeNew == nil {
			l.routeNew = make(chan struct{})
		}
		changed := l.routeNew
		l.routeMu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			return l.route.Load()
		case <-closed:
			return l.route.Load()
		}
	}
}

// Route returns the current route.
func (l *Listener) Route() Route {
	if r := l.route.Load(); r != nil {
		return *r
	}
	return Route{Refusal: "no route yet"}
}

// CloseSessionsTo closes every session to backend at once and returns how many it closed: an
// operator's kill. It is safe to call from any goroutine.
func (l *Listener) CloseSessionsTo(backend string) int {
	victims := l.sessions.sessionsTo(backend)
	for _, s := range victims {
		s.Close()
	}
	return len(victims)
}

// RetireBackend tells every session to backend that it left its pool (Session.Retire): a byte pipe
// closes, a session that can move to the new route moves. It returns how many sessions it told. It is
// safe to call from any goroutine.
func (l *Listener) RetireBackend(backend string) int {
	sessions := l.sessions.sessionsTo(backend)
	// Until each session that may carry subscriptions said whether it does, a session arriving at the
	// new backend waits (AwaitSubscribers): a publisher must not get there before a subscriber.
	n := 0
	for _, s := range sessions {
		if _, ok := s.(SubscribingSession); ok {
			n++
		}
	}
	round, drains := l.subs.startN(n), l.drains.startN(n)
	for _, s := range sessions {
		if r, ok := s.(SubscribingSession); ok {
			r.RetireCounted(backend, round, drains)
		} else {
			s.Retire(backend)
		}
	}
	return len(sessions)
}

// Stats returns the listener's counters.
func (l *Listener) Stats() Stats {
	s := Stats{
		Name: l.Name, Current: l.current.Load(), Peak: l.peak.Load(), Max: l.MaxConns, Total: l.total.Load(),
		Refused: l.refused.Load(), Held: l.held.Load(), ConnectErrors: l.connErrs.Load(), HandshakeErrors: l.tlsErrs.Load(),
		Moved:           l.moved.Load(),
		ClosedByBackend: l.killed.Load(),
		BytesIn:         l.bytesIn.Load(), BytesOut: l.bytesOut.Load(),
		PerBackend: l.sessions.stats(), Route: l.Route(), LimitReachedNow: l.atLimit.Load(),
	}
	s.Rate, s.RateMax = l.rate.rate(time.Now())
	if a := l.Addr(); a != nil {
		s.Addr = a.String()
	}
	return s
}

// Addr returns the newest address the listener accepts on (after a rebind, the new one), or nil.
func (l *Listener) Addr() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lns) == 0 {
		return nil
	}
	return l.lns[len(l.lns)-1].Addr()
}

// accepting returns the addresses accepting now.
func (l *Listener) accepting() []net.Listener {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lns)
}

// Serve accepts clients on ln until ctx ends, Close is called, or Unbind(ln). Serve may run on several
// net.Listeners at once (a reload that moves the listen address binds the new one before unbinding the
// old). When ctx ends or Close is called, every session is closed and Serve waits for them to finish;
// Unbind only stops accepting on ln, and the sessions go on.
func (l *Listener) Serve(ctx context.Context, ln net.Listener) error {
	if l.Handler == nil {
		return fmt.Errorf("listener %s: no Handler", l.Name)
	}
	l.spareMu.Lock()
	l.topUpSpares()
	l.spareMu.Unlock()
	l.mu.Lock()
	l.lns = append(l.lns, ln)
	if l.serveCtx == nil {
		l.serveCtx = ctx
	}
	l.mu.Unlock()
	closed := l.closedChan()
	stop := context.AfterFunc(ctx, l.Close)
	defer stop()

	var backoff time.Duration
	var lastAcceptLog time.Time
	for {
		conn, err := ln.Accept()
		if err != nil {
			select {
			case <-closed:
				l.sessions.closeAll()
				l.wg.Wait()
				return nil
			default:
			}
			if !l.bound(ln) {
				return nil // unbound: the sessions stay
			}
			if isTemporaryAccept(err) {
				// Out of file descriptors: tell the next waiting client so, with the descriptor kept in
				// reserve for this, rather than leave it hanging in the backlog; then wait and retry, as
				// net/http does, rather than spin or exit.
				refusedOne := l.refuseWithSpare(ln, err)
				backoff = min(max(backoff*2, 5*time.Millisecond), time.Second)
				if refusedOne {
					backoff = 5 * time.Millisecond
				}
				if now := time.Now(); now.Sub(lastAcceptLog) >= time.Second {
					// At most a line a second: running out of descriptors under load repeats every few ms.
					lastAcceptLog = now
					l.Log.Error().Str("event", "accept_error").Str("listener", l.Name).Err(err).
						Dur("retry_in", backoff).Uint64("refused_total", l.refused.Load()).Msg("accept failed; retrying")
				}
				select {
				case <-time.After(backoff):
				case <-closed:
				}
				continue
			}
			l.Close()
			l.wg.Wait()
			return fmt.Errorf("listener %s: accept: %w", l.Name, err)
		}
		backoff = 0
		if l.TLS != nil {
			conn = tls.Server(conn, l.TLS)
		}
		l.wg.Add(1)
		go l.serveClient(ctx, conn)
	}
}

func (l *Listener) bound(ln net.Listener) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.lns, ln)
}

// Unbind stops accepting on ln and closes it; established sessions are not touched.
func (l *Listener) Unbind(ln net.Listener) {
	l.mu.Lock()
	l.lns = slices.DeleteFunc(l.lns, func(x net.Listener) bool { return x == ln })
	l.mu.Unlock()
	ln.Close()
}

// StopAccepting unbinds every address: no new client is accepted, established sessions go on. It
// starts a graceful shutdown.
func (l *Listener) StopAccepting() {
	for _, ln := range l.accepting() {
		l.Unbind(ln)
	}
}

// Wait blocks until every admitted client has been released, after Close.
func (l *Listener) Wait() { l.wg.Wait() }

// Sessions returns how many clients are admitted now (forwarded, held or being refused).
func (l *Listener) Sessions() int64 { return l.current.Load() }

// Close stops accepting and closes every session. Serve returns after the sessions have finished.
func (l *Listener) Close() {
	closed := l.closedChan()
	l.closeOnce.Do(func() { close(closed) })
	for _, ln := range l.accepting() {
		ln.Close()
	}
	l.sessions.closeAll()
	l.spareMu.Lock()
	for i, sp := range l.spares {
		if sp != nil {
			sp.Close()
			l.spares[i] = nil
		}
	}
	l.spareMu.Unlock()
}

// context is what sessions dial under after their admission: the listener's serving context.
func (l *Listener) context() context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.serveCtx == nil {
		return context.Background()
	}
	return l.serveCtx
}

// closedChan returns the channel Close closes, creating it on first use so a zero Listener works.
func (l *Listener) closedChan() chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed == nil {
		l.closed = make(chan struct{})
	}
	return l.closed
}

// refuseWithSpare is the reserve-descriptor trick (nginx, libev): with no descriptor left to accept
// with, close a spare one, accept one client into it, and send it a RESP error. The refused connection
// then becomes the spare itself (answered and shut down, but not closed), so the descriptor is not given
// back for another goroutine to take before the spare is made again. It reports whether a client was
// refused.
func (l *Listener) refuseWithSpare(ln net.Listener, acceptErr error) bool {
	if !errors.Is(acceptErr, syscall.EMFILE) && !errors.Is(acceptErr, syscall.ENFILE) {
		return false
	}
	l.spareMu.Lock()
	defer l.spareMu.Unlock()
	defer l.topUpSpares()
	// Another goroutine (a probe, a backend dial) may take the freed number before Accept does; with
	// two spares, one lost race still leaves one for the next try.
	for i := range l.spares {
		if l.spares[i] == nil {
			continue
		}
		l.spares[i].Close()
		l.spares[i] = nil
		conn, err := ln.Accept()
		if err != nil {
			continue
		}
		l.refused.Add(1)
		// A short linger: every refusal holds up the accept loop, and the backlog may be long.
		answer(conn, fmt.Sprintf("%s is out of file descriptors; try again later", l.Name), 20*time.Millisecond)
		l.spares[i] = conn
		return true
	}
	return false
}

// topUpSpares opens spare descriptors where one is missing, while the process has some to give.
// spareMu must be held.
func (l *Listener) topUpSpares() {
	for i := range l.spares {
		if l.spares[i] == nil {
			f, err := os.Open(os.DevNull)
			if err != nil {
				return
			}
			l.spares[i] = f
		}
	}
}

func isTemporaryAccept(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.ECONNABORTED)
}

// serveClient admits one client: the connection limit, then a route (held while there is none), then
// the handler, which owns it from there. release must be called exactly once per admitted client.
func (l *Listener) serveClient(ctx context.Context, client net.Conn) {
	if tc, ok := client.(*tls.Conn); ok {
		timeout := l.HandshakeTimeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		hctx, cancel := context.WithTimeout(ctx, timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			// Not a session yet: counted, logged at debug (scanners would flood the log), closed.
			l.tlsErrs.Add(1)
			l.Log.Debug().Str("listener", l.Name).Str("remote", client.RemoteAddr().String()).Err(err).
				Msg("client TLS handshake failed")
			client.Close()
			l.wg.Done()
			return
		}
	}
	n := l.current.Add(1)
	l.total.Add(1)
	l.rate.add(time.Now())
	for p := l.peak.Load(); n > p && !l.peak.CompareAndSwap(p, n); p = l.peak.Load() {
	}
	if l.MaxConns > 0 && n > int64(l.MaxConns) {
		l.refused.Add(1)
		if l.atLimit.CompareAndSwap(false, true) {
			l.Log.Warn().Str("event", "max_conns_reached").Str("listener", l.Name).Int("max_conns", l.MaxConns).
				Msg("connection limit reached; new clients are refused until sessions end")
		}
		refuse(client, fmt.Sprintf("max connections (%d) reached on %s", l.MaxConns, l.Name))
		l.release()
		return
	}
	l.atLimit.Store(false)
	l.dispatch(&Client{Conn: client, l: l, adm: &admission{ctx: ctx, deadline: time.Now().Add(l.HoldTimeout)}})
}

// dispatch waits for a usable route (holding the client while there is none) and hands the client to
// the handler, or refuses it when the hold budget is spent.
func (l *Listener) dispatch(c *Client) {
	a := c.adm
	route := l.waitRoute(l.closedChan(), a.deadline, a.tried)
	if route == nil || len(route.Backends) == 0 {
		refusal := "no route yet"
		if route != nil {
			refusal = route.Refusal
		}
		c.Refuse(refusal)
		return
	}
	if route == a.tried {
		// The hold ran out with the same failed route: one last try, then refuse.
		a.deadline = time.Time{}
	}
	a.route = route
	l.Handler.Serve(c)
}

// connectFailed is Client.ConnectFailed: none of the route's backends could be reached. The client is
// held and retried on the next route within its hold budget, or refused.
func (l *Listener) connectFailed(c *Client, err error) {
	l.connErrs.Add(1)
	a := c.adm
	if l.OnBackendFailure != nil {
		for _, b := range a.route.Backends {
			l.OnBackendFailure(b)
		}
	}
	if !time.Now().Before(a.deadline) {
		l.logConnectFailure(err)
		c.Refuse(err.Error())
		return
	}
	a.tried = a.route
	l.dispatch(c)
}

// release ends an admitted client's life in the listener's counters.
func (l *Listener) release() {
	l.current.Add(-1)
	l.wg.Done()
}

// logConnectFailure logs at most one line a second: a dead backend under load must not flood the log.
func (l *Listener) logConnectFailure(err error) {
	now := time.Now().UnixNano()
	last := l.lastLog.Load()
	if now-last < int64(time.Second) || !l.lastLog.CompareAndSwap(last, now) {
		return
	}
	l.Log.Warn().Str("event", "backend_connect_failed").Str("listener", l.Name).Err(err).
		Uint64("connect_errors_total", l.connErrs.Load()).Msg("cannot reach backend")
}

// MasterChanged tells the listener that its group's master just changed: for a while
// (ReconfigurationWindow), a node that closes its clients and answers as a replica is taken to be
// Sentinel reconfiguring it (Client.Reconfiguring).
func (l *Listener) MasterChanged() { l.masterChanged.Store(time.Now().UnixNano()) }

// ReconfigurationWindow is how long after a master change Sentinel's reconfiguration of the replicas is
// expected to close their clients: it turns them one at a time (parallel-syncs), each after the last
// synced, within failover-timeout (3 minutes by default; syncs on a small dataset take seconds).
const ReconfigurationWindow = time.Minute

// logBackendClosed logs the sessions closed because their node closed their backend connection,
// in one line per second at most: a CLIENT KILL TYPE normal closes thousands at once. None goes unlogged.
func (l *Listener) logBackendClosed(backend string) {
	l.kills.add(backend, time.Second, func(closed map[string]uint64) {
		for _, b := range slices.Sorted(maps.Keys(closed)) {
			l.Log.Warn().Str("event", "sessions_closed_by_backend").Str("listener", l.Name).Str("backend", b).
				Uint64("sessions_closed", closed[b]).Uint64("closed_by_backend_total", l.killed.Load()).
				Msg("the node closed client connections while it stays alive and routed (CLIENT KILL, an output-buffer limit, timeout): their clients are closed as Redis closed them")
		}
	})
}

// countLog gathers events that come by the thousand (the sessions of one failover moving, a CLIENT
// KILL closing them) into one log line per key and period: the first event schedules the line, the
// others until it is written count in it.
type countLog struct {
	mu        sync.Mutex
	pending   map[string]uint64
	scheduled bool
}

// add counts one event for key; log gets the counts at most after, once.
func (c *countLog) add(key string, after time.Duration, log func(map[string]uint64)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = map[string]uint64{}
	}
	c.pending[key]++
	if c.scheduled {
		return
	}
	c.scheduled = true
	time.AfterFunc(after, func() {
		c.mu.Lock()
		pending := c.pending
		c.pending, c.scheduled = nil, false
		c.mu.Unlock()
		log(pending)
	})
}

// moveLogDelay is how long after a move its sessions_moved line waits for the other moves of the same
// failover: each session moves on its own turn, thousands within milliseconds.
const moveLogDelay = 100 * time.Millisecond

// noteMove counts one session's move off backend, and logs it within moveLogDelay. Every move counted
// (Stats.Moved) is in a line.
func (l *Listener) noteMove(backend string) {
	l.moved.Add(1)
	l.moves.add(backend, moveLogDelay, func(moved map[string]uint64) {
		for _, b := range slices.Sorted(maps.Keys(moved)) {
			l.Log.Info().Str("event", "sessions_moved").Str("listener", l.Name).Str("backend", b).
				Uint64("sessions_moved", moved[b]).Uint64("moved_total", l.moved.Load()).
				Msg("sessions left a node and stay open: each reconnects to the listener's route and replays its state")
		}
	})
}

// refuse tells the client why in a RESP error line, then closes. The write is bounded so a client that
// does not read cannot hold the goroutine.
func refuse(c net.Conn, reason string) {
	answer(c, reason, 200*time.Millisecond)
	_ = c.Close()
}

// answer writes the refusal line and shuts the write side, then gives the client linger to read it:
// closing a socket with unread input sends a RST, which could discard the line, so what the client sent
// is drained first. The caller closes c.
func answer(c net.Conn, reason string, linger time.Duration) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(RefusalLine(reason))
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		_ = tc.SetReadDeadline(time.Now().Add(linger))
		var buf [512]byte
		for {
			if _, err := tc.Read(buf[:]); err != nil {
				break
			}
		}
	}
}
