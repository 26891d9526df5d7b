package netlab

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Listen opens a listener on the host from inside this process: the socket is created in the host's
// namespace and stays there, whichever thread later accepts on it.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var l net.Listener
	err := h.inNamespace(func() (err error) {
		l, err = net.Listen(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", h.Name, err)
	}
	return l, nil
}

// DialTimeout connects from the host, from inside this process.
func (h *Host) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := h.inNamespace(func() (err error) {
		c, err = net.DialTimeout(network, address, timeout)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial from %s: %w", h.Name, err)
	}
	return c, nil
}

// inNamespace runs fn on an OS thread that has joined the host's network namespace. setns changes only
// the calling thread, so fn runs on a goroutine locked to its thread, and that goroutine exits without
// unlocking: the runtime then discards the thread instead of reusing it in the wrong namespace.
func (h *Host) inNamespace(fn func() error) error {
	if h.NS == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join(netnsDir, h.NS))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", h.NS, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
