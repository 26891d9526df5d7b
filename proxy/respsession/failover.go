package respsession

import (
	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// Answers for commands a failover caught in flight.
var (
	mayHaveApplied = resp.AppendError(nil, "ERR sentinel-proxy: the master changed while this command was in flight: "+
		"it may or may not have been applied")
	// invalidateAll is the RESP3 push that tells a client using client-side caching to drop every key:
	// its tracking moved to a backend that does not know what it cached.
	invalidateAll = []byte(">2\r\n$10\r\ninvalidate\r\n_\r\n")
)

// detach is told that the backend connection is gone (a failover moved the route, or the backend
// closed it). It works out what each command in flight gets: a read, or a command that only sets
// connection state, is sent again to the next backend; any other gets an error saying it may or may not
// have been applied; a transaction's commands are answered as a discarded transaction's. It returns
// errCannotMove when the client cannot go on unnoticed: part of a reply already reached it, it tracks
// keys for another connection (RESP2 tracking redirects to a client id the new backend does not have),
// or it is a replica reading the replication stream.
func (c *conv) detach() error {
	if !c.attached && !c.suspended {
		return nil
	}
	c.attached, c.suspended = false, false
	c.muxKeyWait = false // its reply was to come on the connection that is gone
	c.unwaited, c.holdingWrite = false, false
	// A drain that finished leaves what it held to the new master's word (verdictPending); one cut
	// short (its bound, or the connection broke) did not learn where the old master stood.
	drained := c.draining && c.drainDone
	c.draining, c.drainDone, c.idAsked, c.connID, c.capture, c.nullUnblocked = false, false, false, 0, false, false
	c.probeBuf = c.probeBuf[:0]
	if h := c.held; h != nil && !drained {
		if c.inReply && !c.swallow {
			// The value part-way in reached nobody: it is dropped, and its command is in flight.
			if h.open >= 0 {
				h.open = -1
				c.dur.waiting.Add(-1)
			}
			h.buf = h.buf[:h.cur]
			if e := c.q.front(); c.toEntry && e != nil {
				e.started = false
			}
			c.inReply = false
		}
		// The write replies that waited for a WAIT came from a master that is gone before the WAIT
		// said anything: whether they will be on the next one is not known.
		c.releaseHeld(false, mayHaveApplied, 0, "the master changed before a WAIT confirmed them")
	}
	if c.inReply && !c.swallow || c.replica {
		return errCannotMove
	}
	if c.st.tracked() != nil && c.st.proto == 2 {
		return errCannotMove
	}
	if c.cmd.InCommand() && c.disp == forward {
		// The client was sending a command to the old backend, which never got all of it, so it did
		// not run: the rest is kept, and the whole is sent to the next backend. One too long to keep
		// gets an error once read.
		c.disp = hold
		if !c.keep {
			c.disp = drop
		}
	}
	c.inReply, c.peek = false, nil
	c.rep.Reset()
	c.dropPush = 0
	c.passthrough = false // until the replayed MONITOR is acknowledged
	watching := c.st.watching || c.watchSent
	if c.txOpen {
		c.localTx = true // the client is inside MULTI: the rest of it is answered here
		c.execNull = watching || c.watchLost
		// Without a WATCH the transaction moves: its commands are queued again on the next master, and
		// its EXEC runs there (tx.go).
		c.txCarry = !c.execNull && c.txCarryable
	} else if watching {
		c.watchLost = true
	}
	c.st.inMulti, c.st.watching, c.txOpen, c.watchSent = false, false, false, false
	if c.st.tracked() != nil {
		c.invalidate = true
	}
	var kept []entry
	for i := 0; i < c.q.len(); i++ {
		e := *c.q.at(i)
		switch {
		case (e.kind == swallowed || e.kind == confirm || e.kind == probe) && e.sent:
			continue // a replay that did not finish: the next one says it all again; a WAIT or probe of the old one
		case e.kind == local || !e.sent:
			kept = append(kept, e)
			continue
		case e.replies <= 0:
			continue
		}
		e.unblocking = false
		kept = append(kept, c.inFlight(e))
	}
	c.q = queue{items: kept}
	if c.moveBlocked != nil {
		// Released at the old master with nothing taken: it goes to the next one, first of what waits.
		raw := c.kept.add(c.moveBlocked)
		c.q.insertSent(entry{kind: viaBackend, raw: raw, blocks: true, n: c.moveBlockedMs, heldUntil: c.env.now() + c.holdNs, replies: 1})
		c.moveBlocked = nil
	}
	if drained {
		c.verdictPending = c.held != nil && (len(c.held.writes) > 0 || c.held.open >= 0)
		if !c.verdictPending && c.held != nil && c.durable() == nil {
			c.releaseHeld(true, nil, 0, "") // nothing written: what was drained goes as it came
		}
	}
	if err := c.emitLocal(); err != nil {
		return err
	}
	if in := c.suspendedIn; len(in) > 0 {
		c.suspendedIn = nil
		return c.fromClient(in) // what the client sent while the session did not know where it goes
	}
	return nil
}

// suspend stops sending to the backend, whose connection closed, until the session knows whether its
// node killed the client (the session ends) or died (detach): commands are held meanwhile, and what was
// in flight is left as it is.
func (c *conv) suspend() {
	if c.attached {
		c.attached, c.suspended = false, true
	}
}

// mayBeKilled reports whether the closing of the session's backend connection may have been meant for
// its client: its own connection, or a shared one that carried commands of its still unanswered. A
// session that owed nothing on a shared connection lost nothing with it, and moves unnoticed.
func (c *conv) mayBeKilled() bool {
	if c.mux == nil {
		return true
	}
	for i := 0; i < c.q.len(); i++ {
		if e := c.q.at(i); e.kind == viaBackend && e.sent && e.replies > 0 {
			return true
		}
	}
	return false
}

// inFlight is what becomes of a command sent to the backend that left before answering it.
func (c *conv) inFlight(e entry) entry {
	answer := func(reply []byte) entry { return entry{kind: local, effect: e.effect, raw: c.said.add(reply)} }
	switch e.effect {
	case effQueued:
		return answer(resp.AppendSimple(nil, "QUEUED"))
	case effMulti:
		return answer(resp.AppendSimple(nil, "OK"))
	case effDiscard, effUnwatch:
		if e.effect == effUnwatch {
			c.watchLost = false
		}
		return answer(resp.AppendSimple(nil, "OK"))
	case effWatch:
		c.watchLost = true
		return answer(resp.AppendSimple(nil, "OK"))
	case effReset:
		c.st.reset()
		c.watchLost, c.localTx = false, false
		return answer(resp.AppendSimple(nil, "RESET"))
	case effQuit:
		return answer(resp.AppendSimple(nil, "OK"))
	}
	// An EXEC in flight, watched or not, is a write like any other: whether it ran is not known. A null
	// reply ("a watched key changed") would be a lie when it did run, and the client would apply its
	// transaction a second time on a fresh read.
	if e.resend && e.raw.n > 0 {
		// Held like a command that arrives now: sent to the next backend, or refused when the hold
		// runs out before there is one.
		e.sent, e.started, e.heldUntil = false, false, c.env.now()+c.holdNs
		return e
	}
	return answer(mayHaveApplied)
}

// attach is told that a new backend connection is up. It returns what to send on it first, in order:
// the commands that put it in the client's state (their replies are swallowed), then the commands to
// send again and those held meanwhile.
func (c *conv) attach() []byte { return c.attachWith(nil, true) }

// attachWith is attach for a session that leaves a shared connection (leaveMux): between goes right
// after the replay, the commands it forwarded there that did not go out, and a command held as it
// streams in goes out as it comes (held, it could outgrow what a hold keeps). Without replay the
// connection has the client's state already (a shared connection's spare, see pool.takeSpare).
func (c *conv) attachWith(between []byte, replay bool) []byte {
	fromMux := c.privateSoon
	c.attached, c.privateSoon = true, false
	st := c.st
	if fromMux {
		// A shared connection had no subscriptions and replies on: those in the state were set by
		// commands still held (classify applies them as they are sent), which say them themselves, in
		// their turn.
		st.listening, st.replyOff = nil, false
	}
	var out []byte
	var replies, pushes int
	if replay {
		out, replies, pushes = st.replay(nil)
	}
	if replies > 0 {
		c.q.pushFront(entry{kind: swallowed, replies: int32(replies), sent: true})
	}
	if c.verdictPending {
		// Where the new master's history stands, before anything of the client's (drain.go).
		out = append(out, infoReplication...)
		c.q.insertSent(entry{kind: probe, n: probeNew, replies: 1, sent: true})
	}
	out = append(out, between...)
	c.dropPush += int32(pushes)
	if c.st.monitor && replies == 0 {
		c.passthrough = true
	}
	if !c.holding && !c.gated {
		out = c.sendHeld(out)
		if fromMux {
			out = append(out, c.streamHeld()...)
		}
	}
	if c.invalidate {
		c.invalidate = false
		if c.st.proto == 3 {
			c.client(invalidateAll)
		}
	}
	return out
}

// sendHeld appends to out the commands held, in order, and marks them sent; a WAIT follows writes
// among them (durable.go).
func (c *conv) sendHeld(out []byte) []byte {
	now := c.env.now()
	for i := 0; i < c.q.len(); i++ {
		e := c.q.at(i)
		if (e.kind != viaBackend && e.kind != swallowed) || e.sent {
			continue
		}
		if e.blocks && c.connID == 0 && !c.idAsked && c.askID() {
			// CLIENT ID goes first: a drain may have to release it (drain.go).
			out = append(out, clientIDCommand...)
			c.q.items = append(c.q.items, entry{})
			at := c.q.head + i
			copy(c.q.items[at+1:], c.q.items[at:])
			c.q.items[at] = entry{kind: probe, n: probeID, replies: 1, sent: true}
			i++
			e = c.q.at(i)
		}
		out = append(out, c.kept.get(e.raw)...)
		e.sent = true
		if e.blocks {
			e.heldUntil = now
		}
		c.unwaited = c.unwaited || (e.write && c.mux == nil)
	}
	return c.appendWait(out)
}

// needsBackend reports whether the session should connect now rather than wait for the client's next
// command: commands wait for a backend, or the client listens (subscriptions, MONITOR, or CLIENT
// TRACKING: a caching client serves its cache without asking, so it must get the full invalidation, and
// the new master's, without sending a command first).
func (c *conv) needsBackend() bool {
	if c.attached {
		return false
	}
	if c.st.subscribed() || c.st.monitor || c.st.tracked() != nil || c.verdictPending {
		return true
	}
	for i := 0; i < c.q.len(); i++ {
		if e := c.q.at(i); (e.kind == viaBackend || e.kind == swallowed) && !e.sent {
			return true
		}
	}
	return false
}

// expireHolds answers, with the refusal, every held command whose hold ran out by now (unix
// nanoseconds), and returns the earliest deadline of those still held (0 for none).
func (c *conv) expireHolds(now int64) (next int64, err error) {
	if c.holding {
		return 0, nil // a switchover's hold has no time limit: its release ends it
	}
	for i := 0; i < c.q.len(); i++ {
		e := c.q.at(i)
		if (e.kind != viaBackend && e.kind != swallowed) || e.sent {
			continue
		}
		if e.heldUntil <= now {
			if e.kind == swallowed {
				*e = entry{kind: local} // a carried transaction's queue: its EXEC gets the refusal
				continue
			}
			*e = entry{kind: local, raw: c.said.add(resp.AppendError(nil, "ERR sentinel-proxy: "+c.env.refusal()))}
			continue
		}
		if next == 0 || e.heldUntil < next {
			next = e.heldUntil
		}
	}
	return next, c.emitLocal()
}
