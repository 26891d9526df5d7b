package respsession

import (
	"errors"
	"fmt"
	"math"
	"time"

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
// bytes and sends what it says (see output), so it is tested without sockets. Its steady state
// allocates nothing: names are compared in a fixed buffer, kept command bytes go to an arena.
type conv struct {
	out output
	env env
	st  connState

	cmd   resp.CommandScanner // what the client sends
	rep   resp.Scanner        // what the backend answers
	kept  arena               // bytes of commands that may be sent again, or are held
	said  arena               // the session's own answers, waiting for their turn
	q     queue
	stash []byte // bytes of the command being read, before its disposition was known
	peek  []byte // the start of a reply too short to tell what it is (a pub/sub frame's kind, a null)
	// The backend's current read: cur[span:scanned] is scanned and due to the client, not yet given to
	// it, so that consecutive replies go out in one write (span -1: nothing due).
	cur           []byte
	keptFrom      int64 // where in the arena the current command's bytes begin
	holdNs        int64 // how long a command is held while there is no backend
	span, scanned int32
	dropPush      int32 // subscription confirmations of a replay that come as pushes, to drop
	proto         int8  // the protocol replies come in: st.proto, or what a HELLO in flight asked for
	disp          disposition

	keep      bool    // the current command's bytes go to the arena
	replyOff  bool    // CLIENT REPLY OFF
	skip      bool    // CLIENT REPLY SKIP: the next command gets no reply
	txOpen    bool    // a MULTI was sent and no EXEC or DISCARD yet
	watchSent bool    // a WATCH was sent and no EXEC, DISCARD or UNWATCH yet
	txState   []entry // commands queued in the open transaction that set connection state (see entryExt.tx)
	// txBytes are the open transaction's commands as sent (MULTI first), and txQueued how many it
	// queued, while all went out as they came (txCarryable): a failover carries the transaction to the
	// next master (txCarry) unless a WATCH guards it.
	txBytes     []byte
	txQueued    int32
	txCarryable bool
	txCarry     bool

	inReply     bool // in the middle of a backend value
	toEntry     bool // the value is the reply to the queue's front entry
	swallow     bool // the value is read and dropped
	passthrough bool // MONITOR: everything the backend sends goes to the client, nothing is a reply
	// replica: SYNC or PSYNC had its turn: the connection is a replication link, whose stream is not
	// RESP (newlines as pings, an RDB payload with no CRLF after it). Its bytes pass unread both ways,
	// and it cannot move to another backend.
	replica bool

	// Failover.
	attached bool // a backend connection is there: commands go to it
	// suspended: the backend connection closed, and the session does not know yet whether its client
	// was killed (suspend); detach decides what was in flight if not.
	suspended bool
	// suspendedIn is what the client sent while suspended, read once the session knows where it goes: a
	// command classified then would be taken for one sent after those in flight (an EXEC after its
	// MULTI), which detach may answer here instead.
	suspendedIn []byte
	// The drain (drain.go): draining, the old master gets nothing new and its replies are read and
	// held; drainDone, its INFO after them answered; verdictPending, the held replies wait for the new
	// master's INFO. connID is the backend connection's CLIENT ID (0: not known; idAsked: asked).
	// moveBlocked is a blocking command released at the old master, to send again.
	draining, drainDone, verdictPending, idAsked bool
	connID                                       int64
	oldRepl                                      replOffsets
	moveBlocked                                  []byte
	moveBlockedMs                                int32  // its timeout now, in milliseconds (0: none)
	probeBuf                                     []byte // a probe's reply as it is read
	capture                                      bool   // the value being read is a probe's reply
	nullUnblocked                                bool   // the value being read is a released command's null
	// holding: a planned switchover holds the commands in the proxy (proxy.Listener.HoldCommands): they
	// are kept even with a backend, and with no time limit, until releaseCommands.
	holding bool
	// gated: the session came to a new backend while sessions with subscriptions are still
	// subscribing there again (proxy.Client.AwaitSubscribers): its commands wait, so that nothing it
	// publishes goes unheard (ungate).
	gated      bool
	localTx    bool // the transaction was lost with the old backend: its commands are answered here
	execNull   bool // ... and its EXEC answers a null reply (a WATCH was lost), not EXECABORT
	watchLost  bool // a WATCH was lost with the old backend: the next transaction's EXEC answers null
	invalidate bool // client-side caching: the client must drop its cache (RESP3 tracking moved)

	// Multiplexing (mux.go): mux is the session's output while it shares a backend connection, nil when
	// its connection is its own. muxHeld: commands are held for dispatchShared to send one by one.
	// muxKeyWait: a command that changes the connection's state (AUTH, SELECT, HELLO) is in flight, and
	// what follows waits for its reply, which says which connection it goes on. muxPrivate: the session
	// moves to a connection of its own once nothing is owed. privateSoon: it is moving there now.
	mux         muxOutput
	muxHeld     bool
	muxKeyWait  bool
	muxPrivate  bool
	privateSoon bool

	// Durable acknowledgements (durable.go): dur is the group's wait_replicas, nil for a listener
	// without. unwaited: a write went to the session's own connection since its last WAIT. txWrite: the
	// open transaction queued a write. held: what waits for a WAIT, nil while nothing does. The answer
	// of the WAIT whose reply is being read: waitReplicas, or waitErr.
	dur  *Durability
	held *heldReplies
	// writesHeld and writesReleased count the write replies ever held and released: a pool's
	// confirmer says up to which it answered (confirmedUpTo).
	writesHeld, writesReleased uint64
	waitReplicas               int64
	waitErr                    error
	unwaited                   bool
	txWrite                    bool
	holdingWrite               bool // the reply being read is a write's, held for its WAIT
}

// replyLimits bound the backend's replies only where the session must: it keeps none of a reply (a
// line's text is read only for a length), so a reply of any size passes, as it would reach a client
// connected directly. Nesting is bounded by what Redis sends: a script returning a table that holds
// itself nests ~8,000 arrays deep before "reached lua stack limit" (script_lua.c); each level costs the
// scanner 16 bytes while the reply passes.
var replyLimits = resp.Limits{MaxBulk: math.MaxInt64 - 2, MaxElements: math.MaxInt64 / 2, MaxDepth: 1 << 16,
	MaxLine: math.MaxInt}

// env is what a conversation asks of its session: the time, and why there is no backend now.
type env interface {
	now() int64      // unix nanoseconds
	refusal() string // for a held command whose hold ran out
}

func newConv(out output, e env, hold int64) *conv {
	c := &conv{out: out, env: e, st: newState(), proto: 2, holdNs: hold, span: -1}
	c.cmd.Budget = budget
	c.rep.Limits = replyLimits
	return c
}

// commandName writes the current command's name lower-cased into buf: from the scanner while the
// command streams, from its arguments once it is read. nil when too long to be a command's.
func (c *conv) commandName(buf *[maxName]byte) []byte {
	name := c.cmd.Name()
	if name == nil && !c.cmd.InCommand() && len(c.cmd.Args()) > 0 {
		name = c.cmd.Args()[0]
	}
	return lowerInto(buf, name)
}

// fromClient takes bytes the client sent. A returned error ends the session (a protocol error, after
// its error reply is written). Consecutive commands forwarded from b go out in one piece.
func (c *conv) fromClient(b []byte) error {
	if c.replica {
		c.out.toBackend(b)
		return nil
	}
	if c.suspended {
		c.suspendedIn = append(c.suspendedIn, b...)
		return nil
	}
	span := -1 // start of bytes of b to forward, not yet given to the output
	var nameBuf [maxName]byte
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
			c.stash = c.stash[:0]
			c.client(resp.AppendError(nil, "ERR "+err.Error()))
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
			if c.unwaited && c.waitBarrier(lowerInto(&nameBuf, name)) {
				flush(began) // the commands before it, then its WAIT, then it
				c.sendWait()
			}
			c.disp = c.decide()
			c.keep = c.disp == forward || c.disp == hold || (c.disp == answer && c.txCarry)
			c.keptFrom = c.kept.add(c.stash).off
			if c.disp == forward && c.connID == 0 && !c.idAsked && blockingName(lowerInto(&nameBuf, name)) && c.askID() {
				flush(began) // CLIENT ID goes first: a drain may have to release this command (drain.go)
				c.q.push(entry{kind: probe, n: probeID, replies: 1, sent: true})
				c.out.toBackend(clientIDCommand)
			}
			switch {
			case c.disp != forward:
				flush(began)
			case len(c.stash) > 0:
				flush(began)
				c.out.toBackend(c.stash)
				span = began
			case span < 0:
				span = began
			}
			c.stash = c.stash[:0]
		} else if c.disp == forward && span < 0 {
			span = began
		}
		if c.keep {
			c.kept.add(b[began:pos])
			if c.kept.base+int64(len(c.kept.buf))-c.keptFrom > maxKept && !(c.disp == hold && c.muxExempt()) {
				c.unkeep()
				if c.disp == hold {
					c.disp = drop
				}
			}
		}
		if !done {
			continue
		}
		if c.disp != forward || c.mux != nil {
			flush(pos) // a shared connection takes whole commands: each is told where it ends
		}
		c.commandDone()
	}
	flush(pos)
	if c.waitWanted() {
		c.sendWait() // after the run of writes just forwarded
	}
	return c.emitLocal()
}

