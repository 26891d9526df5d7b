package respsession

import (
	"strings"
	"testing"
)

// TestMuxClassOf: what may share a connection, by name and, once read, by arguments.
func TestMuxClassOf(t *testing.T) {
	for _, tc := range []struct {
		cmd  string // "" arguments: only the name is known
		args bool
		want muxClass
	}{
		{"GET k", true, muxPlain},
		{"get", false, muxPlain},
		{"EVAL return 1 0", true, muxPlain},
		{"AUTH pw", true, muxKey},
		{"auth", false, muxKey},
		{"SELECT 2", true, muxKey},
		{"HELLO 3", true, muxKey},
		{"HELLO 3 AUTH u p", true, muxKey},
		{"hello", false, muxKey},
		{"HELLO", true, muxPrivate},             // answers with the connection's id
		{"HELLO 3 SETNAME n", true, muxPrivate}, // names the connection
		{"HELLO 4", true, muxPrivate},
		{"CLIENT SETINFO LIB-NAME go-redis", true, muxPlain},
		{"CLIENT GETNAME", true, muxPlain},
		{"client", false, muxPrivate},
		{"CLIENT ID", true, muxPrivate},
		{"CLIENT SETNAME n", true, muxPrivate},
		{"CLIENT REPLY OFF", true, muxPrivate},
		{"MULTI", true, muxPrivate},
		{"WATCH k", true, muxPrivate},
		{"BLPOP q 0", true, muxPrivate},
		{"XREAD STREAMS s 0", true, muxPrivate}, // flagged blocking by Redis, BLOCK or not
		{"WAIT 1 0", true, muxPrivate},
		{"SUBSCRIBE c", true, muxPrivate},
		{"MONITOR", true, muxPrivate},
		{"QUIT", true, muxPrivate},
		{"RESET", true, muxPrivate},
		{"NOSUCHCOMMAND x", true, muxPlain}, // Redis answers the error
		{"SCRIPT KILL", true, muxPrivate},   // runs while a script does: not behind it
		{"FUNCTION KILL", true, muxPrivate},
		{"script", false, muxPrivate},
		{"SCRIPT LOAD return 1", true, muxPlain},
		{"FUNCTION LIST", true, muxPlain},
		{"SHUTDOWN NOSAVE", true, muxPrivate},
	} {
		fields := strings.Fields(tc.cmd)
		var args [][]byte
		if tc.args {
			for _, f := range fields {
				args = append(args, []byte(f))
			}
		}
		var buf [maxName]byte
		if got := muxClassOf(lowerInto(&buf, []byte(fields[0])), args); got != tc.want {
			t.Errorf("%q (arguments known: %v): class %d, want %d", tc.cmd, tc.args, got, tc.want)
		}
	}
}

// muxWire is a shared connection's side of a conversation: it records where each forwarded command
// ends and how many replies it expects.
type muxWire struct {
	wire
	sent []int32
}

func (w *muxWire) commandSent(replies int32) { w.sent = append(w.sent, replies) }

// TestMuxConversation: on a shared connection plain commands stream, each told where it ends; the
// first that needs more is held, with everything after it; moving to a connection of its own, the
// replay leaves out what the held commands say themselves (a subscription), and they
// go after what was forwarded, in order.
func TestMuxConversation(t *testing.T) {
	w := &muxWire{}
	now := new(int64)
	c := newConv(w, testEnv{now}, 1e9)
	c.mux = w
	c.attachShared()
	c.muxHeld = false // its session found nothing held
	if err := c.fromClient([]byte(cmd("GET", "a") + cmd("MGET", "a", "b"))); err != nil {
		t.Fatal(err)
	}
	if backend, _ := w.take(); backend != cmd("GET", "a")+cmd("MGET", "a", "b") || len(w.sent) != 2 || w.sent[0] != 1 || w.sent[1] != 1 {
		t.Fatalf("plain commands: sent %q, ends %v", backend, w.sent)
	}
	if err := c.fromBackend([]byte("$-1\r\n*2\r\n$-1\r\n$-1\r\n")); err != nil {
		t.Fatal(err)
	}
	w.take()
	// AUTH waits for its session; SUBSCRIBE and GET are held behind it.
	if err := c.fromClient([]byte(cmd("AUTH", "pw") + cmd("SUBSCRIBE", "ch") + cmd("GET", "b"))); err != nil {
		t.Fatal(err)
	}
	if backend, _ := w.take(); backend != "" || len(w.sent) != 2 {
		t.Fatalf("held commands went out: %q, ends %v", backend, w.sent)
	}
	e := c.nextHeld()
	if e == nil || e.mx != muxKey || e.effect != effAuth {
		t.Fatalf("first held: %+v", e)
	}
	e.sent = true // its session sends it on the connection for its key
	if err := c.fromBackend([]byte("+OK\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, client := w.take(); client != "+OK\r\n" {
		t.Fatalf("AUTH answered %q", client)
	}
	if e := c.nextHeld(); e == nil || e.mx != muxPrivate {
		t.Fatalf("next held: %+v", e)
	}
	c.leaveMux()
	out := string(c.attachWith([]byte(cmd("ECHO", "forwarded")), true))
	want := cmd("HELLO", "2", "AUTH", "default", "pw") + cmd("ECHO", "forwarded") + cmd("SUBSCRIBE", "ch") + cmd("GET", "b")
	if out != want {
		t.Fatalf("private connection got\n%q\nwant\n%q", out, want)
	}
}
