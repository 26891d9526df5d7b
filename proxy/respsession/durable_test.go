package respsession

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// durableConv is testConv with wait_replicas = n (200 ms).
func durableConv(t *testing.T, n int) (*conv, *wire, *Durability) {
	t.Helper()
	c, w, _ := testConv(t)
	d := NewDurability("g", zerolog.Nop())
	d.Set(n, 200*time.Millisecond)
	c.dur = d
	return c, w, d
}

func wait(n string) string { return cmd("WAIT", n, "200") }

// TestDurableWriteWaitsForItsWait: a write goes out with a WAIT after it; its reply reaches the client
// only once the WAIT says enough replicas have it, and the WAIT's reply never does. However the replies
// are cut.
func TestDurableWriteWaitsForItsWait(t *testing.T) {
	for _, size := range []int{0, 1, 2, 3} {
		c, w, d := durableConv(t, 1)
		mustFeed(t, c.fromClient, cmd("SET", "k", "v"))
		if backend, _ := w.take(); backend != cmd("SET", "k", "v")+wait("1") {
			t.Fatalf("backend got %q", backend)
		}
		if err := feed(t, c.fromBackend, "+OK\r\n", size); err != nil {
			t.Fatal(err)
		}
		if _, client := w.take(); client != "" {
			t.Fatalf("cut %d: the write's reply went before its WAIT's: %q", size, client)
		}
		if d.Counts().Waiting != 1 {
			t.Fatalf("waiting %d", d.Counts().Waiting)
		}
		if err := feed(t, c.fromBackend, ":1\r\n", size); err != nil {
			t.Fatal(err)
		}
		if _, client := w.take(); client != "+OK\r\n" {
			t.Fatalf("cut %d: client got %q", size, client)
		}
		if n := d.Counts(); n.Confirmed != 1 || n.Waiting != 0 || n.Waits != 1 || c.q.len() != 0 {
			t.Fatalf("cut %d: counts %+v, %d entries left", size, n, c.q.len())
		}
	}
}

// TestDurableGroupCommitAndOrder: one WAIT covers a pipeline's writes; a read behind a waiting write
// waits with it, in order; a read with no write before it is not held.
func TestDurableGroupCommitAndOrder(t *testing.T) {
	c, w, d := durableConv(t, 2)
	mustFeed(t, c.fromClient, cmd("GET", "a"))
	mustFeed(t, c.fromBackend, "$1\r\nx\r\n")
	if backend, client := w.take(); backend != cmd("GET", "a") || client != "$1\r\nx\r\n" {
		t.Fatalf("a read alone: backend %q, client %q", backend, client)
	}
	mustFeed(t, c.fromClient, cmd("SET", "a", "1")+cmd("GET", "b")+cmd("INCR", "n"))
	if backend, _ := w.take(); backend != cmd("SET", "a", "1")+cmd("GET", "b")+cmd("INCR", "n")+wait("2") {
		t.Fatalf("backend got %q", backend)
	}
	mustFeed(t, c.fromBackend, "+OK\r\n$1\r\ny\r\n:5\r\n")
	if _, client := w.take(); client != "" {
		t.Fatalf("before the WAIT: %q", client)
	}
	mustFeed(t, c.fromBackend, ":2\r\n")
	if _, client := w.take(); client != "+OK\r\n$1\r\ny\r\n:5\r\n" {
		t.Fatalf("after the WAIT: %q", client)
	}
	if n := d.Counts(); n.Confirmed != 2 || n.Unconfirmed != 0 {
		t.Fatalf("counts %+v", n)
	}
}

