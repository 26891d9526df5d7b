package eventloop

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Events is a descriptor's readiness, as a Handler's Event gets it.
type Events uint32

// Readable reports input to read, or the end of it (the peer hung up, or the socket failed: a read
// says which).
func (e Events) Readable() bool { return e&(evIn|evRDHup|evHup|evErr) != 0 }

// Writable reports room to write.
func (e Events) Writable() bool { return e&evOut != 0 }

// HungUp reports that the peer shut its side: reads go on to the EOF.
func (e Events) HungUp() bool { return e&(evRDHup|evHup) != 0 }

// Gone reports that the connection is closed both ways (a reset, or both sides shut).
func (e Events) Gone() bool { return e&evHup != 0 }

// Failed reports an error pending on the socket.
func (e Events) Failed() bool { return e&evErr != 0 }

// Handler is what a loop calls for a registered descriptor. Both methods run on the loop's goroutine.
type Handler interface {
	// Event reports readiness. Descriptors are edge-triggered: an event comes once per change, so a
	// handler reads or writes until ErrAgain.
	Event(events Events)
	// Stop is called when the loop stops with the descriptor still registered: the handler closes what
	// it owns.
	Stop()
}

// EndHandler is told when the loop has handled the events of one wake-up: what it gathered from
// many of them (commands of many clients for one connection) goes out in one write.
type EndHandler interface{ EventsHandled() }

// Loop is one event loop: a poller (epoll on Linux) and the goroutine that waits on it. A Loop's methods
// other than Post must be called on its goroutine (from a Handler, a posted function or a timer). Off
// Linux there is no poller, New fails, and no Loop exists.
type Loop struct {
	p        poller
	tid      atomic.Int32 // the loop's thread, when it is locked to one (batch scheduling)
	mu       sync.Mutex
	stopped  bool // under mu: the poller is closed, Post must not wake it
	queue    []func()
	spare    []func()
	handlers []Handler // by descriptor
	buf      []byte
	now      time.Time
	nowNs    int64
	wheel    wheel
	quit     bool // a stop was posted
	// atEnd: handlers that asked to run once the events of this wake-up are handled (AtEnd)
	atEnd, atEndSpare []EndHandler
	// later: handlers that asked to go on after the next wait for events (Later)
	later, laterSpare []EndHandler
}

func newLoop() (*Loop, error) {
	lp := &Loop{buf: make([]byte, 64<<10)}
	if err := lp.p.open(); err != nil {
		return nil, err
	}
	lp.wheel.init(TimerTick)
	return lp, nil
}

// AtEnd asks the loop to call h.EventsHandled once the events of this wake-up are handled. Call it
// on the loop's goroutine; h asks again for each wake-up it needs.
func (lp *Loop) AtEnd(h EndHandler) { lp.atEnd = append(lp.atEnd, h) }

// Later asks the loop to call h.EventsHandled after its next look at the events (which then does not
// wait): a handler that did its share of work for now goes on once the others had their turn. Call it
// on the loop's goroutine.
func (lp *Loop) Later(h EndHandler) { lp.later = append(lp.later, h) }

// Post queues fn to run on the loop's goroutine and wakes the loop. It may be called from any
// goroutine; fn is dropped if the loop has stopped.
func (lp *Loop) Post(fn func()) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if lp.stopped {
		return
	}
	lp.queue = append(lp.queue, fn)
	lp.p.wake()
}

func (lp *Loop) stop() { lp.Post(func() { lp.quit = true }) }

// Buf is the loop's read buffer: handlers read into it and pass the bytes on before returning, so one
// buffer serves every descriptor of the loop.
func (lp *Loop) Buf() []byte { return lp.buf }

// Now is the time the loop woke up for the events it is handling: cheaper than time.Now per event,
// and precise enough for timeouts.
func (lp *Loop) Now() time.Time {
	if lp.now.IsZero() {
		return time.Now()
	}
	return lp.now
}

// NowNs is Now in Unix nanoseconds.
func (lp *Loop) NowNs() int64 {
	if lp.nowNs == 0 {
		return time.Now().UnixNano()
	}
	return lp.nowNs
}

