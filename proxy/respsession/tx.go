package respsession

import "github.com/sentinel-proxy/sentinel-proxy/resp"

// A transaction open at a failover (MULTI sent, EXEC not yet) was queued on a master the session left:
// Redis discards it with the connection. The commands the client queued are known, so the session
// queues them again on the next master, answering QUEUED meanwhile as Redis would, and the client's
// EXEC runs there: the client sees its transaction run once, where the writes stay. A WATCH cannot be
// carried (the keys it guarded may have changed on the way): such a transaction's EXEC answers null,
// "aborted", as when a watched key changed.

// carriedTx marks the swallowed entry of a carried transaction's MULTI and queued commands (entry.n): a
// refusal there is the transaction's, which its EXEC reports, not the session's.
const carriedTx = 1

// noteTx keeps the bytes of the open transaction's commands as they go out (sent: forwarded as they
// came; wasTx: the transaction was open before this command). One held for want of a backend, or too
// long to keep, makes the transaction one that cannot be carried.
func (c *conv) noteTx(wasTx, sent bool, raw []byte) {
	switch {
	case !c.txOpen:
		c.txBytes, c.txQueued, c.txCarryable = c.txBytes[:0], 0, false
		return
	case !wasTx: // MULTI
		c.txBytes, c.txQueued, c.txCarryable = append(c.txBytes[:0], raw...), 0, sent && len(raw) > 0
		return
	}
	if !sent || len(raw) == 0 || len(c.txBytes)+len(raw) > maxKept {
		c.txCarryable = false
		return
	}
	c.txBytes = append(c.txBytes, raw...)
	c.txQueued++
}

// answerLocally answers a command of a transaction lost with the old master (localAnswer); a carried
// one keeps the command to queue it again, and its EXEC goes to the next master with it.
func (c *conv) answerLocally(name []byte, args [][]byte) {
	if !c.txCarry {
		c.pushLocal(c.localAnswer(name))
		return
	}
	raw := c.kept.get(span{off: c.keptFrom, n: int32(c.kept.base + int64(len(c.kept.buf)) - c.keptFrom)})
	switch string(name) {
	case "exec":
		c.carryTx(raw)
	case "discard":
		c.txCarry = false
		c.txBytes = c.txBytes[:0]
		c.pushLocal(c.localAnswer(name))
	case "multi", "watch":
		c.pushLocal(c.localAnswer(name)) // refused inside MULTI, which goes on
	default:
		if !c.keep || len(c.txBytes)+len(raw) > maxKept {
			c.txCarry = false // too long to carry: its EXEC answers EXECABORT, as before
			c.pushLocal(c.localAnswer(name))
			break
		}
		c.txBytes = append(c.txBytes, raw...)
		c.txQueued++
		c.pushLocal(resp.AppendSimple(nil, "QUEUED"))
	}
	c.unkeep()
	c.keep = false
}

// carryTx holds the transaction for the next master: its MULTI and queued commands, whose replies the
// client had already (QUEUED), then its EXEC, whose reply is the client's.
func (c *conv) carryTx(exec []byte) {
	c.localTx, c.execNull, c.txCarry = false, false, false
	until := c.env.now() + c.holdNs
	exec = append([]byte(nil), exec...) // the arena's order is the queue's: EXEC's bytes go after the rest
	c.unkeep()
	c.keep = false
	queued := c.kept.add(c.txBytes)
	c.q.push(entry{kind: swallowed, raw: queued, replies: 1 + c.txQueued, n: carriedTx, heldUntil: until})
	c.q.push(entry{kind: viaBackend, effect: effExec, raw: c.kept.add(exec), replies: 1, heldUntil: until,
		write: c.durable() != nil, nullNothing: true})
	c.txBytes, c.txQueued = c.txBytes[:0], 0
	if c.attached && !c.holding && !c.gated && !c.draining {
		if c.mux != nil {
			c.muxHeld = true
		} else {
			c.out.toBackend(c.sendHeld(nil))
		}
	}
}
