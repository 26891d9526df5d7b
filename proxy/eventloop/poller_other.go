//go:build !linux

package eventloop

import (
	"errors"
	"runtime"
	"sync/atomic"
)

// Readiness bits of no system's: off Linux no loop runs, and the bits only need to be distinct.
const (
	evIn Events = 1 << iota
	evOut
	evRDHup
	evHup
	evErr
)

// errNoPoller is why a loop cannot open here: the loops are epoll's, and the proxy serves this system's
// clients on goroutines instead.
var errNoPoller = errors.New("event loops need epoll (Linux), this is " + runtime.GOOS)

// poller is what a loop waits on; there is none here, so no Loop is ever made (newLoop fails).
type poller struct {
	parked atomic.Bool
}

func (*poller) open() error                 { return errNoPoller }
func (*poller) close()                      {}
func (*poller) wake()                       {}
func (*poller) wakeFD() int                 { return -1 }
func (*poller) drainWake()                  {}
func (*poller) add(int) error               { return errNoPoller }
func (*poller) remove(int)                  {}
func (*poller) event(int) (int, Events)     { return -1, 0 }
func (*poller) wait(int) (int, error)       { return 0, errNoPoller }
func lockBatchThread() (tid int, err error) { return 0, errNoPoller }
