package respsession

import (
	"bytes"
	"testing"

	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// checkedWire is a conversation's output that checks, as it goes, what a client and a backend could not
// tell from a bug: nothing reaches a backend while the session has none, and what reaches the client is
// always RESP, cut only at value ends or mid-value, never spliced (a session's own answer inside a
// backend's reply would make the client's stream unreadable). It counts the commands begun on the
// backend (commands), for the switchover's hold: no command may begin there while it is in force.
type checkedWire struct {
	t        *testing.T
	attached *bool
	client   bytes.Buffer
	backend  bytes.Buffer
	scan     resp.Scanner

	cmds       resp.CommandScanner // the backend's stream, a replay made during a hold aside
	commands   int                 // commands begun in it
	unreadable bool                // it is not commands (a replication link, MONITOR's raw bytes)
}

// newCheckedWire reads what reaches the client within the limits the session passes (a reply nested
// deeper than a scanner's default 128 passes through, as it would reach a client connected directly).
func newCheckedWire(t *testing.T, attached *bool) *checkedWire {
	return &checkedWire{t: t, attached: attached, scan: resp.Scanner{Limits: replyLimits}}
}

func (w *checkedWire) toBackend(b []byte) {
	if !*w.attached {
		w.t.Fatalf("%q sent to a backend while the session has none", b)
	}
	w.backend.Write(b)
	for len(b) > 0 && !w.unreadable {
		starting := !w.cmds.InCommand()
		n, done, err := w.cmds.Next(b)
		if err != nil {
			w.unreadable = true
			return
		}
		if starting && (w.cmds.InCommand() || done) {
			w.commands++
		}
		b = b[n:]
	}
}

// newBackend starts the count on a new backend connection: the command the old one was sent in part
// is not continued there.
func (w *checkedWire) newBackend() { w.cmds = resp.CommandScanner{} }

func (w *checkedWire) toClient(b []byte) {
	w.client.Write(b)
	for len(b) > 0 {
		n, _, err := w.scan.Next(b)
		if err != nil {
			w.t.Fatalf("the client got bytes that are not RESP: %v\nits stream so far: %q", err, w.client.Bytes())
		}
		b = b[n:]
	}
}

// replyOrder are reply streams of every RESP2 and RESP3 type, nested, empty and null, each to a single
// command. FuzzReplyStream starts from them.
var replyOrder = []string{
	"+OK\r\n", "-ERR wrong\r\n", ":42\r\n", "$3\r\nfoo\r\n", "$0\r\n\r\n", "$-1\r\n", "*-1\r\n", "*0\r\n",
	"*2\r\n$1\r\na\r\n*1\r\n:1\r\n", "_\r\n", ",3.14\r\n", "#t\r\n", "(12345678901234567890\r\n",
	"%1\r\n+k\r\n*2\r\n:1\r\n:2\r\n", "~2\r\n+a\r\n+b\r\n", "=7\r\ntxt:abc\r\n", "!3\r\nERR\r\n",
	"|1\r\n+ttl\r\n:3\r\n+OK\r\n", ">3\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n",
	"$12\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n",
}

// FuzzReplyStream gives a conversation as many GETs as the stream has replies (pushes aside), then the
// stream cut in two at every byte and a byte at a time. Where the stream is RESP, the client must get it
// byte for byte and the conversation must end with no command waiting; where it is not, the client gets
// no more than its well-formed start. Never a panic.
func FuzzReplyStream(f *testing.F) {
	for _, s := range replyOrder {
		f.Add([]byte(s))
	}
	f.Add([]byte(replyOrder[0] + replyOrder[18] + replyOrder[8] + replyOrder[13]))
	f.Add([]byte("+OK\r\n$5\r\nab"))
	f.Add([]byte("*1\r\n?\r\n"))
	f.Fuzz(func(t *testing.T, replies []byte) {
		if len(replies) > 512 {
			return // every cut below is a full run: keep each input cheap
		}
		values, complete, valid := countReplies(replies)
		cuts := [][]int{{len(replies)}, nil}
		for i := 1; i < len(replies); i++ {
			cuts = append(cuts, []int{i, len(replies)})
			cuts[1] = append(cuts[1], i)
		}
		cuts[1] = append(cuts[1], len(replies))
		for _, ends := range cuts {
			attached := true
			w := newCheckedWire(t, &attached)
			clock := int64(0)
			c := newConv(w, testEnv{&clock}, 1e9)
			c.attach()
			for range values {
				if err := c.fromClient([]byte(cmd("GET", "k"))); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			from := 0
			for _, end := range ends {
				if err = c.fromBackend(append([]byte(nil), replies[from:end]...)); err != nil {
					break
				}
				from = end
			}
			// A stream that is not RESP may wait for more bytes where its kind is not told yet (the
			// checked wire has made sure none of it reached the client), or end the session.
			switch {
			case !bytes.HasPrefix(replies, w.client.Bytes()):
				t.Fatalf("cut at %v: the client got %q, not a part of %q", ends, w.client.Bytes(), replies)
			case valid && err != nil:
				t.Fatalf("cut at %v: %v", ends, err)
			case valid && complete && (!bytes.Equal(w.client.Bytes(), replies) || c.q.len() != 0):
				t.Fatalf("cut at %v: the client got %q of %q; %d commands still wait", ends, w.client.Bytes(), replies, c.q.len())
			}
		}
	})
}

// countReplies reads a reply stream as the conversation's scanner does: how many replies it holds that
// answer a command (pushes answer none; like the conversation, it tells them by their first byte),
// whether it ends at a value's end, and whether it is RESP.
// Streams with more replies than commands would be refused; they are counted, so there never are.
func countReplies(b []byte) (replies int, complete, valid bool) {
	var s resp.Scanner
	complete = true
	for len(b) > 0 {
		if complete && b[0] != '>' { // a value begins: by its first byte, a reply or a push
			replies++
		}
		n, done, err := s.Next(b)
		if err != nil {
			return replies, false, false
		}
		complete = done
		b = b[n:]
	}
	return replies, complete, true
}

// script vocabularies: commands a client sends, replies and pushes a backend sends.
var (
	fuzzCommands = []string{
		cmd("GET", "k"), cmd("SET", "k", "v"), cmd("MULTI"), cmd("EXEC"), cmd("DISCARD"), cmd("WATCH", "k"),
		cmd("UNWATCH"), cmd("SUBSCRIBE", "c1", "c2"), cmd("UNSUBSCRIBE"), cmd("PSUBSCRIBE", "p*"),
		cmd("PUNSUBSCRIBE", "p*"), cmd("SSUBSCRIBE", "s"), cmd("HELLO", "3"), cmd("HELLO", "2"),
		cmd("CLIENT", "REPLY", "OFF"), cmd("CLIENT", "REPLY", "ON"), cmd("CLIENT", "REPLY", "SKIP"),
		cmd("SELECT", "3"), cmd("AUTH", "app", "pw"), cmd("CLIENT", "SETNAME", "n"), cmd("BLPOP", "l", "0"),
		cmd("QUIT"), cmd("RESET"), cmd("MONITOR"), cmd("CLIENT", "TRACKING", "ON"), cmd("PING"),
		"PING\r\n", cmd("EVAL", "return 1", "0"), cmd("INCR", "n"), cmd("CLIENT", "TRACKING", "OFF"),
	}
	fuzzReplies = append([]string{
		"*3\r\n$7\r\nmessage\r\n$2\r\nc1\r\n$1\r\nx\r\n", "*3\r\n$9\r\nsubscribe\r\n$2\r\nc1\r\n:1\r\n",
		">3\r\n$9\r\nsubscribe\r\n$2\r\nc1\r\n:1\r\n", ">3\r\n$7\r\nmessage\r\n$2\r\nc1\r\n$1\r\nx\r\n",
		"*3\r\n$11\r\nunsubscribe\r\n$2\r\nc1\r\n:0\r\n", "+QUEUED\r\n", "*2\r\n+OK\r\n:1\r\n",
		"%7\r\n+server\r\n+redis\r\n+version\r\n+7.0\r\n+proto\r\n:3\r\n+id\r\n:1\r\n+mode\r\n+standalone\r\n+role\r\n+master\r\n+modules\r\n*0\r\n",
		"+1700000000.0 [0 127.0.0.1:1] \"get\" \"k\"\r\n",
	}, replyOrder...)
)

// FuzzConversation drives a conversation with a script: commands and replies from the vocabularies
// above, cut anywhere, raw bytes either way, failovers (the backend leaves, a new one comes), time
// passing for held commands, and a switchover's hold beginning and ending. Whatever the script, the
// conversation must not panic, must send nothing to a backend while it has none, must give the client
// only well-formed RESP, and must not grow its queue beyond the commands it was given. While a hold is in
// force, no command may begin on the backend (but the one whose start it had when the hold began, and
// what passes unread: MONITOR, a replication link), and no held command may expire; once it is
// released with a backend, no command is left unsent.
func FuzzConversation(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 4, 4, 0, 1})
	f.Add([]byte{0, 7, 1, 19, 0, 1, 4, 0, 2, 4, 1, 0, 5, 200})
	f.Add([]byte{0, 2, 0, 0, 0, 3, 1, 34, 1, 34, 4, 4, 1, 34})
	f.Add([]byte{0, 12, 1, 46, 0, 7, 1, 39, 4, 1, 10, 4, 1, 10})
	f.Add([]byte{0, 23, 1, 23, 4, 4, 1, 35})
	f.Fuzz(func(t *testing.T, script []byte) {
		attached := true
		w := newCheckedWire(t, &attached)
		clock := int64(0)
		c := newConv(w, testEnv{&clock}, 1e9)
		c.attach()
		// commands counts the commands the client's stream holds, read as the session reads it: raw
		// bytes inside a command can turn the rest of it into inline commands, a line each.
		commands := 0
		var clientCmds resp.CommandScanner
		countCommands := func(b []byte) {
			for len(b) > 0 {
				n, done, err := clientCmds.Next(b)
				if err != nil {
					return // the session ends on it too
				}
				if done {
					commands++
				}
				b = b[n:]
			}
		}
		// The client's stream is fed a piece at a time: a command cut at a point of the script's
		// choosing continues with the next client step.
		var clientRest, backendRest []byte
		next := func() byte {
			if len(script) == 0 {
				return 0
			}
			b := script[0]
			script = script[1:]
			return b
		}
		holding := false
		begun := 0 // commands begun on the backend when the hold began
		for len(script) > 0 {
			var err error
			op := next()
			if op >= 240 {
				// The switchover's hold begins or ends. Kept apart from the six steps below (op%6), so
				// that saved scripts keep their meaning.
				if !holding {
					holding = true
					c.holdCommands()
					begun = w.commands // a command whose start went before may be continued
				} else {
					holding = false
					if out := c.releaseCommands(); len(out) > 0 {
						w.toBackend(out)
					}
					for i := 0; attached && i < c.q.len(); i++ {
						if e := c.q.at(i); e.kind == viaBackend && !e.sent {
							t.Fatalf("released with a backend, entry %d is still held", i)
						}
					}
				}
				continue
			}
			switch op %= 6; op {
			case 0, 2: // a command, or raw bytes, from the client
				if op == 0 {
					clientRest = append(clientRest, fuzzCommands[int(next())%len(fuzzCommands)]...)
				} else {
					n := int(next() % 16)
					clientRest = append(clientRest, script[:min(n, len(script))]...)
					script = script[min(n, len(script)):]
				}
				cut := len(clientRest)
				if k := int(next()); k%4 == 0 && cut > 1 {
					cut = 1 + k%(cut-1)
				}
				countCommands(clientRest[:cut])
				err = c.fromClient(append([]byte(nil), clientRest[:cut]...))
				clientRest = clientRest[cut:]
			case 1, 3: // a reply, or raw bytes, from the backend
				if !attached {
					continue
				}
				if op == 1 {
					backendRest = append(backendRest, fuzzReplies[int(next())%len(fuzzReplies)]...)
				} else {
					n := int(next() % 16)
					backendRest = append(backendRest, script[:min(n, len(script))]...)
					script = script[min(n, len(script)):]
				}
				cut := len(backendRest)
				if k := int(next()); k%4 == 0 && cut > 1 {
					cut = 1 + k%(cut-1)
				}
				err = c.fromBackend(append([]byte(nil), backendRest[:cut]...))
				backendRest = backendRest[cut:]
			case 4: // the backend leaves, or a new one comes
				if attached {
					attached = false
					backendRest = nil
					err = c.detach()
				} else if c.needsBackend() || next()%2 == 0 {
					attached = true
					w.newBackend()
					counted := w.commands
					if replay := c.attach(); len(replay) > 0 {
						w.toBackend(replay)
					}
					if holding {
						begun += w.commands - counted // the replay of the client's state: all it sends
					}
				}
			case 5: // time passes
				clock += int64(next()) * 1e7
				if !attached {
					var until int64
					until, err = c.expireHolds(clock)
					if holding && until != 0 {
						t.Fatalf("during the hold, a held command has a deadline (%d)", until)
					}
				}
			}
			if holding {
				c.answered() // must not panic whatever the state
				switch {
				case c.passthrough || c.replica:
					begun = w.commands // what passes unread is not held
				case !w.unreadable && w.commands > begun:
					t.Fatalf("during the hold %d commands began on the backend", w.commands-begun)
				}
			}
			if err != nil {
				return // the session ends: the driver flushes what the client was given, and closes it
			}
			if c.q.len() > commands+16 {
				t.Fatalf("%d entries queued for %d commands", c.q.len(), commands)
			}
		}
	})
}
