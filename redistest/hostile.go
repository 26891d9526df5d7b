package redistest

import (
	"bytes"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// Hostile behaviours of a fake Redis node or Sentinel, for tests of what the proxy does with bad peers.
const (
	Garbage       = "garbage"         // random bytes, then close
	HugeArray     = "huge-array"      // "*2000000000": an array header no real reply has
	HugeBulk      = "huge-bulk"       // "$2000000000": a bulk string header of 2 GB
	EndlessLine   = "endless-line"    // a simple string of 8 MB with no CRLF, then silence
	Stall         = "stall"           // accepts, reads, never answers
	CloseMidReply = "close-mid-reply" // the start of a bulk string, then close
)

// HostileModes lists every behaviour.
var HostileModes = []string{Garbage, HugeArray, HugeBulk, EndlessLine, Stall, CloseMidReply}

// Hostile starts a TCP server on loopback that answers every connection's first request with the
// behaviour mode, and returns its address. It stops with the test.
func Hostile(tb testing.TB, mode string) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(rand.IntN(256))
	}
	endless := append([]byte("+"), bytes.Repeat([]byte("a"), 8<<20)...) // made now, not inside a measurement
	tb.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				if _, err := c.Read(buf); err != nil {
					return
				}
				switch mode {
				case Garbage:
					_, _ = c.Write(junk)
					return
				case HugeArray:
					_, _ = c.Write([]byte("*2000000000\r\n"))
				case HugeBulk:
					_, _ = c.Write([]byte("$2000000000\r\n"))
				case EndlessLine:
					_, _ = c.Write(endless)
				case CloseMidReply:
					_, _ = c.Write([]byte("$100\r\nabc"))
					return
				}
				// Stay connected, silent, until the peer or the test gives up.
				go func() { _, _ = c.Read(make([]byte, 1)); c.Close() }()
				select {
				case <-done:
				case <-time.After(time.Minute):
				}
			}()
		}
	}()
	return ln.Addr().String()
}
