package respsession

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/proxy/eventloop"
	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// The pool's tests run shared connections against a loopback server the test drives by hand (what it
// reads, what it answers, in which pieces), with receivers of the test's own: the pool meets sessions
// only through claims and receivers, so no session, conversation or Redis is needed.

// poolHarness is a pool on a loop of its own and the server its connections reach.
type poolHarness struct {
	t     *testing.T
	lp    *eventloop.Loop
	pool  *pool
	stats muxStats
	ln    net.Listener
	conns chan net.Conn // the server's side of each connection, in the order they came
}

func newPoolHarness(t *testing.T) *poolHarness {
	t.Helper()
	loops, err := eventloop.New(eventloop.Options{Loops: 1})
	if err != nil {
		t.Skipf("no event loops here: %v", err)
	}
	t.Cleanup(loops.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &poolHarness{t: t, lp: loops.All()[0], ln: ln, conns: make(chan net.Conn, 16)}
	h.pool = newPool(h.lp, &h.stats)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-h.conns:
				c.Close()
			default:
				return
			}
		}
	})
	return h
}

// onLoop runs fn on the pool's loop and waits for it.
func (h *poolHarness) onLoop(fn func()) {
	h.t.Helper()
	done := make(chan struct{})
	h.lp.Post(func() { fn(); close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		h.t.Fatal("the loop did not run a posted function")
	}
}

// accept returns the server's side of the next connection.
func (h *poolHarness) accept() *serverConn {
	h.t.Helper()
	select {
	case c := <-h.conns:
		h.t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		return &serverConn{Conn: c, r: bufio.NewReader(c)}
	case <-time.After(5 * time.Second):
		h.t.Fatal("no connection came")
		return nil
	}
}

func (h *poolHarness) key() poolKey {
	st := newState()
	return poolKey{addr: h.ln.Addr().String(), muxKeyOf: st.muxKey()}
}

// join puts a new test receiver on the connection for key.
func (h *poolHarness) join(key poolKey) (*testReceiver, *claim) {
	h.t.Helper()
	rcv := &testReceiver{}
	var cl *claim
	var err error
	h.onLoop(func() { cl, err = h.pool.join(key, rcv, time.Second) })
	if err != nil {
		h.t.Fatal(err)
	}
	return rcv, cl
}

// send sends commands through cl.
func (h *poolHarness) send(cl *claim, replies int32, cmds ...[]string) (full bool) {
	var b []byte
	for _, c := range cmds {
		b = resp.AppendCommand(b, c...)
	}
	h.onLoop(func() { full = cl.send(b, replies) })
	return full
}

// serverConn is the server's side of a shared connection.
type serverConn struct {
	net.Conn
	r *bufio.Reader
}

// command reads one command.
func (c *serverConn) command(t *testing.T) string {
	t.Helper()
	v, err := resp.ReadValue(c.r, resp.Limits{MaxBulk: 1 << 20, MaxElements: 64, MaxDepth: 2, MaxLine: 1 << 10})
	if err != nil {
		t.Fatalf("server reading a command: %v", err)
	}
	return strings.ReplaceAll(v.Text(), "\n", " ")
}

// writeInPieces writes b a few bytes at a time, so that replies come cut anywhere.
func (c *serverConn) writeInPieces(t *testing.T, b string, piece int) {
	t.Helper()
	for len(b) > 0 {
		n := min(piece, len(b))
		if _, err := c.Write([]byte(b[:n])); err != nil {
			t.Fatal(err)
		}
		b = b[n:]
		time.Sleep(time.Millisecond)
	}
}

// testReceiver records what a shared connection tells it; only the loop touches it (read it through
// onLoop).
type testReceiver struct {
	replies  bytes.Buffer
	settled  int
	ready    int
	failed   []error
	room     int
	cancelAt int // cancel its claim once it got this many bytes (0: never)
	claim    *claim
	confirms []confirmation
	// heldWrites is how many write replies the receiver says it holds (a session's conversation would
	// know): the pool's confirmer covers them.
	heldWrites int
}

// confirmation is what the pool's confirmer told a receiver.
type confirmation struct {
	replicas int64
	err      error
	upto     int
}

func (r *testReceiver) sharedReplies(b []byte) {
	r.replies.Write(b)
	if r.cancelAt > 0 && r.replies.Len() >= r.cancelAt {
		r.claim.cancel()
	}
}
func (r *testReceiver) sharedSettled()                   { r.settled++ }
func (r *testReceiver) sharedReady()                     { r.ready++ }
func (r *testReceiver) sharedFailed(_ *claim, err error) { r.failed = append(r.failed, err) }
func (r *testReceiver) sharedRoom()                      { r.room++ }
func (r *testReceiver) sharedConfirmed(n int64, err error, upto int) {
	r.confirms = append(r.confirms, confirmation{n, err, upto})
}
func (r *testReceiver) sharedHeld() int { return r.heldWrites }
func (h *poolHarness) got(r *testReceiver) (replies string) {
	h.onLoop(func() { replies = r.replies.String() })
	return
}

// waitGot waits until r got want.
func (h *poolHarness) waitGot(r *testReceiver, want string) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := h.got(r)
		if got == want {
			return
		}
		if len(got) > len(want) || time.Now().After(deadline) {
			h.t.Fatalf("receiver got %q, want %q", got, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestPoolDeliversRepliesInOrder: sessions on one connection send in turn; the replies, however they
// are cut, go each to the session that sent the command, and what is owed comes back to zero.
func TestPoolDeliversRepliesInOrder(t *testing.T) {
	h := newPoolHarness(t)
	a, clA := h.join(h.key())
	b, clB := h.join(h.key())
	if clA.conn != clB.conn {
		t.Fatal("two sessions with one key got two connections")
	}
	srv := h.accept()
	h.accept() // the key's spare
	h.send(clA, 1, []string{"GET", "a"})
	h.send(clB, 2, []string{"GET", "b"}, []string{"PING"})
	h.send(clA, 1, []string{"PING"})
	for _, want := range []string{"GET a", "GET b", "PING", "PING"} {
		if got := srv.command(t); got != want {
			t.Fatalf("server read %q, want %q", got, want)
		}
	}
	srv.writeInPieces(t, "$1\r\na\r\n$1\r\nb\r\n+PONG\r\n+PONG\r\n", 3)
	h.waitGot(a, "$1\r\na\r\n+PONG\r\n")
	h.waitGot(b, "$1\r\nb\r\n+PONG\r\n")
	h.onLoop(func() {
		if clA.owed != 0 || clB.owed != 0 {
			t.Errorf("owed %d and %d after every reply", clA.owed, clB.owed)
		}
		if a.settled == 0 || b.settled == 0 {
			t.Errorf("settled %d and %d times", a.settled, b.settled)
		}
	})
}

// TestPoolCancelInTheMiddleOfAReply: a session that leaves while its long reply is part-way through
// gets nothing more of it; the rest is read and dropped, and the session behind it gets its reply
// whole, on the same connection.
func TestPoolCancelInTheMiddleOfAReply(t *testing.T) {
	h := newPoolHarness(t)
	a, clA := h.join(h.key())
	b, clB := h.join(h.key())
	a.claim, a.cancelAt = clA, 10
	srv := h.accept()
	h.accept()
	h.send(clA, 1, []string{"GET", "big"})
	h.send(clB, 1, []string{"GET", "b"})
	srv.command(t)
	srv.command(t)
	big := "$100\r\n" + strings.Repeat("x", 100) + "\r\n"
	srv.writeInPieces(t, big+"$1\r\nb\r\n", 7)
	h.waitGot(b, "$1\r\nb\r\n")
	got := h.got(a)
	if len(got) < 10 || len(got) > 10+7 || !strings.HasPrefix(big, got) {
		t.Fatalf("the session that left got %q of its reply", got)
	}
	h.onLoop(func() {
		if clB.conn.closed || clB.conn.fd < 0 {
			t.Error("the connection closed with a session on it")
		}
	})
	if r := h.send(clB, 1, []string{"PING"}); r {
		t.Fatal("a PING filled the connection")
	}
	if cmd := srv.command(t); cmd != "PING" {
		t.Fatalf("server read %q", cmd)
	}
	srv.writeInPieces(t, "+PONG\r\n", 100)
	h.waitGot(b, "$1\r\nb\r\n+PONG\r\n")
}

// TestPoolLastSessionOutClosesIt: a connection nobody uses and that owes nothing closes, and its spare
// with it; one still owing replies to a session that left closes once they are read.
func TestPoolLastSessionOutClosesIt(t *testing.T) {
	h := newPoolHarness(t)
	_, cl := h.join(h.key())
	srv := h.accept()
	spare := h.accept()
	h.send(cl, 1, []string{"GET", "a"})
	srv.command(t)
	h.onLoop(cl.cancel)
	h.onLoop(func() {
		if cl.conn.closed {
			t.Error("closed while it owes a reply")
		}
	})
	srv.writeInPieces(t, "$1\r\na\r\n", 100)
	for _, c := range []*serverConn{srv, spare} {
		if _, err := c.r.ReadByte(); err != io.EOF {
			t.Fatalf("connection still open: %v", err)
		}
	}
	h.onLoop(func() {
		if n, _ := h.stats.total(); n != 0 {
			t.Errorf("%d shared connections counted open", n)
		}
	})
}

// TestPoolSpares: a key with a shared connection has a spare; a ready one is handed over whole (its
// descriptor, with the key's state) and another is connected in its place. One whose handshake the
// server refuses is never handed over.
func TestPoolSpares(t *testing.T) {
	h := newPoolHarness(t)
	key := h.key()
	key.authed, key.pass = true, "secret"
	_, cl := h.join(key)
	srv := h.accept()
	spare := h.accept()
	for _, c := range []*serverConn{srv, spare} {
		if cmd := c.command(t); cmd != "HELLO 2 AUTH default secret" {
			t.Fatalf("handshake %q", cmd)
		}
	}
	fd := -2
	h.onLoop(func() { fd = h.pool.takeSpare(key) })
	if fd != -1 {
		t.Fatal("a spare was handed over before its handshake was answered")
	}
	srv.writeInPieces(t, "%1\r\n+server\r\n+redis\r\n", 100)
	spare.writeInPieces(t, "%1\r\n+server\r\n+redis\r\n", 100)
	deadline := time.Now().Add(5 * time.Second)
	for fd < 0 && time.Now().Before(deadline) {
		h.onLoop(func() { fd = h.pool.takeSpare(key) })
		time.Sleep(2 * time.Millisecond)
	}
	if fd < 0 {
		t.Fatal("no spare handed over")
	}
	h.onLoop(func() {
		if _, err := eventloop.Write(fd, resp.AppendCommand(nil, "PING")); err != nil {
			t.Errorf("write on the spare: %v", err)
		}
	})
	if cmd := spare.command(t); cmd != "PING" {
		t.Fatalf("the spare's server read %q", cmd)
	}
	h.onLoop(func() { h.lp.Forget(fd); eventloop.Close(fd) })
	next := h.accept() // the new spare
	if cmd := next.command(t); cmd != "HELLO 2 AUTH default secret" {
		t.Fatalf("new spare's handshake %q", cmd)
	}
	next.writeInPieces(t, "-WRONGPASS invalid username-password pair\r\n", 100)
	if _, err := next.r.ReadByte(); err != io.EOF {
		t.Fatalf("a spare whose handshake was refused stays open: %v", err)
	}
	h.onLoop(func() {
		if fd := h.pool.takeSpare(key); fd >= 0 {
			t.Error("a refused spare was handed over")
		}
		if !cl.usable() {
			t.Error("the shared connection left its pool")
		}
	})
}

// TestPoolConnectingThenReady: a session that joins a connection still connecting is told when it is
// up, and what it sent meanwhile goes out after the handshake.
func TestPoolConnectingThenReady(t *testing.T) {
	h := newPoolHarness(t)
	key := h.key()
	key.db = 3
	rcv := &testReceiver{}
	var cl *claim
	h.onLoop(func() {
		var err error
		if cl, err = h.pool.join(key, rcv, time.Second); err != nil {
			t.Error(err)
			return
		}
		if cl.ready() {
			t.Error("ready before its connect could end")
		}
		cl.send(resp.AppendCommand(nil, "GET", "a"), 1)
	})
	srv := h.accept()
	h.accept()
	for _, want := range []string{"SELECT 3", "GET a"} {
		if got := srv.command(t); got != want {
			t.Fatalf("server read %q, want %q", got, want)
		}
	}
	srv.writeInPieces(t, "+OK\r\n$1\r\na\r\n", 100)
	h.waitGot(rcv, "$1\r\na\r\n") // the handshake's reply is nobody's
	h.onLoop(func() {
		if rcv.ready != 1 {
			t.Errorf("told ready %d times", rcv.ready)
		}
	})
}

// TestPoolFailureTellsEverySession: a connection the server closes, or that sends a reply nobody asked
// for, fails every session on it, once; the next to join gets a new connection.
func TestPoolFailureTellsEverySession(t *testing.T) {
	for _, end := range []string{"close", "unasked"} {
		t.Run(end, func(t *testing.T) {
			h := newPoolHarness(t)
			a, clA := h.join(h.key())
			b, _ := h.join(h.key())
			srv := h.accept()
			h.accept()
			h.send(clA, 1, []string{"GET", "a"})
			srv.command(t)
			if end == "close" {
				srv.Close()
			} else {
				srv.writeInPieces(t, "$1\r\na\r\n+surprise\r\n", 100)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				var na, nb int
				h.onLoop(func() { na, nb = len(a.failed), len(b.failed) })
				if na == 1 && nb == 1 {
					break
				}
				if na > 1 || nb > 1 || time.Now().After(deadline) {
					t.Fatalf("failed %d and %d times", na, nb)
				}
				time.Sleep(2 * time.Millisecond)
			}
			_, cl := h.join(h.key())
			if cl.conn == clA.conn {
				t.Fatal("a failed connection was joined")
			}
		})
	}
}

// TestPoolStuckConnectionTakesNoMore: a connection whose oldest command is unanswered after stuckAfter
// leaves its pool; the sessions on it keep their replies, the next ones get a new connection.
func TestPoolStuckConnectionTakesNoMore(t *testing.T) {
	h := newPoolHarness(t)
	a, clA := h.join(h.key())
	srv := h.accept()
	h.accept()
	h.send(clA, 1, []string{"EVAL", "long", "0"})
	srv.command(t)
	time.Sleep(stuckAfter + 20*time.Millisecond)
	h.onLoop(func() {
		if !clA.stuck(h.lp.NowNs() + 1) {
			t.Error("not stuck after stuckAfter")
		}
	})
	_, clB := h.join(h.key())
	if clB.conn == clA.conn {
		t.Fatal("a stuck connection took a new session")
	}
	srv.writeInPieces(t, ":1\r\n", 100)
	h.waitGot(a, ":1\r\n")
}

// TestPoolFullOutputStopsTheSender: a session whose commands fill the connection's output is told so,
// and told again when there is room.
func TestPoolFullOutputStopsTheSender(t *testing.T) {
	h := newPoolHarness(t)
	rcv, cl := h.join(h.key())
	srv := h.accept()
	h.accept()
	h.waitReady(cl)
	value := strings.Repeat("v", 4<<10)
	full := false
	for i := 0; i < 4096 && !full; i++ {
		full = h.send(cl, 1, []string{"SET", "k", value})
	}
	if !full {
		t.Fatal("the output never filled against a server that reads nothing")
	}
	go func() { _, _ = io.Copy(io.Discard, srv) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var room int
		h.onLoop(func() { room = rcv.room })
		if room == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("told of room %d times", room)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (h *poolHarness) waitReady(cl *claim) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ready := false
		h.onLoop(func() { ready = cl.ready() })
		if ready {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatal("the connection never came up")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestPoolPushesAreNobodys: a RESP3 push on a shared connection (nothing it does asks for one) goes to
// no session, and the replies around it go where they belong.
func TestPoolPushesAreNobodys(t *testing.T) {
	h := newPoolHarness(t)
	rcv, cl := h.join(h.key())
	srv := h.accept()
	h.accept()
	h.send(cl, 2, []string{"GET", "a"}, []string{"GET", "b"})
	srv.command(t)
	srv.command(t)
	srv.writeInPieces(t, "$1\r\na\r\n>2\r\n$10\r\ninvalidate\r\n_\r\n$1\r\nb\r\n", 5)
	h.waitGot(rcv, "$1\r\na\r\n$1\r\nb\r\n")
}

// TestPoolConfirmerCoversHeldWrites: after a read of a shared connection gave sessions write replies
// they hold, the key's confirmer (connections of its own: the shared one never blocks in a WAIT) sends
// PING and WAIT once for them all, and tells each what it answered for the write replies it held then; a
// session that holds none hears nothing. Write replies that come while that WAIT is in flight get a WAIT
// on the confirmer's second lane at once, and its answer stands for all the session held then.
func TestPoolConfirmerCoversHeldWrites(t *testing.T) {
	h := newPoolHarness(t)
	dur := NewDurability("g", zerolog.Nop())
	dur.Set(1, 200*time.Millisecond)
	key := h.key()
	key.dur = dur
	a, clA := h.join(key)
	b, clB := h.join(key)
	srv := h.accept()
	h.accept() // the spare
	h.waitReady(clA)
	h.onLoop(func() {
		a.heldWrites = 2 // as a session holding its SET's and INCR's replies would say
		clA.send(resp.AppendCommand(resp.AppendCommand(nil, "SET", "a", "1"), "INCR", "n"), 2)
		clB.send(resp.AppendCommand(nil, "GET", "a"), 1)
	})
	for _, want := range []string{"SET a 1", "INCR n", "GET a"} {
		if got := srv.command(t); got != want {
			t.Fatalf("server read %q, want %q", got, want)
		}
	}
	srv.writeInPieces(t, "+OK\r\n:2\r\n$1\r\n1\r\n", 100)
	h.waitGot(a, "+OK\r\n:2\r\n")
	h.waitGot(b, "$1\r\n1\r\n")
	lane1 := h.accept()
	for _, want := range []string{"PING", "WAIT 1 200"} {
		if got := lane1.command(t); got != want {
			t.Fatalf("the confirmer's first lane read %q, want %q", got, want)
		}
	}
	// While that WAIT waits, the session holds a third write reply: its WAIT goes on the second lane.
	h.onLoop(func() { clA.send(resp.AppendCommand(nil, "DEL", "a"), 1); a.heldWrites = 3 })
	if got := srv.command(t); got != "DEL a" {
		t.Fatalf("server read %q", got)
	}
	srv.writeInPieces(t, ":1\r\n", 100)
	h.waitGot(a, "+OK\r\n:2\r\n:1\r\n")
	lane2 := h.accept()
	for _, want := range []string{"PING", "WAIT 1 200"} {
		if got := lane2.command(t); got != want {
			t.Fatalf("the confirmer's second lane read %q, want %q", got, want)
		}
	}
	waitConfirms := func(want int) []confirmation {
		deadline := time.Now().Add(5 * time.Second)
		for {
			var ca, cb []confirmation
			h.onLoop(func() { ca, cb = append(ca, a.confirms...), append(cb, b.confirms...) })
			if len(cb) != 0 {
				t.Fatalf("a session that held nothing was told %+v", cb)
			}
			if len(ca) >= want {
				return ca
			}
			if time.Now().After(deadline) {
				t.Fatalf("told %+v, want %d confirmations", ca, want)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	lane2.writeInPieces(t, "+PONG\r\n:0\r\n", 2)
	if ca := waitConfirms(1); ca[0] != (confirmation{replicas: 0, upto: 3}) {
		t.Fatalf("the second lane's WAIT: %+v", ca)
	}
	lane1.writeInPieces(t, "+PONG\r\n:1\r\n", 100)
	if ca := waitConfirms(2); ca[1] != (confirmation{replicas: 1, upto: 2}) {
		t.Fatalf("the first lane's WAIT: %+v", ca)
	}
	if n := dur.Counts(); n.Waits != 2 || n.LastReplicas != 1 {
		t.Fatalf("counts %+v", n)
	}
}

// TestPoolWritesBigBatchesEarly: commands gathered over one wake-up go out once there is enough for a
// write, not all at its end: 50 clients' SETs of 16 KB held 800 KB in a buffer too big to keep, a
// megabyte of garbage per wake-up (SET of 16 KB ran at 0.26× HAProxy's rate).
func TestPoolWritesBigBatchesEarly(t *testing.T) {
	h := newPoolHarness(t)
	_, cl := h.join(h.key())
	srv := h.accept()
	h.accept()
	h.waitReady(cl)
	go func() { _, _ = io.Copy(io.Discard, srv) }()
	cmd := resp.AppendCommand(nil, "SET", "k", strings.Repeat("v", 16<<10))
	most := 0
	h.onLoop(func() { // one wake-up
		for i := 0; i < 50; i++ {
			cl.send(cmd, 1)
			most = max(most, cl.conn.out.Len())
		}
	})
	// An Output keeps a buffer of up to 256 KB between wake-ups (eventloop's maxPooled).
	if most > 256<<10 {
		t.Fatalf("%d bytes waited in one wake-up; want at most 256 KB", most)
	}
}
