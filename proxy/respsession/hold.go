package respsession

// A planned switchover holds a listener's commands in the proxy (proxy.Listener.HoldCommands). The
// conversation keeps them as it keeps the commands that arrive while there is no backend, in the same
// queue and arena, with the same bound on a command's length, but with a backend too and with no time
// limit; they go out, in order, at releaseCommands or, if the backend left meanwhile, at the next
// attach after it.

// maxKeptBytes bounds the commands a session keeps in the proxy (held, or kept to send again) before it
// stops reading its client, and it reads again once they are down to half. Without it a client
// pipelining writes into a hold (a switchover's, or a failover's while there is no master) would grow
// the proxy's memory for as long as the hold lasts; with it the client's writes wait in its socket, as
// they would against a Redis that stopped reading.
const maxKeptBytes = 1 << 20

// keptFull reports whether the session should stop reading its client: it keeps over maxKeptBytes.
func (c *conv) keptFull() bool { return len(c.kept.buf) > maxKeptBytes }

// keptRoom reports whether a session that stopped reading its client may read again.
func (c *conv) keptRoom() bool { return len(c.kept.buf) <= maxKeptBytes/2 }

// holdCommands makes the conversation keep every command it reads from now on. A WAIT owed for the
// writes before it goes first: the hold waits for its answer, so the writes it confirms are confirmed
// before the switchover moves the master.
func (c *conv) holdCommands() {
	if c.waitWanted() {
		c.sendWait()
	}
	c.holding = true
}

// releaseCommands ends the hold, and returns what to send the backend now: the commands held, in
// order. With no backend, they stay held, for the hold of a failover from now: the next attach sends
// them.
func (c *conv) releaseCommands() []byte {
	if !c.holding {
		return nil
	}
	c.holding = false
	if c.gated {
		return nil // subscribers are still subscribing again: ungate sends them
	}
	if c.attached && c.mux != nil {
		c.muxHeld = true // its session sends them, one by one
		return nil
	}
	if c.attached {
		return c.sendHeld(nil)
	}
	until := c.env.now() + c.holdNs
	for i := 0; i < c.q.len(); i++ {
		if e := c.q.at(i); e.kind == viaBackend && !e.sent {
			e.heldUntil = until
		}
	}
	return nil
}

// ungate is told that the subscribers re-subscribed (or their bound passed): it returns what to send the
// backend now, the commands held meanwhile.
func (c *conv) ungate() []byte {
	if !c.gated {
		return nil
	}
	c.gated = false
	switch {
	case c.holding || !c.attached:
		return nil
	case c.mux != nil:
		c.muxHeld = true // its session sends them, one by one
		return nil
	}
	return c.sendHeld(nil)
}

// resubscribed reports whether the session, attached, has its subscriptions confirmed by its backend:
// no replay is unanswered, and no confirmation that comes as a push is still expected.
func (c *conv) resubscribed() bool {
	if !c.attached || c.dropPush > 0 {
		return false
	}
	for i := 0; i < c.q.len(); i++ {
		if e := c.q.at(i); e.kind == swallowed && e.sent {
			return false
		}
	}
	return true
}

// answered reports whether every command sent to the backend has had its reply, as a switchover's hold
// waits for it. Not waited for, since nothing says their reply comes soon: blocking commands (only a
// write, which the hold keeps, would unblock most of them), subscription commands, a MONITOR session
// and a replication link (their bytes pass unread, see conv.passthrough and conv.replica). A command the
// client was sending to the backend when the hold began is: the rest of it follows, then its reply. So are
// write replies held for a WAIT (wait_replicas): their confirmation.
func (c *conv) answered() bool {
	if c.replica || c.passthrough {
		return true
	}
	if c.held != nil {
		return false // write replies wait for a WAIT (durable.go): a cut now would refuse them
	}
	if c.cmd.InCommand() && c.disp == forward {
		return false
	}
	for i := 0; i < c.q.len(); i++ {
		e := c.q.at(i)
		if (e.kind == viaBackend || e.kind == confirm) && e.sent && e.replies > 0 && !e.blocks && e.effect != effSubscribe {
			return false
		}
	}
	return true
}
