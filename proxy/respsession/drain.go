package respsession

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"

	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// The drain: when a failover moves the route off a master that is still alive (SENTINEL FAILOVER, a
// switchover, a failover after a pause), the commands a session has in flight there were, or will be,
// run by it. Failing them ("may or may not have been applied") makes the client see an error whose
// answer was knowable. So the session sends nothing new to the old master, reads the replies it owes,
// and holds them, with everything after them, until it knows where the writes among them are:
//
//   - at the end of what it sent, an INFO replication on the same connection gives the old master's
//     replication id and offset after every command the session ran there (a connection's commands run
//     in order);
//   - once on the new master, an INFO replication there gives the history it kept from the old one
//     (master_replid2 and second_repl_offset: everything below that offset, in that history, is on it),
//     or its own id (the route came back to the same history).
//
// If the old master's offset is inside what the new master has, the replies go to the client as they
// came; otherwise every write reply among them is replaced by the "may or may not" error, as without a
// drain, and the other replies (reads) go as they came. A blocking command waiting on the old master
// is released there with CLIENT UNBLOCK <id> TIMEOUT (from a connection of its own: core.unblock): a
// timeout's null means it took nothing, and it is sent again to the new master with the time it had
// left; data that came first goes to the client under the same rule as a write.
//
// The drain is bounded (drainLimit): a master that does not answer (paused) has its commands answered as
// before, when the bound passes.

// Probes: commands the session sends itself whose replies it reads (entry.n says which).
const (
	probeID  = 1 // CLIENT ID: the connection's id, for CLIENT UNBLOCK
	probeOld = 2 // INFO replication on the old master, after the drained commands
	probeNew = 3 // INFO replication on the new master, before anything of the client's
)

var (
	clientIDCommand = resp.AppendCommand(nil, "CLIENT", "ID")
	infoReplication = resp.AppendCommand(nil, "INFO", "replication")
)

// replOffsets is what an INFO replication says of a master's history.
type replOffsets struct {
	known          bool
	replid, repl2  string
	offset, second int64 // master_repl_offset, second_repl_offset
}

// parseRepl reads the fields of an INFO replication reply's text.
func parseRepl(text string) replOffsets {
	var r replOffsets
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "master_replid":
			r.replid = v
		case "master_replid2":
			r.repl2 = v
		case "master_repl_offset":
			r.offset, _ = strconv.ParseInt(v, 10, 64)
		case "second_repl_offset":
			r.second, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	r.known = r.replid != ""
	return r
}

// holds reports whether the new master's history holds everything the old master had up to its offset.
func (n replOffsets) holds(old replOffsets) bool {
	if !n.known || !old.known {
		return false
	}
	if n.replid == old.replid {
		return old.offset <= n.offset // the same history: the route came back to it, or to a replica that has it
	}
	return n.repl2 == old.replid && old.offset < n.second
}

// probeValue reads a probe's captured reply; ok is false for an error or what does not parse.
func probeValue(b []byte) (resp.Value, bool) {
	v, err := resp.ReadValue(bufio.NewReader(bytes.NewReader(b)), resp.Limits{MaxBulk: 1 << 20, MaxElements: 16, MaxDepth: 2, MaxLine: 1 << 20})
	if err != nil || v.Err() != nil {
		return v, false
	}
	return v, true
}

// probed acts on a probe's reply, read in full into c.probeBuf.
func (c *conv) probed(which int32) {
	v, ok := probeValue(c.probeBuf)
	c.probeBuf = c.probeBuf[:0]
	switch which {
	case probeID:
		if ok && v.Kind == ':' {
			c.connID = v.Int
		}
	case probeOld:
		if ok {
			c.oldRepl = parseRepl(v.Str)
		}
		c.drainDone = true
	case probeNew:
		var n replOffsets
		if ok {
			n = parseRepl(v.Str)
		}
		c.verdict(n.holds(c.oldRepl))
	}
}

// askID says whether to send CLIENT ID before a blocking command about to go on the session's own
// connection, so that a drain can release it (CLIENT UNBLOCK needs the id); the caller queues the probe
// and sends it. Not where its reply could be missing or queued.
func (c *conv) askID() bool {
	if c.idAsked || c.mux != nil || c.txOpen || c.replyOff || c.skip || c.passthrough || c.replica ||
		(c.st.subscribed() && c.proto < 3) {
		return false
	}
	c.idAsked = true
	return true
}