// unkeep takes the current command's bytes back out of the arena.
func (c *conv) unkeep() {
	if c.keep {
		c.kept.buf = c.kept.buf[:c.keptFrom-c.kept.base]
		c.keep = false
	}
}

// isCommand reports whether the current command is name (lower-case).
func (c *conv) isCommand(name string) bool {
	var buf [maxName]byte
	return string(c.commandName(&buf)) == name
}

// decide chooses, once a command's name is known, what happens to it.
func (c *conv) decide() disposition {
	switch {
	case c.passthrough:
		return forward
	case c.localTx && !c.isCommand("quit") && !c.isCommand("reset"):
		return answer // QUIT and RESET are not queued: they run at once, as in any transaction
	case c.watchLost && c.isCommand("multi"):
		return answer // the transaction opens here, so that its EXEC can answer null
	case !c.attached || c.holding || c.gated || c.draining:
		return hold
	case c.mux != nil && (c.muxHeld || c.muxClassNow() != muxPlain):
		c.muxHeld = true
		return hold
	}
	return forward
}

// muxClassNow classifies the current command by its name, before its arguments are read.
func (c *conv) muxClassNow() muxClass {
	var buf [maxName]byte
	return muxClassOf(c.commandName(&buf), nil)
}

// heldClass is how a held command may travel: its session's dispatch reads it on a shared connection
// (a command forwarded as it streams was plain, and a private connection sends anything).
func (c *conv) heldClass(name []byte, args [][]byte) muxClass {
	if c.mux == nil {
		return muxPlain
	}
	return muxClassOf(name, args)
}

