package proxy

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// A Handler serves the clients a Listener admits. From Serve on it owns the client: its connection,
// the backend connection(s) it opens, and when each ends. The byte forwarder (package proxy/pipe) is a
// Handler; so is a session that reads RESP. Handlers know nothing of Sentinel: they reach backends
// through the Client, and the listener tells their sessions when a backend leaves its pool (Retire).
type Handler interface {
	// Serve takes over an admitted client whose route has backends. It must end the client's life in
	// the listener exactly once, by one of: Client.ConnectFailed (no backend could be reached; the
	// listener holds and retries it, or refuses it), Client.Refuse, Client.Release (after a session
	// that Client.Established refused), or Client.Ended (after a session). Serve may return before.
	Serve(c *Client)
	// Name says which handler it is, for logs and the stats page.
	Name() string
}

// Session is an established session as the listener sees it, whatever Handler runs it: the listener
// keeps them by backend, to close them (an operator's kill) or retire them (their backend left its pool).
type Session interface {
	// Backend is the address of the node the session uses now.
	Backend() string
	// Close ends the session at once. It is called from any goroutine and must not block.
	Close()
	// Retire tells the session that backend left its pool (a failover moved the master, a replica was
	// demoted or put in maintenance): if it still uses it, it must stop. A byte pipe can only close; a
	// session that reads RESP can move its client to the listener's new route. It is called from any
	// goroutine and must not block.
	Retire(backend string)
}

// Client is an admitted client on its way to a backend, and then in session: what a Handler needs from
// the listener that admitted it.
//
// A handler keeps its Client for the life of the session: it is small, since what only the way to a
// backend needs is dropped once the session is established.
type Client struct {
	// Conn is the client's connection (its TLS handshake done). A handler that takes the socket out of
	// Go's poller (an event loop) sets it to nil, and sets it again if it gives the socket back before
	// ConnectFailed.
	Conn net.Conn
	l    *Listener
	adm  *admission   // while on the way to a backend; nil in session
	hold *CommandHold // the listener's hold in force when the session was established (CommandHold)
}

// admission is what a client needs on its way to a backend: held, connecting, retrying.
type admission struct {
	ctx      context.Context
	deadline time.Time // end of the hold budget
	tried    *Route    // the route whose backends just failed, if any
	route    *Route
}

// Context ends when the listener stops serving.
func (c *Client) Context() context.Context {
	if c.adm != nil {
		return c.adm.ctx
	}
	return c.l.context()
}

// SessionConfig is the listener's SessionConfig: what its Handler reads for this client's session.
func (c *Client) SessionConfig() any { return c.l.SessionConfig }

// Listener is the name of the listener that admitted the client, for logs.
func (c *Client) Listener() string { return c.l.Name }

// ConnectTimeout bounds connecting to a backend (4s if the listener leaves it zero: HAProxy's seed
// `timeout connect`).
func (c *Client) ConnectTimeout() time.Duration {
	if c.l.ConnectTimeout <= 0 {
		return 4 * time.Second
	}
	return c.l.ConnectTimeout
}

// IdleTimeout is how long a session may go without traffic either way before it is closed; 0 is never.
func (c *Client) IdleTimeout() time.Duration { return c.l.IdleTimeout }

// Dial connects to the backend addr with the listener's dialer (TLS to the nodes, when set) and its
// connect timeout, for handlers that use net.Conns.
func (c *Client) Dial(addr string) (net.Conn, error) {
	dial := c.l.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	parent := c.l.context()
	if c.adm != nil {
		parent = c.adm.ctx
	}
	ctx, cancel := context.WithTimeout(parent, c.ConnectTimeout())
	defer cancel()
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
		_ = tc.SetKeepAlive(true)
	}
	return conn, nil
}

// ConnectFailed tells the listener that none of the route's backends could be reached. The client is
// held and retried on the next route within its hold budget (a master that just died is replaced in
// milliseconds, and the client need not see it), or refused with err. It blocks while the client is
// held, and may call the Handler's Serve again: call it on a goroutine that may block, with c.Conn set.
func (c *Client) ConnectFailed(err error) { c.l.connectFailed(c, err) }

// Established registers s, connected to s.Backend(), with the listener, and returns the counters its
// bytes go to. ok is false when the listener is closing: the handler then closes the session and calls
// Release.
func (c *Client) Established(s Session) (counters Counters, ok bool) {
	b, hold := c.l.sessions.add(s)
	if b == nil {
		return Counters{}, false
	}
	c.adm, c.hold = nil, hold
	return Counters{l: c.l, b: b}, true
}

// Ended unregisters a session that ended and releases its client.
func (c *Client) Ended(s Session) {
	c.l.sessions.remove(s)
	c.l.release()
}

// Release ends the client's life in the listener's counters, for a client that never got a session
// (Established refused it) or whose handler refused it on its own descriptor (see RefusalLine).
func (c *Client) Release() { c.l.release() }

// Refuse tells the client why in a RESP error line, closes it, and releases it: counted as refused.
func (c *Client) Refuse(reason string) {
	c.l.refused.Add(1)
	refuse(c.Conn, reason)
	c.l.release()
}

// Refused counts a refusal the handler made itself, on a descriptor of its own (see RefusalLine), and
// releases the client.
func (c *Client) Refused() {
	c.l.refused.Add(1)
	c.l.release()
}

