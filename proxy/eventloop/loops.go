package eventloop

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// Options tune the loops.
type Options struct {
	// Loops is the number of event loops, at most GOMAXPROCS; zero or less means GOMAXPROCS.
	Loops int
	// BatchScheduling puts each loop's thread under SCHED_BATCH: when traffic wakes it, it does not
	// preempt the task running on that CPU but runs when that task blocks or its slice ends. On a machine
	// the proxy shares with Redis and its clients this lets each of them work through bigger batches.
	BatchScheduling bool
}

// Loops is a running set of event loops. A busy loop sleeps in epoll_wait while holding one of the
// runtime's Ps (see poller.wait), so New adds one P per loop to GOMAXPROCS while the loops run: the rest
// of the process keeps the share it had.
type Loops struct {
	loops []*Loop
	procs int // Ps added to GOMAXPROCS, given back by Close
	next  atomic.Uint64
	wg    sync.WaitGroup
	once  sync.Once
}

// New starts the loops. Call Close when nothing uses them any more. Off Linux it fails: there is no
// epoll, and the proxy's clients are served on goroutines.
func New(opts Options) (*Loops, error) {
	n := opts.Loops
	if max := runtime.GOMAXPROCS(0); n <= 0 || n > max {
		n = max
	}
	ls := &Loops{}
	for i := 0; i < n; i++ {
		lp, err := newLoop()
		if err != nil {
			ls.Close()
			return nil, fmt.Errorf("event loops: %w", err)
		}
		ls.loops = append(ls.loops, lp)
	}
	ls.procs = n
	addProcs(n)
	started := make(chan error, n)
	for _, lp := range ls.loops {
		ls.wg.Add(1)
		go func() { defer ls.wg.Done(); lp.run(opts.BatchScheduling, started) }()
	}
	var errs []error
	for range ls.loops {
		if err := <-started; err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		ls.Close()
		return nil, fmt.Errorf("event loops: %w", errors.Join(errs...))
	}
	return ls, nil
}

// Next returns the loops in turn: new work is spread over them.
func (ls *Loops) Next() *Loop { return ls.loops[ls.next.Add(1)%uint64(len(ls.loops))] }

// All returns every loop, for tests and for work that must reach each one.
func (ls *Loops) All() []*Loop { return ls.loops }

// Close stops the loops: each one stops its handlers (Handler.Stop) and closes its descriptors.
func (ls *Loops) Close() {
	ls.once.Do(func() {
		for _, lp := range ls.loops {
			lp.stop()
		}
		ls.wg.Wait()
		addProcs(-ls.procs)
	})
}

// extraProcs serialises the read-modify-write of GOMAXPROCS by sets of loops: the setting is the
// runtime's, process-wide, and two sets opened at once (tests) must not lose one another's change.
var extraProcs sync.Mutex

func addProcs(n int) {
	if n == 0 {
		return
	}
	extraProcs.Lock()
	defer extraProcs.Unlock()
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + n)
}
