//go:build linux

package eventloop

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestEngineAddsProcsWhileOpen: each loop may hold a P while it sleeps in epoll_wait, so the loops add
// one P each and give them back on Close.
func TestEngineAddsProcsWhileOpen(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	ls, err := New(Options{Loops: 2})
	if err != nil {
		t.Fatal(err)
	}
	loops := len(ls.All())
	if got := runtime.GOMAXPROCS(0); got != before+loops {
		ls.Close()
		t.Fatalf("GOMAXPROCS %d with %d loops open, want %d", got, loops, before+loops)
	}
	ls.Close()
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Fatalf("GOMAXPROCS %d after Close, want %d", got, before)
	}
}

// TestBatchScheduling: with BatchScheduling every loop's thread runs under SCHED_BATCH, and only those.
func TestBatchScheduling(t *testing.T) {
	ls, err := New(Options{Loops: 2, BatchScheduling: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	for i, lp := range ls.All() {
		tid := lp.Thread()
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
