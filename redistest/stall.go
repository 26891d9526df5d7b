package redistest

import (
	"fmt"
	"time"
)

// BusyScript is a Lua script that keeps Redis busy for d, for EVAL with no keys: the stall a long script
// causes in production. Redis answers other clients -BUSY once busy-reply-threshold has passed, and
// nothing at all before.
func BusyScript(d time.Duration) string {
	return fmt.Sprintf(`local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
while true do
  local n = redis.call('TIME')
  if n[1] * 1000000 + n[2] - start >= %d then return 1 end
end`, d.Microseconds())
}

// DoWithin is Do with its own deadline, for commands that take longer than Do allows (a slow script,
// DEBUG SLEEP) or a reply that waits for one.
func (c *Conn) DoWithin(timeout time.Duration, args ...string) (string, error) {
	_ = c.conn.SetDeadline(time.Now().Add(timeout))
	return roundTrip(c.conn, c.rd, args...)
}

// Receive reads one reply without sending a command, within timeout: what a subscriber does.
func (c *Conn) Receive(timeout time.Duration) (string, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	return readFlat(c.rd)
}