// blockingName reports whether a command of this name may block its connection.
func blockingName(name []byte) bool {
	info := lookup(name, nil)
	return info != nil && info.flags&flagBlocking != 0
}

// lastSent returns the last command sent to the backend that still waits for its reply
// (nil for none).
func (c *conv) lastSent() *entry {
	var last *entry
	for i := 0; i < c.q.len(); i++ {
		if e := c.q.at(i); e.sent && e.replies > 0 && e.kind != local {
			last = e
		}
	}
	return last
}

// startDrain begins the drain of the session's own connection to a master the route left, and says
// whether it did: not when nothing is in flight (the session moves at once, as before), nor where a
// probe could not be answered in turn (a transaction open, replies off, a stream, RESP2 pub/sub), nor
// with a command half-sent. unblock is the connection's id when a blocking command waits there (the
// last one sent) and must be released; 0 for none.
func (c *conv) startDrain(now int64) (started bool, unblock int64) {
	if !c.attached || c.draining || c.muxKeyWait || c.txOpen || c.replyOff || c.skip || c.passthrough ||
		c.replica || c.inReply && !c.swallow || (c.st.subscribed() && c.proto < 3) ||
		(c.cmd.InCommand() && c.disp == forward) {
		return false, 0
	}
	last := c.lastSent()
	if last == nil {
		return false, 0
	}
	var blocked *entry
	for i := 0; i < c.q.len(); i++ {
		if e := c.q.at(i); e.sent && e.replies > 0 && e.blocks && e.kind == viaBackend {
			if e != last || c.mux != nil || c.connID == 0 || e.n < 0 || movedBlocking(c.kept.get(e.raw), 1) == nil {
				return false, 0 // a command waits behind it, or it cannot be released and sent again
			}
			blocked = e
		}
	}
	c.draining, c.drainDone, c.oldRepl = true, false, replOffsets{}
	if c.held == nil {
		c.held = &heldReplies{open: -1} // everything the client is owed from now waits for the verdict
	}
	// Every command in flight that is not a read is a write here: its reply waits for the verdict.
	for i := 0; i < c.q.len(); i++ {
		if e := c.q.at(i); e.kind == viaBackend && e.sent && e.replies > 0 && !e.resend && e.effect != effSubscribe {
			e.write = true
		}
	}
	if blocked != nil {
		blocked.unblocking = true
		return true, c.connID
	}
	c.sendOldProbe()
	return true, 0
}

// canListenOn reports whether a subscriber can stay on a backend the route left while other sessions
// drain it (core.listenOn): subscribed, nothing of its own in flight there.
func (c *conv) canListenOn() bool {
	return c.attached && !c.draining && c.st.subscribed() && !c.replica && !c.passthrough && c.lastSent() == nil &&
		!c.inReply && !(c.cmd.InCommand() && c.disp == forward)
}

// sendOldProbe asks the old master, after everything the session sent it, where its replication stands.
func (c *conv) sendOldProbe() { c.sendProbe(probeOld) }

// sendProbe sends an INFO replication, on the session's own connection or through its claim on a shared
// one, where its reply comes after those of every command sent before it.
func (c *conv) sendProbe(which int32) {
	c.q.insertSent(entry{kind: probe, n: which, replies: 1, sent: true})
	c.out.toBackend(infoReplication)
	if c.mux != nil {
		c.mux.commandSent(1)
	}
}

// movesOn reports whether a blocking command released at the old master, which answered a null (or
// UNBLOCKED), is sent again to the next master: unless its time was up anyway, when the client gets
// the answer it would have got.
func (c *conv) movesOn(e *entry, now int64) bool {
	return e.n == 0 || (now-e.heldUntil)/1e6 < int64(e.n)
}

// unblockedNull acts on the null of a released blocking command that moves on (movesOn): it took
// nothing, and is held to go to the next master with the time it has left.
func (c *conv) unblockedNull(e *entry, now int64) {
	e.unblocking = false
	left := int64(0) // none: it waits as long as it takes
	if e.n > 0 {
		left = max(1, int64(e.n)-(now-e.heldUntil)/1e6)
	}
	c.moveBlocked, c.moveBlockedMs = movedBlocking(c.kept.get(e.raw), left), int32(left)
}

