//go:build linux

package eventloop

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The readiness bits are epoll's own, so events pass from the kernel to handlers unconverted.
const (
	evIn    Events = unix.EPOLLIN
	evOut   Events = unix.EPOLLOUT
	evRDHup Events = unix.EPOLLRDHUP
	evHup   Events = unix.EPOLLHUP
	evErr   Events = unix.EPOLLERR
)

// poller is a loop's epoll instance, the eventfd that Post wakes it with, and what parking needs.
type poller struct {
	epfd    int
	evfd    int
	events  []unix.EpollEvent
	parked  atomic.Bool     // epfd is in parkfd: the loop waits through Go's poller (atomic for tests)
	parkfd  *os.File        // an epoll instance in Go's poller, holding epfd while parked
	parkFD  int             // its descriptor (parkfd.Fd() would make it blocking)
	raw     syscall.RawConn // for waiting on parkfd
	pollFn  func(uintptr) bool
	polled  int
	pollErr error
}

func (p *poller) open() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return err
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
		return err
	}
	p.epfd, p.evfd, p.events = epfd, evfd, make([]unix.EpollEvent, 256)
	p.parkfd, p.parkFD = os.NewFile(uintptr(parkfd), "epoll-park"), parkfd
	if p.raw, err = p.parkfd.SyscallConn(); err != nil {
		p.parkfd.Close()
		unix.Close(epfd)
		unix.Close(evfd)
		return err
	}
	p.pollFn = p.poll
	return nil
}

// close closes every descriptor of the poller; Post's wake must not run after it (Loop.stopped).
func (p *poller) close() {
	unix.Close(p.evfd)
	p.parkfd.Close()
	unix.Close(p.epfd)
}

// wake makes the loop's wait return: a posted function waits.
func (p *poller) wake() {
	one := [8]byte{1}
	_, _ = unix.Write(p.evfd, one[:])
}

func (p *poller) wakeFD() int { return p.evfd }

func (p *poller) drainWake() {
	var drain [8]byte
	_, _ = unix.Read(p.evfd, drain[:])
}

func (p *poller) add(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
}

func (p *poller) remove(fd int) { _ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil) }

// event returns the i-th event of the last wait.
func (p *poller) event(i int) (fd int, events Events) {
	return int(p.events[i].Fd), Events(p.events[i].Events)
}

// activeWait is how long a loop that has just had events sleeps in epoll_wait holding its P before it
// parks in Go's poller instead. Holding the P is what makes a busy loop as cheap as HAProxy's threads:
// one kernel wake-up per batch of events, no hand-off through the runtime's scheduler (which costs
// extra thread wake-ups and leaves the loop forwarding in smaller bursts: 0.93× HAProxy's throughput
// against 1.00×, see docs/benchmarks.md). Parking when quiet keeps an idle proxy from waking at all:
// a goroutine that holds its P for 10 ms gets a preemption signal from the runtime's sysmon.
const activeWait = 2 // ms

// wait returns the number of new events, or none after a timeout (ms, -1 for none) for the timer wheel
// or a signal; an error means the loop cannot wait any more.
func (p *poller) wait(timeout int) (int, error) {
	n, err := p.waitOnce(timeout)
	if err == unix.EINTR {
		return 0, nil
	}
	return n, err
}

func (p *poller) waitOnce(timeout int) (int, error) {
	if !p.parked.Load() {
		t := activeWait
		if timeout >= 0 && timeout < t {
			t = timeout
		}
		n, err := rawEpollWait(p.epfd, p.events, t)
		if n > 0 || err != nil || t == timeout {
			return n, err
		}
		if err := p.park(true); err != nil {
			return 0, nil // cannot park (out of kernel memory?): wait holding the P again
		}
	}
	deadline := time.Time{}
	if timeout >= 0 {
		deadline = time.Now().Add(time.Duration(timeout) * time.Millisecond)
	}
	_ = p.parkfd.SetReadDeadline(deadline)
	err := p.raw.Read(p.pollFn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, nil // stay parked: still nothing but the timer
	}
	if err != nil {
		return 0, err
	}
	if p.pollErr == nil && p.polled > 0 {
		_ = p.park(false)
	}
	return p.polled, p.pollErr
}

// park hands waiting over to Go's poller, or takes it back: the loop's epoll instance goes into parkfd,
// an epoll instance registered once in Go's poller (an epoll fd is readable when it has events), and
// the goroutine parks like any network read, giving its P back. epfd leaves parkfd as soon as events
// come: left in, every new event on a busy loop would also wake the runtime's poller thread for nothing.
// Neither way opens a descriptor or allocates, so parking works when the process is out of both.
func (p *poller) park(on bool) error {
	if on == p.parked.Load() {
		return nil
	}
	op := unix.EPOLL_CTL_DEL
	if on {
		op = unix.EPOLL_CTL_ADD
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(p.epfd)}
	if err := unix.EpollCtl(p.parkFD, op, p.epfd, &ev); err != nil {
		return fmt.Errorf("park: %w", err)
	}
	p.parked.Store(on)
	return nil
}

// poll is wait's callback while parked, made once as pollFn so that waiting allocates nothing.
func (p *poller) poll(uintptr) bool {
	p.polled, p.pollErr = rawEpollWait(p.epfd, p.events, 0)
	return p.pollErr != nil || p.polled > 0
}

// rawEpollWait waits up to timeout ms without the runtime's syscall bookkeeping: the calling goroutine
// keeps its P (and thread) while the thread sleeps in the kernel. Only a loop does this, for at most
// activeWait; a signal (the runtime's preemption, a stop-the-world) ends the wait with EINTR.
func rawEpollWait(epfd int, events []unix.EpollEvent, timeout int) (int, error) {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_WAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), uintptr(timeout), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// schedBatch is SCHED_BATCH from <linux/sched.h>.
const schedBatch = 3

// lockBatchThread puts the calling goroutine's thread under SCHED_BATCH, for good: the policy belongs
// to a thread, so the loop keeps its thread (also while parked), and the thread ends with the loop (no
// Unlock), so no other goroutine ever runs under the policy. It returns the thread's id.
func lockBatchThread() (tid int, err error) {
	runtime.LockOSThread()
	tid = unix.Gettid()
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: schedBatch}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		return tid, fmt.Errorf("SCHED_BATCH for an event loop's thread: %w", err)
	}
	return tid, nil
}