// commandDone acts on a command read in full.
func (c *conv) commandDone() {
	args := c.cmd.Args()
	disp := c.disp
	c.disp = undecided
	if c.passthrough {
		c.unkeep()
		return
	}
	var buf [maxName]byte
	name := c.commandName(&buf)
	switch disp {
	case answer:
		c.answerLocally(name, args)
		return
	case drop:
		why := "no master to send this command to"
		if c.holding {
			why = "commands are held for a switchover"
		}
		c.pushLocal(resp.AppendError(nil,
			fmt.Sprintf("ERR sentinel-proxy: %s, and it is too long to hold (over %d bytes)", why, maxKept)))
		return
	}
	raw := span{off: c.keptFrom, n: int32(c.kept.base + int64(len(c.kept.buf)) - c.keptFrom)}
	// A command held while it streamed in, whose backend came (or whose hold was released) meanwhile,
	// goes out now: attach and releaseCommands sent only the commands read in full.
	// On a shared connection its session sends it, in its turn (mux.go).
	sendNow := disp == hold && c.attached && !c.holding && !c.gated && !c.draining && c.mux == nil
	if sendNow {
		c.out.toBackend(c.kept.get(raw))
	}
	wasTx := c.txOpen
	e, ok := c.classify(name, args)
	c.noteTx(wasTx, disp == forward || sendNow, c.kept.get(raw))
	if c.mux != nil && disp == forward {
		var replies int32
		if ok {
			replies = e.replies
		}
		defer c.mux.commandSent(replies)
	}
	if !ok {
		if disp == hold && !sendNow { // no reply expected, but it must still be sent
			c.q.push(entry{kind: viaBackend, raw: raw, heldUntil: c.env.now() + c.holdNs, mx: c.heldClass(name, args)})
		} else {
			c.unkeep()
		}
		c.keep = false
		return
	}
	if disp == hold {
		e.mx = c.heldClass(name, args)
	}
	e.sent = disp == forward || sendNow
	c.unwaited = c.unwaited || (e.write && e.sent && c.mux == nil)
	movable := e.blocks && e.effect == effNone && c.mux == nil
	if movable {
		// A drain may release it at the old master and send it again with the time it has left.
		e.n = -1
		if len(args) == c.cmd.Argc() && !c.cmd.Truncated() {
			if ms := blockingTimeoutMs(name, args); ms <= math.MaxInt32 {
				e.n = int32(ms)
			}
		}
	}
	if e.sent && e.blocks {
		e.heldUntil = c.env.now()
	}
	switch {
	case disp == hold && !sendNow:
		e.heldUntil, e.raw = c.env.now()+c.holdNs, raw
	case (e.resend || movable) && c.keep:
		e.raw = raw
	default:
		e.resend = false
		c.unkeep()
	}
	c.keep = false
	c.q.push(e)
}