// TestDurableUnconfirmed: a WAIT that says too few replicas have the writes turns each write's reply
// into NOREPLICAS, saying what it knows; the reads between go as they came. So does a WAIT Redis
// refuses.
func TestDurableUnconfirmed(t *testing.T) {
	c, w, d := durableConv(t, 2)
	mustFeed(t, c.fromClient, cmd("SET", "a", "1")+cmd("GET", "b")+cmd("DEL", "c"))
	w.take()
	mustFeed(t, c.fromBackend, "+OK\r\n$1\r\ny\r\n:1\r\n:1\r\n")
	_, client := w.take()
	parts := strings.Split(client, "\r\n")
	if len(parts) != 5 || !strings.HasPrefix(parts[0], "-NOREPLICAS ") || parts[1] != "$1" || parts[2] != "y" ||
		!strings.HasPrefix(parts[3], "-NOREPLICAS ") || !strings.Contains(parts[0], "confirmed by 1 of 2 replicas") {
		t.Fatalf("client got %q", client)
	}
	if n := d.Counts(); n.Unconfirmed != 2 || n.Confirmed != 0 || n.Waiting != 0 {
		t.Fatalf("counts %+v", n)
	}

	mustFeed(t, c.fromClient, cmd("SET", "a", "2"))
	w.take()
	mustFeed(t, c.fromBackend, "+OK\r\n-NOPERM this user has no permissions to run the 'wait' command\r\n")
	if _, client := w.take(); !strings.HasPrefix(client, "-NOREPLICAS ") || !strings.Contains(client, "WAIT failed: NOPERM") {
		t.Fatalf("a refused WAIT: client got %q", client)
	}
}

// TestDurableNothingWrittenIsNotHeld: a write that wrote nothing (an error, a null: SET NX on a key that
// exists, a pop of nothing) answers at once; PUBLISH, reads and admin commands are not held.
func TestDurableNothingWrittenIsNotHeld(t *testing.T) {
	c, w, d := durableConv(t, 1)
	for _, tc := range []struct{ cmd, reply string }{
		{cmd("SET", "k", "v", "NX"), "$-1\r\n"},
		{cmd("INCR", "s"), "-ERR value is not an integer or out of range\r\n"},
		{cmd("LPOP", "empty"), "$-1\r\n"},
		{cmd("PUBLISH", "ch", "m"), ":0\r\n"},
		{cmd("CONFIG", "GET", "maxmemory"), "*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"},
		{cmd("EVAL_RO", "return 1", "0"), ":1\r\n"},
		{cmd("EVAL", "#!lua flags=no-writes\nreturn 1", "0"), ":1\r\n"},
	} {
		mustFeed(t, c.fromClient, tc.cmd)
		mustFeed(t, c.fromBackend, tc.reply)
		if _, client := w.take(); client != tc.reply {
			t.Fatalf("%q: client got %q, want %q at once", tc.cmd, client, tc.reply)
		}
		// A write that wrote nothing still had its WAIT: it is read and dropped.
		for c.q.len() > 0 {
			if c.q.front().kind != confirm {
				t.Fatalf("%q: an entry left: %+v", tc.cmd, *c.q.front())
			}
			mustFeed(t, c.fromBackend, ":1\r\n")
		}
		if _, client := w.take(); client != "" {
			t.Fatalf("%q: the WAIT's reply reached the client: %q", tc.cmd, client)
		}
	}
	if n := d.Counts(); n.Confirmed != 0 || n.Unconfirmed != 0 {
		t.Fatalf("counts %+v", n)
	}
}

