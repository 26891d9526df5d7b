package respsession

import (
	"errors"
	"strings"
	"testing"
)

// Cases Redis's own test suite found (bench/redissuite, through resp mode): each test names the suite's
// test it stands for.

// TestClientReplyOnClearsSkip: CLIENT REPLY ON clears a pending SKIP and is answered itself
// (introspection: "CLIENT REPLY ON: unset SKIP flag").
func TestClientReplyOnClearsSkip(t *testing.T) {
	c, w, _ := testConv(t)
	mustFeed(t, c.fromClient, cmd("CLIENT", "REPLY", "SKIP")+cmd("CLIENT", "REPLY", "ON")+cmd("PING"))
	mustFeed(t, c.fromBackend, "+OK\r\n+PONG\r\n")
	if _, client := w.take(); client != "+OK\r\n+PONG\r\n" || c.q.len() != 0 {
		t.Fatalf("client %q, %d entries left", client, c.q.len())
	}
	// SKIP while replies are off does nothing: ON is still answered.
	mustFeed(t, c.fromClient, cmd("CLIENT", "REPLY", "OFF")+cmd("CLIENT", "REPLY", "SKIP")+cmd("SET", "a", "1")+
		cmd("CLIENT", "REPLY", "ON")+cmd("PING"))
	mustFeed(t, c.fromBackend, "+OK\r\n+PONG\r\n")
	if _, client := w.take(); client != "+OK\r\n+PONG\r\n" || c.q.len() != 0 {
		t.Fatalf("after OFF: client %q, %d entries left", client, c.q.len())
	}
}

// TestSubscriptionsConfirmedWhileRepliesAreOff: Redis sends subscription confirmations as pushes,
// which CLIENT REPLY OFF and SKIP do not silence (pubsub: "Keyspace notifications: we receive keyspace
// notifications" subscribes with replies off, "... keyevent notifications" after a SKIP).
func TestSubscriptionsConfirmedWhileRepliesAreOff(t *testing.T) {
	confirm := "*3\r\n$10\r\npsubscribe\r\n$1\r\n*\r\n:1\r\n"
	msg := "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$18\r\n__keyspace@9__:foo\r\n$3\r\nset\r\n"
	for _, silence := range []string{"OFF", "SKIP"} {
		c, w, _ := testConv(t)
		mustFeed(t, c.fromClient, cmd("CLIENT", "REPLY", silence)+cmd("PSUBSCRIBE", "*"))
		mustFeed(t, c.fromBackend, confirm+msg)
		if _, client := w.take(); client != confirm+msg {
			t.Fatalf("%s: client got %q", silence, client)
		}
		// The SKIP went to PSUBSCRIBE: a PING in subscribed mode is answered.
		mustFeed(t, c.fromClient, cmd("PING"))
		if silence == "SKIP" {
			mustFeed(t, c.fromBackend, "*2\r\n$4\r\npong\r\n$0\r\n\r\n")
		}
		mustFeed(t, c.fromBackend, msg)
		want := msg
		if silence == "SKIP" {
			want = "*2\r\n$4\r\npong\r\n$0\r\n\r\n" + msg
		}
		if _, client := w.take(); client != want || c.q.len() != 0 {
			t.Fatalf("%s: then client got %q, %d entries left", silence, client, c.q.len())
		}
	}
}

// TestSubscribeWithoutChannelsIsRefused: SUBSCRIBE with no channel gets Redis's arity error, one reply,
// in either protocol; the session goes on.
func TestSubscribeWithoutChannelsIsRefused(t *testing.T) {
	for _, proto := range []string{"2", "3"} {
		c, w, _ := testConv(t)
		mustFeed(t, c.fromClient, cmd("HELLO", proto))
		mustFeed(t, c.fromBackend, "%1\r\n+proto\r\n:"+proto+"\r\n")
		w.take()
		refusal := "-ERR wrong number of arguments for 'subscribe' command\r\n"
		mustFeed(t, c.fromClient, cmd("SUBSCRIBE")+cmd("PING"))
		mustFeed(t, c.fromBackend, refusal+"+PONG\r\n")
		if _, client := w.take(); client != refusal+"+PONG\r\n" || c.st.subscribed() {
			t.Fatalf("RESP%s: client got %q, subscribed %v", proto, client, c.st.subscribed())
		}
	}
}