// localAnswer is the session's answer to a command of a transaction lost in a failover, as Redis
// answers inside MULTI: queued, then an EXEC that fails.
func (c *conv) localAnswer(name []byte) []byte {
	switch n := string(name); {
	case n == "multi" && !c.localTx:
		c.localTx, c.execNull, c.watchLost = true, true, false
		return resp.AppendSimple(nil, "OK")
	case n == "multi":
		return resp.AppendError(nil, "ERR MULTI calls can not be nested")
	case n == "watch":
		return resp.AppendError(nil, "ERR WATCH inside MULTI is not allowed")
	case n == "discard":
		c.localTx, c.execNull = false, false
		return resp.AppendSimple(nil, "OK")
	case n == "exec":
		null := c.execNull
		c.localTx, c.execNull = false, false
		if null {
			return resp.AppendNullArray(nil, int(c.proto)) // as when a watched key changed
		}
		return resp.AppendError(nil, "EXECABORT Transaction discarded because the master changed (sentinel-proxy failover)")
	}
	return resp.AppendSimple(nil, "QUEUED")
}

// client writes b to the client after whatever of the backend's current read is due before it.
func (c *conv) client(b []byte) {
	c.flushSpan(-1)
	c.toClient(b)
}

// flushSpan gives the client the stretch of the backend's current read that is due to it, up to end
// (-1: all that was scanned).
func (c *conv) flushSpan(end int) {
	if c.span < 0 || c.cur == nil {
		return
	}
	if end < 0 {
		end = int(c.scanned)
	}
	if end > int(c.span) {
		c.toClient(c.cur[c.span:end])
	}
	c.span = -1
}

// pushLocal queues the session's own answer b, given to the client when every reply before it is.
func (c *conv) pushLocal(b []byte) {
	c.q.push(entry{kind: local, raw: c.said.add(b)})
}

