package respsession

// A planned switchover holds a listener's commands in the proxy (proxy.Listener.HoldCommands). The
// conversation keeps them as it keeps the commands that arrive while there is no backend, in the same
// queue and arena, with the same bound on a command's length, but with a backend too and with no time
// limit; they go out, in order, at releaseCommands or, if the backend left meanwhile, at the next
// attach after it.

// holdCommands makes the conversation keep every command it reads from now on.
func (c *conv) holdCommands() { c.holding = true }

// releaseCommands ends the hold, and returns what to send the backend now: the commands held, in
// order. With no backend, they stay held, for the hold of a failover from now: the next attach sends
// them.
func (c *conv) releaseCommands() []byte {
	if !c.holding {
		return nil
	}
	c.holding = false
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

// answered reports whether every command sent to the backend has had its reply, as a switchover's hold
// waits for it. Not waited for, since nothing says their reply comes soon: blocking commands (only a
// write, which the hold keeps, would unblock most of them), subscription commands, a MONITOR session
// and a replication link (their bytes pass unread, see conv.passthrough and conv.replica). A command the
// client was sending to the backend when the hold began is: the rest of it follows, then its reply.
func (c *conv) answered() bool {
	if c.replica || c.passthrough {
		return true
	}
	if c.cmd.InCommand() && c.disp == forward {
		return false
	}
	for i := 0; i < c.q.len(); i++ {
		e := c.q.at(i)
		if e.kind == viaBackend && e.sent && e.replies > 0 && !e.blocks && e.effect != effSubscribe {
			return false
		}
	}
	return true
}
