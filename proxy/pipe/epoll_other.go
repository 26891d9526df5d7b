//go:build !linux

package pipe

import (
	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/eventloop"
)

// Epoll is not available without epoll; eventloop.New fails first, so NewEpoll is never reached.
type Epoll struct{ proxy.Handler }

// NewEpoll returns the portable forwarder.
func NewEpoll(*eventloop.Loops) *Epoll { return &Epoll{Portable} }
