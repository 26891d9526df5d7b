package pipe

import "fmt"

// errBackend says which backend an error is about: the client's refusal line names it.
func errBackend(addr string, err error) error { return fmt.Errorf("backend %s: %w", addr, err) }