// emitLocal writes the answers of the local entries at the front of the queue: they go out as soon as
// every reply before them has. errQuit after the answer to a QUIT.
func (c *conv) emitLocal() error {
	if c.inReply && !c.swallow {
		// A backend value (a push, a message) is part-way to the client: an answer now would land inside
		// it. The value's end calls this again.
		return nil
	}
	for e := c.q.front(); e != nil && e.kind == local; e = c.q.front() {
		c.client(c.said.get(e.raw))
		quit := e.effect == effQuit
		c.pop()
		if quit {
			return errQuit
		}
	}
	return nil
}

// pop removes the front entry, and lets the arenas drop the bytes no entry needs any more.
func (c *conv) pop() {
	c.q.pop()
	if c.q.len() == 0 {
		c.said.release(0, true)
		if !c.keep {
			c.kept.release(0, true)
		}
		return
	}
	if len(c.kept.buf) >= 32<<10 {
		from := c.kept.base + int64(len(c.kept.buf))
		if c.keep {
			from = c.keptFrom
		}
		c.kept.release(c.oldest(from, false), false)
	}
	if len(c.said.buf) >= 32<<10 {
		c.said.release(c.oldest(c.said.base+int64(len(c.said.buf)), true), false)
	}
}

// oldest is the offset of the first bytes a queued entry still needs in the arena of local answers
// (answers) or of commands, or limit when none does.
func (c *conv) oldest(limit int64, answers bool) int64 {
	for i := 0; i < c.q.len(); i++ {
		if e := c.q.at(i); (e.kind == local) == answers && e.raw.n > 0 {
			return min(limit, e.raw.off)
		}
	}
	return limit
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
		c.pop() // a command that gets no reply
	}
}

