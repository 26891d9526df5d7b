package proxy_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/eventloop"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/pipe"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/respsession"
	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// handlerKind is one data path: a Handler, made fresh for each case on event loops of its own when it
// needs them.
type handlerKind struct {
	name  string
	resp  bool // reads RESP: a session that outlives its backend, and half-closes end it
	mux   bool // shares backend connections
	loops bool // on event loops (Linux)
	make  func(loops *eventloop.Loops) proxy.Handler
	batch bool // its loops' threads under SCHED_BATCH
}

// kinds are every data path the proxy has: the byte pipe and the RESP session, each on event loops and
// on goroutines, and the RESP session sharing backend connections.
var kinds = []handlerKind{
	{name: "tcp-portable", make: func(*eventloop.Loops) proxy.Handler { return pipe.Portable }},
	{name: "tcp-epoll", loops: true, make: func(l *eventloop.Loops) proxy.Handler { return pipe.NewEpoll(l) }},
	{name: "tcp-epoll-batch", loops: true, batch: true, make: func(l *eventloop.Loops) proxy.Handler { return pipe.NewEpoll(l) }},
	{name: "resp-portable", resp: true, make: func(*eventloop.Loops) proxy.Handler { return respsession.Portable }},
	{name: "resp-epoll", resp: true, loops: true, make: func(l *eventloop.Loops) proxy.Handler { return respsession.NewEpoll(l) }},
	{name: "resp-multiplex", resp: true, mux: true, loops: true, make: func(l *eventloop.Loops) proxy.Handler { return respsession.NewEpollMux(l) }},
}

// handler makes k's Handler for one test; its loops close after the test's listener.
func (k handlerKind) handler(t *testing.T) proxy.Handler {
	t.Helper()
	if !k.loops {
		return k.make(nil)
	}
	loops, err := eventloop.New(eventloop.Options{Loops: 2, BatchScheduling: k.batch})
	if err != nil {
		t.Skipf("no event loops here: %v", err)
	}
	t.Cleanup(loops.Close) // registered first, so it runs after the listener has stopped
	return k.make(loops)
}

// conformanceCase is one behaviour, and the data paths it applies to (nil: every one).
type conformanceCase struct {
	name    string
	fn      func(*testing.T, handlerKind)
	applies func(handlerKind) bool
}

func bytePipes(k handlerKind) bool { return !k.resp }

// TestConformance runs every behaviour against every data path: what they share, they do alike.
func TestConformance(t *testing.T) {
	cases := []conformanceCase{
		{"LargeValuesBothWays", testLargeValuesBothWays, nil},
		{"NoRouteRefusesWithRESPError", testNoRouteRefusesWithRESPError, nil},
		{"BackendRefusedTellsClientAndTriesNext", testBackendRefusedTellsClientAndTriesNext, nil},
		{"BackendByHostName", testBackendByHostName, nil},
		{"ClientResetEndsSession", testClientResetEndsSession, nil},
		{"CloseSessionsToBackend", testCloseSessionsToBackend, nil},
		{"IdleTimeout", testIdleTimeout, nil},
		{"IdleTimeoutCountsEitherDirection", testIdleTimeoutCountsEitherDirection, nil},
		{"MaxConns", testMaxConns, nil},
		{"RoundRobin", testRoundRobin, nil},
		{"NoFDLeak", testNoFDLeak, nil},
		{"HoldForwardsWhenARouteAppears", testHoldForwardsWhenARouteAppears, nil},
		{"HoldExpiresWithRefusal", testHoldExpiresWithRefusal, nil},
		{"HeldClientsCountAgainstMaxConns", testHeldClientsCountAgainstMaxConns, nil},
		{"HoldRetriesWhenTheBackendIsDead", testHoldRetriesWhenTheBackendIsDead, nil},
		// A shared connection reads every reply, whoever it is for: one client that reads nothing
		// must not stop the others' replies. Its session stops being read (it sends no more), and a
		// reply it does not take waits in the proxy; the first long one moves it to a connection of
		// its own, where this case holds (TestMultiplexSlowReaderBlocksNobody in test/e2e).
		{"Backpressure", testBackpressure, func(k handlerKind) bool { return !k.mux }},
		// The goroutine RESP driver hands each write's bytes to its writer goroutine in a new slice.
		{"SteadyStateAllocations", testSteadyStateAllocations, func(k handlerKind) bool { return k.loops || !k.resp }},
		// The byte pipe's own: half-closes pass on, and a backend that ends ends the session.
		{"EchoAndLargeTransfer", testEchoAndLargeTransfer, bytePipes},
		{"ClientHalfCloseStillGetsReply", testClientHalfCloseStillGetsReply, bytePipes},
		{"BackendHalfCloseStillTakesData", testBackendHalfCloseStillTakesData, bytePipes},
		{"BackendResetEndsSession", testBackendResetEndsSession, bytePipes},
		// A RESP session's own: it outlives its backend connection.
		{"BackendResetMovesSession", testBackendResetMovesSession, func(k handlerKind) bool { return k.resp }},
		{"BackendKillClosesClient", testBackendKillClosesClient, func(k handlerKind) bool { return k.resp }},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			for _, c := range cases {
				if c.applies != nil && !c.applies(k) {
					continue
				}
				t.Run(c.name, func(t *testing.T) { c.fn(t, k) })
			}
		})
	}
}