// Add registers fd, edge-triggered for input, output and the peer's hang-up, with h.
func (lp *Loop) Add(fd int, h Handler) error {
	for fd >= len(lp.handlers) {
		lp.handlers = append(lp.handlers, make([]Handler, len(lp.handlers)+1024)...)
	}
	lp.handlers[fd] = h
	if err := lp.p.add(fd); err != nil {
		lp.handlers[fd] = nil
		return fmt.Errorf("event loop: register descriptor: %w", err)
	}
	return nil
}

// Rebind gives fd, registered already, to another handler h: a connection changes hands on the loop.
func (lp *Loop) Rebind(fd int, h Handler) {
	if fd >= 0 && fd < len(lp.handlers) {
		lp.handlers[fd] = h
	}
}

// Forget drops fd's handler. Closing fd removes it from the poller; Forget alone does not, so a
// descriptor that leaves the loop open is also taken out of the poller (Remove).
func (lp *Loop) Forget(fd int) {
	if fd >= 0 && fd < len(lp.handlers) {
		lp.handlers[fd] = nil
	}
}

// Remove forgets fd and takes it out of the poller, for a descriptor that leaves the loop open.
func (lp *Loop) Remove(fd int) {
	lp.Forget(fd)
	lp.p.remove(fd)
}

// Parked reports whether the loop waits in Go's poller (idle) rather than holding its P.
func (lp *Loop) Parked() bool { return lp.p.parked.Load() }

// Thread is the id of the loop's thread when it is locked to one (batch scheduling), else 0.
func (lp *Loop) Thread() int { return int(lp.tid.Load()) }

// run is the loop. It reports on started whether its thread could be set up, then runs until stopped.
func (lp *Loop) run(batch bool, started chan<- error) {
	var setupErr error
	if batch {
		var tid int
		tid, setupErr = lockBatchThread()
		lp.tid.Store(int32(tid))
	}
	started <- setupErr // on an error the loops are closed: run on to take the stop
	defer func() {
		for _, h := range lp.handlers {
			if h != nil {
				h.Stop()
			}
		}
		lp.mu.Lock()
		lp.stopped = true
		lp.p.close()
		lp.mu.Unlock()
	}()
	for {
		timeout := -1
		if !lp.wheel.empty() {
			timeout = int(TimerTick / time.Millisecond)
		}
		later := lp.later
		lp.later = lp.laterSpare[:0]
		if len(later) > 0 {
			timeout = 0
		}
		n, err := lp.p.wait(timeout)
		if err != nil {
			return
		}
		lp.now = time.Now()
		lp.nowNs = lp.now.UnixNano()
		for i := 0; i < n; i++ {
			fd, events := lp.p.event(i)
			if fd == lp.p.wakeFD() {
				lp.p.drainWake()
				lp.runPosted()
				if lp.quit {
					return
				}
				continue
			}
			if fd < len(lp.handlers) && lp.handlers[fd] != nil {
				lp.handlers[fd].Event(events)
			}
		}
		lp.runAtEnd()
		for i, h := range later {
			h.EventsHandled()
			later[i] = nil
		}
		lp.laterSpare = later[:0]
		lp.runAtEnd()
		lp.wheel.advance(lp.now)
		lp.runAtEnd()
	}
}

// runAtEnd calls the handlers that asked for the end of this wake-up; one that asks again while
// called is called again.
func (lp *Loop) runAtEnd() {
	for len(lp.atEnd) > 0 {
		hs := lp.atEnd
		lp.atEnd = lp.atEndSpare[:0]
		for i, h := range hs {
			h.EventsHandled()
			hs[i] = nil
		}
		lp.atEndSpare = hs[:0]
	}
}

// runPosted runs the functions posted so far.
func (lp *Loop) runPosted() {
	lp.mu.Lock()
	fns := lp.queue
	lp.queue = lp.spare[:0]
	lp.mu.Unlock()
	for i, fn := range fns {
		fn()
		fns[i] = nil // let it be collected
	}
	lp.spare = fns[:0]
}

// Schedule (re)schedules t to fire at at, on this loop. Call it on the loop's goroutine.
func (lp *Loop) Schedule(t *Timer, at time.Time) { lp.wheel.schedule(t, at, lp.Now()) }

// Cancel unschedules t; it will not fire. Call it on the loop's goroutine.
func (lp *Loop) Cancel(t *Timer) { lp.wheel.cancel(t) }