// TestDurableScriptsAndTransactions: a script that may write is held, and EXEC of a transaction that
// queued a write; the WAIT goes after EXEC, never inside the transaction, and before MULTI for the
// writes before it.
func TestDurableScriptsAndTransactions(t *testing.T) {
	c, w, _ := durableConv(t, 1)
	mustFeed(t, c.fromClient, cmd("EVAL", "return redis.call('SET', 'k', 'v')", "0"))
	if backend, _ := w.take(); !strings.HasSuffix(backend, wait("1")) {
		t.Fatalf("a script that may write went without a WAIT: %q", backend)
	}
	mustFeed(t, c.fromBackend, "+OK\r\n:1\r\n")
	w.take()

	mustFeed(t, c.fromClient, cmd("SET", "a", "1")+cmd("MULTI")+cmd("SET", "b", "2")+cmd("GET", "b")+cmd("EXEC"))
	want := cmd("SET", "a", "1") + wait("1") + cmd("MULTI") + cmd("SET", "b", "2") + cmd("GET", "b") + cmd("EXEC") + wait("1")
	if backend, _ := w.take(); backend != want {
		t.Fatalf("backend got\n%q\nwant\n%q", backend, want)
	}
	mustFeed(t, c.fromBackend, "+OK\r\n:1\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n")
	if _, client := w.take(); client != "+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n" {
		t.Fatalf("before EXEC: %q", client)
	}
	mustFeed(t, c.fromBackend, "*2\r\n+OK\r\n$1\r\n2\r\n")
	if _, client := w.take(); client != "" {
		t.Fatalf("EXEC went before its WAIT: %q", client)
	}
	mustFeed(t, c.fromBackend, ":1\r\n")
	if _, client := w.take(); client != "*2\r\n+OK\r\n$1\r\n2\r\n" {
		t.Fatalf("EXEC: %q", client)
	}

	// A transaction of reads only, and one a WATCH aborted, are not held.
	mustFeed(t, c.fromClient, cmd("MULTI")+cmd("GET", "b")+cmd("EXEC"))
	if backend, _ := w.take(); strings.Contains(backend, "WAIT") {
		t.Fatalf("a WAIT for reads: %q", backend)
	}
	mustFeed(t, c.fromBackend, "+OK\r\n+QUEUED\r\n*1\r\n$1\r\n2\r\n")
	if _, client := w.take(); client != "+OK\r\n+QUEUED\r\n*1\r\n$1\r\n2\r\n" {
		t.Fatalf("read-only transaction: %q", client)
	}
}

// TestDurableBarriers: a WAIT owed goes before a command behind which it could not run soon (a
// blocking command, CLIENT REPLY OFF/SKIP, SUBSCRIBE): the write's reply is not held behind a BLPOP
// that may wait forever. With replies off, nothing is held and no WAIT is sent.
func TestDurableBarriers(t *testing.T) {
	c, w, _ := durableConv(t, 1)
	mustFeed(t, c.fromClient, cmd("SET", "a", "1")+cmd("BLPOP", "q", "0"))
	// No WAIT behind the blocking command: it would wait with it, and count against the offset from
	// before the pop.
	// CLIENT ID goes before the first blocking command: a drain would need it (drain.go).
	if backend, _ := w.take(); backend != cmd("SET", "a", "1")+wait("1")+cmd("CLIENT", "ID")+cmd("BLPOP", "q", "0") {
		t.Fatalf("backend got %q", backend)
	}
	mustFeed(t, c.fromBackend, "+OK\r\n:1\r\n:7\r\n")
	if _, client := w.take(); client != "+OK\r\n" {
		t.Fatalf("the write behind a blocked BLPOP: %q", client)
	}
	if !c.answered() {
		t.Fatal("a switchover's hold would wait for the blocked BLPOP")
	}
	// The BLPOP pops: a write, held; then a PING (which sets the connection's offset past the pop) and
	// the WAIT go.
	mustFeed(t, c.fromBackend, "*2\r\n$1\r\nq\r\n$1\r\nx\r\n")
	if backend, client := w.take(); client != "" || backend != cmd("PING")+wait("1") {
		t.Fatalf("a pop went before its WAIT: client %q, backend %q", client, backend)
	}
	mustFeed(t, c.fromBackend, "+PONG\r\n:1\r\n")
	if _, client := w.take(); client != "*2\r\n$1\r\nq\r\n$1\r\nx\r\n" || c.q.len() != 0 {
		t.Fatalf("the pop: %q, %d entries", client, c.q.len())
	}
	// A BLPOP that times out wrote nothing: its null goes at once, and no WAIT follows.
	mustFeed(t, c.fromClient, cmd("BLPOP", "q", "1"))
	w.take()
	mustFeed(t, c.fromBackend, "*-1\r\n")
	if backend, client := w.take(); client != "*-1\r\n" || backend != cmd("PING")+wait("1") && backend != "" {
		t.Fatalf("the timed-out BLPOP: client %q, backend %q", client, backend)
	}
	for c.q.len() > 0 {
		mustFeed(t, c.fromBackend, "+PONG\r\n:1\r\n")
	}
	w.take()

	mustFeed(t, c.fromClient, cmd("SET", "a", "1")+cmd("CLIENT", "REPLY", "OFF")+cmd("SET", "b", "2")+cmd("SET", "c", "3"))
	if backend, _ := w.take(); backend != cmd("SET", "a", "1")+wait("1")+cmd("CLIENT", "REPLY", "OFF")+cmd("SET", "b", "2")+cmd("SET", "c", "3") {
		t.Fatalf("replies off: backend got %q", backend)
	}
	mustFeed(t, c.fromBackend, "+OK\r\n:1\r\n")
	if _, client := w.take(); client != "+OK\r\n" || c.q.len() != 0 {
		t.Fatalf("replies off: client got %q, %d entries", client, c.q.len())
	}
}

