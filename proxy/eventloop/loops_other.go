//go:build !linux

package eventloop

import (
	"errors"
	"runtime"
)

// Options tune the loops (see the Linux implementation).
type Options struct {
	Loops           int
	BatchScheduling bool
}

// Loops is not available without epoll.
type Loops struct{}

// New reports that event loops need Linux.
func New(Options) (*Loops, error) {
	return nil, errors.New("event loops need epoll (Linux), this is " + runtime.GOOS)
}

// Close does nothing.
func (*Loops) Close() {}
