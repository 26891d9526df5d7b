//go:build !linux

package proxy

// NewEngine returns the portable engine on systems without epoll.
func NewEngine(EngineOptions) (Engine, error) { return Portable, nil }
