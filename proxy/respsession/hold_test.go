package respsession

import (
	"strings"
	"testing"
)

// TestSwitchoverHoldKeepsCommands: while a switchover holds commands, one the client sends reaches no
// backend though there is one, and nothing is answered; at the release it goes, and its reply reaches
// the client.
func TestSwitchoverHoldKeepsCommands(t *testing.T) {
	c, w, _ := testConv(t)
	c.holdCommands()
	mustFeed(t, c.fromClient, cmd("SET", "k", "v")+cmd("INCR", "n"))
	if backend, client := w.take(); backend != "" || client != "" {
		t.Fatalf("held: backend got %q, client %q", backend, client)
	}
	if !c.answered() {
		t.Fatal("held commands are not in flight")
	}
	if out := string(c.releaseCommands()); out != cmd("SET", "k", "v")+cmd("INCR", "n") {
		t.Fatalf("the release sends %q", out)
	}
	mustFeed(t, c.fromBackend, "+OK\r\n:1\r\n")
	if _, client := w.take(); client != "+OK\r\n:1\r\n" || c.q.len() != 0 {
		t.Fatalf("client got %q, %d entries left", client, c.q.len())
	}
	if out := c.releaseCommands(); out != nil {
		t.Fatalf("a second release sends %q", out)
	}
}

// TestSwitchoverHoldWaitsForCommandsInFlight: the commands sent before the hold are in flight until
// their replies come, which reach the client while later commands stay held.
func TestSwitchoverHoldWaitsForCommandsInFlight(t *testing.T) {
	c, w, _ := testConv(t)
	mustFeed(t, c.fromClient, cmd("SET", "a", "1")+cmd("GET", "b"))
	c.holdCommands()
	if c.answered() {
		t.Fatal("SET and GET are in flight")
	}
	mustFeed(t, c.fromClient, cmd("SET", "c", "3"))
	mustFeed(t, c.fromBackend, "+OK\r\n")
	if c.answered() {
		t.Fatal("GET is still in flight")
	}
	mustFeed(t, c.fromBackend, "$1\r\n2\r\n")
	if !c.answered() {
		t.Fatal("every reply came")
	}
	backend, client := w.take()
	if backend != cmd("SET", "a", "1")+cmd("GET", "b") || client != "+OK\r\n$1\r\n2\r\n" {
		t.Fatalf("backend got %q, client %q", backend, client)
	}
	if out := string(c.releaseCommands()); out != cmd("SET", "c", "3") {
		t.Fatalf("the release sends %q", out)
	}
}

// TestSwitchoverHoldCutsAPipeline: a pipeline read partly before the hold, its third command half: the
// commands begun go to the backend (the rest of the third too, since the backend has its start), the
// rest are held and go at the release in the client's order; the replies come in that order.
func TestSwitchoverHoldCutsAPipeline(t *testing.T) {
	var cmds []string
	for i := range 6 {
		cmds = append(cmds, cmd("SET", "k"+string(rune('0'+i)), strings.Repeat("v", 100)))
	}
	pipeline := strings.Join(cmds, "")
	cut := len(cmds[0]) + len(cmds[1]) + 50
	c, w, _ := testConv(t)
	mustFeed(t, c.fromClient, pipeline[:cut])
	c.holdCommands()
	if c.answered() {
		t.Fatal("two commands and a half are in flight")
	}
	if err := feed(t, c.fromClient, pipeline[cut:], 7); err != nil {
		t.Fatal(err)
	}
	sent := strings.Join(cmds[:3], "")
	if backend, _ := w.take(); backend != sent {
		t.Fatalf("backend got %d bytes, want the first three commands (%d)", len(backend), len(sent))
	}
	mustFeed(t, c.fromBackend, "+OK\r\n+OK\r\n")
	if c.answered() {
		t.Fatal("the third command is in flight")
	}
	mustFeed(t, c.fromBackend, "+OK\r\n")
	if !c.answered() {
		t.Fatal("the three replies came")
	}
	if out := string(c.releaseCommands()); out != strings.Join(cmds[3:], "") {
		t.Fatalf("the release sends %d bytes: %.80q", len(out), out)
	}
	mustFeed(t, c.fromBackend, ":1\r\n:2\r\n:3\r\n")
	if _, client := w.take(); client != "+OK\r\n+OK\r\n+OK\r\n:1\r\n:2\r\n:3\r\n" {
		t.Fatalf("client got %q", client)
	}
}

// TestSwitchoverHoldWaitsForACommandStreaming: a command whose start went to the backend before the
// hold is in flight while its rest comes, and until its reply.
func TestSwitchoverHoldWaitsForACommandStreaming(t *testing.T) {
	set := cmd("SET", "k", strings.Repeat("v", 1000))
	c, w, _ := testConv(t)
	mustFeed(t, c.fromClient, set[:300])
	c.holdCommands()
	if c.answered() {
		t.Fatal("a command half sent is in flight")
	}
	mustFeed(t, c.fromClient, set[300:]+cmd("GET", "k"))
	if backend, _ := w.take(); backend != set {
		t.Fatalf("backend got %d bytes, want the SET whole (%d)", len(backend), len(set))
	}
	mustFeed(t, c.fromBackend, "+OK\r\n")
	if !c.answered() {
		t.Fatal("the SET was answered")
	}
}

