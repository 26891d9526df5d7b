package respsession

import (
	"bytes"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// Durable acknowledgements (`wait_replicas`): Redis replicates asynchronously, so a write it
// acknowledged can be lost when a replica that lacks it is promoted. With wait_replicas = N the session
// holds a write's reply, and every reply and answer after it, until a WAIT N <timeout> that it sent on the
// same backend connection after the write says how many replicas have it. N or more: the replies go to
// the client as they came. Fewer (or the WAIT failed): each held write reply is replaced by a NOREPLICAS
// error saying the write was applied on the master and may be lost in a failover; the other replies go as
// they came. One WAIT covers every write before it on its connection: a session sends one after each run
// of writes it forwards (at the end of what it read from its client, and before a command that would keep
// a WAIT from running soon: MULTI, a blocking command, SUBSCRIBE, CLIENT ...); a shared connection sends
// one after each batch that held a write, for all the sessions whose writes it carried (pool.go). The
// proxy's WAITs never reach a client: their replies are read and dropped.

// Durability is a master group's wait_replicas as its sessions apply it, and what they count. The server
// makes one per group and gives it to the group's master listener (proxy.Listener.SessionConfig); a
// reload changes it (Set) for the commands that follow. Safe for concurrent use.
type Durability struct {
	group   string
	log     zerolog.Logger
	setting atomic.Pointer[durableSetting]

	waiting     atomic.Int64  // write replies held for a WAIT now
	confirmed   atomic.Uint64 // write replies a WAIT confirmed
	unconfirmed atomic.Uint64 // write replies answered NOREPLICAS (or "may or may not": the backend left)
	waits       atomic.Uint64 // WAITs answered
	waitNs      atomic.Uint64 // their total latency
	waitBuckets [len(WaitBuckets) + 1]atomic.Uint64

	// The log line while writes go unconfirmed, at most one per logEvery, and one when they are
	// confirmed again.
	lastLog      atomic.Int64  // unix nanoseconds of the last durable_writes_unconfirmed line
	sinceLog     atomic.Uint64 // writes unconfirmed since it
	failing      atomic.Bool   // the last WAIT confirmed too few
	lastReplicas atomic.Int64  // what the last WAIT said
}

// durableSetting is one value of wait_replicas and wait_timeout, and the WAIT command they make.
type durableSetting struct {
	replicas int
	timeout  time.Duration
	wait     []byte
}

// WaitBuckets are the upper bounds, in seconds, of the WAIT latency histogram (DurabilityCounts).
var WaitBuckets = [...]float64{.0002, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// logEvery bounds how often writes going unconfirmed are logged, per group.
const logEvery = 10 * time.Second

// NewDurability returns group's durability, off until Set.
func NewDurability(group string, log zerolog.Logger) *Durability {
	d := &Durability{group: group, log: log}
	d.Set(0, 200*time.Millisecond)
	return d
}

// Set changes wait_replicas (0: off) and wait_timeout, for the commands that follow.
func (d *Durability) Set(replicas int, timeout time.Duration) {
	ms := max(1, timeout.Milliseconds())
	d.setting.Store(&durableSetting{replicas: replicas, timeout: timeout,
		wait: resp.AppendCommand(nil, "WAIT", strconv.Itoa(replicas), strconv.FormatInt(ms, 10))})
}

// Replicas is wait_replicas now (0: off).
func (d *Durability) Replicas() int { return d.setting.Load().replicas }

// Timeout is wait_timeout now.
func (d *Durability) Timeout() time.Duration { return d.setting.Load().timeout }

// DurabilityCounts are a group's durability counters (Durability.Counts).
type DurabilityCounts struct {
	Replicas    int           // wait_replicas now
	Timeout     time.Duration // wait_timeout now
	Waiting     int64         // write replies held for a WAIT now
	Confirmed   uint64        // write replies a WAIT confirmed
	Unconfirmed uint64        // write replies the client got as an error instead (NOREPLICAS, or the backend left)
	Waits       uint64        // WAITs answered
	WaitSeconds float64       // their total latency
	// WaitBuckets counts the WAITs by latency, cumulatively, one per WaitBuckets bound (then +Inf).
	WaitBuckets [len(WaitBuckets) + 1]uint64
	// LastReplicas is what the last WAIT answered (replicas that had the writes).
	LastReplicas int64
}

// Counts reads the counters.
func (d *Durability) Counts() DurabilityCounts {
	s := d.setting.Load()
	c := DurabilityCounts{Replicas: s.replicas, Timeout: s.timeout, Waiting: max(0, d.waiting.Load()),
		Confirmed: d.confirmed.Load(), Unconfirmed: d.unconfirmed.Load(), Waits: d.waits.Load(),
		WaitSeconds: float64(d.waitNs.Load()) / 1e9, LastReplicas: d.lastReplicas.Load()}
	var sum uint64
	for i := range d.waitBuckets {
		sum += d.waitBuckets[i].Load()
		c.WaitBuckets[i] = sum
	}
	return c
}

// observeWait records one WAIT's latency and answer.
func (d *Durability) observeWait(latency time.Duration, replicas int64) {
	d.waits.Add(1)
	d.waitNs.Add(uint64(max(0, latency)))
	d.lastReplicas.Store(replicas)
	s := latency.Seconds()
	i := 0
	for i < len(WaitBuckets) && s > WaitBuckets[i] {
		i++
	}
	d.waitBuckets[i].Add(1)
}

// resolved counts writes a WAIT (or a failure) decided: confirmed or not. why says why not.
func (d *Durability) resolved(writes int, confirmed bool, replicas int64, why string) {
	if writes == 0 || d == nil {
		return // nil: a drain held write replies of a group without wait_replicas (drain.go)
	}
	d.waiting.Add(-int64(writes))
	if confirmed {
		d.confirmed.Add(uint64(writes))
		if d.failing.CompareAndSwap(true, false) {
			d.log.Info().Str("event", "durable_writes_confirmed").Str("group", d.group).
				Int64("replicas_acked", replicas).Int("wait_replicas", d.Replicas()).
				Msg("writes are confirmed by enough replicas again")
		}
		return
	}
	d.unconfirmed.Add(uint64(writes))
	d.sinceLog.Add(uint64(writes))
	d.failing.Store(true)
	now := time.Now().UnixNano()
	last := d.lastLog.Load()
	if now-last < int64(logEvery) || !d.lastLog.CompareAndSwap(last, now) {
		return
	}
	s := d.setting.Load()
	d.log.Warn().Str("event", "durable_writes_unconfirmed").Str("group", d.group).
		Uint64("writes_unconfirmed", d.sinceLog.Swap(0)).Int64("replicas_acked", replicas).
		Int("wait_replicas", s.replicas).Float64("wait_timeout_ms", float64(s.timeout.Microseconds())/1000).
		Str("reason", why).
		Msg("writes were applied on the master but not confirmed by enough replicas: their clients got NOREPLICAS")
}

// holding counts write replies that start (n > 0) or stop (n < 0) waiting; nil (a group without
// wait_replicas, whose write replies a drain holds) counts nothing.
func (d *Durability) holding(n int64) {
	if d != nil {
		d.waiting.Add(n)
	}
}

// heldReplies is what a session holds for a WAIT: the client's output from the first write reply that
// waits for one, and where in it each such reply is.
type heldReplies struct {
	buf    []byte
	writes []heldWrite
	open   int32 // the start of the write reply being held, -1 for none
	cur    int32 // the start of the value being read (a reply, a push), for a backend that leaves mid-way
}

type heldWrite struct{ from, to int32 }

// durable reports whether the session holds write replies for a WAIT: the group has wait_replicas on.
func (c *conv) durable() *durableSetting {
	if c.dur == nil {
		return nil
	}
	if s := c.dur.setting.Load(); s.replicas > 0 {
		return s
	}
	return nil
}

// toClient is where every byte for the client goes: on at once, or held behind a write reply that waits
// for its WAIT, in order.
func (c *conv) toClient(b []byte) {
	if c.held != nil {
		c.held.buf = append(c.held.buf, b...)
		return
	}
	c.out.toClient(b)
}

// holdWriteReply is told that the reply beginning now (its bytes before pos in the current read are
// out) is a write's that must wait for its WAIT.
func (c *conv) holdWriteReply(pos int) {
	c.flushSpan(pos)
	if c.held == nil {
		c.held = &heldReplies{open: -1}
	}
	c.held.open = int32(len(c.held.buf))
	c.dur.holding(1)
}

// writeReplyDone is told that the held write reply ended at pos of the current read.
func (c *conv) writeReplyDone(pos int) {
	c.flushSpan(pos)
	h := c.held
	h.writes = append(h.writes, heldWrite{from: h.open, to: int32(len(h.buf))})
	h.open = -1
	c.writesHeld++
}

// waitWanted reports whether the session should send a WAIT now: a write went to its own backend
// connection since the last one, and a WAIT can be sent and answered there (not inside MULTI, not while
// replies are off or the next one skipped, not while commands are kept, not on a stream).
func (c *conv) waitWanted() bool {
	return c.unwaited && c.mux == nil && c.attached && !c.draining && !c.txOpen && !c.replyOff && !c.skip &&
		!c.holding && !c.gated && !c.passthrough && !c.replica && !(c.st.subscribed() && c.proto < 3) &&
		!(c.cmd.InCommand() && c.disp == forward) && c.nextHeld() == nil && !c.blockedInFlight()
}

// blockedInFlight reports whether a blocking command sent on the session's connection is unanswered. A
// WAIT is not sent behind one: it would wait with it (and keep a switchover's hold from seeing the
// connection answered), and, run right after the blocked command is served, it would count replicas
// against the offset the connection had when the command blocked, before what it popped (Redis sets a
// client's woff after each command it runs, server.c processCommand, not when a blocked one is
// served). The WAIT goes once its reply came, after a PING (waitAfterReplies).
func (c *conv) blockedInFlight() bool {
	for i := 0; i < c.q.len(); i++ {
		if e := c.q.at(i); e.kind == viaBackend && e.sent && e.blocks && e.replies > 0 {
			return true
		}
	}
	return false
}

// waitAfterReplies sends, once the backend's replies were read, a WAIT put off behind a blocking command,
// after a PING that sets the connection's offset past what the command wrote.
func (c *conv) waitAfterReplies() {
	if !c.waitWanted() {
		return
	}
	c.sendWaitAfter(pingCommand)
}

// waitNone is the WAIT for write replies still held when a reload turned wait_replicas off: answered at
// once, it releases them.
var waitNone = resp.AppendCommand(nil, "WAIT", "0", "0")

// waitCommand is the WAIT to send after writes: the group's; WAIT 0 0 when wait_replicas was turned off
// while write replies wait; nil for none.
func (c *conv) waitCommand() []byte {
	if s := c.durable(); s != nil {
		return s.wait
	}
	if c.held != nil {
		return waitNone
	}
	return nil
}

// appendWait appends a WAIT to out, bytes about to be sent after writes, when one is wanted.
func (c *conv) appendWait(out []byte) []byte {
	if !c.waitWanted() {
		return out
	}
	w := c.waitCommand()
	c.unwaited = false
	if w == nil {
		return out
	}
	c.q.push(entry{kind: confirm, replies: 1, sent: true, heldUntil: c.env.now()})
	return append(out, w...)
}

// sendWait sends a WAIT after the writes forwarded, and queues its entry, whose reply confirms them.
func (c *conv) sendWait() { c.sendWaitAfter(nil) }

// sendWaitAfter sends before, a command whose reply is dropped (nil for none), then the WAIT, when one is
// to go.
func (c *conv) sendWaitAfter(before []byte) {
	w := c.waitCommand()
	c.unwaited = false
	if w == nil {
		return
	}
	if before != nil {
		c.out.toBackend(before)
		c.q.push(entry{kind: swallowed, replies: 1, sent: true})
	}
	c.out.toBackend(w)
	c.q.push(entry{kind: confirm, replies: 1, sent: true, heldUntil: c.env.now()})
}

// waitBarrier reports whether a WAIT owed for the writes before it must go before the command whose
// name is being read: one behind which a WAIT could not run soon (a transaction, a blocking command, a
// subscription, a CLIENT command that may turn replies off...).
func (c *conv) waitBarrier(name []byte) bool {
	return muxClassOf(name, nil) == muxPrivate && c.waitWanted()
}

// dropHeld forgets what a session that ends still holds: its client is gone, and the write replies it
// held no longer wait (the group's count of them).
func (c *conv) dropHeld() {
	if h := c.held; h != nil {
		n := len(h.writes)
		if h.open >= 0 {
			n++
		}
		c.dur.holding(-int64(n))
	}
	c.held = nil
}

// confirmed is told what the session's own WAIT answered: replicas had the writes before it, or err.
// Every write reply held is confirmed or refused by it (it came after them on the same connection).
func (c *conv) confirmed(replicas int64, err error) { c.confirmedUpTo(replicas, err, -1) }

// confirmedUpTo is told what a WAIT covering the session's write replies up to the upto-th it ever held
// (all it holds for -1: writesHeld counts them) answered: replicas had them, or err. Those go to the
// client as they came when replicas reach wait_replicas, or each as a NOREPLICAS error; with what was
// held between them, as it came. What was held after them waits for the WAIT that covers it (a pool's
// confirmer may answer for a session whose later write replies came meanwhile).
func (c *conv) confirmedUpTo(replicas int64, err error, upto int) {
	h := c.held
	if h == nil {
		return
	}
	s := c.dur.setting.Load()
	ok := err == nil && replicas >= int64(s.replicas)
	why := fmt.Sprintf("confirmed by %d of %d replicas within %s", replicas, s.replicas, s.timeout)
	if err != nil {
		why = "WAIT failed: " + err.Error()
	}
	var refusal []byte
	if !ok {
		refusal = resp.AppendError(nil, "NOREPLICAS sentinel-proxy: the write was applied on the master but "+why+
			"; it may be lost in a failover")
	}
	n := len(h.writes)
	if upto >= 0 {
		n = min(n, upto-int(c.writesReleased))
	}
	if n <= 0 && !(upto < 0 && h.open < 0) {
		return // all it covers was answered already
	}
	c.release(max(n, 0), ok, refusal, replicas, why)
}

// releaseHeld gives the client everything held (a write reply part-way in excepted: see release), the
// write replies as they came (ok), or each replaced by refusal.
func (c *conv) releaseHeld(ok bool, refusal []byte, replicas int64, why string) {
	if h := c.held; h != nil {
		c.release(len(h.writes), ok, refusal, replicas, why)
	}
}

// release gives the client what is held up to the first write reply after the first upto (or a write
// reply part-way in), with those upto as they came (ok) or each replaced by refusal; the rest stays held
// for the WAIT that covers it, and once nothing is, the session holds nothing.
func (c *conv) release(upto int, ok bool, refusal []byte, replicas int64, why string) {
	h := c.held
	end := int32(len(h.buf))
	switch {
	case upto < len(h.writes):
		end = h.writes[upto].from
	case h.open >= 0:
		end = h.open
	}
	c.dur.resolved(upto, ok, replicas, why)
	c.writesReleased += uint64(upto)
	c.emitHeld(h.buf[:end], h.writes[:upto], ok, refusal)
	if upto == len(h.writes) && h.open < 0 {
		c.held = nil
		return
	}
	// What is left waits for its WAIT, its offsets from the start again.
	h.buf = h.buf[:copy(h.buf, h.buf[end:])]
	rest := h.writes[:copy(h.writes, h.writes[upto:])]
	for i := range rest {
		rest[i].from -= end
		rest[i].to -= end
	}
	h.writes = rest
	if h.open >= 0 {
		h.open -= end
	}
	h.cur = max(0, h.cur-end)
}

// emitHeld writes held bytes b to the client, with the write replies at writes replaced by refusal
// unless ok.
func (c *conv) emitHeld(b []byte, writes []heldWrite, ok bool, refusal []byte) {
	if ok {
		c.out.toClient(b)
		return
	}
	at := int32(0)
	for _, w := range writes {
		c.out.toClient(b[at:w.from])
		c.out.toClient(refusal)
		at = w.to
	}
	c.out.toClient(b[at:])
}

// mayWrite reports whether a command, by what the command table says of it (and its first
// arguments, kept within the budget), may change the dataset: a write (not an admin command), a script
// or function that may write (EVAL without a no-writes shebang; EVALSHA and FCALL, whose flags the proxy
// cannot see), or EXEC of a transaction that queued one.
func mayWrite(name []byte, args [][]byte, info *commandInfo) bool {
	switch string(name) {
	case "eval":
		return len(args) < 2 || !noWritesShebang(args[1])
	case "evalsha", "fcall":
		return true
	}
	if info == nil {
		return true // not in Redis 7.0's table (a module's, a newer Redis's): it may write
	}
	return info.flags&flagWrite != 0 && info.flags&flagAdmin == 0
}

// nullWroteNothing reports whether a null reply to the write command name (args after it) says that it
// changed nothing: a SET NX/XX that did not set (unless GET, whose null is the old value), a pop or a
// move from nothing, a blocking one that timed out, an EXEC a WATCH aborted. Any other write's null (a
// script that wrote and returned nil, GETSET of a new key) is held for its WAIT like any reply.
func nullWroteNothing(name []byte, args [][]byte, complete bool) bool {
	switch string(name) {
	case "set":
		// Only when every option was seen (the budget keeps 64 bytes of arguments): NX or XX, no GET.
		if !complete || len(args) < 4 {
			return false
		}
		condition := false
		for _, a := range args[3:] {
			if bytes.EqualFold(a, []byte("get")) {
				return false
			}
			condition = condition || bytes.EqualFold(a, []byte("nx")) || bytes.EqualFold(a, []byte("xx"))
		}
		return condition
	case "exec", "lpop", "rpop", "spop", "zpopmin", "zpopmax", "lmpop", "zmpop", "lmove", "rpoplpush",
		"blpop", "brpop", "blmove", "brpoplpush", "blmpop", "bzpopmin", "bzpopmax", "bzmpop", "getdel":
		return true
	}
	return false
}

// noWritesShebang reports whether a script declares, in its first line, that it writes nothing
// ("#!lua flags=no-writes"; Redis then refuses its writes).
func noWritesShebang(script []byte) bool {
	if len(script) < 2 || script[0] != '#' || script[1] != '!' {
		return false
	}
	line := script
	for i, b := range script {
		if b == '\n' {
			line = script[:i]
			break
		}
	}
	// The flags are a comma-separated list after "flags=" (script.c, evalExtractShebangFlags).
	for i := 0; i+len("flags=") <= len(line); i++ {
		if string(line[i:i+len("flags=")]) != "flags=" {
			continue
		}
		rest := line[i+len("flags="):]
		for len(rest) > 0 {
			end := 0
			for end < len(rest) && rest[end] != ',' && rest[end] != ' ' {
				end++
			}
			if string(rest[:end]) == "no-writes" {
				return true
			}
			if end == len(rest) || rest[end] == ' ' {
				break
			}
			rest = rest[end+1:]
		}
	}
	return false
}
