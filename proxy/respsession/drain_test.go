package respsession

import (
	"fmt"
	"testing"

	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// info is an INFO replication reply with these fields.
func info(replid, replid2 string, offset, second int64) string {
	text := fmt.Sprintf("# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_replid:%s\r\nmaster_replid2:%s\r\n"+
		"master_repl_offset:%d\r\nsecond_repl_offset:%d\r\n", replid, replid2, offset, second)
	return string(resp.AppendBulk(nil, text))
}

const oldID, newID, noID = "aaaaaaaa", "bbbbbbbb", "0000000000000000000000000000000000000000"

// TestDrainAnswersWritesTheNewMasterHas: a failover that finds a write and a read in flight on a live
// old master reads their replies there instead of failing them, and gives them to the client once the
// new master's history is known to hold the write (its second_repl_offset past the old master's offset
// after the write); when it does not, the write gets the "may or may not" error and the read its reply.
// Commands sent meanwhile go to the new master after the held replies.
func TestDrainAnswersWritesTheNewMasterHas(t *testing.T) {
	for _, tc := range []struct {
		name   string
		newRep string
		want   string
	}{
		{"on the new master", info(newID, oldID, 500, 101), "+OK\r\n$1\r\nv\r\n$1\r\nw\r\n"},
		{"past the promotion", info(newID, oldID, 500, 100), string(mayHaveApplied) + "$1\r\nv\r\n$1\r\nw\r\n"},
		{"another history", info(newID, "cccccccc", 500, 900), string(mayHaveApplied) + "$1\r\nv\r\n$1\r\nw\r\n"},
		{"the same history", info(oldID, noID, 100, -1), "+OK\r\n$1\r\nv\r\n$1\r\nw\r\n"},
		{"no INFO for this user", "-NOPERM this user has no permissions to run the 'info' command\r\n", string(mayHaveApplied) + "$1\r\nv\r\n$1\r\nw\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, w, now := testConv(t)
			mustFeed(t, c.fromClient, cmd("SET", "k", "v")+cmd("GET", "k"))
			w.take()
			if ok, id := c.startDrain(*now); !ok || id != 0 {
				t.Fatalf("startDrain: %v %d", ok, id)
			}
			if backend, _ := w.take(); backend != cmd("INFO", "replication") {
				t.Fatalf("the old master got %q", backend)
			}
			// A command sent during the drain waits for the new master.
			mustFeed(t, c.fromClient, cmd("GET", "k2"))
			if backend, _ := w.take(); backend != "" {
				t.Fatalf("the old master got %q during the drain", backend)
			}
			mustFeed(t, c.fromBackend, "+OK\r\n$1\r\nv\r\n"+info(oldID, noID, 100, -1))
			if _, client := w.take(); client != "" {
				t.Fatalf("the client got %q before the verdict", client)
			}
			if !c.drainDone {
				t.Fatal("the drain is not done after the old master's INFO")
			}
			if err := c.detach(); err != nil {
				t.Fatal(err)
			}
			if !c.verdictPending || !c.needsBackend() {
				t.Fatal("the drained replies do not wait for the new master")
			}
			if backend := string(c.attach()); backend != cmd("INFO", "replication")+cmd("GET", "k2") {
				t.Fatalf("the new master got %q", backend)
			}
			mustFeed(t, c.fromBackend, tc.newRep+"$1\r\nw\r\n")
			if _, client := w.take(); client != tc.want {
				t.Fatalf("the client got %q, want %q", client, tc.want)
			}
			if c.held != nil || c.q.len() != 0 {
				t.Fatalf("left: held %v, %d entries", c.held != nil, c.q.len())
			}
		})
	}
}

// TestDrainMovesABlockedCommand: a BLPOP waiting on the old master is released there (the session
// asked its connection's id before sending it); its timeout's null goes nowhere, and it is sent to the
// new master with the time it had left; the client sees one reply. Data that came first goes to the
// client, as a write, once the new master holds it.
func TestDrainMovesABlockedCommand(t *testing.T) {
	c, w, now := testConv(t)
	*now = 1e9
	mustFeed(t, c.fromClient, cmd("BLPOP", "q", "10"))
	if backend, _ := w.take(); backend != cmd("CLIENT", "ID")+cmd("BLPOP", "q", "10") {
		t.Fatalf("backend got %q", backend)
	}
	mustFeed(t, c.fromBackend, ":42\r\n")
	*now += 4e9 // 4 of its 10 seconds waited
	ok, id := c.startDrain(*now)
	if !ok || id != 42 {
		t.Fatalf("startDrain: %v, id %d; want the BLPOP released on connection 42", ok, id)
	}
	if backend, _ := w.take(); backend != "" {
		t.Fatalf("the old master got %q: nothing is sent there before the BLPOP answers", backend)
	}
	mustFeed(t, c.fromBackend, "*-1\r\n") // CLIENT UNBLOCK 42 TIMEOUT
	if backend, client := w.take(); backend != "" || client != "" || !c.drainDone {
		t.Fatalf("after the null: backend %q, client %q, done %v", backend, client, c.drainDone)
	}
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	if c.verdictPending {
		t.Fatal("nothing was written, yet the session waits for a verdict")
	}
	if backend := string(c.attach()); backend != cmd("CLIENT", "ID")+cmd("BLPOP", "q", "6.000") {
		t.Fatalf("the new master got %q", backend)
	}
	mustFeed(t, c.fromBackend, ":7\r\n*2\r\n$1\r\nq\r\n$1\r\nx\r\n")
	if _, client := w.take(); client != "*2\r\n$1\r\nq\r\n$1\r\nx\r\n" {
		t.Fatalf("the client got %q", client)
	}

	// Data first: the pop is a write, held until the new master is known to have it.
	mustFeed(t, c.fromClient, cmd("BLPOP", "q", "0"))
	w.take()
	if ok, id := c.startDrain(*now); !ok || id != 7 {
		t.Fatalf("startDrain: %v, id %d", ok, id)
	}
	mustFeed(t, c.fromBackend, "*2\r\n$1\r\nq\r\n$1\r\ny\r\n")
	if backend, client := w.take(); backend != cmd("INFO", "replication") || client != "" {
		t.Fatalf("after the data: backend %q, client %q", backend, client)
	}
	mustFeed(t, c.fromBackend, info(oldID, noID, 300, -1))
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	c.attach()
	mustFeed(t, c.fromBackend, info(newID, oldID, 0, 301))
	if _, client := w.take(); client != "*2\r\n$1\r\nq\r\n$1\r\ny\r\n" {
		t.Fatalf("the client got %q", client)
	}
}