// fromBackend takes bytes the backend sent. A returned error ends the session. Consecutive replies go
// to the client in one piece unless an answer of the session's must go between them.
func (c *conv) fromBackend(b []byte) error {
	if len(c.peek) > 0 {
		// A value began in the last bytes, too short to tell what it is: read it again whole. Rare,
		// and short: a pub/sub frame's first line and a word, or the two bytes of a null.
		b = append(c.peek, b...)
		c.peek = nil
	}
	if c.replica {
		c.out.toClient(b)
		return nil
	}
	c.cur, c.span, c.scanned = b, -1, 0
	defer func() { c.flushSpan(-1); c.cur = nil }()
	pos := 0
	for pos < len(b) {
		if !c.inReply {
			decided, err := c.startReply(b[pos:])
			if err != nil {
				return err
			}
			if c.replica { // SYNC's turn: what follows is the replication stream
				c.flushSpan(pos)
				c.toClient(b[pos:])
				c.scanned = int32(len(b))
				return nil
			}
			if !decided {
				c.flushSpan(pos)
				c.peek = append([]byte(nil), b[pos:]...)
				c.scanned = int32(len(b))
				return nil
			}
			c.inReply = true
			if c.held != nil && !c.swallow {
				c.flushSpan(pos)
				c.held.cur = int32(len(c.held.buf)) // where this value begins in what is held
			}
			if c.holdingWrite {
				c.holdWriteReply(pos)
			}
		}
		n, done, err := c.rep.Next(b[pos:])
		if err != nil {
			return fmt.Errorf("backend reply: %w", err)
		}
		if c.capture {
			c.probeBuf = append(c.probeBuf, b[pos:pos+n]...)
		}
		if c.swallow {
			c.flushSpan(pos)
		} else if c.span < 0 {
			c.span = int32(pos)
		}
		pos += n
		c.scanned = int32(pos)
		if c.toEntry && !c.swallow {
			c.q.front().started = true
		}
		if done {
			if c.holdingWrite {
				c.holdingWrite = false
				c.writeReplyDone(pos)
			}
			if err := c.replyDone(); err != nil {
				return err
			}
		}
	}
	c.waitAfterReplies() // a WAIT put off behind a blocking command that answered (durable.go)
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
	pubsub := kind == resp.TypePush || (kind == resp.TypeArray && c.proto == 2 && (c.st.subscribed() || c.subscribePending()))
	frame := resp.FrameOther
	if pubsub {
		k, complete := resp.PeekFrame(b)
		if !complete {
			return false, nil
		}
		frame = k
	}
	switch {
	case kind == resp.TypePush:
		if c.dropPush > 0 && frame == resp.FrameConfirmation {
			c.dropPush--
			c.swallow = true
		}
		return true, nil
	case pubsub && frame == resp.FrameMessage:
		return true, nil
	}
	e, err := c.frontBackend()
	if err != nil {
		return false, err
	}
	if e == nil {
		return false, fmt.Errorf("backend sent a reply nobody asked for (%q)", kind)
	}
	if e.kind == probe {
		c.toEntry, c.swallow, c.capture = true, true, true
		return true, nil
	}
	if e.unblocking {
		// A blocking command released at the old master: a timeout's null (or Redis's own UNBLOCKED
		// error, a demotion's) says it took nothing, and it moves (drain.go).
		null, complete := resp.PeekNull(b)
		unblocked, ucomplete := resp.PeekErrorPrefix(b, "UNBLOCKED")
		if !complete || !ucomplete {
			return false, nil
		}
		if (null || unblocked) && c.movesOn(e, c.env.now()) {
			c.toEntry, c.swallow, c.nullUnblocked = true, true, true
			return true, nil
		}
	}
	if e.kind == confirm && c.draining {
		c.toEntry, c.swallow = true, true // the drain's verdict decides (drain.go)
		return true, nil
	}
	if e.kind == confirm {
		// The session's own WAIT: what it says is read here, and the rest of it is dropped.
		n, complete, perr := resp.PeekInt(b)
		if !complete {
			return false, nil
		}
		c.waitReplicas, c.waitErr = n, perr
		c.toEntry, c.swallow = true, true
		return true, nil
	}
	if e.write && c.held == nil && c.durable() == nil {
		// wait_replicas was turned off: nothing is held any more.
	} else if e.write {
		// A write's reply waits for its WAIT, unless it says nothing was written: an error, or a null
		// where that means nothing changed (nullWroteNothing: SET NX on a key that exists, a pop that
		// found nothing, an EXEC a WATCH aborted).
		null, complete := resp.PeekNull(b)
		if !complete {
			return false, nil
		}
		c.holdingWrite = !(null && e.nullNothing) && kind != '-' && kind != '!'
	}
	if e.effect == effSync {
		c.pop()
		c.replica = true
		return true, nil
	}
	if e.effect == effExec && e.x != nil && len(e.x.tx) > 0 {
		// A null reply says the transaction did not run (a WATCH): what it queued is not in force.
		null, complete := resp.PeekNull(b)
		if !complete {
			return false, nil
		}
		e.x.aborted = null
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
	if e.kind == probe {
		c.capture = false
		which := e.n
		c.pop()
		c.probed(which)
		return c.emitLocal()
	}
	if c.nullUnblocked {
		c.nullUnblocked = false
		c.unblockedNull(e, c.env.now())
		c.pop()
		c.blockedAnswered()
		return c.emitLocal()
	}
	if e.unblocking {
		// Data came first (it waits for the verdict, as a write), or its time was up.
		e.unblocking = false
		defer c.blockedAnswered()
	}
	if e.kind == confirm && c.draining {
		c.pop()
		return c.emitLocal()
	}
	if e.kind == confirm {
		sentAt := e.heldUntil
		c.pop()
		if c.waitErr == nil {
			c.dur.observeWait(time.Duration(c.env.now()-sentAt), c.waitReplicas)
		}
		c.confirmed(c.waitReplicas, c.waitErr)
		c.waitErr = nil
		return c.emitLocal()
	}
	failed := c.rep.IsError()
	if e.kind == swallowed {
		carried := e.n == carriedTx
		c.pop()
		if failed && !carried {
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
		c.pop()
		return errQuit
	case e.effect == effMonitor && !failed:
		c.passthrough = true
	case e.effect == effHello && failed:
		c.proto = int8(c.st.proto) // the protocol did not change
	}
	c.pop()
	return c.emitLocal()
}
