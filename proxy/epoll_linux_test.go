//go:build linux

package proxy

import (
	"io"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestEngineAddsProcsWhileOpen: each loop may hold a P while it sleeps in epoll_wait, so the engine adds
// one per loop and gives them back on Close.
func TestEngineAddsProcsWhileOpen(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	eng, err := NewEngine(EngineOptions{Loops: 2})
	if err != nil {
		t.Fatal(err)
	}
	loops := len(eng.(*Epoll).loops)
	if got := runtime.GOMAXPROCS(0); got != before+loops {
		eng.(*Epoll).Close()
		t.Fatalf("GOMAXPROCS %d with %d loops open, want %d", got, loops, before+loops)
	}
	eng.(*Epoll).Close()
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Fatalf("GOMAXPROCS %d after Close, want %d", got, before)
	}
}

// TestIdleLoopsPark: a loop with sessions but no traffic stops holding its P (it parks in Go's poller,
// so an idle proxy does not wake), and the next request brings it back to work.
func TestIdleLoopsPark(t *testing.T) {
	eng, err := NewEngine(EngineOptions{Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.(*Epoll).Close)
	lp := eng.(*Epoll).loops[0]
	b := startBackend(t, echo)
	addr := startListener(t, eng, &Listener{IdleTimeout: time.Minute}, Route{Backends: []string{b.addr()}})
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
		waitFor(t, "the idle loop to park", lp.parked.Load)
		time.Sleep(2 * wheelTick)
		if !lp.parked.Load() {
			t.Fatalf("round %d: the loop holds its P again without traffic", round)
		}
	}
}

// TestBatchScheduling: with BatchScheduling every loop's thread runs under SCHED_BATCH, and only those.
func TestBatchScheduling(t *testing.T) {
	eng, err := NewEngine(EngineOptions{Loops: 2, BatchScheduling: true})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for i, lp := range eng.(*Epoll).loops {
		tid := int(lp.tid.Load())
		if tid == 0 {
			t.Fatalf("loop %d: no thread recorded", i)
		}
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			t.Fatalf("loop %d: %v", i, err)
		}
		if attr.Policy != schedBatch {
			t.Errorf("loop %d: thread %d has policy %d, want SCHED_BATCH (%d)", i, tid, attr.Policy, schedBatch)
		}
	}
	self, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if self.Policy == schedBatch {
		t.Error("the test's own thread is under SCHED_BATCH: the policy leaked out of the loops")
	}
}
