//go:build linux

package eventloop

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrAgain is what Read and Write return when the socket has nothing to read or no room to write:
// wait for its next edge.
var ErrAgain error = unix.EAGAIN

// Read reads from the non-blocking fd into b: n > 0 bytes; 0 and ErrAgain when nothing waits; 0 and nil
// at the end of the stream; or the error. It skips the runtime's syscall bookkeeping
// (entersyscall/exitsyscall): the loops' sockets are non-blocking, so the call never blocks, and on the
// hot path that bookkeeping is a measurable share of a small request's cost.
func Read(fd int, b []byte) (int, error) {
	for {
		n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, errno
	}
}

// Write writes b to the non-blocking fd: n bytes taken, or 0 and ErrAgain when the socket has no room,
// or the error. See Read.
func Write(fd int, b []byte) (int, error) {
	for {
		n, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, errno
	}
}

// Connect starts a non-blocking TCP connect to addr (an IP literal and a port) and returns the socket:
// it is connected when it turns writable, and SocketError then says whether it failed.
func Connect(addr string) (int, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return -1, ErrNotIP
	}
	var sa unix.Sockaddr
	family := unix.AF_INET
	if ap.Addr().Is4() || ap.Addr().Is4In6() {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, err
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// SocketError returns a socket's pending error (SO_ERROR): how a non-blocking connect ended.
func SocketError(fd int) error {
	soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && soErr != 0 {
		err = unix.Errno(soErr)
	}
	return err
}

// NoDelay turns Nagle's algorithm off on a TCP socket: the proxy writes whole replies and commands.
func NoDelay(fd int) { _ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) }

// Shutdown shuts the write side of fd: the peer reads EOF after what was written.
func Shutdown(fd int) error { return unix.Shutdown(fd, unix.SHUT_WR) }

// Close closes fd; closing also takes it out of epoll.
func Close(fd int) { unix.Close(fd) }

// Detach takes a socket out of Go's netpoller for a loop: it duplicates the descriptor and closes the
// net.Conn (which removes the original from Go's epoll). The duplicate is non-blocking.
func Detach(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, errors.New("not a socket")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, dupErr
	}
	c.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// Reattach turns a loop's descriptor back into a net.Conn, for the rare paths that leave the loop (a
// connect that failed and is retried later, or refused). It takes fd over: fd is closed on return,
// whatever the outcome. When no descriptor is left for the net.Conn (EMFILE), refusal (a RESP error
// line) is written on fd itself before it is closed.
func Reattach(fd int, refusal []byte) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "client")
	defer f.Close()
	conn, err := net.FileConn(f)
	if err != nil {
		Refuse(fd, refusal)
	}
	return conn, err
}

// Refuse writes a refusal line on a non-blocking socket, without a net.Conn: what the client sent is
// drained first, so the close that follows sends a FIN, not a RST that could discard the line. The
// caller closes fd.
func Refuse(fd int, line []byte) {
	var buf [4096]byte
	for {
		if n, err := unix.Read(fd, buf[:]); n <= 0 || err != nil {
			break
		}
	}
	_, _ = unix.Write(fd, line)
	_ = unix.Shutdown(fd, unix.SHUT_WR)
}
