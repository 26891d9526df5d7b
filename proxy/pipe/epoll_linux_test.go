//go:build linux

package pipe

import (
	"io"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/eventloop"
)

// TestIdleLoopsPark: a loop with sessions but no traffic stops holding its P (it parks in Go's poller,
// so an idle proxy does not wake), and the next request brings it back to work.
func TestIdleLoopsPark(t *testing.T) {
	loops, err := eventloop.New(eventloop.Options{Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(loops.Close)
	lp := loops.All()[0]
	b := startBackend(t, echo)
	addr := startListener(t, NewEpoll(loops), &proxy.Listener{IdleTimeout: time.Minute}, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	buf := make([]byte, 4)
	for round := 0; round < 3; round++ {
		if _, err := c.Write([]byte("PING")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "PING" {
			t.Fatalf("round %d: echo %q, %v", round, buf, err)
		}
		// activeWait after the last event, the loop parks; the idle timer (the wheel is not empty)
		// must not wake it back into holding its P.
		waitFor(t, "the idle loop to park", lp.Parked)
		time.Sleep(2 * eventloop.TimerTick)
		if !lp.Parked() {
			t.Fatalf("round %d: the loop holds its P again without traffic", round)
		}
	}
}
