package proxy

import (
	"context"
	"errors"
)

// ErrHoldUnsupported is what HoldCommands returns when the listener's sessions cannot hold commands in
// the proxy (tcp mode forwards bytes it does not read; resp mode until sessions implement it). A planned
// switchover then pauses writes on the master itself (CLIENT PAUSE WRITE).
var ErrHoldUnsupported = errors.New("this listener's sessions cannot hold commands")

// HoldCommands makes the listener's sessions keep new commands in the proxy, and returns once every
// command already sent to a backend has been answered. release lets the held commands go to the route
// in force at that moment. It is the proxy-side hold of a planned switchover.
func (l *Listener) HoldCommands(ctx context.Context) (release func(), err error) {
	return nil, ErrHoldUnsupported
}