// TestDurableBackendGone: write replies held when the backend leaves get the "may or may not have been
// applied" error (whether the next master has them is not known); the reads held go as they came; a
// read part-way in when it left is sent again.
func TestDurableBackendGone(t *testing.T) {
	c, w, d := durableConv(t, 1)
	mustFeed(t, c.fromClient, cmd("SET", "a", "1")+cmd("GET", "b")+cmd("GET", "c"))
	w.take()
	mustFeed(t, c.fromBackend, "+OK\r\n$1\r\ny\r\n$5\r\nhal")
	if err := c.detach(); err != nil {
		t.Fatalf("detach: %v", err)
	}
	if _, client := w.take(); client != string(mayHaveApplied)+"$1\r\ny\r\n" {
		t.Fatalf("client got %q", client)
	}
	if out := string(c.attach()); out != cmd("GET", "c") {
		t.Fatalf("the new backend gets %q", out)
	}
	mustFeed(t, c.fromBackend, "$5\r\nhallo\r\n")
	if _, client := w.take(); client != "$5\r\nhallo\r\n" || c.q.len() != 0 {
		t.Fatalf("after the move: %q, %d entries", client, c.q.len())
	}
	if n := d.Counts(); n.Unconfirmed != 1 || n.Waiting != 0 {
		t.Fatalf("counts %+v", n)
	}
}

// TestDurableHoldSendsTheWaitFirst: a switchover's hold that begins with writes unconfirmed sends their
// WAIT first, and waits for its answer.
func TestDurableHoldSendsTheWaitFirst(t *testing.T) {
	c, w, _ := durableConv(t, 1)
	mustFeed(t, c.fromClient, "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n")
	w.take()
	c.unwaited = true // as a write cut from its WAIT would leave it
	c.holdCommands()
	if backend, _ := w.take(); backend != wait("1") {
		t.Fatalf("the hold sent %q", backend)
	}
	mustFeed(t, c.fromBackend, "+OK\r\n")
	if c.answered() {
		t.Fatal("the WAIT is in flight")
	}
	mustFeed(t, c.fromBackend, ":1\r\n:1\r\n")
	if !c.answered() {
		t.Fatal("every reply came")
	}
}

