package sentinel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// maxLineLen is resp.SentinelLimits.MaxLine, named for the guard's tests.
var maxLineLen = resp.SentinelLimits.MaxLine

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

// guardConn scans the RESP stream a Sentinel sends, as it passes, and fails the read that would hand
// go-redis an oversized or malformed header. go-redis allocates what a reply header announces before
// reading it, so a broken or hostile Sentinel announcing "*2000000000" would make it allocate tens of
// gigabytes. Real replies are a few dozen array elements, bulk strings of a few hundred bytes; the guard
// holds them to resp.SentinelLimits (16 MiB bulk strings, 65,536 elements, 64 KiB lines). Its
// resp.Scanner keeps a few bytes of state, not the replies.
type guardConn struct {
	net.Conn
	scanner *resp.Scanner // made on first use, so that a zero guardConn guards with resp.SentinelLimits
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

// scan passes b, the next bytes from the Sentinel, through the scanner.
func (g *guardConn) scan(b []byte) error {
	if g.scanner == nil {
		g.scanner = &resp.Scanner{Limits: resp.SentinelLimits}
	}
	for len(b) > 0 {
		n, _, err := g.scanner.Next(b)
		if err != nil {
			return fmt.Errorf("%w: %w", errHostileReply, err)
		}
		b = b[n:]
	}
	return nil
}

// GuardedDialer dials a Sentinel as the watchers do (TLS when tlsConfig is set, the RESP guard on the
// connection), for other clients of the Sentinels, such as a planned switchover's.
func GuardedDialer(timeout time.Duration, tlsConfig *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialGuarded(timeout, tlsConfig)
}
