package respsession

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// testEnv is a conversation's environment with a clock the test sets.
type testEnv struct{ clock *int64 }

func (e testEnv) now() int64 { return *e.clock }
func (testEnv) refusal() string {
	return `no verified master for "mymaster" (failover in progress)`
}

// wire records what a conversation sends each way.
type wire struct{ backend, client strings.Builder }

func (w *wire) toBackend(b []byte) { w.backend.Write(b) }
func (w *wire) toClient(b []byte)  { w.client.Write(b) }

// take returns what was sent each way since the last take.
func (w *wire) take() (backend, client string) {
	backend, client = w.backend.String(), w.client.String()
	w.backend.Reset()
	w.client.Reset()
	return backend, client
}

// testConv is a conversation attached to a backend, its clock at 0, holding commands for 1 s.
func testConv(t *testing.T) (*conv, *wire, *int64) {
	t.Helper()
	w := &wire{}
	now := new(int64)
	c := newConv(w, testEnv{now}, 1e9)
	if out := c.attach(); len(out) != 0 {
		t.Fatalf("a fresh connection needs no replay: %q", out)
	}
	return c, w, now
}

func cmd(args ...string) string { return string(resp.AppendCommand(nil, args...)) }

// feed gives a conversation bytes from one side, cut into chunks of size (whole for 0).
func feed(t *testing.T, f func([]byte) error, s string, size int) error {
	t.Helper()
	b := []byte(s)
	for len(b) > 0 {
		n := len(b)
		if size > 0 && size < n {
			n = size
		}
		if err := f(append([]byte(nil), b[:n]...)); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func mustFeed(t *testing.T, f func([]byte) error, s string) {
	t.Helper()
	if err := feed(t, f, s, 0); err != nil {
		t.Fatal(err)
	}
}

// TestForwardsCommandsAndRepliesWhateverTheCuts: what the client sends reaches the backend unchanged,
// and the replies reach the client in order, however both streams are cut.
func TestForwardsCommandsAndRepliesWhateverTheCuts(t *testing.T) {
	commands := cmd("SET", "k", "v\r\nwith a line break") + cmd("GET", "k") + "PING\r\n" + cmd("HGETALL", "h") +
		cmd("GET", strings.Repeat("x", 70000))
	replies := "+OK\r\n$20\r\nv\r\nwith a line break\r\n+PONG\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n$-1\r\n"
	for _, size := range []int{0, 1, 2, 3, 5, 7, 64, 4096} {
		c, w, _ := testConv(t)
		if err := feed(t, c.fromClient, commands, size); err != nil {
			t.Fatal(err)
		}
		if err := feed(t, c.fromBackend, replies, size); err != nil {
			t.Fatal(err)
		}
		backend, client := w.take()
		if backend != commands || client != replies {
			t.Fatalf("chunks of %d: backend got %d bytes (want %d), client %q", size, len(backend), len(commands), client)
		}
		if c.q.len() != 0 {
			t.Fatalf("chunks of %d: %d entries left", size, c.q.len())
		}
	}
}

// TestIdleSessionMovesWithItsState: an idle session's state is replayed on the next backend, the
// replay's replies are swallowed, and the client's next command goes there.
func TestIdleSessionMovesWithItsState(t *testing.T) {
	c, w, _ := testConv(t)
	mustFeed(t, c.fromClient, cmd("AUTH", "app", "s3cret")+cmd("SELECT", "3")+cmd("CLIENT", "SETNAME", "worker-7"))
	mustFeed(t, c.fromBackend, "+OK\r\n+OK\r\n+OK\r\n")
	w.take()
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	replay := string(c.attach())
	want := cmd("HELLO", "2", "AUTH", "app", "s3cret", "SETNAME", "worker-7") + cmd("SELECT", "3")
	if replay != want {
		t.Fatalf("replay %q, want %q", replay, want)
	}
	mustFeed(t, c.fromClient, cmd("GET", "k"))
	mustFeed(t, c.fromBackend, "*2\r\n$6\r\nserver\r\n$5\r\nredis\r\n+OK\r\n$1\r\nv\r\n")
	backend, client := w.take()
	if backend != cmd("GET", "k") || client != "$1\r\nv\r\n" {
		t.Fatalf("after the move: backend %q, client %q", backend, client)
	}
}

// TestCommandsInFlightAtTheCut: a read is sent again, a write gets the "may or may not have been
// applied" error, and the client gets both in the order it sent them.
func TestCommandsInFlightAtTheCut(t *testing.T) {
	c, w, _ := testConv(t)
	mustFeed(t, c.fromClient, cmd("GET", "a")+cmd("INCR", "n")+cmd("GET", "b"))
	mustFeed(t, c.fromBackend, "$1\r\n1\r\n") // GET a answered; INCR and GET b in flight
	w.take()
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	if out := string(c.attach()); out != cmd("GET", "b") {
		t.Fatalf("sent again: %q, want GET b only", out)
	}
	mustFeed(t, c.fromBackend, "$1\r\n2\r\n")
	_, client := w.take()
	if client != string(mayHaveApplied)+"$1\r\n2\r\n" {
		t.Fatalf("client got %q", client)
	}
}

// TestWatchedExecInFlightAtTheCut: an EXEC in flight is a write whose fate is unknown, watched or not:
// it gets the "may or may not have been applied" error, never the null reply of an aborted transaction
// (the client would run its transaction again on a fresh read, and apply it twice if it had run).
func TestWatchedExecInFlightAtTheCut(t *testing.T) {
	c, w, _ := testConv(t)
	mustFeed(t, c.fromClient, cmd("WATCH", "n")+cmd("GET", "n")+cmd("MULTI")+cmd("SET", "n", "2")+cmd("EXEC"))
	mustFeed(t, c.fromBackend, "+OK\r\n$1\r\n1\r\n+OK\r\n+QUEUED\r\n") // EXEC in flight
	w.take()
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	if out := string(c.attach()); out != "" {
		t.Fatalf("sent again: %q, want nothing", out)
	}
	if _, client := w.take(); client != string(mayHaveApplied) {
		t.Fatalf("the EXEC in flight answered %q, want %q", client, mayHaveApplied)
	}
	mustFeed(t, c.fromClient, cmd("GET", "n"))
	if backend, _ := w.take(); backend != cmd("GET", "n") {
		t.Fatalf("after the move: backend %q", backend)
	}
}

// TestTransactionLostInAFailover: MULTI open at the cut, whose commands the session did not keep as
// they went (they were held for a backend, then sent together): the rest is queued here and EXEC answers
// EXECABORT; nothing reaches the new backend. (One the session kept moves: TestTransactionCarriedOver.)
func TestTransactionLostInAFailover(t *testing.T) {
	c, w, _ := testConv(t)
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	mustFeed(t, c.fromClient, cmd("MULTI")+cmd("SET", "a", "1"))
	c.attach()
	mustFeed(t, c.fromBackend, "+OK\r\n+QUEUED\r\n")
	w.take()
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	c.attach()
	mustFeed(t, c.fromClient, cmd("INCR", "n")+cmd("EXEC")+cmd("GET", "a"))
	backend, client := w.take()
	if backend != cmd("GET", "a") || !strings.HasPrefix(client, "+QUEUED\r\n-EXECABORT ") {
		t.Fatalf("backend %q, client %q", backend, client)
	}
}

// TestWatchLostInAFailover: a WATCH in force at the cut makes the next transaction's EXEC answer a
// null reply, as when a watched key changed: the client retries, nothing runs.
func TestWatchLostInAFailover(t *testing.T) {
	for _, proto := range []int{2, 3} {
		c, w, _ := testConv(t)
		if proto == 3 {
			mustFeed(t, c.fromClient, cmd("HELLO", "3"))
			mustFeed(t, c.fromBackend, "%1\r\n+server\r\n+redis\r\n")
		}
		mustFeed(t, c.fromClient, cmd("WATCH", "k")+cmd("GET", "k"))
		mustFeed(t, c.fromBackend, "+OK\r\n$1\r\n1\r\n")
		w.take()
		if err := c.detach(); err != nil {
			t.Fatal(err)
		}
		if replay := string(c.attach()); proto == 3 {
			if replay != cmd("HELLO", "3") {
				t.Fatalf("replay %q", replay)
			}
			mustFeed(t, c.fromBackend, "%1\r\n+server\r\n+redis\r\n")
		}
		mustFeed(t, c.fromClient, cmd("MULTI")+cmd("SET", "k", "2")+cmd("EXEC"))
		backend, client := w.take()
		null := "*-1\r\n"
		if proto == 3 {
			null = "_\r\n"
		}
		if backend != "" || client != "+OK\r\n+QUEUED\r\n"+null {
			t.Fatalf("RESP%d: backend %q, client %q", proto, backend, client)
		}
	}
}

// TestSubscriberMoves: RESP2 subscriptions are made again on the next backend; its confirmations are
// swallowed, messages flow on, including one that arrives between the confirmations.
// TestTrackingClientReconnectsAtOnce: a RESP3 client with CLIENT TRACKING ON serves its cache without
// asking, so after a cut it must get its full invalidation, and the new master's, without sending a
// command first.
func TestTrackingClientReconnectsAtOnce(t *testing.T) {
	c, w, _ := testConv(t)
	mustFeed(t, c.fromClient, cmd("HELLO", "3")+cmd("CLIENT", "TRACKING", "ON"))
	mustFeed(t, c.fromBackend, "%1\r\n+proto\r\n:3\r\n+OK\r\n")
	w.take()
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	if !c.needsBackend() {
		t.Fatal("a tracking client must reconnect at once")
	}
	c.attach()
	if _, client := w.take(); client != ">2\r\n$10\r\ninvalidate\r\n_\r\n" {
		t.Fatalf("client got %q, want the full invalidation", client)
	}
}

func TestSubscriberMoves(t *testing.T) {
	c, w, _ := testConv(t)
	mustFeed(t, c.fromClient, cmd("SUBSCRIBE", "a", "b")+cmd("PSUBSCRIBE", "n*"))
	confirm := "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n" +
		"*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:3\r\n"
	msg := "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n"
	mustFeed(t, c.fromBackend, confirm+msg)
	if _, client := w.take(); client != confirm+msg {
		t.Fatalf("client got %q", client)
	}
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	if !c.needsBackend() {
		t.Fatal("a subscriber must reconnect at once")
	}
	if out := string(c.attach()); out != cmd("SUBSCRIBE", "a", "b")+cmd("PSUBSCRIBE", "n*") {
		t.Fatalf("replay %q", out)
	}
	for _, size := range []int{0, 1, 9} {
		if size > 0 { // a second move, to cut the stream differently
			if err := c.detach(); err != nil {
				t.Fatal(err)
			}
			c.attach()
		}
		// A message for a, then the confirmations, cut anywhere.
		if err := feed(t, c.fromBackend, msg+confirm+msg, size); err != nil {
			t.Fatal(err)
		}
		if _, client := w.take(); client != msg+msg {
			t.Fatalf("chunks of %d: client got %q", size, client)
		}
	}
}

// TestRESP3PushesAndTracking: with HELLO 3, subscription confirmations come as pushes and are dropped
// on a replay; a client that tracks keys gets a full invalidation after the move.
func TestRESP3PushesAndTracking(t *testing.T) {
	c, w, _ := testConv(t)
	mustFeed(t, c.fromClient, cmd("HELLO", "3")+cmd("SUBSCRIBE", "a")+cmd("CLIENT", "TRACKING", "ON")+cmd("GET", "k"))
	mustFeed(t, c.fromBackend, "%1\r\n+proto\r\n:3\r\n>3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n+OK\r\n$1\r\nv\r\n")
	w.take()
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	want := cmd("HELLO", "3") + cmd("CLIENT", "TRACKING", "ON") + cmd("SUBSCRIBE", "a")
	if out := string(c.attach()); out != want {
		t.Fatalf("replay %q, want %q", out, want)
	}
	mustFeed(t, c.fromBackend, "%1\r\n+proto\r\n:3\r\n+OK\r\n>3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n>3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n")
	if _, client := w.take(); client != string(invalidateAll)+">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n" {
		t.Fatalf("client got %q", client)
	}
}

// TestHeldCommands: without a backend a command waits; it is sent when one comes, or answered with the
// refusal when its hold runs out. The connection stays open.
func TestHeldCommands(t *testing.T) {
	c, w, now := testConv(t)
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	mustFeed(t, c.fromClient, cmd("SET", "a", "1"))
	*now = 5e8
	mustFeed(t, c.fromClient, cmd("GET", "a"))
	if backend, client := w.take(); backend != "" || client != "" || !c.needsBackend() {
		t.Fatalf("held: backend %q client %q", backend, client)
	}
	*now = 1.2e9 // the SET's hold ran out, not the GET's
	if next, err := c.expireHolds(*now); next != 1.5e9 || err != nil {
		t.Fatalf("next deadline %d, %v", next, err)
	}
	if _, client := w.take(); !strings.HasPrefix(client, "-ERR sentinel-proxy: no verified master") {
		t.Fatalf("expired hold: %q", client)
	}
	if out := string(c.attach()); out != cmd("GET", "a") {
		t.Fatalf("sent on attach: %q", out)
	}
	mustFeed(t, c.fromBackend, "$1\r\n1\r\n")
	if _, client := w.take(); client != "$1\r\n1\r\n" {
		t.Fatalf("client %q", client)
	}
}

// TestSessionEnds: a protocol error gets Redis's answer; QUIT ends after its +OK; a half-sent reply at
// the cut cannot be taken back.
func TestSessionEnds(t *testing.T) {
	c, w, _ := testConv(t)
	if err := c.fromClient([]byte("*1\r\n:1\r\n")); !resp.IsClientError(err) {
		t.Fatalf("protocol error: %v", err)
	}
	if _, client := w.take(); client != "-ERR Protocol error: expected '$', got ':'\r\n" {
		t.Fatalf("client got %q", client)
	}

	c, _, _ = testConv(t)
	mustFeed(t, c.fromClient, cmd("QUIT"))
	if err := c.fromBackend([]byte("+OK\r\n")); !errors.Is(err, errQuit) {
		t.Fatalf("QUIT: %v", err)
	}

	c, _, _ = testConv(t)
	mustFeed(t, c.fromClient, cmd("GET", "big"))
	mustFeed(t, c.fromBackend, "$10\r\n01234")
	if err := c.detach(); !errors.Is(err, errCannotMove) {
		t.Fatalf("half a reply at the cut: %v", err)
	}
}

// TestClientReplyOff: commands sent with replies off expect none.
func TestClientReplyOff(t *testing.T) {
	c, w, _ := testConv(t)
	mustFeed(t, c.fromClient, cmd("CLIENT", "REPLY", "OFF")+cmd("SET", "a", "1")+cmd("CLIENT", "REPLY", "ON")+cmd("GET", "a"))
	mustFeed(t, c.fromBackend, "+OK\r\n$1\r\n1\r\n")
	if _, client := w.take(); client != "+OK\r\n$1\r\n1\r\n" || c.q.len() != 0 {
		t.Fatalf("client %q, %d entries", client, c.q.len())
	}
	mustFeed(t, c.fromClient, cmd("CLIENT", "REPLY", "SKIP")+cmd("SET", "a", "2")+cmd("GET", "a"))
	mustFeed(t, c.fromBackend, "$1\r\n2\r\n")
	if _, client := w.take(); client != "$1\r\n2\r\n" || c.q.len() != 0 {
		t.Fatalf("skip: client %q, %d entries", client, c.q.len())
	}
}

// TestAnsweredCommandsNeverReachTheBackend: commands the session answers itself (QUEUED, in a
// transaction lost at a cut), cut across reads and mixed with forwarded ones, reach the backend only
// whole, once and in order: with the transaction carried to the next master at its EXEC.
func TestAnsweredCommandsNeverReachTheBackend(t *testing.T) {
	for _, size := range []int{0, 1, 3, 11} {
		c, w, _ := testConv(t)
		mustFeed(t, c.fromClient, cmd("MULTI"))
		mustFeed(t, c.fromBackend, "+OK\r\n")
		if err := c.detach(); err != nil {
			t.Fatal(err)
		}
		c.attach()
		w.take()
		in := cmd("GET", "x") + cmd("SET", "k", strings.Repeat("v", 100)) + cmd("EXEC") + cmd("GET", "y")
		if err := feed(t, c.fromClient, in, size); err != nil {
			t.Fatal(err)
		}
		if backend, _ := w.take(); backend != cmd("MULTI")+cmd("GET", "x")+cmd("SET", "k", strings.Repeat("v", 100))+cmd("EXEC")+cmd("GET", "y") {
			t.Fatalf("chunks of %d: backend got %q", size, backend)
		}
	}
}

// discard is an output that keeps nothing, for measuring the conversation alone.
type discard struct{}

func (discard) toBackend([]byte) {}
func (discard) toClient([]byte)  {}

// TestSteadyStateAllocatesNothing: reading pipelined commands and their replies allocates nothing once
// a session runs: names are compared in place, kept bytes go to the arena, the queue is reused.
func TestSteadyStateAllocatesNothing(t *testing.T) {
	c := newConv(discard{}, testEnv{new(int64)}, 1e9)
	c.attach()
	var commands, replies []byte
	for i := 0; i < 16; i++ {
		commands = append(commands, cmd("GET", "key:000000000001")...)
		commands = append(commands, cmd("SET", "key:000000000001", "xxxxxxxxxxxxxxxx")...)
		replies = append(replies, "$16\r\nxxxxxxxxxxxxxxxx\r\n+OK\r\n"...)
	}
	round := func() {
		if err := c.fromClient(commands); err != nil {
			t.Fatal(err)
		}
		if err := c.fromBackend(replies); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ {
		round()
	}
	if allocs := testing.AllocsPerRun(1000, round); allocs > 0 {
		t.Fatalf("%.1f allocations per pipeline of 32 commands and replies, want 0", allocs)
	}
}

func BenchmarkPipeline(b *testing.B) {
	c := newConv(discard{}, testEnv{new(int64)}, 1e9)
	c.attach()
	var commands, replies []byte
	for i := 0; i < 16; i++ {
		commands = append(commands, cmd("GET", "key:000000000001")...)
		replies = append(replies, "$16\r\nxxxxxxxxxxxxxxxx\r\n"...)
	}
	b.SetBytes(int64(len(commands) + len(replies)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = c.fromClient(commands)
		_ = c.fromBackend(replies)
	}
}

// TestLargeValuesStream: a 10 MB value, in a command or a reply, passes through without the
// conversation keeping it: what it keeps stays within a few tens of KB.
func TestLargeValuesStream(t *testing.T) {
	c := newConv(discard{}, testEnv{new(int64)}, 1e9)
	c.attach()
	value := strings.Repeat("v", 10<<20)
	for _, size := range []int{4096, 65536} {
		if err := feed(t, c.fromClient, cmd("SET", "k", value)+cmd("GET", value), size); err != nil {
			t.Fatal(err)
		}
		if err := feed(t, c.fromBackend, "+OK\r\n$"+fmt.Sprint(len(value))+"\r\n"+value+"\r\n", size); err != nil {
			t.Fatal(err)
		}
		if kept := cap(c.kept.buf) + cap(c.stash) + cap(c.peek) + cap(c.said.buf); kept > 256<<10 {
			t.Fatalf("chunks of %d: the conversation keeps %d bytes", size, kept)
		}
		if c.q.len() != 0 {
			t.Fatalf("chunks of %d: %d entries left", size, c.q.len())
		}
	}
}

// TestHeldSubscribeConfirmedOnce: a subscriber sends SUBSCRIBE while the session has no backend (a
// failover). On the new backend the replay subscribes again to what the session carried, then the held
// SUBSCRIBE goes out; Redis may confirm a channel twice on the wire (once for the replay if the held
// command was already counted in the session's state, once for the command), but the client gets exactly
// one confirmation for its SUBSCRIBE and none for the channels it already had.
func TestHeldSubscribeConfirmedOnce(t *testing.T) {
	c, w, _ := testConv(t)
	mustFeed(t, c.fromClient, cmd("SUBSCRIBE", "a"))
	confirmA := "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
	mustFeed(t, c.fromBackend, confirmA)
	if _, client := w.take(); client != confirmA {
		t.Fatalf("client got %q", client)
	}
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	mustFeed(t, c.fromClient, cmd("SUBSCRIBE", "b")) // held: no backend
	if backend, client := w.take(); backend != "" || client != "" {
		t.Fatalf("held: backend %q client %q", backend, client)
	}
	out := string(c.attach())
	if !strings.HasSuffix(out, cmd("SUBSCRIBE", "b")) || !strings.Contains(out, "\r\na\r\n") {
		t.Fatalf("sent on attach %q: want the replay (a at least), then the held SUBSCRIBE b", out)
	}
	// Redis answers every SUBSCRIBE it got, in order: one confirmation per channel per command.
	var wire strings.Builder
	n := 0
	subscribed := map[string]bool{}
	for _, command := range subscribeCommands(t, out) {
		for _, channel := range command[1:] {
			if !subscribed[channel] {
				subscribed[channel] = true
				n++
			}
			fmt.Fprintf(&wire, "*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:%d\r\n", len(channel), channel, n)
		}
	}
	mustFeed(t, c.fromBackend, wire.String())
	want := "*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
	if _, client := w.take(); client != want {
		t.Fatalf("client got %q, want one confirmation of b: %q (the wire had %q)", client, want, wire.String())
	}
}

// subscribeCommands parses RESP commands (arrays of bulk strings) back into their words, lower-cased;
// anything but a SUBSCRIBE fails the test.
func subscribeCommands(t *testing.T, raw string) [][]string {
	t.Helper()
	rd := bufio.NewReader(strings.NewReader(raw))
	var out [][]string
	for {
		v, err := resp.ReadValue(rd, resp.Limits{MaxBulk: 1 << 20, MaxElements: 1 << 10, MaxDepth: 1, MaxLine: 1 << 16})
		if err != nil {
			return out
		}
		var words []string
		for _, e := range v.Elems {
			words = append(words, strings.ToLower(e.Str))
		}
		if len(words) > 0 && words[0] == "subscribe" {
			out = append(out, words)
		} else {
			t.Fatalf("unexpected command %q", words)
		}
	}
}
