package respsession

import (
	"errors"
	"fmt"

	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// output is where a conversation's bytes go: the driver that owns the sockets. Each call's bytes are
// valid only during the call; the driver writes them at once or keeps a copy.
type output interface {
	toBackend(b []byte)
	toClient(b []byte)
}

// disposition is what happens to the command being read.
type disposition uint8

const (
	undecided disposition = iota // its name is not read yet
	forward                      // to the backend, as it streams
	answer                       // answered by the session, nothing sent
	hold                         // kept, to be sent once there is a backend
	drop                         // too long to keep while there is no backend: answered with an error
)

// Errors that end a session. The driver closes the client once what was written to it is flushed.
var (
	// errQuit: the client said QUIT and got its +OK.
	errQuit = errors.New("client quit")
	// errCannotMove: the session's state cannot be carried to another backend (a reply was half sent
	// when the backend left, or the client tracks keys with RESP2 redirection).
	errCannotMove = errors.New("session cannot move to another backend")
)

// conv is the RESP-aware heart of one client session. It reads the client's commands and the backend's
// replies as they stream, keeps in order the commands waiting for a reply, remembers what the client
// set on its connection, and decides what goes where: commands to the backend, replies to the client,
// its own answers when it must give them. When the backend leaves (a failover), it works out what each
// command in flight gets, and what a new backend must be told first. It does no I/O: a driver gives it
// bytes and sends what it says (see output), so it is tested without sockets.
type conv struct {
	out   output
	st    connState
	proto int // the protocol replies come in: st.proto, or what a HELLO in flight asked for

	// What the client sends.
	cmd       resp.CommandScanner
	disp      disposition
	stash     []byte // bytes of the command being read, before its disposition was known
	raw       []byte // bytes of the command being read, kept for a resend or a hold
	keep      bool   // raw is being kept
	replyOff  bool   // CLIENT REPLY OFF
	skip      bool   // CLIENT REPLY SKIP: the next command gets no reply
	txOpen    bool   // a MULTI was sent and no EXEC or DISCARD yet
	watchSent bool   // a WATCH was sent and no EXEC, DISCARD or UNWATCH yet

	// What the backend answers.
	rep         resp.Scanner
	inReply     bool   // in the middle of a backend value
	toEntry     bool   // the value is the reply to the queue's front entry
	swallow     bool   // the value is read and dropped
	peek        []byte // the start of a RESP2 pub/sub frame or a push, before its kind is known
	dropPush    int    // subscription confirmations of a replay that come as pushes, to drop
	passthrough bool   // MONITOR: everything the backend sends goes to the client, nothing is a reply

	q queue

	// Failover.
	attached   bool          // a backend connection is there: commands go to it
	localTx    bool          // the transaction was lost with the old backend: its commands are answered here
	execNull   bool          // ... and its EXEC answers a null reply (a WATCH was lost), not EXECABORT
	watchLost  bool          // a WATCH was lost with the old backend: the next transaction's EXEC answers null
	invalidate bool          // client-side caching: the client must drop its cache (RESP3 tracking moved)
	refusal    func() string // why there is no backend, for a held command whose hold ran out
	clock      func() int64  // unix nanoseconds
	holdNs     int64         // how long a command is held while there is no backend
}

func newConv(out output, refusal func() string, clock func() int64, hold int64) *conv {
	c := &conv{out: out, st: newState(), proto: 2, refusal: refusal, clock: clock, holdNs: hold}
	c.cmd.Budget = budget
	return c
}

// fromClient takes bytes the client sent. A returned error ends the session (a protocol error, after
// its error reply is written).
func (c *conv) fromClient(b []byte) error {
	span := -1 // start of bytes of b to forward, not yet given to the output
	flush := func(end int) {
		if span >= 0 && end > span {
			c.out.toBackend(b[span:end])
		}
		span = -1
	}
	pos := 0
	for pos < len(b) {
		began := pos
		starting := !c.cmd.InCommand()
		n, done, err := c.cmd.Next(b[pos:])
		pos += n
		if err != nil {
			flush(began)
			c.stash, c.raw = c.stash[:0], c.raw[:0]
			c.out.toClient(resp.AppendError(nil, "ERR "+err.Error()))
			return err
		}
		if starting && !c.cmd.InCommand() && !done {
			continue // a blank line or an empty array: nothing to do
		}
		if c.disp == undecided {
			name := c.cmd.Name()
			if name == nil && done {
				name = c.cmd.Args()[0]
			}
			if name == nil {
				flush(began)
				c.stash = append(c.stash, b[began:pos]...)
				continue
			}
			c.disp = c.decide(lower(name))
			c.keep = c.disp == forward || c.disp == hold
			c.raw = append(c.raw[:0], c.stash...)
			flush(began)
			if c.disp == forward {
				if len(c.stash) > 0 {
					c.out.toBackend(c.stash)
				}
				span = began
			}
			c.stash = c.stash[:0]
		} else if c.disp == forward && span < 0 {
			span = began
		}
		if c.keep {
			c.raw = append(c.raw, b[began:pos]...)
			if len(c.raw) > maxKept {
				c.keep, c.raw = false, c.raw[:0]
				if c.disp == hold {
					c.disp = drop
				}
			}
		}
		if !done {
			continue
		}
		if c.disp != forward {
			flush(began)
		}
		c.commandDone()
	}
	flush(pos)
	return c.emitLocal()
}

// decide chooses, once a command's name is known, what happens to it.
func (c *conv) decide(name string) disposition {
	switch {
	case c.passthrough:
		return forward
	case c.localTx:
		return answer
	case c.watchLost && name == "multi":
		return answer // the transaction opens here, so that its EXEC can answer null
	case !c.attached:
		return hold
	}
	return forward
}

// commandDone acts on a command read in full.
func (c *conv) commandDone() {
	args := c.cmd.Args()
	disp := c.disp
	c.disp = undecided
	if c.passthrough {
		return
	}
	switch disp {
	case answer:
		c.q.push(entry{kind: local, reply: c.localAnswer(lower(args[0]))})
		return
	case drop:
		c.q.push(entry{kind: local, reply: resp.AppendError(nil,
			fmt.Sprintf("ERR sentinel-proxy: no master to send this command to, and it is too long to hold (over %d bytes)", maxKept))})
		return
	}
	e, ok := c.classify(args)
	if !ok {
		if disp == hold { // no reply expected, but it must still be sent
			c.q.push(entry{kind: viaBackend, replies: 0, raw: clone(c.raw), heldUntil: c.clock() + c.holdNs})
		}
		return
	}
	e.sent = disp == forward
	if disp == hold {
		e.heldUntil = c.clock() + c.holdNs
	}
	if disp == hold || (e.resend && len(c.raw) > 0 && c.keep) {
		e.raw = clone(c.raw)
	} else {
		e.resend = false
	}
	if lower(args[0]) == "unwatch" {
		c.watchLost = false
	}
	c.q.push(e)
}

// localAnswer is the session's answer to a command of a transaction lost in a failover, as Redis
// answers inside MULTI: queued, then an EXEC that fails.
func (c *conv) localAnswer(name string) []byte {
	switch {
	case name == "multi" && !c.localTx:
		c.localTx, c.execNull, c.watchLost = true, true, false
		return resp.AppendSimple(nil, "OK")
	case name == "multi":
		return resp.AppendError(nil, "ERR MULTI calls can not be nested")
	case name == "watch":
		return resp.AppendError(nil, "ERR WATCH inside MULTI is not allowed")
	case name == "discard":
		c.localTx, c.execNull = false, false
		return resp.AppendSimple(nil, "OK")
	case name == "exec":
		null := c.execNull
		c.localTx, c.execNull = false, false
		if null {
			return resp.AppendNullArray(nil, c.proto) // as when a watched key changed
		}
		return resp.AppendError(nil, "EXECABORT Transaction discarded because the master changed (sentinel-proxy failover)")
	}
	return resp.AppendSimple(nil, "QUEUED")
}

// emitLocal writes the answers of the local entries at the front of the queue: they go out as soon as
// every reply before them has. errQuit after the answer to a QUIT.
func (c *conv) emitLocal() error {
	for e := c.q.front(); e != nil && e.kind == local; e = c.q.front() {
		c.out.toClient(e.reply)
		quit := e.effect == effQuit
		c.q.pop()
		if quit {
			return errQuit
		}
	}
	return nil
}

// frontBackend returns the first entry that waits for the backend, emitting the local answers before
// it; nil when none does.
func (c *conv) frontBackend() (*entry, error) {
	for {
		if err := c.emitLocal(); err != nil {
			return nil, err
		}
		e := c.q.front()
		if e == nil || e.replies > 0 {
			return e, nil
		}
		c.q.pop() // a command that gets no reply
	}
}

// fromBackend takes bytes the backend sent. A returned error ends the session.
func (c *conv) fromBackend(b []byte) error {
	if len(c.peek) > 0 {
		// A pub/sub frame or push began in the last bytes, too short to tell its kind: read it again
		// whole. Rare, and short: the frame's first line and a word.
		b = append(c.peek, b...)
		c.peek = nil
	}
	span := -1
	flush := func(end int) {
		if span >= 0 && end > span {
			c.out.toClient(b[span:end])
		}
		span = -1
	}
	pos := 0
	for pos < len(b) {
		began := pos
		if !c.inReply {
			decided, err := c.startReply(b[pos:])
			if err != nil {
				flush(began)
				return err
			}
			if !decided {
				flush(began)
				c.peek = append([]byte(nil), b[pos:]...)
				return nil
			}
			c.inReply = true
		}
		n, done, err := c.rep.Next(b[pos:])
		if err != nil {
			flush(began)
			return fmt.Errorf("backend reply: %w", err)
		}
		if c.swallow {
			flush(began)
		} else if span < 0 {
			span = began
		}
		pos += n
		if c.toEntry && !c.swallow {
			c.q.front().started = true
		}
		if done {
			flush(pos)
			if err := c.replyDone(); err != nil {
				return err
			}
		}
	}
	flush(pos)
	return c.emitLocal()
}

// startReply decides, at the first byte of a backend value, whose it is: the reply to the front entry,
// or a push or pub/sub message that is nobody's reply; and whether it is swallowed. decided is false
// while a pub/sub frame's kind is not readable yet.
func (c *conv) startReply(b []byte) (decided bool, err error) {
	c.toEntry, c.swallow = false, false
	if c.passthrough {
		return true, nil
	}
	kind := b[0]
	pubsub := kind == '>' || (kind == '*' && c.proto == 2 && (c.st.subscribed() || c.subscribePending()))
	frameKind := ""
	if pubsub {
		text, complete := peekKind(b)
		if !complete {
			return false, nil
		}
		frameKind = text
	}
	switch {
	case kind == '>':
		if c.dropPush > 0 && isConfirmation(frameKind) {
			c.dropPush--
			c.swallow = true
		}
		return true, nil
	case pubsub && (frameKind == "message" || frameKind == "pmessage" || frameKind == "smessage"):
		return true, nil
	}
	e, err := c.frontBackend()
	if err != nil {
		return false, err
	}
	if e == nil {
		return false, fmt.Errorf("backend sent a reply nobody asked for (%q)", kind)
	}
	c.toEntry = true
	c.swallow = e.kind == swallowed
	return true, nil
}

// subscribePending reports whether a subscription command waits for its confirmations.
func (c *conv) subscribePending() bool {
	for i := 0; i < c.q.len(); i++ {
		if e := c.q.at(i); e.effect == effSubscribe && e.replies > 0 {
			return true
		}
	}
	return false
}

// replyDone acts on a backend value read in full.
func (c *conv) replyDone() error {
	c.inReply = false
	if !c.toEntry {
		return nil
	}
	e := c.q.front()
	e.replies--
	e.started = false
	if e.replies > 0 {
		return nil
	}
	failed := c.rep.Kind() == '-' || c.rep.Kind() == '!'
	if e.kind == swallowed {
		c.q.pop()
		if failed {
			// The new backend refused the client's state (a password changed, a database gone): the
			// client cannot go on as it was.
			return errCannotMove
		}
		if c.st.monitor {
			c.passthrough = true // the replayed MONITOR is acknowledged
		}
		return nil
	}
	if !failed {
		c.applyEffect(e)
	}
	switch {
	case e.effect == effQuit:
		c.q.pop()
		return errQuit
	case e.effect == effMonitor && !failed:
		c.passthrough = true
	case e.effect == effHello && failed:
		c.proto = c.st.proto // the protocol did not change
	}
	c.q.pop()
	return c.emitLocal()
}

// peekKind reads the first element of an aggregate's start b ("*3\r\n$7\r\nmessage\r\n..."), lower-case;
// complete is false while b ends before it.
func peekKind(b []byte) (kind string, complete bool) {
	i := 0
	line := func() ([]byte, bool) {
		for j := i; j+1 < len(b); j++ {
			if b[j] == '\r' && b[j+1] == '\n' {
				l := b[i:j]
				i = j + 2
				return l, true
			}
		}
		return nil, false
	}
	if _, ok := line(); !ok { // the aggregate's header
		return "", false
	}
	head, ok := line()
	if !ok || len(head) == 0 {
		return "", false
	}
	switch head[0] {
	case '+':
		return lower(head[1:]), true
	case '$':
		n := 0
		for _, d := range head[1:] {
			if d < '0' || d > '9' {
				return "?", true
			}
			n = n*10 + int(d-'0')
		}
		if len(b) < i+n {
			return "", false
		}
		return lower(b[i : i+n]), true
	}
	return "?", true
}

// isConfirmation reports whether a pub/sub frame kind is a (un)subscription's confirmation.
func isConfirmation(kind string) bool {
	switch kind {
	case "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe":
		return true
	}
	return false
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
