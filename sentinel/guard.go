package sentinel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"
)

// Limits on what a Sentinel may send. Real replies are small: a few dozen array elements, bulk strings
// of a few hundred bytes. go-redis allocates what a reply header announces before reading it, so a
// broken or hostile peer announcing "*2000000000" would make it allocate tens of gigabytes; the guard
// refuses such a header before go-redis sees it.
const (
	maxArrayLen = 1 << 16
	maxBulkLen  = 16 << 20
	maxLineLen  = 64 << 10
)

// errHostileReply is returned when a Sentinel's reply breaks the limits or the protocol.
var errHostileReply = errors.New("reply breaks the RESP protocol or its size limits")

// dialGuarded dials like net.Dialer (with TLS when tlsConfig is set) and wraps the connection in a RESP
// guard, which sees the plaintext.
func dialGuarded(timeout time.Duration, tlsConfig *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		var err error
		if tlsConfig != nil {
			c, err = (&tls.Dialer{NetDialer: d, Config: tlsConfig}).DialContext(ctx, network, addr)
		} else {
			c, err = d.DialContext(ctx, network, addr)
		}
		if err != nil {
			return nil, err
		}
		return &guardConn{Conn: c}, nil
	}
}

// guardConn scans the RESP2 stream a Sentinel sends, as it passes, and fails the read that would hand
// go-redis an oversized or malformed header. It keeps a few bytes of state, not the replies.
type guardConn struct {
	net.Conn
	skip    int    // bytes of a bulk string's body (and its CRLF) still to pass
	line    []byte // the header line being read, up to maxLineLen
	failure error
}

func (g *guardConn) Read(p []byte) (int, error) {
	if g.failure != nil {
		return 0, g.failure
	}
	n, err := g.Conn.Read(p)
	if ferr := g.scan(p[:n]); ferr != nil {
		g.failure = ferr
		g.Conn.Close()
		return 0, ferr
	}
	return n, err
}

func (g *guardConn) scan(b []byte) error {
	for len(b) > 0 {
		if g.skip > 0 {
			k := min(g.skip, len(b))
			g.skip -= k
			b = b[k:]
			continue
		}
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		if len(g.line)+i > maxLineLen {
			return fmt.Errorf("%w: a line longer than %d bytes", errHostileReply, maxLineLen)
		}
		g.line = append(g.line, b[:i]...)
		if i == len(b) {
			return nil // the line goes on in the next read
		}
		b = b[i+1:]
		line := g.line
		g.line = g.line[:0]
		if err := g.header(line); err != nil {
			return err
		}
	}
	return nil
}

// header checks one CRLF-terminated line (without its LF) at the start of a reply element.
func (g *guardConn) header(line []byte) error {
	if len(line) < 2 || line[len(line)-1] != '\r' {
		return fmt.Errorf("%w: a line not ended by CRLF", errHostileReply)
	}
	line = line[:len(line)-1]
	switch line[0] {
	case '+', '-', ':':
		return nil
	case '$', '*':
		n, ok := parseLen(line[1:])
		if !ok {
			return fmt.Errorf("%w: bad length %q", errHostileReply, line[:min(len(line), 32)])
		}
		if line[0] == '*' {
			if n > maxArrayLen {
				return fmt.Errorf("%w: an array of %d elements", errHostileReply, n)
			}
			return nil
		}
		if n > maxBulkLen {
			return fmt.Errorf("%w: a bulk string of %d bytes", errHostileReply, n)
		}
		if n >= 0 {
			g.skip = n + 2
		}
		return nil
	}
	return fmt.Errorf("%w: unknown reply type %q", errHostileReply, line[0])
}

// parseLen parses a RESP length: -1 or a non-negative decimal of at most 10 digits.
func parseLen(b []byte) (int, bool) {
	if len(b) == 2 && b[0] == '-' && b[1] == '1' {
		return -1, true
	}
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