// TestDrainCutShort: a drain whose old master stops answering (its bound passed: detach before the
// INFO) answers what is still in flight as without a drain: reads sent again, writes "may or may not".
func TestDrainCutShort(t *testing.T) {
	c, w, now := testConv(t)
	mustFeed(t, c.fromClient, cmd("SET", "k", "v")+cmd("GET", "k"))
	w.take()
	if ok, _ := c.startDrain(*now); !ok {
		t.Fatal("no drain")
	}
	mustFeed(t, c.fromBackend, "+OK\r\n") // the write's reply came, then nothing
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	if _, client := w.take(); client != string(mayHaveApplied) {
		t.Fatalf("the client got %q", client)
	}
	if backend := string(c.attach()); backend != cmd("GET", "k") {
		t.Fatalf("the new master got %q", backend)
	}
}

// TestNoDrainWhereAProbeCannotBeAnswered: inside MULTI, with replies off, or with nothing in flight, a
// failover moves the session as before.
func TestNoDrainWhereAProbeCannotBeAnswered(t *testing.T) {
	for name, sent := range map[string]string{
		"nothing in flight": "",
		"in MULTI":          cmd("MULTI") + cmd("SET", "k", "v"),
		"replies off":       cmd("CLIENT", "REPLY", "OFF") + cmd("SET", "k", "v"),
		"a blocked BLPOP behind which a command waits": cmd("BLPOP", "q", "0") + cmd("GET", "k"),
	} {
		c, _, now := testConv(t)
		c.connID = 5
		mustFeed(t, c.fromClient, sent)
		if ok, _ := c.startDrain(*now); ok {
			t.Errorf("%s: a drain started", name)
		}
	}
}

// TestTransactionCarriedOver: a MULTI open at a failover, without WATCH, is queued again on the next
// master (the client's QUEUED answered by the session meanwhile), and its EXEC runs there: the client
// sees the replies it would have seen without the failover. With WATCH, EXEC answers null, as before.
func TestTransactionCarriedOver(t *testing.T) {
	c, w, _ := testConv(t)
	mustFeed(t, c.fromClient, cmd("MULTI")+cmd("INCR", "n"))
	w.take()
	mustFeed(t, c.fromBackend, "+OK\r\n") // INCR's QUEUED still in flight at the cut
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	mustFeed(t, c.fromClient, cmd("SET", "k", "v")+cmd("EXEC"))
	if _, client := w.take(); client != "+OK\r\n+QUEUED\r\n+QUEUED\r\n" {
		t.Fatalf("the client got %q before EXEC ran", client)
	}
	if backend := string(c.attach()); backend != cmd("MULTI")+cmd("INCR", "n")+cmd("SET", "k", "v")+cmd("EXEC") {
		t.Fatalf("the new master got %q", backend)
	}
	mustFeed(t, c.fromBackend, "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n+OK\r\n")
	if _, client := w.take(); client != "*2\r\n:1\r\n+OK\r\n" {
		t.Fatalf("EXEC answered %q", client)
	}
	if c.q.len() != 0 {
		t.Fatalf("%d entries left", c.q.len())
	}

	// Reconnected before the EXEC: it goes at once.
	mustFeed(t, c.fromClient, cmd("MULTI")+cmd("INCR", "n"))
	mustFeed(t, c.fromBackend, "+OK\r\n+QUEUED\r\n")
	w.take()
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	c.attach()
	mustFeed(t, c.fromClient, cmd("EXEC"))
	if backend, _ := w.take(); backend != cmd("MULTI")+cmd("INCR", "n")+cmd("EXEC") {
		t.Fatalf("the new master got %q", backend)
	}
	mustFeed(t, c.fromBackend, "+OK\r\n+QUEUED\r\n*1\r\n:2\r\n")
	if _, client := w.take(); client != "*1\r\n:2\r\n" {
		t.Fatalf("EXEC answered %q", client)
	}

	// With a WATCH: aborted.
	mustFeed(t, c.fromClient, cmd("WATCH", "n")+cmd("MULTI")+cmd("INCR", "n"))
	mustFeed(t, c.fromBackend, "+OK\r\n+OK\r\n+QUEUED\r\n")
	w.take()
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	c.attach()
	mustFeed(t, c.fromClient, cmd("EXEC"))
	if backend, client := w.take(); backend != "" || client != "*-1\r\n" {
		t.Fatalf("a watched transaction: backend %q, client %q", backend, client)
	}
}
