//go:build !linux

package proxy

// NewEngine returns the portable engine on systems without epoll.
func NewEngine(loops int) (Engine, error) { return Portable, nil }