// TestDeeplyNestedReply: a script returning a table that holds itself is answered with ~8,000 nested
// arrays ending in an error (scripting: "Script return recursive object"); it passes like any reply.
func TestDeeplyNestedReply(t *testing.T) {
	c, w, _ := testConv(t)
	mustFeed(t, c.fromClient, cmd("EVAL", "local a = {}; local b = {a}; a[1] = b; return a", "0")+cmd("PING"))
	reply := strings.Repeat("*1\r\n", 7995) + "-ERR reached lua stack limit\r\n"
	for _, size := range []int{0, 3} {
		if size > 0 {
			mustFeed(t, c.fromClient, cmd("EVAL", "...", "0")+cmd("PING"))
		}
		if err := feed(t, c.fromBackend, reply+"+PONG\r\n", size); err != nil {
			t.Fatal(err)
		}
		if _, client := w.take(); client != reply+"+PONG\r\n" || c.q.len() != 0 {
			t.Fatalf("chunks of %d: client got %d bytes, %d entries left", size, len(client), c.q.len())
		}
	}
}

// TestReplicationLink: after SYNC (or PSYNC) the connection carries the replication stream, which is
// not RESP: newlines as pings, then an RDB payload without a CRLF after it, then the commands. Both ways
// pass unread from SYNC's turn on; such a link cannot move (expire: "SCAN: Lazy-expire should not be
// wrapped in MULTI/EXEC" reads the stream through attach_to_replication_stream).
func TestReplicationLink(t *testing.T) {
	for _, sync := range []string{"SYNC\r\n", cmd("PSYNC", "?", "-1")} {
		c, w, _ := testConv(t)
		mustFeed(t, c.fromClient, cmd("PING")+sync)
		stream := "+PONG\r\n"
		if sync != "SYNC\r\n" {
			stream += "+FULLRESYNC 8de1787ba490483314a4d30f1c628bc5025eb761 0\r\n"
		}
		stream += "\n\n$9\r\nREDIS0010" + cmd("SELECT", "9") + cmd("DEL", "foo1")
		if err := feed(t, c.fromBackend, stream, 5); err != nil {
			t.Fatal(err)
		}
		if backend, client := w.take(); backend != cmd("PING")+sync || client != stream {
			t.Fatalf("%q: backend %q, client %q", sync, backend, client)
		}
		ack := cmd("REPLCONF", "ACK", "0")
		mustFeed(t, c.fromClient, ack)
		if backend, _ := w.take(); backend != ack {
			t.Fatalf("%q: the replica's ACK became %q", sync, backend)
		}
		if err := c.detach(); !errors.Is(err, errCannotMove) {
			t.Fatalf("%q: a replication link moved: %v", sync, err)
		}
	}
}

// TestQuitAndResetInsideMulti: inside MULTI, QUIT and RESET run at once rather than being queued
// (server.c, processCommand), also in a transaction a failover lost.
func TestQuitAndResetInsideMulti(t *testing.T) {
	c, _, _ := testConv(t)
	mustFeed(t, c.fromClient, cmd("MULTI")+cmd("SET", "a", "1")+cmd("QUIT"))
	if err := c.fromBackend([]byte("+OK\r\n+QUEUED\r\n+OK\r\n")); !errors.Is(err, errQuit) {
		t.Fatalf("QUIT inside MULTI: %v", err)
	}

	c, w, _ := testConv(t)
	mustFeed(t, c.fromClient, cmd("MULTI"))
	mustFeed(t, c.fromBackend, "+OK\r\n")
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	c.attach()
	w.take()
	mustFeed(t, c.fromClient, cmd("SET", "a", "1")+cmd("RESET")+cmd("GET", "a"))
	if backend, client := w.take(); backend != cmd("RESET")+cmd("GET", "a") || client != "+QUEUED\r\n" {
		t.Fatalf("after a lost MULTI, RESET ends it: backend got %q, client %q", backend, client)
	}
	mustFeed(t, c.fromBackend, "+RESET\r\n$1\r\n1\r\n")
	if _, client := w.take(); client != "+RESET\r\n$1\r\n1\r\n" {
		t.Fatalf("client got %q", client)
	}

	c, _, _ = testConv(t)
	mustFeed(t, c.fromClient, cmd("MULTI"))
	mustFeed(t, c.fromBackend, "+OK\r\n")
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	c.attach()
	mustFeed(t, c.fromClient, cmd("QUIT"))
	if err := c.fromBackend([]byte("+OK\r\n")); !errors.Is(err, errQuit) {
		t.Fatalf("QUIT inside a lost MULTI: %v", err)
	}
}