// TestDurableNullsThatWrote: a null is "nothing written" only where Redis says so (SET NX/XX without
// GET, pops, EXEC aborted): SET ... GET and GETSET of a new key, a script that wrote and returned nil,
// a command the table does not know (a module's), and a SET whose options were not all kept are held
// for their WAIT like any write.
func TestDurableNullsThatWrote(t *testing.T) {
	long := strings.Repeat("v", 100) // past the 64 bytes of arguments kept: NX is not seen
	for _, command := range []string{
		cmd("SET", "k", "v", "GET"), cmd("SET", "k", "v", "NX", "GET"), cmd("GETSET", "k", "v"),
		cmd("EVAL", "redis.call('SET', 'k', 'v') return nil", "0"), cmd("EVALSHA", "abc", "0"),
		cmd("JSON.SET", "k", "$", "1"), cmd("SET", "k", long, "NX"),
	} {
		c, w, d := durableConv(t, 1)
		mustFeed(t, c.fromClient, command)
		if backend, _ := w.take(); backend != command+wait("1") {
			t.Fatalf("%q: backend got %q", command, backend)
		}
		mustFeed(t, c.fromBackend, "$-1\r\n")
		if _, client := w.take(); client != "" {
			t.Fatalf("%q: its null went before its WAIT: %q", command, client)
		}
		mustFeed(t, c.fromBackend, ":0\r\n")
		if _, client := w.take(); !strings.HasPrefix(client, "-NOREPLICAS ") {
			t.Fatalf("%q: unconfirmed, the client got %q", command, client)
		}
		if n := d.Counts(); n.Unconfirmed != 1 || n.Waiting != 0 {
			t.Fatalf("%q: counts %+v", command, n)
		}
	}
}

// TestDurableTurnedOffReleases: a reload that turns wait_replicas off while a write reply is held, its
// WAIT not sent yet (the client was part-way through its next command), releases it with a WAIT 0 0
// rather than holding it, and everything after it, for good.
func TestDurableTurnedOffReleases(t *testing.T) {
	c, w, d := durableConv(t, 1)
	get := cmd("GET", "a")
	mustFeed(t, c.fromClient, cmd("SET", "a", "1")+get[:15])
	if backend, _ := w.take(); backend != cmd("SET", "a", "1")+get[:15] {
		t.Fatalf("backend got %q", backend)
	}
	mustFeed(t, c.fromBackend, "+OK\r\n")
	d.Set(0, 200*time.Millisecond)
	mustFeed(t, c.fromClient, get[15:])
	if backend, _ := w.take(); backend != get[15:]+cmd("WAIT", "0", "0") {
		t.Fatalf("backend got %q", backend)
	}
	mustFeed(t, c.fromBackend, "$1\r\n1\r\n:0\r\n")
	if _, client := w.take(); client != "+OK\r\n$1\r\n1\r\n" || c.held != nil || c.q.len() != 0 {
		t.Fatalf("client got %q, held %v, %d entries", client, c.held != nil, c.q.len())
	}
}

// TestDurableRESP3Subscriber: RESP3 lets a subscribed client write; its writes get their WAIT (RESP2
// allows none while subscribed).
func TestDurableRESP3Subscriber(t *testing.T) {
	c, w, _ := durableConv(t, 1)
	c.proto = 3
	mustFeed(t, c.fromClient, cmd("SUBSCRIBE", "ch"))
	w.take()
	mustFeed(t, c.fromBackend, ">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n")
	w.take()
	mustFeed(t, c.fromClient, cmd("SET", "a", "1"))
	if backend, _ := w.take(); backend != cmd("SET", "a", "1")+wait("1") {
		t.Fatalf("backend got %q", backend)
	}
	mustFeed(t, c.fromBackend, "+OK\r\n>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n:1\r\n")
	if _, client := w.take(); client != "+OK\r\n>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n" {
		t.Fatalf("client got %q", client)
	}
}

// TestDurableSessionEndsHolding: a session that ends while it holds write replies (its client left)
// takes them out of the group's count of replies waiting.
func TestDurableSessionEndsHolding(t *testing.T) {
	c, w, d := durableConv(t, 1)
	mustFeed(t, c.fromClient, cmd("SET", "a", "1")+cmd("SET", "b", "1"))
	w.take()
	mustFeed(t, c.fromBackend, "+OK\r\n+O")
	if n := d.Counts().Waiting; n != 2 {
		t.Fatalf("waiting %d, want 2", n)
	}
	c.dropHeld()
	if n := d.Counts().Waiting; n != 0 {
		t.Fatalf("waiting %d after the session ended, want 0", n)
	}
}
