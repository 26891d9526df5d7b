package respsession

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// durableCommands are what the fuzzed client sends: writes whose reply says they wrote, writes that
// wrote nothing, reads, and a transaction (its commands one step each).
var durableCommands = []string{
	cmd("SET", "a", "1"), cmd("GET", "a"), cmd("INCR", "n"), cmd("SET", "b", "1", "NX"), cmd("PING"),
	cmd("PUBLISH", "ch", "m"), cmd("LPOP", "empty"), cmd("MULTI"), cmd("EXEC"), cmd("DEL", "a"),
}

// modelReply is what the model backend answers a command, and whether it changed the dataset (a write
// whose reply must wait for a WAIT).
func modelReply(args [][]byte, inMulti bool) (reply string, wrote bool) {
	name := strings.ToLower(string(args[0]))
	if inMulti && name != "exec" && name != "multi" {
		return "+QUEUED\r\n", false
	}
	switch name {
	case "set":
		if len(args) > 3 {
			return "$-1\r\n", false // NX on a key that exists
		}
		return "+OK\r\n", true
	case "get":
		return "$1\r\n1\r\n", false
	case "incr", "del":
		return ":1\r\n", true
	case "ping":
		return "+PONG\r\n", false
	case "publish":
		return ":0\r\n", false
	case "lpop":
		return "$-1\r\n", false
	case "multi":
		if inMulti {
			return "-ERR MULTI calls can not be nested\r\n", false
		}
		return "+OK\r\n", false
	}
	return "-ERR unknown\r\n", false
}

// FuzzDurable drives a conversation with wait_replicas = 2 against a model backend that answers each
// command as Redis would and each WAIT with a count the script picks, the replies cut anywhere and
// interleaved with the client's commands. The client must get, in order, every command's reply exactly,
// but for the writes whose covering WAIT (the first after them on the connection) counted fewer than 2:
// those get NOREPLICAS. And never a write's reply before its WAIT's came back.
func FuzzDurable(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 1, 9, 2, 2})
	f.Add([]byte{0, 7, 0, 0, 0, 1, 0, 8, 0, 2, 2, 1, 2, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 2, 1, 3, 2, 0, 0, 9, 2, 2, 1})
	f.Fuzz(func(t *testing.T, script []byte) {
		const n = 2
		w := &wire{}
		clock := int64(0)
		c := newConv(w, testEnv{&clock}, 1e9)
		c.attach()
		d := NewDurability("g", zerolog.Nop())
		d.Set(n, 200*time.Millisecond)
		c.dur = d

		next := func() byte {
			if len(script) == 0 {
				return 0
			}
			b := script[0]
			script = script[1:]
			return b
		}
		var (
			cmds       resp.CommandScanner // the backend's side of the stream
			pending    []byte              // replies the backend wrote that the session did not read yet
			want       []string            // what the client must get, a reply each ("NOREPLICAS" for a refusal)
			uncovered  []int               // the indexes in want of write replies no WAIT covered yet
			inMulti    bool
			multiWrote bool
		)
		// backend answers what the session sent it since the last look.
		backend := func() {
			sent := w.backend.String()
			w.backend.Reset()
			b := []byte(sent)
			for len(b) > 0 {
				k, done, err := cmds.Next(b)
				if err != nil {
					t.Fatalf("the backend got what is not a command: %v (%q)", err, sent)
				}
				b = b[k:]
				if !done {
					continue
				}
				args := cmds.Args()
				if strings.EqualFold(string(args[0]), "wait") {
					count := next() % 3
					pending = append(pending, ':', '0'+count, '\r', '\n')
					for _, i := range uncovered {
						if count < n {
							want[i] = "NOREPLICAS"
						}
					}
					uncovered = uncovered[:0]
					continue
				}
				reply, wrote := modelReply(args, inMulti)
				switch name := strings.ToLower(string(args[0])); {
				case inMulti && name == "exec":
					inMulti = false
					reply, wrote = "*0\r\n", multiWrote
					if multiWrote {
						reply = "*1\r\n+OK\r\n"
					}
				case inMulti && name != "multi":
					// EXEC waits for a WAIT when a command it ran may write, whatever it did.
					multiWrote = multiWrote || name == "set" || name == "incr" || name == "del" || name == "lpop"
				case name == "multi" && !inMulti: // a nested one is refused, and changes nothing
					inMulti, multiWrote = true, false
				}
				if wrote {
					uncovered = append(uncovered, len(want))
				}
				want = append(want, reply)
				pending = append(pending, reply...)
			}
		}
		for len(script) > 0 {
			switch op := next() % 3; op {
			case 0: // the client sends a command
				if err := c.fromClient([]byte(durableCommands[int(next())%len(durableCommands)])); err != nil {
					t.Fatal(err)
				}
				backend()
			case 1, 2: // some of the backend's replies arrive
				k := len(pending)
				if op == 1 {
					k = min(k, int(next()%8))
				}
				if err := c.fromBackend(append([]byte(nil), pending[:k]...)); err != nil {
					t.Fatal(err)
				}
				pending = pending[k:]
				backend()
			}
		}
		for len(pending) > 0 {
			p := pending
			pending = nil
			if err := c.fromBackend(p); err != nil {
				t.Fatal(err)
			}
			backend()
		}
		got := w.client.String()
		var gotReplies []string
		var scan resp.Scanner
		rest := []byte(got)
		for len(rest) > 0 {
			k, done, err := scan.Next(rest)
			if err != nil || !done {
				t.Fatalf("the client got what is not whole replies: %q", got)
			}
			r := string(rest[:k])
			if strings.HasPrefix(r, "-NOREPLICAS ") {
				r = "NOREPLICAS"
			}
			gotReplies = append(gotReplies, r)
			rest = rest[k:]
		}
		if len(uncovered) > 0 {
			// Writes no WAIT covered: their replies are held (the client sent nothing after them that
			// would make the session send one: it does at the end of each read of the client).
			want = want[:uncovered[0]]
		}
		if !equalStrings(gotReplies, want) {
			t.Fatalf("the client got\n%q\nwant\n%q", gotReplies, want)
		}
		if len(uncovered) == 0 && (c.q.len() > 0 || c.held != nil) {
			t.Fatalf("%d entries left, replies held %v, with every reply read", c.q.len(), c.held != nil)
		}
	})
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
