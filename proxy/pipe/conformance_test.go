package pipe

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/eventloop"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backend is a loopback TCP server whose per-connection behaviour a test chooses.
type backend struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startBackend(t *testing.T, handle func(net.Conn)) *backend {
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

// startListener serves a Listener on a free loopback port and stops it when the test ends.
func startListener(t *testing.T, h proxy.Handler, l *proxy.Listener, route proxy.Route) string {
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

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*net.TCPConn)
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

func testEchoAndLargeTransfer(t *testing.T, h proxy.Handler) {
	b := startBackend(t, echo)
	l := &proxy.Listener{}
	addr := startListener(t, h, l, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	payload := make([]byte, 8<<20)
	_, _ = rand.Read(payload)
	go func() { _, _ = c.Write(payload); _ = c.CloseWrite() }()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echoed %d bytes, want %d identical", len(got), len(payload))
	}
	st := l.Stats()
	if st.BytesIn != uint64(len(payload)) || st.BytesOut != uint64(len(payload)) || st.Total != 1 {
		t.Errorf("stats: %+v", st)
	}
	waitFor(t, "session end", func() bool { return l.Stats().Current == 0 })
}

func testClientHalfCloseStillGetsReply(t *testing.T, h proxy.Handler) {
	// The backend reads until EOF, then answers: only a forwarded half-close lets it answer.
	b := startBackend(t, func(c net.Conn) {
		defer c.Close()
		data, _ := io.ReadAll(c)
		_, _ = c.Write([]byte("got:" + string(data)))
	})
	addr := startListener(t, h, &proxy.Listener{}, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	_, _ = c.Write([]byte("hello"))
	_ = c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "got:hello" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func testBackendHalfCloseStillTakesData(t *testing.T, h proxy.Handler) {
	received := make(chan string, 1)
	b := startBackend(t, func(c net.Conn) {
		defer c.Close()
		_, _ = c.Write([]byte("banner"))
		_ = c.(*net.TCPConn).CloseWrite()
		data, _ := io.ReadAll(c)
		received <- string(data)
	})
	addr := startListener(t, h, &proxy.Listener{}, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	buf := make([]byte, 6)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "banner" {
		t.Fatalf("banner: %q %v", buf, err)
	}
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("want EOF after backend half-close, got %d %v", n, err)
	}
	_, _ = c.Write([]byte("after"))
	_ = c.CloseWrite()
	select {
	case got := <-received:
		if got != "after" {
			t.Fatalf("backend got %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("backend got nothing after its half-close")
	}
}

func testNoRouteRefusesWithRESPError(t *testing.T, h proxy.Handler) {
	l := &proxy.Listener{}
	addr := startListener(t, h, l, proxy.Route{Refusal: `no verified master for "mymaster"`})
	c := dial(t, addr)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if line != "-ERR sentinel-proxy: no verified master for \"mymaster\"\r\n" {
		t.Fatalf("got %q", line)
	}
	if l.Stats().Refused != 1 {
		t.Errorf("refused not counted: %+v", l.Stats())
	}
}

func testBackendRefusedTellsClientAndTriesNext(t *testing.T, h proxy.Handler) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()

	l := &proxy.Listener{}
	addr := startListener(t, h, l, proxy.Route{Backends: []string{deadAddr}})
	c := dial(t, addr)
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(line, "-ERR sentinel-proxy: backend "+deadAddr) {
		t.Fatalf("got %q", line)
	}
	if l.Stats().ConnectErrors != 1 {
		t.Errorf("connect error not counted: %+v", l.Stats())
	}

	// With a live backend in the pool, a dead one costs a retry, not an error.
	live := startBackend(t, echo)
	l.SetRoute(proxy.Route{Backends: []string{deadAddr, live.addr()}})
	for i := 0; i < 4; i++ {
		c := dial(t, addr)
		_, _ = c.Write([]byte("x"))
		buf := make([]byte, 1)
		if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 'x' {
			t.Fatalf("attempt %d: %q %v", i, buf, err)
		}
		c.Close()
	}
}

func testClientResetEndsSession(t *testing.T, h proxy.Handler) {
	backendClosed := make(chan struct{})
	b := startBackend(t, func(c net.Conn) {
		defer close(backendClosed)
		defer c.Close()
		_, _ = io.Copy(io.Discard, c)
	})
	l := &proxy.Listener{}
	addr := startListener(t, h, l, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	_, _ = c.Write([]byte("x"))
	waitFor(t, "session", func() bool { return l.Stats().Current == 1 })
	_ = c.SetLinger(0) // close sends RST
	c.Close()
	select {
	case <-backendClosed:
	case <-time.After(5 * time.Second):
		t.Fatal("backend connection not closed after client reset")
	}
	waitFor(t, "session end", func() bool { return l.Stats().Current == 0 })
}

func testBackendResetEndsSession(t *testing.T, h proxy.Handler) {
	b := startBackend(t, func(c net.Conn) {
		buf := make([]byte, 1)
		_, _ = c.Read(buf)
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	addr := startListener(t, h, &proxy.Listener{}, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	_, _ = c.Write([]byte("x"))
	buf := make([]byte, 10)
	if _, err := c.Read(buf); err == nil {
		t.Fatal("client should see the session end")
	}
}

func testCloseSessionsToBackend(t *testing.T, h proxy.Handler) {
	b1 := startBackend(t, echo)
	b2 := startBackend(t, echo)
	l := &proxy.Listener{}
	addr := startListener(t, h, l, proxy.Route{Backends: []string{b1.addr()}})
	var old []*net.TCPConn
	for i := 0; i < 5; i++ {
		c := dial(t, addr)
		_, _ = c.Write([]byte("x"))
		buf := make([]byte, 1)
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		old = append(old, c)
	}
	l.SetRoute(proxy.Route{Backends: []string{b2.addr()}})
	keep := dial(t, addr)
	_, _ = keep.Write([]byte("y"))
	buf := make([]byte, 1)
	if _, err := io.ReadFull(keep, buf); err != nil {
		t.Fatal(err)
	}
	if n := l.CloseSessionsTo(b1.addr()); n != 5 {
		t.Fatalf("closed %d sessions, want 5", n)
	}
	for i, c := range old {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(buf); err == nil || isTimeout(err) {
			t.Fatalf("session %d to the old backend still open: %v", i, err)
		}
	}
	_, _ = keep.Write([]byte("z"))
	if _, err := io.ReadFull(keep, buf); err != nil || buf[0] != 'z' {
		t.Fatalf("session to the other backend was hurt: %v", err)
	}
	if per := l.Stats().PerBackend; per[b1.addr()].Total != 5 || per[b2.addr()].Current != 1 {
		t.Errorf("per-backend stats: %+v", per)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func testIdleTimeout(t *testing.T, h proxy.Handler) {
	b := startBackend(t, echo)
	l := &proxy.Listener{IdleTimeout: 400 * time.Millisecond}
	addr := startListener(t, h, l, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	// Traffic every 50ms keeps the session alive well past the timeout.
	buf := make([]byte, 1)
	for i := 0; i < 8; i++ {
		_, _ = c.Write([]byte("x"))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("active session closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(buf); err == nil || isTimeout(err) {
		t.Fatalf("idle session not closed: %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("idle close took %s", time.Since(start))
	}
}

func testIdleTimeoutCountsEitherDirection(t *testing.T, h proxy.Handler) {
	// A subscriber only receives: traffic from the backend alone keeps it alive.
	b := startBackend(t, func(c net.Conn) {
		defer c.Close()
		for i := 0; i < 8; i++ {
			if _, err := c.Write([]byte("m")); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	addr := startListener(t, h, &proxy.Listener{IdleTimeout: 400 * time.Millisecond}, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	got, _ := io.ReadAll(c)
	if string(got) != "mmmmmmmm" {
		t.Fatalf("receive-only session cut short: got %q", got)
	}
}

func testMaxConns(t *testing.T, h proxy.Handler) {
	b := startBackend(t, echo)
	l := &proxy.Listener{MaxConns: 2}
	addr := startListener(t, h, l, proxy.Route{Backends: []string{b.addr()}})
	buf := make([]byte, 1)
	for i := 0; i < 2; i++ {
		c := dial(t, addr)
		_, _ = c.Write([]byte("x"))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, addr)
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.Contains(line, "max connections (2) reached") {
		t.Fatalf("third client got %q", line)
	}
}

func testRoundRobin(t *testing.T, h proxy.Handler) {
	var addrs []string
	for i := 0; i < 3; i++ {
		name := string(rune('a' + i))
		b := startBackend(t, func(c net.Conn) { _, _ = c.Write([]byte(name)); c.Close() })
		addrs = append(addrs, b.addr())
	}
	addr := startListener(t, h, &proxy.Listener{}, proxy.Route{Backends: addrs})
	seen := map[string]int{}
	for i := 0; i < 9; i++ {
		c := dial(t, addr)
		got, _ := io.ReadAll(c)
		seen[string(got)]++
	}
	if seen["a"] != 3 || seen["b"] != 3 || seen["c"] != 3 {
		t.Fatalf("round-robin spread: %v", seen)
	}
}

// TestNoFDLeak runs many sessions of every kind and checks the process's open files come back.
func testNoFDLeak(t *testing.T, h proxy.Handler) {
	b := startBackend(t, echo)
	l := &proxy.Listener{}
	addr := startListener(t, h, l, proxy.Route{Backends: []string{b.addr()}})
	before := openFDs(t)
	for i := 0; i < 200; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("x"))
		buf := make([]byte, 1)
		_, _ = io.ReadFull(c, buf)
		if i%2 == 0 {
			_ = c.(*net.TCPConn).SetLinger(0)
		}
		c.Close()
	}
	waitFor(t, "sessions to end", func() bool { return l.Stats().Current == 0 })
	waitFor(t, "fds to be released", func() bool { return openFDs(t) <= before+2 })
}

func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(entries)
}

func testHoldForwardsWhenARouteAppears(t *testing.T, h proxy.Handler) {
	b := startBackend(t, echo)
	l := &proxy.Listener{HoldTimeout: 5 * time.Second}
	addr := startListener(t, h, l, proxy.Route{Refusal: "failover in progress"})
	c := dial(t, addr)
	// The client writes at once; the bytes wait in the socket until the route exists.
	_, _ = c.Write([]byte("PING"))
	waitFor(t, "client held", func() bool { return l.Stats().Held == 1 })
	l.SetRoute(proxy.Route{Backends: []string{b.addr()}})
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "PING" {
		t.Fatalf("held client not forwarded: %q %v", buf, err)
	}
	if st := l.Stats(); st.Held != 0 || st.Refused != 0 {
		t.Errorf("stats after hold: %+v", st)
	}
}

func testHoldExpiresWithRefusal(t *testing.T, h proxy.Handler) {
	l := &proxy.Listener{HoldTimeout: 200 * time.Millisecond}
	addr := startListener(t, h, l, proxy.Route{Refusal: "no verified master"})
	start := time.Now()
	c := dial(t, addr)
	line, _ := bufio.NewReader(c).ReadString('\n')
	if line != "-ERR sentinel-proxy: no verified master\r\n" {
		t.Fatalf("got %q", line)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 3*time.Second {
		t.Errorf("refused after %s, want about the hold time", d)
	}
}

func testHeldClientsCountAgainstMaxConns(t *testing.T, h proxy.Handler) {
	l := &proxy.Listener{HoldTimeout: 5 * time.Second, MaxConns: 1}
	addr := startListener(t, h, l, proxy.Route{Refusal: "failover"})
	dial(t, addr)
	waitFor(t, "first client held", func() bool { return l.Stats().Held == 1 })
	c := dial(t, addr)
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.Contains(line, "max connections (1) reached") {
		t.Fatalf("second client got %q", line)
	}
}

func testHoldRetriesWhenTheBackendIsDead(t *testing.T, h proxy.Handler) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	live := startBackend(t, echo)
	var failures atomic.Int64
	l := &proxy.Listener{HoldTimeout: 5 * time.Second, OnBackendFailure: func(string) { failures.Add(1) }}
	addr := startListener(t, h, l, proxy.Route{Backends: []string{deadAddr}})
	c := dial(t, addr)
	_, _ = c.Write([]byte("x"))
	waitFor(t, "the dead backend to be reported", func() bool { return failures.Load() > 0 })
	l.SetRoute(proxy.Route{Backends: []string{live.addr()}})
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 'x' {
		t.Fatalf("held client not forwarded to the new backend: %q %v", buf, err)
	}
}

// TestConformance runs every forwarding behaviour against each engine: they must be interchangeable.
func TestConformance(t *testing.T) {
	cases := []struct {
		name string
		fn   func(*testing.T, proxy.Handler)
	}{
		{"EchoAndLargeTransfer", testEchoAndLargeTransfer},
		{"ClientHalfCloseStillGetsReply", testClientHalfCloseStillGetsReply},
		{"BackendHalfCloseStillTakesData", testBackendHalfCloseStillTakesData},
		{"NoRouteRefusesWithRESPError", testNoRouteRefusesWithRESPError},
		{"BackendRefusedTellsClientAndTriesNext", testBackendRefusedTellsClientAndTriesNext},
		{"ClientResetEndsSession", testClientResetEndsSession},
		{"BackendResetEndsSession", testBackendResetEndsSession},
		{"CloseSessionsToBackend", testCloseSessionsToBackend},
		{"IdleTimeout", testIdleTimeout},
		{"IdleTimeoutCountsEitherDirection", testIdleTimeoutCountsEitherDirection},
		{"MaxConns", testMaxConns},
		{"RoundRobin", testRoundRobin},
		{"NoFDLeak", testNoFDLeak},
		{"HoldForwardsWhenARouteAppears", testHoldForwardsWhenARouteAppears},
		{"HoldExpiresWithRefusal", testHoldExpiresWithRefusal},
		{"HeldClientsCountAgainstMaxConns", testHeldClientsCountAgainstMaxConns},
		{"HoldRetriesWhenTheBackendIsDead", testHoldRetriesWhenTheBackendIsDead},
		{"Backpressure", testBackpressure},
		{"SteadyStateAllocations", testSteadyStateAllocations},
	}
	for _, kind := range []string{"portable", "fast", "fast-batch"} {
		t.Run(kind, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					h := Portable
					if kind != "portable" {
						loops, err := eventloop.New(eventloop.Options{Loops: 2, BatchScheduling: kind == "fast-batch"})
						if err != nil {
							t.Fatal(err)
						}
						// Registered first, so it runs after the listener has stopped.
						t.Cleanup(loops.Close)
						h = NewEpoll(loops)
					}
					c.fn(t, h)
				})
			}
		})
	}
}

// testBackpressure: a client that stops reading must stop the backend, not make the proxy buffer.
func testBackpressure(t *testing.T, h proxy.Handler) {
	const offered = 256 << 20
	wrote := make(chan int64, 1)
	b := startBackend(t, func(c net.Conn) {
		defer c.Close()
		one := make([]byte, 1)
		if _, err := io.ReadFull(c, one); err != nil { // the client's byte: closing with it unread would reset
			return
		}
		chunk := make([]byte, 64<<10)
		var n int64
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		for n < offered {
			m, err := c.Write(chunk)
			n += int64(m)
			if err != nil {
				break
			}
		}
		wrote <- n
		_ = c.(*net.TCPConn).CloseWrite()
		_, _ = io.Copy(io.Discard, c)
	})
	l := &proxy.Listener{}
	addr := startListener(t, h, l, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	_, _ = c.Write([]byte("x")) // make sure the session is set up
	var n int64
	select {
	case n = <-wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("backend never blocked")
	}
	// Socket buffers on both connections take some megabytes; the proxy itself at most a buffer.
	if n >= offered || n > 64<<20 {
		t.Fatalf("backend wrote %d MiB to a client that reads nothing", n>>20)
	}
	// Everything the backend wrote arrives, nothing more, nothing less.
	_ = c.CloseWrite()
	got, err := io.Copy(io.Discard, c)
	if err != nil || got != n {
		t.Fatalf("client read %d bytes, backend wrote %d (%v)", got, n, err)
	}
	if in := l.Stats().BytesOut; in != uint64(n) {
		t.Errorf("bytes out %d, want %d", in, n)
	}
}

// testSteadyStateAllocations: forwarding a message allocates nothing once a session runs.
func testSteadyStateAllocations(t *testing.T, h proxy.Handler) {
	b := startBackend(t, echo)
	addr := startListener(t, h, &proxy.Listener{}, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	msg := []byte("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n")
	buf := make([]byte, len(msg))
	roundTrip := func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 200; i++ {
		roundTrip()
	}
	// Not testing.AllocsPerRun: it sets GOMAXPROCS to 1, taking away the P the epoll engine added for
	// its loop, which then holds the only one while it waits (see eventloop.New).
	const runs = 2000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < runs; i++ {
		roundTrip()
	}
	runtime.ReadMemStats(&after)
	allocs := float64(after.Mallocs-before.Mallocs) / runs
	// The test's own client and echo backend allocate nothing per message either; a fraction allows for
	// the runtime's background work.
	if allocs > 0.5 {
		t.Fatalf("%.2f allocations per forwarded round trip, want 0", allocs)
	}
}

// BenchmarkForward measures one request/response round trip through each engine (run with -benchmem).
func BenchmarkForward(b *testing.B) {
	for _, kind := range []string{"portable", "fast"} {
		b.Run(kind, func(b *testing.B) {
			h := Portable
			if kind == "fast" {
				loops, err := eventloop.New(eventloop.Options{Loops: 2})
				if err != nil {
					b.Fatal(err)
				}
				defer loops.Close()
				h = NewEpoll(loops)
			}
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go echo(c)
				}
			}()
			l := &proxy.Listener{Handler: h, Log: zerolog.Nop()}
			l.SetRoute(proxy.Route{Backends: []string{ln.Addr().String()}})
			pl, _ := net.Listen("tcp", "127.0.0.1:0")
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = l.Serve(ctx, pl); close(done) }()
			defer func() { cancel(); <-done }()
			c, err := net.Dial("tcp", pl.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := []byte("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n")
			buf := make([]byte, len(msg))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_, _ = c.Write(msg)
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