// blockedAnswered is told that the blocking command the drain released has its answer: the old master's
// INFO goes now when something waits for the verdict; else the drain is done.
func (c *conv) blockedAnswered() {
	if c.held != nil && (len(c.held.writes) > 0 || c.held.open >= 0) {
		c.sendOldProbe()
		return
	}
	c.drainDone = true
}

// unblockPending reports whether the drain still waits for a released blocking command's answer.
func (c *conv) unblockPending() bool {
	for i := 0; i < c.q.len(); i++ {
		if c.q.at(i).unblocking {
			return true
		}
	}
	return false
}

// insertSent puts e after every command sent and before those held: a probe, or a command sent again.
func (q *queue) insertSent(e entry) {
	i := q.head
	for i < len(q.items) && !(q.items[i].kind == viaBackend && !q.items[i].sent) {
		i++
	}
	q.items = append(q.items, entry{})
	copy(q.items[i+1:], q.items[i:])
	q.items[i] = e
}

// verdict releases what the drain held: the write replies as they came when the new master has them
// (safe), or each as the "may or may not" error.
func (c *conv) verdict(safe bool) {
	if !c.verdictPending {
		return
	}
	c.verdictPending = false
	if safe && c.durable() != nil {
		// On the new master: its WAIT says whether enough of its replicas have them too.
		c.unwaited = true
		if c.waitWanted() {
			c.sendWait()
		}
		return
	}
	if safe {
		c.releaseHeld(true, nil, 0, "on the new master")
		return
	}
	c.releaseHeld(false, mayHaveApplied, 0, "the master changed and the new one may not have them")
}

// movedBlocking returns a blocking command (its RESP bytes) with its timeout set to leftMs
// milliseconds (0: none), or nil when the command is not one whose timeout the session knows.
func movedBlocking(raw []byte, leftMs int64) []byte {
	if len(raw) == 0 {
		return nil
	}
	v, err := resp.ReadValue(bufio.NewReader(bytes.NewReader(raw)), resp.Limits{MaxBulk: maxKept, MaxElements: 1 << 20, MaxDepth: 1, MaxLine: 1 << 16})
	if err != nil || v.Kind != '*' || len(v.Elems) < 2 {
		return nil
	}
	args := make([]string, len(v.Elems))
	for i, e := range v.Elems {
		args[i] = e.Str
	}
	secs := strconv.FormatFloat(float64(leftMs)/1000, 'f', 3, 64)
	switch strings.ToLower(args[0]) {
	case "blpop", "brpop", "bzpopmin", "bzpopmax", "brpoplpush", "blmove":
		args[len(args)-1] = secs
	case "blmpop", "bzmpop":
		args[1] = secs
	case "xread", "xreadgroup":
		i := slicesIndexFold(args, "block")
		if i < 0 || i+1 >= len(args) {
			return nil
		}
		args[i+1] = strconv.FormatInt(leftMs, 10)
	default:
		return nil
	}
	return resp.AppendCommand(nil, args...)
}

// blockingTimeoutMs reads a blocking command's timeout, in milliseconds (0: none); -1 when unknown.
func blockingTimeoutMs(name []byte, args [][]byte) int64 {
	var arg []byte
	switch string(name) {
	case "blpop", "brpop", "bzpopmin", "bzpopmax", "brpoplpush", "blmove":
		arg = args[len(args)-1]
	case "blmpop", "bzmpop":
		if len(args) > 1 {
			arg = args[1]
		}
	case "xread", "xreadgroup":
		for i := 1; i+1 < len(args); i++ {
			if equalFold(args[i], "block") {
				ms, err := strconv.ParseInt(string(args[i+1]), 10, 64)
				if err != nil || ms < 0 {
					return -1
				}
				return ms
			}
		}
		return -1
	default:
		return -1
	}
	f, err := strconv.ParseFloat(string(arg), 64)
	if err != nil || f < 0 {
		return -1
	}
	return int64(f * 1000)
}

func slicesIndexFold(args []string, s string) int {
	for i := 1; i < len(args); i++ {
		if strings.EqualFold(args[i], s) {
			return i
		}
	}
	return -1
}
