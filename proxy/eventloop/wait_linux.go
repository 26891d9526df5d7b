//go:build linux

package eventloop

import (
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// activeWait is how long a loop that has just had events sleeps in epoll_wait holding its P before it
// parks in Go's poller instead. Holding the P is what makes a busy loop as cheap as HAProxy's threads:
// one kernel wake-up per batch of events, no hand-off through the runtime's scheduler (which costs
// extra thread wake-ups and leaves the loop forwarding in smaller bursts: 0.93× HAProxy's throughput
// against 1.00×, see docs/benchmarks.md). Parking when quiet keeps an idle proxy from waking at all:
// a goroutine that holds its P for 10 ms gets a preemption signal from the runtime's sysmon.
const activeWait = 2 // ms

// Parked reports whether the loop waits in Go's poller (idle) rather than holding its P.
func (lp *Loop) Parked() bool { return lp.parked.Load() }

// Thread is the id of the loop's thread when it is locked to one (batch scheduling), else 0.
func (lp *Loop) Thread() int { return int(lp.tid.Load()) }

// wait returns the next events, or none after a timeout (ms, -1 for none) for the timer wheel.
func (lp *Loop) wait(timeout int) (int, error) {
	if !lp.parked.Load() {
		t := activeWait
		if timeout >= 0 && timeout < t {
			t = timeout
		}
		n, err := rawEpollWait(lp.epfd, lp.events, t)
		if n > 0 || err != nil || t == timeout {
			return n, err
		}
		if err := lp.park(true); err != nil {
			return 0, nil // cannot park (out of kernel memory?): wait holding the P again
		}
	}
	deadline := time.Time{}
	if timeout >= 0 {
		deadline = time.Now().Add(time.Duration(timeout) * time.Millisecond)
	}
	_ = lp.parkfd.SetReadDeadline(deadline)
	err := lp.raw.Read(lp.pollFn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, nil // stay parked: still nothing but the timer
	}
	if err != nil {
		return 0, err
	}
	if lp.pollErr == nil && lp.polled > 0 {
		_ = lp.park(false)
	}
	return lp.polled, lp.pollErr
}

// park hands waiting over to Go's poller, or takes it back: the loop's epoll instance goes into parkfd,
// an epoll instance registered once in Go's poller (an epoll fd is readable when it has events), and
// the goroutine parks like any network read, giving its P back. epfd leaves parkfd as soon as events
// come: left in, every new event on a busy loop would also wake the runtime's poller thread for nothing.
// Neither way opens a descriptor or allocates, so parking works when the process is out of both.
func (lp *Loop) park(on bool) error {
	if on == lp.parked.Load() {
		return nil
	}
	op := unix.EPOLL_CTL_DEL
	if on {
		op = unix.EPOLL_CTL_ADD
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(lp.epfd)}
	if err := unix.EpollCtl(lp.parkFD, op, lp.epfd, &ev); err != nil {
		return fmt.Errorf("park: %w", err)
	}
	lp.parked.Store(on)
	return nil
}

// poll is wait's callback while parked, made once as lp.pollFn so that waiting allocates nothing.
func (lp *Loop) poll(uintptr) bool {
	lp.polled, lp.pollErr = rawEpollWait(lp.epfd, lp.events, 0)
	return lp.pollErr != nil || lp.polled > 0
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