// OutOfDescriptors is the refusal line for a client that cannot be served for want of descriptors.
func (c *Client) OutOfDescriptors() []byte {
	return RefusalLine(fmt.Sprintf("%s is out of file descriptors; try again later", c.l.Name))
}

// The methods below serve sessions that outlive their backend: a session that reads RESP moves its
// client to the listener's next route when its backend leaves (Session.Retire).

// Route returns the listener's route now: where a session moving off a departed backend goes, or, when
// it has no backends, why there is none.
func (c *Client) Route() (backends []string, start uint64, refusal string) {
	r := c.l.route.Load()
	if r == nil {
		return nil, 0, "no route yet"
	}
	return r.Backends, c.l.rr.Add(1), r.Refusal
}

// Routed reports whether addr is one of the listener's backends now. A session that connected to a
// backend read from an older route checks it once registered (Established or Moved): if a route change
// retired that backend between the read and the registration, the retirement missed the session, and
// the session must act on it itself. (RetireBackend runs after SetRoute, so a session registered before
// the retirement looked is found by it, and one registered after it sees the new route here.)
func (c *Client) Routed(addr string) bool {
	r := c.l.route.Load()
	return r != nil && slices.Contains(r.Backends, addr)
}

// WatchRoute calls fn after each change of the listener's route, until stop is called: a session
// waiting for a backend connects as soon as there is one. fn runs on the goroutine that changed the
// route and must not block (post to the session's loop).
func (c *Client) WatchRoute(fn func()) (stop func()) { return c.l.watchRoute(fn) }

// HoldTimeout is how long a command may wait for a backend when there is none ([proxy].failover_hold).
func (c *Client) HoldTimeout() time.Duration { return c.l.HoldTimeout }

// BackendFailed reports a backend that could not be reached, so the owner can check it at once.
func (c *Client) BackendFailed(addr string) {
	c.l.connErrs.Add(1)
	if c.l.OnBackendFailure != nil {
		c.l.OnBackendFailure(addr)
	}
}

// Reconfiguring reports whether the group's master changed within ReconfigurationWindow: a replica that
// closed its clients then was most likely turned to the new master by Sentinel (which sends CLIENT KILL
// TYPE normal with the SLAVEOF), and its sessions move rather than close.
func (c *Client) Reconfiguring() bool {
	at := c.l.masterChanged.Load()
	return at != 0 && time.Since(time.Unix(0, at)) < ReconfigurationWindow
}

// BackendClosed counts and logs a session closed because Redis closed its connection to backend, a node
// that stays alive and routed: the client is closed as Redis closed it (a kill is not a failover).
func (c *Client) BackendClosed(backend string) {
	c.l.killed.Add(1)
	c.l.logBackendClosed(backend)
}

// ResubscribeStarted says that a session with subscriptions left its backend and will subscribe again on
// the next: until it says ResubscribeDone with the round returned, a session arriving at a backend
// waits (AwaitSubscribers).
func (c *Client) ResubscribeStarted() (round uint64) { return c.l.subs.start() }

// ResubscribeDone says that a session counted by ResubscribeStarted is subscribed again, or gone.
func (c *Client) ResubscribeDone(round uint64) { c.l.subs.done(round) }

// AwaitSubscribers reports whether sessions are still subscribing again after a route change; if so,
// fn is called (on another goroutine) once they all are, or at most a second after this call, and the
// caller's commands wait until then.
func (c *Client) AwaitSubscribers(fn func()) bool { return c.l.subs.await(fn) }

// SubscribingSession is a Session that carries its subscriptions to the next backend (resp mode). The
// listener retires it with RetireCounted instead of Retire: it counted the session in round of its
// subscriber gate, and the session says ResubscribeDone(round) once it knows it has no subscription, or
// once it subscribed again; and in drains of its drain count, and the session says DrainDone(drains) once
// it knows it does not drain, or its drain ended.
type SubscribingSession interface {
	Session
	RetireCounted(backend string, round, drains uint64)
}

// DrainDone says that a session counted by RetireBackend does not drain its old backend, or finished.
func (c *Client) DrainDone(round uint64) { c.l.drains.done(round) }

// AwaitDrains reports whether sessions still drain a backend the route left; if so fn is called (on
// another goroutine) once none does, or at most a second after this call.
func (c *Client) AwaitDrains(fn func()) bool { return c.l.drains.await(fn) }

// Moved re-registers s, which used to be connected to from (empty: it was not connected), under its
// Backend() now (empty: none yet), and returns the counters its bytes go to from now on.
func (c *Client) Moved(s Session, from string) Counters {
	if from != "" && s.Backend() == "" {
		c.l.noteMove(from) // counted and logged as it leaves its backend
	}
	return Counters{l: c.l, b: c.l.sessions.move(s, from)}
}

// Counters add a session's bytes to its listener's and its backend's totals. The hot path only
// increments atomics.
type Counters struct {
	l *Listener
	b *backendCounters
}

// In counts n bytes from the client to the backend.
func (k Counters) In(n int) {
	k.l.bytesIn.Add(uint64(n))
	k.b.bytesIn.Add(uint64(n))
}

// Out counts n bytes from the backend to the client.
func (k Counters) Out(n int) {
	k.l.bytesOut.Add(uint64(n))
	k.b.bytesOut.Add(uint64(n))
}

// RefusalLine renders a RESP error reply that any Redis client shows to its user instead of hanging:
// "-ERR sentinel-proxy: <reason>".
func RefusalLine(reason string) []byte { return resp.AppendError(nil, "ERR sentinel-proxy: "+reason) }
