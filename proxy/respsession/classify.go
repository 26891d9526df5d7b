package respsession

import (
	"bytes"
	"strconv"
)

// budget is how many bytes of a command's arguments the session keeps, by name: all of them for the
// commands whose arguments are connection state it may have to replay (credentials, database, name,
// subscriptions, tracking), a few for the rest (enough for a subcommand's name).
func budget(name []byte) int {
	var buf [maxName]byte
	switch string(lowerInto(&buf, name)) {
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

// classify describes the command args (complete, as far as the budget kept them; name is its
// lower-cased name) as a queue entry: how many replies it gets, what they change, whether it may be
// sent again to another backend. It also applies at once what a command changes as it is sent rather
// than when it is answered: subscriptions, CLIENT REPLY, the protocol a HELLO asks for, an open
// transaction. ok is false for a command that gets no reply at all.
func (c *conv) classify(name []byte, args [][]byte) (e entry, ok bool) {
	var sub []byte
	if len(args) > 1 {
		sub = args[1]
	}
	e = entry{kind: viaBackend, replies: 1}
	tx := false
	switch string(name) {
	case "auth":
		e.effect = effAuth
		x := e.ext()
		switch len(args) {
		case 2:
			x.pass = string(args[1])
		case 3:
			x.user, x.pass = string(args[1]), string(args[2])
		}
	case "hello":
		e.effect, e.n = effHello, int32(c.proto)
		if len(args) > 1 {
			if v, err := strconv.Atoi(string(args[1])); err == nil && (v == 2 || v == 3) {
				e.n = int32(v)
				if !c.txOpen {
					c.proto = int8(v) // the replies after it come in the new protocol
				}
			}
		}
		for i := 2; i < len(args); i++ {
			switch {
			case equalFold(args[i], "auth") && i+2 < len(args):
				x := e.ext()
				x.auth, x.user, x.pass = true, string(args[i+1]), string(args[i+2])
				i += 2
			case equalFold(args[i], "setname") && i+1 < len(args):
				e.ext().name = string(args[i+1])
				i++
			}
		}
	case "select":
		e.effect = effSelect
		if len(args) == 2 {
			n, _ := strconv.Atoi(string(args[1]))
			e.n = int32(n)
		}
	case "client":
		switch {
		case equalFold(sub, "setname") && len(args) == 3:
			e.effect = effSetName
			e.ext().name = string(args[2])
		case equalFold(sub, "reply") && len(args) == 3:
			switch {
			case c.txOpen:
				// Queued: answered +QUEUED, in force after EXEC, which the session does not follow.
			case equalFold(args[2], "on"):
				// ON clears a SKIP too, and is answered itself (networking.c, clientCommand).
				e.effect = effReplyOn
				c.replyOff, c.skip = false, false
			case equalFold(args[2], "off"):
				c.replyOff, c.skip, c.st.replyOff = true, false, true // no reply confirms it: in force once sent
				return entry{}, false
			case equalFold(args[2], "skip"):
				c.skip = !c.replyOff // SKIP does nothing while replies are off
				return entry{}, false
			}
		case equalFold(sub, "tracking"):
			e.effect = effTracking
			e.ext().args = copyArgs(args)
		}
	case "multi":
		e.effect, tx = effMulti, true
		if !c.txOpen {
			c.txState, c.txWrite = nil, false
		}
		c.txOpen = true
	case "exec":
		e.effect, tx = effExec, true
		e.write, c.txWrite = c.txOpen && c.txWrite && c.durable() != nil, false
		if c.txOpen && len(c.txState) > 0 {
			e.ext().tx, c.txState = c.txState, nil // in force if the transaction runs
		}
		c.txOpen = false
		if c.watchSent {
			e.n = 1 // guarded by WATCH: lost in a failover, it can answer "aborted" (see inFlight)
		}
		c.watchSent = false
	case "discard":
		e.effect, tx = effDiscard, true
		c.txOpen, c.watchSent, c.txState, c.txWrite = false, false, nil, false
	case "watch":
		e.effect, tx = effWatch, true
		c.watchSent = true
	case "unwatch":
		e.effect, tx = effUnwatch, true
		c.watchSent, c.watchLost = false, false
	case "reset":
		e.effect = effReset
		c.txOpen, c.watchSent, c.replyOff, c.skip, c.proto = false, false, false, false, 2
		c.localTx, c.execNull, c.watchLost, c.txState, c.txWrite = false, false, false, nil, false
	case "monitor":
		e.effect = effMonitor
	case "quit":
		e.effect = effQuit
	case "sync", "psync":
		e.effect = effSync
	case "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe":
		unsub := bytes.HasSuffix(name, []byte("unsubscribe"))
		if c.txOpen || !unsub && len(args) < 2 {
			break // queued in a transaction, or refused for its arity: one reply, as for any command
		}
		return c.classifySubscription(name, args[1:], unsub)
	}
	if !tx {
		info := lookup(name, sub)
		if info != nil {
			e.resend = info.flags&flagReadonly != 0 || info.flags&(flagWrite|flagMayReplicate|flagAdmin) == 0
			e.blocks = info.flags&flagBlocking != 0
		}
		e.write = c.durable() != nil && mayWrite(name, args, info)
		e.nullNothing = e.write && nullWroteNothing(name, args, len(args) == c.cmd.Argc() && !c.cmd.Truncated())
		// WAIT and WAITAOF wait for replicas, not for keys, and Redis does not flag them blocking.
		e.blocks = e.blocks || string(name) == "wait" || string(name) == "waitaof"
	}
	if c.txOpen && e.effect != effMulti && e.effect != effQuit {
		// Queued, +QUEUED answers it. MULTI is refused in a transaction, QUIT and RESET run at once
		// (server.c, processCommand); RESET closed the transaction above. What a queued command sets
		// on the connection is in force once EXEC runs it.
		switch e.effect {
		case effAuth, effHello, effSelect, effSetName, effTracking:
			c.txState = append(c.txState, e)
		}
		// EXEC's reply waits for a WAIT if a write ran in it; a queued command blocks nothing.
		c.txWrite = c.txWrite || e.write
		e.effect, e.resend, e.blocks, e.write, e.x = effQueued, false, false, false, nil
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

// classifySubscription describes a (P|S)SUBSCRIBE or (P|S)UNSUBSCRIBE of names and applies it to the
// state as it is sent. Its confirmations are pushes to Redis (pubsub.c, CLIENT_PUSHING): they come even
// while replies are off or skipped, and the command consumes a CLIENT REPLY SKIP. In RESP2 they are
// replies the queue counts; in RESP3 they are pushes, which are nobody's reply.
func (c *conv) classifySubscription(name []byte, names [][]byte, unsub bool) (e entry, ok bool) {
	kind := subscriptionKind(name)
	e = entry{kind: viaBackend, effect: effSubscribe, resend: true, replies: int32(len(names))}
	if unsub {
		if len(names) == 0 {
			// One confirmation per name it drops, or one saying there was none.
			e.replies = int32(max(len(*c.st.subscriptions(kind)), 1))
		}
		c.st.unsubscribe(kind, names)
	} else {
		c.st.subscribe(kind, names)
	}
	c.skip = false
	if c.proto == 3 {
		return entry{}, false
	}
	return e, true
}

// subscriptionKind is 0, 'p' or 's' for the channel, pattern and shard commands.
func subscriptionKind(name []byte) byte {
	switch string(name) {
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
	x := e.x
	switch e.effect {
	case effAuth:
		st.user, st.pass, st.authed = x.user, x.pass, true
	case effHello:
		st.proto = int(e.n)
		if x != nil && x.auth {
			st.user, st.pass, st.authed = x.user, x.pass, true
		}
		if x != nil && x.name != "" {
			st.name = x.name
		}
	case effSelect:
		st.db = int(e.n)
	case effSetName:
		st.name = x.name
	case effReplyOn:
		st.replyOff = false
	case effMulti:
		st.inMulti = true
	case effExec:
		st.inMulti, st.watching = false, false
		if x != nil && !x.aborted {
			for i := range x.tx {
				c.applyEffect(&x.tx[i])
			}
			c.proto = int8(st.proto) // a HELLO it ran: the replies after it come in its protocol
		}
	case effDiscard:
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
		if len(x.args) > 2 && equalFold(x.args[2], "on") {
			st.listens().tracking = x.args
		} else if st.listening != nil {
			st.tracking = nil
		}
	}
}
