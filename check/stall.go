package check

import (
	"errors"
	"strings"
)

// Stall names a probe failure that shows a node alive but unable to answer now, as opposed to one that
// shows it gone (refused, reset) or wrong (bad password, garbage). Redis stalls for seconds in normal
// operation: a long script or function, a KEYS on a big keyspace, a large DEL or FLUSHALL, loading its
// dataset, a fork on a big heap, a paging host. Sentinel's down-after-milliseconds exists so that such
// stalls are not failovers; the proxy's probes must not turn them into outages of their own, so a
// stalled probe says nothing about whether the node is UP or DOWN (see routing).
type Stall string

const (
	// StallBusy is a -BUSY reply: a script, a function or a module command is running past
	// busy-reply-threshold and Redis answers every other command with -BUSY.
	StallBusy Stall = "busy"
	// StallLoading is a -LOADING reply: the node is loading its dataset into memory.
	StallLoading Stall = "loading"
	// StallUnresponsive is a probe that timed out, connecting or waiting for a reply: Redis runs its
	// commands on one thread, so a node in the middle of a long command (or stopped, or paging) answers
	// nothing, although the kernel still completes its TCP handshakes.
	StallUnresponsive Stall = "unresponsive"
)

// Stall says whether the probe failed because the node is stalled, and how; "" when it succeeded or
// failed for another reason.
func (r Result) Stall() Stall {
	switch r.Status {
	case L4TOUT, L7TOUT:
		return StallUnresponsive
	case L7STS:
		var redisErr RedisError
		if !errors.As(r.Err, &redisErr) {
			return ""
		}
		switch code, _, _ := strings.Cut(string(redisErr), " "); code {
		case "BUSY":
			return StallBusy
		case "LOADING":
			return StallLoading
		}
	}
	return ""
}
