//go:build !linux

package netlab

import (
	"errors"
	"net"
	"time"
)

var errNotLinux = errors.New("netlab: network namespaces need Linux")

// Listen needs Linux.
func (h *Host) Listen(network, address string) (net.Listener, error) { return nil, errNotLinux }

// DialTimeout needs Linux.
func (h *Host) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	return nil, errNotLinux
}