// testLargeValuesBothWays: an 8 MiB value goes to the backend and comes back whole, in one command
// and one reply, and the bytes are counted.
func testLargeValuesBothWays(t *testing.T, k handlerKind) {
	b := startBackend(t, redisLike(""))
	l := &proxy.Listener{}
	addr := startListener(t, k.handler(t), l, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	payload := make([]byte, 8<<20)
	_, _ = rand.Read(payload)
	cmd := fmt.Sprintf("*2\r\n$4\r\nECHO\r\n$%d\r\n%s\r\n", len(payload), payload)
	reply := fmt.Sprintf("$%d\r\n%s\r\n", len(payload), payload)
	go func() { _, _ = c.Write([]byte(cmd)) }()
	got := make([]byte, len(reply))
	if _, err := io.ReadFull(c.r, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte(reply)) {
		t.Fatal("the value came back different")
	}
	st := l.Stats()
	if st.BytesIn != uint64(len(cmd)) || st.BytesOut != uint64(len(reply)) || st.Total != 1 {
		t.Errorf("stats: in %d out %d total %d, want %d, %d, 1", st.BytesIn, st.BytesOut, st.Total, len(cmd), len(reply))
	}
	c.Close()
	waitFor(t, "session end", func() bool { return l.Stats().Current == 0 })
}

func testNoRouteRefusesWithRESPError(t *testing.T, k handlerKind) {
	l := &proxy.Listener{}
	addr := startListener(t, k.handler(t), l, proxy.Route{Refusal: `no verified master for "mymaster"`})
	c := dial(t, addr)
	if line := c.line(t); line != "-ERR sentinel-proxy: no verified master for \"mymaster\"\r\n" {
		t.Fatalf("got %q", line)
	}
	if l.Stats().Refused != 1 {
		t.Errorf("refused not counted: %+v", l.Stats())
	}
}

// testBackendRefusedTellsClientAndTriesNext: a client whose only backend refuses is told which one,
// the failure counted once; with a live backend in the route, a dead one costs a retry, not an error.
func testBackendRefusedTellsClientAndTriesNext(t *testing.T, k handlerKind) {
	dead := deadAddr(t)
	var reported atomic.Int64
	l := &proxy.Listener{OnBackendFailure: func(string) { reported.Add(1) }}
	addr := startListener(t, k.handler(t), l, proxy.Route{Backends: []string{dead}})
	c := dial(t, addr)
	if line := c.line(t); !strings.HasPrefix(line, "-ERR sentinel-proxy: backend "+dead+": ") {
		t.Fatalf("got %q", line)
	}
	if st := l.Stats(); st.ConnectErrors != 1 || reported.Load() != 1 {
		t.Errorf("connect errors %d, reported %d times, want 1 and 1", st.ConnectErrors, reported.Load())
	}

	live := startBackend(t, redisLike(""))
	l.SetRoute(proxy.Route{Backends: []string{dead, live.addr()}})
	for i := 0; i < 4; i++ {
		c := dial(t, addr)
		if r := c.do(t, "PING"); r != "PONG" {
			t.Fatalf("attempt %d: %q", i, r)
		}
		c.Close()
	}
}

// testBackendByHostName: a backend named by a host name (Sentinel with announce-hostnames) is
// resolved, on every data path, without holding up the others' traffic.
func testBackendByHostName(t *testing.T, k handlerKind) {
	b := startBackend(t, redisLike(""))
	_, port, _ := net.SplitHostPort(b.addr())
	addr := startListener(t, k.handler(t), &proxy.Listener{}, proxy.Route{Backends: []string{net.JoinHostPort("localhost", port)}})
	c := dial(t, addr)
	if r := c.do(t, "PING"); r != "PONG" {
		t.Fatalf("PING through a host name: %q", r)
	}
}

func testClientResetEndsSession(t *testing.T, k handlerKind) {
	b := startBackend(t, redisLike(""))
	l := &proxy.Listener{}
	addr := startListener(t, k.handler(t), l, proxy.Route{Backends: []string{b.addr()}})
	var before int
	for round := 0; round < 2; round++ {
		c := dial(t, addr)
		if r := c.do(t, "PING"); r != "PONG" {
			t.Fatalf("PING: %q", r)
		}
		_ = c.SetLinger(0) // close sends RST
		c.Close()
		waitFor(t, "session end", func() bool { return l.Stats().Current == 0 })
		if round == 0 {
			// The first round opens what the listener keeps (its spare descriptors).
			time.Sleep(50 * time.Millisecond)
			before = openFDs(t)
			continue
		}
		// Every backend connection the session had, its own or shared with nobody else, is closed.
		waitFor(t, "the backend connections to close", func() bool { return openFDs(t) <= before })
	}
}

func testCloseSessionsToBackend(t *testing.T, k handlerKind) {
	b1 := startBackend(t, redisLike("one"))
	b2 := startBackend(t, redisLike("two"))
	l := &proxy.Listener{}
	addr := startListener(t, k.handler(t), l, proxy.Route{Backends: []string{b1.addr()}})
	var old []*client
	for i := 0; i < 5; i++ {
		c := dial(t, addr)
		if r := c.do(t, "PING"); r != "one" {
			t.Fatalf("PING: %q", r)
		}
		old = append(old, c)
	}
	l.SetRoute(proxy.Route{Backends: []string{b2.addr()}})
	keep := dial(t, addr)
	if r := keep.do(t, "PING"); r != "two" {
		t.Fatalf("PING: %q", r)
	}
	if n := l.CloseSessionsTo(b1.addr()); n != 5 {
		t.Fatalf("closed %d sessions, want 5", n)
	}
	for i, c := range old {
		if !c.ended() {
			t.Fatalf("session %d to the old backend still open", i)
		}
	}
	if r := keep.do(t, "PING"); r != "two" {
		t.Fatalf("session to the other backend was hurt: %q", r)
	}
	if per := l.Stats().PerBackend; per[b1.addr()].Total != 5 || per[b2.addr()].Current != 1 {
		t.Errorf("per-backend stats: %+v", per)
	}
}

func testIdleTimeout(t *testing.T, k handlerKind) {
	b := startBackend(t, redisLike(""))
	l := &proxy.Listener{IdleTimeout: 400 * time.Millisecond}
	addr := startListener(t, k.handler(t), l, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	// Traffic every 50ms keeps the session alive well past the timeout.
	for i := 0; i < 8; i++ {
		if r := c.do(t, "PING"); r != "PONG" {
			t.Fatalf("active session: %q", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	start := time.Now()
	if !c.ended() {
		t.Fatal("idle session not closed")
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("idle close took %s", time.Since(start))
	}
}

// testIdleTimeoutCountsEitherDirection: a subscriber only receives: traffic from the backend alone keeps
// it alive.
func testIdleTimeoutCountsEitherDirection(t *testing.T, k handlerKind) {
	const messages = 8
	b := startBackend(t, serveRESP(func(w *bufio.Writer, args []string) bool {
		fmt.Fprintf(w, "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n")
		for i := 0; i < messages; i++ {
			fmt.Fprintf(w, "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\n%d\r\n", i)
			if w.Flush() != nil {
				return true
			}
			time.Sleep(100 * time.Millisecond)
		}
		return true
	}))
	addr := startListener(t, k.handler(t), &proxy.Listener{IdleTimeout: 400 * time.Millisecond}, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	if r := c.do(t, "SUBSCRIBE", "ch"); r != "subscribe\nch\n1" {
		t.Fatalf("SUBSCRIBE: %q", r)
	}
	for i := 0; i < messages; i++ {
		if r := c.reply(t); r != "message\nch\n"+strconv.Itoa(i) {
			t.Fatalf("message %d: %q", i, r)
		}
	}
}

func testMaxConns(t *testing.T, k handlerKind) {
	b := startBackend(t, redisLike(""))
	l := &proxy.Listener{MaxConns: 2}
	addr := startListener(t, k.handler(t), l, proxy.Route{Backends: []string{b.addr()}})
	for i := 0; i < 2; i++ {
		if r := dial(t, addr).do(t, "PING"); r != "PONG" {
			t.Fatalf("client %d: %q", i, r)
		}
	}
	if line := dial(t, addr).line(t); !strings.Contains(line, "max connections (2) reached") {
		t.Fatalf("third client got %q", line)
	}
}

func testRoundRobin(t *testing.T, k handlerKind) {
	var addrs []string
	for i := 0; i < 3; i++ {
		addrs = append(addrs, startBackend(t, redisLike(string(rune('a'+i)))).addr())
	}
	addr := startListener(t, k.handler(t), &proxy.Listener{}, proxy.Route{Backends: addrs})
	seen := map[string]int{}
	for i := 0; i < 9; i++ {
		c := dial(t, addr)
		seen[c.do(t, "PING")]++
		c.Close()
	}
	if seen["a"] != 3 || seen["b"] != 3 || seen["c"] != 3 {
		t.Fatalf("round-robin spread: %v", seen)
	}
}

// testNoFDLeak runs many sessions and checks the process's open files come back.
func testNoFDLeak(t *testing.T, k handlerKind) {
	b := startBackend(t, redisLike(""))
	l := &proxy.Listener{}
	addr := startListener(t, k.handler(t), l, proxy.Route{Backends: []string{b.addr()}})
	before := openFDs(t)
	for i := 0; i < 200; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("*1\r\n$4\r\nPING\r\n"))
		buf := make([]byte, 7)
		_, _ = io.ReadFull(c, buf)
		if i%2 == 0 {
			_ = c.(*net.TCPConn).SetLinger(0)
		}
		c.Close()
	}
	waitFor(t, "sessions to end", func() bool { return l.Stats().Current == 0 })
	waitFor(t, "fds to be released", func() bool { return openFDs(t) <= before+2 })
}

func testHoldForwardsWhenARouteAppears(t *testing.T, k handlerKind) {
	b := startBackend(t, redisLike(""))
	l := &proxy.Listener{HoldTimeout: 5 * time.Second}
	addr := startListener(t, k.handler(t), l, proxy.Route{Refusal: "failover in progress"})
	c := dial(t, addr)
	// The client writes at once; the command waits until the route exists.
	c.send(t, "PING")
	waitFor(t, "client held", func() bool { return l.Stats().Held == 1 })
	l.SetRoute(proxy.Route{Backends: []string{b.addr()}})
	if r := c.reply(t); r != "PONG" {
		t.Fatalf("held client not forwarded: %q", r)
	}
	if st := l.Stats(); st.Held != 0 || st.Refused != 0 {
		t.Errorf("stats after hold: %+v", st)
	}
}

func testHoldExpiresWithRefusal(t *testing.T, k handlerKind) {
	l := &proxy.Listener{HoldTimeout: 200 * time.Millisecond}
	addr := startListener(t, k.handler(t), l, proxy.Route{Refusal: "no verified master"})
	start := time.Now()
	if line := dial(t, addr).line(t); line != "-ERR sentinel-proxy: no verified master\r\n" {
		t.Fatalf("got %q", line)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 3*time.Second {
		t.Errorf("refused after %s, want about the hold time", d)
	}
}

func testHeldClientsCountAgainstMaxConns(t *testing.T, k handlerKind) {
	l := &proxy.Listener{HoldTimeout: 5 * time.Second, MaxConns: 1}
	addr := startListener(t, k.handler(t), l, proxy.Route{Refusal: "failover"})
	dial(t, addr)
	waitFor(t, "first client held", func() bool { return l.Stats().Held == 1 })
	if line := dial(t, addr).line(t); !strings.Contains(line, "max connections (1) reached") {
		t.Fatalf("second client got %q", line)
	}
}

func testHoldRetriesWhenTheBackendIsDead(t *testing.T, k handlerKind) {
	dead := deadAddr(t)
	live := startBackend(t, redisLike(""))
	var failures atomic.Int64
	l := &proxy.Listener{HoldTimeout: 5 * time.Second, OnBackendFailure: func(string) { failures.Add(1) }}
	addr := startListener(t, k.handler(t), l, proxy.Route{Backends: []string{dead}})
	c := dial(t, addr)
	c.send(t, "PING")
	waitFor(t, "the dead backend to be reported", func() bool { return failures.Load() > 0 })
	l.SetRoute(proxy.Route{Backends: []string{live.addr()}})
	if r := c.reply(t); r != "PONG" {
		t.Fatalf("held client not forwarded to the new backend: %q", r)
	}
}

// testBackpressure: a client that stops reading must stop the backend, not make the proxy buffer.
func testBackpressure(t *testing.T, k handlerKind) {
	const offered = 256 << 20
	wrote := make(chan int64, 1)
	b := startBackend(t, func(c net.Conn) {
		defer c.Close()
		if _, err := resp.ReadValue(bufio.NewReader(c), resp.Limits{MaxBulk: 64, MaxElements: 4, MaxDepth: 2, MaxLine: 64}); err != nil {
			return // the client's command: closing with it unread would reset
		}
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		n, _ := c.Write([]byte(fmt.Sprintf("$%d\r\n", offered)))
		total := int64(n)
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		for total < offered {
			m, err := c.Write(chunk)
			total += int64(m)
			if err != nil {
				break
			}
		}
		wrote <- total
		_ = c.(*net.TCPConn).CloseWrite()
		_, _ = io.Copy(io.Discard, c)
	})
	l := &proxy.Listener{}
	addr := startListener(t, k.handler(t), l, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	c.send(t, "GET", "big")
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
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.Copy(io.Discard, c.r)
	if err != nil || got != n {
		t.Fatalf("client read %d bytes, backend wrote %d (%v)", got, n, err)
	}
	if out := l.Stats().BytesOut; out != uint64(n) {
		t.Errorf("bytes out %d, want %d", out, n)
	}
}

// testSteadyStateAllocations: a request and its reply allocate nothing once a session runs.
func testSteadyStateAllocations(t *testing.T, k handlerKind) {
	msg := []byte("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n")
	nullReply := []byte("$-1\r\n")
	// A backend that allocates nothing per request either: it reads a request's bytes and answers.
	b := startBackend(t, func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, len(msg))
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(nullReply); err != nil {
				return
			}
		}
	})
	addr := startListener(t, k.handler(t), &proxy.Listener{}, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	buf := make([]byte, len(nullReply))
	roundTrip := func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c.r, buf); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 200; i++ {
		roundTrip()
	}
	// Not testing.AllocsPerRun: it sets GOMAXPROCS to 1, taking away the P the event loops added for
	// themselves, which then hold the only one while they wait (see eventloop.New).
	const runs = 2000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < runs; i++ {
		roundTrip()
	}
	runtime.ReadMemStats(&after)
	allocs := float64(after.Mallocs-before.Mallocs) / runs
	// The test's own client and backend allocate nothing per message either; a fraction allows for
	// the runtime's background work.
	if allocs > 0.5 {
		t.Fatalf("%.2f allocations per forwarded round trip, want 0", allocs)
	}
}

// The byte pipe's own cases.

func testEchoAndLargeTransfer(t *testing.T, k handlerKind) {
	b := startBackend(t, echo)
	l := &proxy.Listener{}
	addr := startListener(t, k.handler(t), l, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	payload := make([]byte, 8<<20)
	_, _ = rand.Read(payload)
	go func() { _, _ = c.Write(payload); _ = c.CloseWrite() }()
	got, err := io.ReadAll(c.r)
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

func testClientHalfCloseStillGetsReply(t *testing.T, k handlerKind) {
	// The backend reads until EOF, then answers: only a forwarded half-close lets it answer.
	b := startBackend(t, func(c net.Conn) {
		defer c.Close()
		data, _ := io.ReadAll(c)
		_, _ = c.Write([]byte("got:" + string(data)))
	})
	addr := startListener(t, k.handler(t), &proxy.Listener{}, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	_, _ = c.Write([]byte("hello"))
	_ = c.CloseWrite()
	got, err := io.ReadAll(c.r)
	if err != nil || string(got) != "got:hello" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func testBackendHalfCloseStillTakesData(t *testing.T, k handlerKind) {
	received := make(chan string, 1)
	b := startBackend(t, func(c net.Conn) {
		defer c.Close()
		_, _ = c.Write([]byte("banner"))
		_ = c.(*net.TCPConn).CloseWrite()
		data, _ := io.ReadAll(c)
		received <- string(data)
	})
	addr := startListener(t, k.handler(t), &proxy.Listener{}, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	buf := make([]byte, 6)
	if _, err := io.ReadFull(c.r, buf); err != nil || string(buf) != "banner" {
		t.Fatalf("banner: %q %v", buf, err)
	}
	if n, err := c.r.Read(buf); n != 0 || err != io.EOF {
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

func testBackendResetEndsSession(t *testing.T, k handlerKind) {
	b := startBackend(t, func(c net.Conn) {
		buf := make([]byte, 1)
		_, _ = c.Read(buf)
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	addr := startListener(t, k.handler(t), &proxy.Listener{}, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	_, _ = c.Write([]byte("x"))
	if !c.ended() {
		t.Fatal("client should see the session end")
	}
}

// testBackendResetMovesSession: a RESP session whose backend connection is reset with a read in flight,
// by a node that died (it no longer takes connections), sends the read again on a new connection once
// there is a route, and its client sees only the reply.
func testBackendResetMovesSession(t *testing.T, k handlerKind) {
	next := startBackend(t, redisLike(""))
	var dying *backend
	var reset atomic.Bool
	dying = startBackend(t, serveRESP(func(w *bufio.Writer, args []string) bool {
		if reset.CompareAndSwap(false, true) {
			_ = dying.ln.Close() // the node dies: it takes no connection any more
			return false         // and the first command's connection is reset, the command unanswered
		}
		answerLikeRedis(w, "", args)
		return true
	}))
	l := &proxy.Listener{HoldTimeout: 5 * time.Second} // how long the read may wait for a new connection
	addr := startListener(t, k.handler(t), l, proxy.Route{Backends: []string{dying.addr()}})
	go func() {
		for !reset.Load() {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		l.SetRoute(proxy.Route{Backends: []string{next.addr()}}) // the failover names the next node
	}()
	c := dial(t, addr)
	if r := c.do(t, "GET", "k"); r != "" {
		t.Fatalf("GET after the reset: %q", r)
	}
	if r := c.do(t, "PING"); r != "PONG" {
		t.Fatalf("PING: %q", r)
	}
	if st := l.Stats(); st.Current != 1 || st.Moved == 0 || st.ClosedByBackend != 0 {
		t.Errorf("after the reset: %d sessions, %d moved, %d closed by the backend; want 1, at least 1, 0",
			st.Current, st.Moved, st.ClosedByBackend)
	}
}

// testBackendKillClosesClient: a RESP session whose backend connection the node closes while it stays
// up and routed (CLIENT KILL, an output-buffer limit, timeout) is closed as Redis closed it, counted,
// and not moved: a client connected directly would have been disconnected.
func testBackendKillClosesClient(t *testing.T, k handlerKind) {
	var killed atomic.Bool
	b := startBackend(t, serveRESP(func(w *bufio.Writer, args []string) bool {
		if len(args) > 0 && args[0] == "BLPOP" && killed.CompareAndSwap(false, true) {
			return false // the blocked command's connection is closed, the node stays up
		}
		answerLikeRedis(w, "", args)
		return true
	}))
	l := &proxy.Listener{HoldTimeout: 2 * time.Second}
	addr := startListener(t, k.handler(t), l, proxy.Route{Backends: []string{b.addr()}})
	c := dial(t, addr)
	if r := c.do(t, "PING"); r != "PONG" {
		t.Fatalf("PING: %q", r)
	}
	if _, err := c.Write([]byte("*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := c.r.ReadString('\n'); err != io.EOF {
		t.Fatalf("after the kill the client read %q, %v; want the connection closed (EOF)", line, err)
	}
	waitFor(t, "the session to end", func() bool { return l.Stats().Current == 0 })
	if st := l.Stats(); st.ClosedByBackend != 1 || st.Moved != 0 {
		t.Errorf("closed by the backend %d, moved %d; want 1, 0", st.ClosedByBackend, st.Moved)
	}
}

// TestIdleLoopsPark: a loop with sessions but no traffic stops holding its P (it parks in Go's poller,
// so an idle proxy does not wake), and the next request brings it back to work.
func TestIdleLoopsPark(t *testing.T) {
	for _, k := range kinds {
		if !k.loops || k.batch {
			continue
		}
		t.Run(k.name, func(t *testing.T) {
			loops, err := eventloop.New(eventloop.Options{Loops: 1})
			if err != nil {
				t.Skipf("no event loops here: %v", err)
			}
			t.Cleanup(loops.Close)
			lp := loops.All()[0]
			b := startBackend(t, redisLike(""))
			addr := startListener(t, k.make(loops), &proxy.Listener{IdleTimeout: time.Minute}, proxy.Route{Backends: []string{b.addr()}})
			c := dial(t, addr)
			for round := 0; round < 3; round++ {
				if r := c.do(t, "PING"); r != "PONG" {
					t.Fatalf("round %d: %q", round, r)
				}
				// activeWait after the last event, the loop parks; the idle timer (the wheel is not
				// empty) must not wake it back into holding its P.
				waitFor(t, "the idle loop to park", lp.Parked)
				time.Sleep(2 * eventloop.TimerTick)
				if !lp.Parked() {
					t.Fatalf("round %d: the loop holds its P again without traffic", round)
				}
			}
		})
	}
}

// BenchmarkForward measures one request/response round trip through each data path (run with
// -benchmem).
func BenchmarkForward(b *testing.B) {
	for _, k := range kinds {
		if k.batch {
			continue
		}
		b.Run(k.name, func(b *testing.B) {
			var h proxy.Handler
			if k.loops {
				loops, err := eventloop.New(eventloop.Options{Loops: 2})
				if err != nil {
					b.Skip(err)
				}
				defer loops.Close()
				h = k.make(loops)
			} else {
				h = k.make(nil)
			}
			be := startBackend(b, redisLike(""))
			addr := startListener(b, h, &proxy.Listener{}, proxy.Route{Backends: []string{be.addr()}})
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := []byte("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n")
			buf := make([]byte, len("$-1\r\n"))
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