// TestRepliesOffSurviveAMove: CLIENT REPLY OFF, which nothing answers, is in force on the next backend.
func TestRepliesOffSurviveAMove(t *testing.T) {
	c, w, _ := testConv(t)
	mustFeed(t, c.fromClient, cmd("SELECT", "2")+cmd("CLIENT", "REPLY", "OFF")+cmd("SET", "a", "1"))
	mustFeed(t, c.fromBackend, "+OK\r\n")
	w.take()
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	if out := string(c.attach()); out != cmd("SELECT", "2")+cmd("CLIENT", "REPLY", "OFF") {
		t.Fatalf("replay %q", out)
	}
	mustFeed(t, c.fromBackend, "+OK\r\n")
	mustFeed(t, c.fromClient, cmd("SET", "b", "2")+cmd("CLIENT", "REPLY", "ON")+cmd("GET", "b"))
	mustFeed(t, c.fromBackend, "+OK\r\n$1\r\n2\r\n")
	if _, client := w.take(); client != "+OK\r\n$1\r\n2\r\n" {
		t.Fatalf("client got %q", client)
	}
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	if out := string(c.attach()); out != cmd("SELECT", "2") {
		t.Fatalf("replay after ON %q", out)
	}
}

// TestStateSetInsideATransaction: SELECT, CLIENT SETNAME, HELLO queued in MULTI are in force once EXEC
// runs them, and a move replays them; a transaction that did not run (DISCARD, a WATCH's null) leaves
// the state as it was. A HELLO queued changes the protocol only when EXEC runs.
func TestStateSetInsideATransaction(t *testing.T) {
	c, w, _ := testConv(t)
	mustFeed(t, c.fromClient, cmd("MULTI")+cmd("SELECT", "2")+cmd("CLIENT", "SETNAME", "w1")+cmd("HELLO", "3"))
	if c.proto != 2 {
		t.Fatal("a queued HELLO changed the protocol before EXEC")
	}
	mustFeed(t, c.fromClient, cmd("EXEC"))
	// The EXEC reply cut right after its first byte: whether it is a null is not known yet.
	mustFeed(t, c.fromBackend, "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*")
	mustFeed(t, c.fromBackend, "3\r\n+OK\r\n+OK\r\n%1\r\n+proto\r\n:3\r\n")
	if _, client := w.take(); client != "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n+OK\r\n%1\r\n+proto\r\n:3\r\n" {
		t.Fatalf("client got %q", client)
	}
	if c.st.db != 2 || c.st.name != "w1" || c.st.proto != 3 || c.proto != 3 {
		t.Fatalf("after EXEC: db %d, name %q, protocol %d/%d", c.st.db, c.st.name, c.st.proto, c.proto)
	}
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	if out := string(c.attach()); out != cmd("HELLO", "3", "SETNAME", "w1")+cmd("SELECT", "2") {
		t.Fatalf("replay %q", out)
	}

	for _, end := range []struct{ cmds, replies string }{
		{cmd("DISCARD"), "+OK\r\n"},
		{cmd("EXEC"), "*-1\r\n"},
	} {
		c, w, _ := testConv(t)
		mustFeed(t, c.fromClient, cmd("WATCH", "k")+cmd("MULTI")+cmd("SELECT", "5")+end.cmds)
		mustFeed(t, c.fromBackend, "+OK\r\n+OK\r\n+QUEUED\r\n"+end.replies)
		w.take()
		if c.st.db != 0 || c.q.len() != 0 {
			t.Fatalf("%q: db %d, %d entries left", end.cmds, c.st.db, c.q.len())
		}
	}
}
