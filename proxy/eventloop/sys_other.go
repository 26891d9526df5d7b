//go:build !linux

package eventloop

import (
	"errors"
	"net"
)

// Off Linux no loop runs (New fails), so nothing calls these: they exist so that the code written for
// the loops builds everywhere, and they fail if called.

// ErrAgain is what Read and Write return when the socket has nothing to read or no room to write.
var ErrAgain = errors.New("eventloop: would block")

// Read fails: there are no loops here.
func Read(int, []byte) (int, error) { return 0, errNoPoller }

// Write fails: there are no loops here.
func Write(int, []byte) (int, error) { return 0, errNoPoller }

// Connect fails: there are no loops here.
func Connect(string) (int, error) { return -1, errNoPoller }

// SocketError fails: there are no loops here.
func SocketError(int) error { return errNoPoller }

// NoDelay does nothing here.
func NoDelay(int) {}

// Shutdown fails: there are no loops here.
func Shutdown(int) error { return errNoPoller }

// Close does nothing here.
func Close(int) {}

// Detach fails: a client stays a net.Conn here, served on goroutines.
func Detach(net.Conn) (int, error) { return -1, errNoPoller }

// Reattach fails: there are no loops here.
func Reattach(int, []byte) (net.Conn, error) { return nil, errNoPoller }

// Refuse does nothing here.
func Refuse(int, []byte) {}
