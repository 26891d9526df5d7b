package respsession

import (
	"bytes"
	"strconv"
	"strings"
)

// budget is how many bytes of a command's arguments the session keeps, by name: all of them for the
// commands whose arguments are connection state it may have to replay (credentials, database, name,
// subscriptions, tracking), a few for the rest (enough for a subcommand's name).
func budget(name []byte) int {
	switch lower(name) {
	case "auth", "hello", "select", "client", "subscribe", "psubscribe", "ssubscribe", "unsubscribe",
		"punsubscribe", "sunsubscribe":
		return 1 << 20
	}
	return 64
}

// maxKept is the longest command the session keeps whole: to send again after a failover (a read in
// flight) or to send later (held while there is no master). Longer ones are forwarded as they stream,
// and are not sent again.
const maxKept = 64 << 10

// isTx reports whether name is one of the commands that make or end a transaction.
func isTx(name string) bool {
	switch name {
	case "multi", "exec", "discard", "watch", "unwatch":
		return true
	}
	return false
}

// classify describes the command args (complete, as far as the budget kept them) as a queue entry:
// how many replies it gets, what they change, whether it may be sent again to another backend. It
// also applies at once what a command changes as it is sent rather than when it is answered:
// subscriptions, CLIENT REPLY, the protocol a HELLO asks for, an open transaction. ok is false for a
// command that gets no reply at all.
func (c *conv) classify(args [][]byte) (e entry, ok bool) {
	name := lower(args[0])
	var sub []byte
	if len(args) > 1 {
		sub = args[1]
	}
	info := lookup(args[0], sub)
	e = entry{kind: viaBackend, replies: 1}
	if info != nil && !isTx(name) {
		e.resend = info.flags&flagReadonly != 0 || info.flags&(flagWrite|flagMayReplicate|flagAdmin) == 0
	}
	switch name {
	case "auth":
		e.effect = effAuth
		switch len(args) {
		case 2:
			e.pass = string(args[1])
		case 3:
			e.user, e.pass = string(args[1]), string(args[2])
		}
	case "hello":
		e.effect, e.n = effHello, c.proto
		if len(args) > 1 {
			if v, err := strconv.Atoi(string(args[1])); err == nil && (v == 2 || v == 3) {
				e.n = v
				c.proto = v // the replies after it come in the new protocol
			}
		}
		for i := 2; i < len(args); i++ {
			switch strings.ToLower(string(args[i])) {
			case "auth":
				if i+2 < len(args) {
					e.auth, e.user, e.pass = true, string(args[i+1]), string(args[i+2])
					i += 2
				}
			case "setname":
				if i+1 < len(args) {
					e.name = string(args[i+1])
					i++
				}
			}
		}
	case "select":
		e.effect = effSelect
		if len(args) == 2 {
			e.n, _ = strconv.Atoi(string(args[1]))
		}
	case "client":
		switch lower(sub) {
		case "setname":
			if len(args) == 3 {
				e.effect, e.name = effSetName, string(args[2])
			}
		case "reply":
			if len(args) == 3 {
				switch lower(args[2]) {
				case "on":
					e.effect = effReplyOn
					c.replyOff = false
				case "off":
					c.replyOff = true
					return entry{}, false
				case "skip":
					c.skip = true
					return entry{}, false
				}
			}
		case "tracking":
			e.effect, e.args = effTracking, copyArgs(args)
		}
	case "multi":
		e.effect = effMulti
		c.txOpen = true
	case "exec":
		e.effect = effExec
		c.txOpen = false
		if c.watchSent {
			e.n = 1 // guarded by WATCH: lost in a failover, it can answer "aborted" (see inFlight)
		}
		c.watchSent = false
	case "discard":
		e.effect = effDiscard
		c.txOpen, c.watchSent = false, false
	case "watch":
		e.effect = effWatch
		c.watchSent = true
	case "unwatch":
		e.effect = effUnwatch
		c.watchSent = false
	case "reset":
		e.effect = effReset
		c.txOpen, c.watchSent, c.replyOff, c.skip, c.proto = false, false, false, false, 2
	case "monitor":
		e.effect = effMonitor
	case "quit":
		e.effect = effQuit
	case "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe":
		kind := subscriptionKind(name)
		names := args[1:]
		if strings.HasSuffix(name, "unsubscribe") {
			list := *c.st.subscriptions(kind)
			e.replies = len(names)
			if len(names) == 0 {
				e.replies = max(len(list), 1) // one confirmation per name it drops, or one saying none
			}
			c.st.unsubscribe(kind, names)
		} else {
			e.replies = len(names)
			c.st.subscribe(kind, names)
		}
		e.effect, e.resend = effSubscribe, true
		if c.proto == 3 {
			return entry{}, false // the confirmations come as pushes
		}
	}
	if c.txOpen && e.effect != effMulti {
		e.effect, e.resend = effQueued, false
	}
	if c.replyOff {
		return entry{}, false
	}
	if c.skip {
		c.skip = false
		return entry{}, false
	}
	return e, true
}

// subscriptionKind is 0, 'p' or 's' for the channel, pattern and shard commands.
func subscriptionKind(name string) byte {
	switch name {
	case "psubscribe", "punsubscribe":
		return 'p'
	case "ssubscribe", "sunsubscribe":
		return 's'
	}
	return 0
}

func copyArgs(args [][]byte) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = bytes.Clone(a)
	}
	return out
}

// applyEffect changes the connection's state for e's reply, which was not an error.
func (c *conv) applyEffect(e *entry) {
	st := &c.st
	switch e.effect {
	case effAuth:
		st.user, st.pass, st.authed = e.user, e.pass, true
	case effHello:
		st.proto = e.n
		if e.auth {
			st.user, st.pass, st.authed = e.user, e.pass, true
		}
		if e.name != "" {
			st.name = e.name
		}
	case effSelect:
		st.db = e.n
	case effSetName:
		st.name = e.name
	case effMulti:
		st.inMulti = true
	case effExec, effDiscard:
		st.inMulti, st.watching = false, false
	case effWatch:
		st.watching = true
	case effUnwatch:
		st.watching = false
	case effReset:
		st.reset()
	case effMonitor:
		st.monitor = true
	case effTracking:
		if len(e.args) > 2 && strings.EqualFold(string(e.args[2]), "on") {
			st.tracking = e.args
		} else {
			st.tracking = nil
		}
	}
}
