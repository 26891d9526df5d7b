//go:build linux

package eventloop

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Handler is what a loop calls for a registered descriptor. Both methods run on the loop's goroutine.
type Handler interface {
	// Event reports readiness: a mask of unix.EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLHUP, EPOLLERR.
	// Descriptors are edge-triggered: an event comes once per change, so a handler reads or writes
	// until EAGAIN.
	Event(events uint32)
	// Stop is called when the loop stops with the descriptor still registered: the handler closes what
	// it owns.
	Stop()
}

// Loop is one event loop: an epoll instance and the goroutine that waits on it. A Loop's methods other
// than Post must be called on its goroutine (from a Handler, a posted function or a timer).
type Loop struct {
	tid      atomic.Int32 // the loop's thread, when it is locked to one (batch scheduling)
	epfd     int
	evfd     int
	mu       sync.Mutex
	stopped  bool // under mu: evfd is closed, Post must not write to it
	queue    []func()
	spare    []func()
	handlers []Handler // by descriptor
	buf      []byte
	events   []unix.EpollEvent
	now      time.Time
	nowNs    int64
	wheel    wheel
	quit     bool            // a stop was posted
	parked   atomic.Bool     // epfd is in parkfd: the loop waits through Go's poller (atomic for tests)
	parkfd   *os.File        // an epoll instance in Go's poller, holding epfd while parked
	parkFD   int             // its descriptor (parkfd.Fd() would make it blocking)
	raw      syscall.RawConn // for waiting on parkfd
	pollFn   func(uintptr) bool
	polled   int
	pollErr  error
	// atEnd: handlers that asked to run once the events of this wake-up are handled (AtEnd)
	atEnd, atEndSpare []EndHandler
	// later: handlers that asked to go on after the next wait for events (Later)
	later, laterSpare []EndHandler
}

// EndHandler is told when the loop has handled the events of one wake-up: what it gathered from
// many of them (commands of many clients for one connection) goes out in one write.
type EndHandler interface{ EventsHandled() }

// AtEnd asks the loop to call h.EventsHandled once the events of this wake-up are handled. Call it
// on the loop's goroutine; h asks again for each wake-up it needs.
func (lp *Loop) AtEnd(h EndHandler) { lp.atEnd = append(lp.atEnd, h) }

// Later asks the loop to call h.EventsHandled after its next look at the events (which then does not
// wait): a handler that did its share of work for now goes on once the others had their turn. Call it
// on the loop's goroutine.
func (lp *Loop) Later(h EndHandler) { lp.later = append(lp.later, h) }

// schedBatch is SCHED_BATCH from <linux/sched.h>.
const schedBatch = 3

func newLoop() (*Loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, err
	}
	parkfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err == nil {
		err = unix.SetNonblock(parkfd, true) // so that os.NewFile puts it in Go's poller
		if err != nil {
			unix.Close(parkfd)
		}
	}
	if err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, err
	}
	lp := &Loop{epfd: epfd, evfd: evfd, buf: make([]byte, 64<<10), events: make([]unix.EpollEvent, 256)}
	lp.parkfd, lp.parkFD = os.NewFile(uintptr(parkfd), "epoll-park"), parkfd
	if lp.raw, err = lp.parkfd.SyscallConn(); err != nil {
		lp.parkfd.Close()
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, err
	}
	lp.pollFn = lp.poll
	lp.wheel.init(TimerTick)
	return lp, nil
}

// Post queues fn to run on the loop's goroutine and wakes the loop. It may be called from any
// goroutine; fn is dropped if the loop has stopped.
func (lp *Loop) Post(fn func()) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if lp.stopped {
		return
	}
	lp.queue = append(lp.queue, fn)
	one := [8]byte{1}
	_, _ = unix.Write(lp.evfd, one[:])
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
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		lp.handlers[fd] = nil
		return fmt.Errorf("epoll: %w", err)
	}
	return nil
}

// Rebind gives fd, registered already, to another handler h: a connection changes hands on the loop.
func (lp *Loop) Rebind(fd int, h Handler) {
	if fd >= 0 && fd < len(lp.handlers) {
		lp.handlers[fd] = h
	}
}

// Forget drops fd's handler. Closing fd removes it from epoll; Forget alone does not, so a descriptor
// that leaves the loop open is also taken out of epoll (Remove).
func (lp *Loop) Forget(fd int) {
	if fd >= 0 && fd < len(lp.handlers) {
		lp.handlers[fd] = nil
	}
}

// Remove forgets fd and takes it out of epoll, for a descriptor that leaves the loop open.
func (lp *Loop) Remove(fd int) {
	lp.Forget(fd)
	_ = unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// run is the loop. It reports on started whether its thread could be set up, then runs until stopped.
func (lp *Loop) run(batch bool, started chan<- error) {
	var setupErr error
	if batch {
		// The policy belongs to a thread: the loop keeps its thread for good (also while parked), and
		// the thread ends with the loop (no Unlock), so no other goroutine ever runs under the policy.
		runtime.LockOSThread()
		lp.tid.Store(int32(unix.Gettid()))
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: schedBatch}
		if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
			setupErr = fmt.Errorf("SCHED_BATCH for an event loop's thread: %w", err)
		}
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
		unix.Close(lp.evfd)
		lp.mu.Unlock()
		lp.parkfd.Close()
		unix.Close(lp.epfd)
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
		n, err := lp.wait(timeout)
		if err != nil && err != unix.EINTR {
			return
		}
		lp.now = time.Now()
		lp.nowNs = lp.now.UnixNano()
		for i := 0; i < n; i++ {
			ev := &lp.events[i]
			fd := int(ev.Fd)
			if fd == lp.evfd {
				var drain [8]byte
				_, _ = unix.Read(lp.evfd, drain[:])
				lp.runPosted()
				if lp.quit {
					return
				}
				continue
			}
			if fd < len(lp.handlers) && lp.handlers[fd] != nil {
				lp.handlers[fd].Event(ev.Events)
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
