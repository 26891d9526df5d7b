package respsession

import (
	"strings"
	"testing"
)

// TestCommandCutByAFailover: a command half sent when its backend leaves never ran there; its rest must
// not go to the next backend alone (the tail of a value could read as commands there), and the whole
// command goes there once, its reply to the client.
func TestCommandCutByAFailover(t *testing.T) {
	set := cmd("SET", "k", strings.Repeat("v", 1000)+"\r\nFLUSHALL\r\n")
	c, w, _ := testConv(t)
	mustFeed(t, c.fromClient, set[:600])
	if backend, _ := w.take(); backend != set[:600] {
		t.Fatalf("the command's start must stream: %q", backend)
	}
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	mustFeed(t, c.fromClient, set[600:])
	if backend, client := w.take(); backend != "" || client != "" {
		t.Fatalf("with no backend: backend %q, client %q", backend, client)
	}
	if out := string(c.attach()); out != set {
		t.Fatalf("the next backend must get the whole command once, got %d bytes: %.80q", len(out), out)
	}
	mustFeed(t, c.fromBackend, "+OK\r\n")
	if _, client := w.take(); client != "+OK\r\n" {
		t.Fatalf("client got %q", client)
	}
}

// TestHeldCommandStreamingWhenTheBackendComes: a command that began with no backend and is still
// arriving when one comes is sent to it once read in full.
func TestHeldCommandStreamingWhenTheBackendComes(t *testing.T) {
	set := cmd("SET", "k", strings.Repeat("v", 1000))
	for _, tail := range []string{"", cmd("PING")} { // its reply expected; then one more command after it
		c, w, _ := testConv(t)
		if err := c.detach(); err != nil {
			t.Fatal(err)
		}
		mustFeed(t, c.fromClient, set[:500])
		if out := c.attach(); len(out) != 0 {
			t.Fatalf("nothing read in full to send yet: %q", out)
		}
		mustFeed(t, c.fromClient, set[500:]+tail)
		if backend, _ := w.take(); backend != set+tail {
			t.Fatalf("backend got %d bytes, want %d: %.60q", len(backend), len(set+tail), backend)
		}
		replies := "+OK\r\n"
		if tail != "" {
			replies += "+PONG\r\n"
		}
		mustFeed(t, c.fromBackend, replies)
		if _, client := w.take(); client != replies || c.q.len() != 0 {
			t.Fatalf("client got %q, %d entries left", client, c.q.len())
		}
	}
}
