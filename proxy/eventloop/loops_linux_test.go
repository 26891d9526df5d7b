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

// turnLog records, on its loop, the order handlers ran in.
type turnLog struct {
	name string
	log  *[]string
	then func()
}

func (r turnLog) EventsHandled() {
	*r.log = append(*r.log, r.name)
	if r.then != nil {
		r.then()
	}
}

// TestAtEndAndLater: AtEnd handlers run once the posted work of the wake-up is done, before Later ones;
// a Later handler that asks again runs again after the next look at the events, without waiting for an
// event to come, and another wake-up's work gets its turn between.
func TestAtEndAndLater(t *testing.T) {
	ls, err := New(Options{Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	lp := ls.All()[0]
	var log []string
	done := make(chan struct{})
	turns := 0
	var again turnLog
	again = turnLog{name: "later", log: &log, then: func() {
		if turns++; turns < 3 {
			lp.Later(again)
			if turns == 1 {
				lp.Post(func() { log = append(log, "posted") })
			}
			return
		}
		close(done)
	}}
	lp.Post(func() {
		lp.Later(again)
		lp.AtEnd(turnLog{name: "end", log: &log})
		log = append(log, "first")
	})
	<-done
	want := []string{"first", "end", "later", "posted", "later", "later"}
	if len(log) != len(want) {
		t.Fatalf("ran %v, want %v", log, want)
	}
	for i := range want {
		if log[i] != want[i] {
			t.Fatalf("ran %v, want %v", log, want)
		}
	}
}