// TestSwitchoverHoldDoesNotWaitForListeners: blocked commands and subscriptions may wait for a reply
// for ever; the hold does not count them in flight.
func TestSwitchoverHoldDoesNotWaitForListeners(t *testing.T) {
	for _, sent := range []string{
		cmd("BLPOP", "l", "0"), cmd("XREAD", "BLOCK", "0", "STREAMS", "s", "$"), cmd("WAIT", "1", "0"),
		cmd("SUBSCRIBE", "c1", "c2"), cmd("PSUBSCRIBE", "p*"),
	} {
		c, _, _ := testConv(t)
		mustFeed(t, c.fromClient, sent)
		c.holdCommands()
		if !c.answered() {
			t.Errorf("%q: the hold waits for it", sent)
		}
	}
	// Inside a transaction a blocking command does not block: it is queued, and its +QUEUED waited for.
	c, _, _ := testConv(t)
	mustFeed(t, c.fromClient, cmd("MULTI")+cmd("BLPOP", "l", "0"))
	mustFeed(t, c.fromBackend, "+OK\r\n")
	c.holdCommands()
	if c.answered() {
		t.Error("a queued BLPOP is answered at once: the hold must wait for its +QUEUED")
	}
	// A MONITOR session's bytes pass unread: nothing of it is waited for.
	c, _, _ = testConv(t)
	mustFeed(t, c.fromClient, cmd("MONITOR"))
	mustFeed(t, c.fromBackend, "+OK\r\n")
	c.holdCommands()
	if !c.answered() {
		t.Error("the hold waits for a MONITOR session")
	}
}

// TestSwitchoverHoldAcrossTheFailover: the failover cut during the hold moves the session as always
// (its state replayed on the new backend) but sends nothing held there; the held commands wait past
// the failover hold's time limit, and go at the release. A read in flight at the cut is held too.
func TestSwitchoverHoldAcrossTheFailover(t *testing.T) {
	c, w, now := testConv(t)
	mustFeed(t, c.fromClient, cmd("SELECT", "3")+cmd("CLIENT", "SETNAME", "worker-7"))
	mustFeed(t, c.fromBackend, "+OK\r\n+OK\r\n")
	mustFeed(t, c.fromClient, cmd("GET", "a"))
	c.holdCommands()
	mustFeed(t, c.fromClient, cmd("SET", "b", "1"))
	w.take()
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	*now += 5e9 // past the failover hold (1 s)
	if next, err := c.expireHolds(*now); err != nil || next != 0 {
		t.Fatalf("expireHolds during the switchover hold: next %d, %v", next, err)
	}
	if !c.needsBackend() {
		t.Fatal("a session with held commands moves to the new backend at once")
	}
	replay := string(c.attach())
	if want := cmd("CLIENT", "SETNAME", "worker-7") + cmd("SELECT", "3"); replay != want {
		t.Fatalf("attach sent %q, want only the replay %q", replay, want)
	}
	mustFeed(t, c.fromBackend, "+OK\r\n+OK\r\n")
	if _, client := w.take(); client != "" {
		t.Fatalf("the client got %q before the release", client)
	}
	if out := string(c.releaseCommands()); out != cmd("GET", "a")+cmd("SET", "b", "1") {
		t.Fatalf("the release sends %q", out)
	}
	mustFeed(t, c.fromBackend, "$1\r\nx\r\n+OK\r\n")
	if _, client := w.take(); client != "$1\r\nx\r\n+OK\r\n" {
		t.Fatalf("client got %q", client)
	}
}

// TestSwitchoverReleaseWithNoBackend: released while the session has no backend, the held commands are
// held as in a failover from then on: sent by the next attach, or refused when that hold runs out.
func TestSwitchoverReleaseWithNoBackend(t *testing.T) {
	for _, backendComes := range []bool{true, false} {
		c, w, now := testConv(t)
		c.holdCommands()
		mustFeed(t, c.fromClient, cmd("SET", "k", "v"))
		if err := c.detach(); err != nil {
			t.Fatal(err)
		}
		*now = 10e9
		if out := c.releaseCommands(); out != nil {
			t.Fatalf("released with no backend, it sends %q", out)
		}
		if next, _ := c.expireHolds(*now); next != *now+1e9 {
			t.Fatalf("the failover hold runs from the release: next deadline %d", next)
		}
		if backendComes {
			if out := string(c.attach()); out != cmd("SET", "k", "v") {
				t.Fatalf("attach sends %q", out)
			}
			continue
		}
		if _, err := c.expireHolds(*now + 1e9); err != nil {
			t.Fatal(err)
		}
		if _, client := w.take(); !strings.HasPrefix(client, "-ERR sentinel-proxy: no verified master") {
			t.Fatalf("client got %q", client)
		}
	}
}

// TestSwitchoverHoldBoundsACommand: a command too long to keep is answered with an error saying why,
// as in a failover's hold; the commands around it keep their order.
func TestSwitchoverHoldBoundsACommand(t *testing.T) {
	c, w, _ := testConv(t)
	c.holdCommands()
	mustFeed(t, c.fromClient, cmd("SET", "a", "1")+cmd("SET", "big", strings.Repeat("v", maxKept+1))+cmd("SET", "b", "2"))
	if out := string(c.releaseCommands()); out != cmd("SET", "a", "1")+cmd("SET", "b", "2") {
		t.Fatalf("the release sends %.80q", out)
	}
	mustFeed(t, c.fromBackend, "+OK\r\n+OK\r\n")
	_, client := w.take()
	if want := "+OK\r\n-ERR sentinel-proxy: commands are held for a switchover, and it is too long to hold"; !strings.HasPrefix(client, want) ||
		!strings.HasSuffix(client, "+OK\r\n") {
		t.Fatalf("client got %q", client)
	}
}
