package proxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// ErrHoldUnsupported is what HoldCommands returns when the listener's sessions cannot hold commands in
// the proxy (tcp mode forwards bytes it does not read). A planned switchover then pauses writes on the
// master itself (CLIENT PAUSE WRITE).
var ErrHoldUnsupported = errors.New("this listener's sessions cannot hold commands")

// errHoldInForce: one hold at a time. A switchover runs one at a time, so a second hold is a mistake
// of the caller's; nesting them would let the first release free what the second still holds.
var errHoldInForce = errors.New("commands are already held")

// HoldingHandler is a Handler whose sessions can keep their clients' commands in the proxy: each
// session it registers is a CommandHolder.
type HoldingHandler interface {
	Handler
	// SessionsHoldCommands reports whether the sessions it serves are CommandHolders.
	SessionsHoldCommands() bool
}

// CommandHolder is a Session that reads its client's commands and can keep them in the proxy.
type CommandHolder interface {
	Session
	// HoldCommands tells the session that h is in force: it keeps every command it reads from now on,
	// sends none to a backend, and calls h.Answered once every command it sent before has been
	// answered. It is called from any goroutine and must not block.
	HoldCommands(h *CommandHold)
	// ReleaseCommands ends h: the session sends what it kept to the route in force now, in order. It
	// is called from any goroutine, after h.Released() became true, and must not block.
	ReleaseCommands(h *CommandHold)
}

// CommandHold is one HoldCommands of a listener, as its sessions see it. A session that was told of
// it (CommandHolder.HoldCommands) reports when it has nothing in flight; a session established during
// it learns of it from Client.CommandHold.
type CommandHold struct {
	released atomic.Bool
	mu       sync.Mutex
	waiting  map[Session]struct{} // sessions with commands in flight when the hold began
	answered chan struct{}        // closed once waiting is empty
	once     sync.Once
}

func newCommandHold(waiting []Session) *CommandHold {
	h := &CommandHold{waiting: make(map[Session]struct{}, len(waiting)), answered: make(chan struct{})}
	for _, s := range waiting {
		h.waiting[s] = struct{}{}
	}
	if len(h.waiting) == 0 {
		close(h.answered)
	}
	return h
}

// Answered tells the hold that s has no command in flight any more (or has ended). Calling it again
// does nothing.
func (h *CommandHold) Answered(s Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.waiting[s]; !ok {
		return
	}
	delete(h.waiting, s)
	if len(h.waiting) == 0 {
		close(h.answered)
	}
}

// Released reports whether the hold has ended. A session established during the hold checks it, in
// the same step as it takes the hold on, so that a release it was not told of does not leave it held.
func (h *CommandHold) Released() bool { return h.released.Load() }

// HoldCommands makes the listener's sessions keep new commands in the proxy, and returns once every
// command already sent to a backend has been answered. It is the proxy-side hold of a planned
// switchover; only resp-mode listeners (a HoldingHandler) can do it, the others return
// ErrHoldUnsupported.
//
// From the call on, no session of the listener, established or accepted during the hold, sends a new
// command to its backend: it keeps it, as it keeps commands while there is no master, but with no
// time limit (failover_hold does not apply; the caller's release ends the hold, and the switchover's
// timeout bounds it). The bound on what a session keeps is the one of any hold: a command longer than
// 64 KiB cannot be kept and is answered with an error. A session's idle move at a failover cut works
// as always: its connection state is replayed on the new backend; what it keeps stays kept.
//
// "In flight" is every command sent whose reply has not come, with these exceptions, which are not
// waited for because nothing says they will be answered soon: blocking commands (BLPOP and the like,
// XREAD and XREADGROUP, WAIT, WAITAOF; a write held in the proxy is what would unblock them),
// subscription commands, a MONITOR session (its commands pass through unread), and a replication link
// (SYNC or PSYNC through the proxy; its bytes pass through unread). At a failover cut these are treated
// as at any failover: a blocked command gets the "may or may not have been applied" error (a read is
// sent again), subscribers and MONITOR move to the new master, a replication link is closed. A client
// in the middle of sending a command when the hold begins is waited for: the rest of that command goes
// to the backend, and its reply is waited for.
//
// release lets every held command go to the route in force when it is called (after a failover, the
// new master; after an abort, the old one), each session's in the order its client sent them; a
// session with no backend then holds them for failover_hold, as at any failover. release is
// idempotent and may be called from any goroutine. When ctx ends before every command in flight is
// answered, the hold is released and ctx's error returned.
func (l *Listener) HoldCommands(ctx context.Context) (release func(), err error) {
	if hh, ok := l.Handler.(HoldingHandler); !ok || !hh.SessionsHoldCommands() {
		return nil, ErrHoldUnsupported
	}
	h, sessions, err := l.sessions.hold()
	if err != nil {
		return nil, fmt.Errorf("listener %s: hold commands: %w", l.Name, err)
	}
	release = func() {
		h.once.Do(func() {
			h.released.Store(true)
			for _, s := range l.sessions.unhold(h) {
				s.(CommandHolder).ReleaseCommands(h)
			}
		})
	}
	for _, s := range sessions {
		s.(CommandHolder).HoldCommands(h)
	}
	select {
	case <-h.answered:
		return release, nil
	case <-ctx.Done():
		release()
		return nil, fmt.Errorf("listener %s: wait for the commands in flight: %w", l.Name, ctx.Err())
	}
}

// CommandHold returns the hold that was in force when the session was established (nil for none): a
// CommandHolder takes it on before it reads its client, unless it is Released by then.
func (c *Client) CommandHold() *CommandHold { return c.hold }
