package proxy

import (
	"errors"
	"fmt"
	"net"
)

// The end of a client's way to a backend is the same for every handler, whatever drives its sockets:
// the route's backends tried in turn, the session registered, the route checked once more. A handler
// does its connects; this file does the rest.

// Attempts walks a route's backends for one connect: in round-robin order from the listener's counter,
// each once. Each failure is kept wrapped with its backend's address, so that a refusal line names it.
type Attempts struct {
	c        *Client
	backends []string
	start    uint64
	tried    int
	errs     []error
	refusal  string // why the route had no backend
}

// Attempts returns the walk of the route that admitted the client, before it is in session; in session
// (a session moving off a backend that left), of the listener's route now.
func (c *Client) Attempts() Attempts {
	if c.adm != nil {
		return Attempts{c: c, backends: c.adm.route.Backends, start: c.l.rr.Add(1)}
	}
	backends, start, refusal := c.Route()
	return Attempts{c: c, backends: backends, start: start, refusal: refusal}
}

// Next returns the next backend to try; false once each was tried.
func (a *Attempts) Next() (addr string, ok bool) {
	if a.tried >= len(a.backends) {
		return "", false
	}
	addr = a.backends[(a.start+uint64(a.tried))%uint64(len(a.backends))]
	a.tried++
	return addr, true
}

// Failed records that addr could not be reached. A client in session reports it to the listener's
// owner at once (BackendFailed); one being admitted does not: ConnectFailed reports the route.
func (a *Attempts) Failed(addr string, err error) {
	a.errs = append(a.errs, fmt.Errorf("backend %s: %w", addr, err))
	if a.c.adm == nil {
		a.c.BackendFailed(addr)
	}
}

// Err says why no backend could be reached: every failure, or why the route has none.
func (a *Attempts) Err() error {
	if len(a.errs) > 0 {
		return errors.Join(a.errs...)
	}
	if a.refusal != "" {
		return errors.New(a.refusal)
	}
	return errors.New("no backend")
}

// Arrival is how a session's registration at a backend went (Client.Arrived).
type Arrival uint8

const (
	// Registered: the session is registered at its backend, which the route has.
	Registered Arrival = iota
	// ListenerClosing: not registered, the listener is closing. The handler closes the session and
	// calls Release.
	ListenerClosing
	// RouteMoved: registered, but the route left the backend while the session connected to it, and
	// the backend's retirement did not see the session (RetireBackend runs after SetRoute, so a session
	// registered before the retirement looked is found by it, and one registered after sees the new
	// route here). The handler acts as on a retirement: a byte pipe closes, a session that can move
	// moves.
	RouteMoved
)

// Arrived registers s at the backend it just connected to, s.Backend(): the end of the client's
// admission for its first backend (the session is established), or of a move (from is the backend
// it was registered at, "" between backends). It returns the counters its bytes go to from now on.
func (c *Client) Arrived(s Session, from string) (Counters, Arrival) {
	var counters Counters
	if c.adm != nil {
		var ok bool
		if counters, ok = c.Established(s); !ok {
			return Counters{}, ListenerClosing
		}
	} else {
		counters = c.Moved(s, from)
	}
	if !c.Routed(s.Backend()) {
		return counters, RouteMoved
	}
	return counters, Registered
}

// HandBack is ConnectFailed for a handler that must not block (an event loop) and took the client's
// socket out of Go's poller: conn is the socket given back as a net.Conn, and the listener holds and
// retries the client on a goroutine of its own. A nil conn means the socket could not be given back
// (out of descriptors): the handler wrote OutOfDescriptors on it, and the client counts as refused.
func (c *Client) HandBack(conn net.Conn, err error) {
	if conn == nil {
		c.Refused()
		return
	}
	c.Conn = conn
	go c.ConnectFailed(err)
}
