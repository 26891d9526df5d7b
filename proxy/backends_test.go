package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// backend is a loopback TCP server whose per-connection behaviour a test chooses: raw bytes for the
// byte pipe's own cases, or a small RESP server (serveRESP) for the cases every handler passes.
type backend struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startBackend(t testing.TB, handle func(net.Conn)) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			b.wg.Add(1)
			go func() { defer b.wg.Done(); handle(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *backend) addr() string { return b.ln.Addr().String() }

// echo copies without io.Copy: TCP-to-TCP io.Copy splices through pooled pipes, which would show up in
// the file descriptor counts of the leak test.
func echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err == io.EOF {
				_ = c.(*net.TCPConn).CloseWrite()
			}
			return
		}
	}
}

// redisLike answers what the suite sends as Redis would: PING (+PONG, or the server's name), ECHO,
// SET, GET of a missing key, SUBSCRIBE (its confirmation), and an error for anything else. It is a
// fake for testing the handlers without Redis; what Redis itself does through them is tested in
// test/e2e.
func redisLike(name string) func(net.Conn) {
	return serveRESP(func(w *bufio.Writer, args []string) bool {
		answerLikeRedis(w, name, args)
		return true
	})
}

// answerLikeRedis writes redisLike's reply to args; PING answers name, +PONG if empty.
func answerLikeRedis(w *bufio.Writer, name string, args []string) {
	if name == "" {
		name = "PONG"
	}
	{
		switch strings.ToLower(args[0]) {
		case "ping":
			w.WriteString("+" + name + "\r\n")
		case "echo":
			w.Write(resp.AppendBulk(nil, args[1]))
		case "set":
			w.WriteString("+OK\r\n")
		case "get":
			w.WriteString("$-1\r\n")
		case "subscribe":
			fmt.Fprintf(w, "*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n", len(args[1]), args[1])
		default:
			fmt.Fprintf(w, "-ERR unknown command '%s'\r\n", args[0])
		}
	}
}

// serveRESP reads commands (arrays of bulk strings) from a connection and lets answer write each one's
// reply, until the connection ends; replies to a pipeline go out together. An answer that returns
// false resets the connection instead.
func serveRESP(answer func(w *bufio.Writer, args []string) bool) func(net.Conn) {
	return func(c net.Conn) {
		defer c.Close()
		r := bufio.NewReader(c)
		w := bufio.NewWriter(c)
		for {
			v, err := resp.ReadValue(r, resp.Limits{MaxBulk: 512 << 20, MaxElements: 1 << 20, MaxDepth: 2, MaxLine: 64 << 10})
			if err != nil {
				return
			}
			if len(v.Elems) == 0 {
				continue
			}
			args := make([]string, len(v.Elems))
			for i, e := range v.Elems {
				args[i] = e.Str
			}
			if !answer(w, args) {
				_ = c.(*net.TCPConn).SetLinger(0)
				return
			}
			if r.Buffered() == 0 && w.Flush() != nil {
				return
			}
		}
	}
}

// startListener serves a Listener on a free loopback port and stops it when the test ends.
func startListener(t testing.TB, h proxy.Handler, l *proxy.Listener, route proxy.Route) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if l.Name == "" {
		l.Name = "test"
	}
	l.Log = zerolog.Nop()
	l.Handler = h
	l.SetRoute(route)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// client is a test's connection through the proxy, with a RESP reader.
type client struct {
	*net.TCPConn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{TCPConn: c.(*net.TCPConn), r: bufio.NewReader(c)}
}

// send writes a command.
func (c *client) send(t *testing.T, args ...string) {
	t.Helper()
	if _, err := c.Write(resp.AppendCommand(nil, args...)); err != nil {
		t.Fatal(err)
	}
}

// reply reads one reply, rendered flat (resp.Value.Text); an error reply comes back as its line,
// "-" included.
func (c *client) reply(t *testing.T) string {
	t.Helper()
	v, err := resp.ReadValue(c.r, resp.Limits{MaxBulk: 512 << 20, MaxElements: 1 << 20, MaxDepth: 8, MaxLine: 64 << 10})
	if err != nil {
		t.Fatalf("reading a reply: %v", err)
	}
	if v.Err() != nil {
		return "-" + v.Str
	}
	return v.Text()
}

// do sends a command and returns its reply.
func (c *client) do(t *testing.T, args ...string) string {
	t.Helper()
	c.send(t, args...)
	return c.reply(t)
}

// line reads one line, as a refused client gets it.
func (c *client) line(t *testing.T) string {
	t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a line: %v (got %q)", err, l)
	}
	return l
}

// ended reports whether the proxy ended the connection (EOF or reset) within a few seconds.
func (c *client) ended() bool {
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err := c.r.ReadByte()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(entries)
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
