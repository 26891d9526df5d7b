package respsession

// entryKind says where the reply to a command comes from and where it goes.
type entryKind uint8

const (
	// viaBackend: the command was (or will be) sent to the backend, and its reply goes to the client.
	viaBackend entryKind = iota
	// swallowed: a command the session sent itself (a replay on a new backend); its replies are read
	// and dropped, the client saw them already.
	swallowed
	// local: the session answers itself; raw holds the answer.
	local
	// confirm: a WAIT the session sent itself after writes (durable.go); its reply confirms them, and
	// the client never sees it. heldUntil holds when it was sent.
	confirm
	// probe: a command the session sent itself whose reply it reads and drops (drain.go); n says which.
	probe
)

// effect is what a command's reply, when it is not an error, changes in the connection's state.
type effect uint8

const (
	effNone effect = iota
	effAuth
	effHello
	effSelect
	effSetName
	effReplyOn
	effMulti
	effExec
	effDiscard
	effWatch
	effUnwatch
	effReset
	effMonitor
	effQuit
	effTracking
	effSubscribe // confirmations of a (P|S)SUBSCRIBE or (P|S)UNSUBSCRIBE: the state changed when it was sent
	effQueued    // a command sent inside MULTI: +QUEUED
	effSync      // SYNC or PSYNC: what answers it is the replication stream (see conv.replica)
)

// entry is one command waiting for its reply, oldest first in the session's queue. It is kept small:
// a pipeline of a thousand commands is a thousand entries.
type entry struct {
	kind    entryKind
	effect  effect
	sent    bool // sent to the backend (false: held while the session has no backend)
	resend  bool // may be sent again to another backend: reads, and commands that only set connection state
	started bool // part of its reply reached the client: it cannot be sent again
	// blocks: a blocking command (BLPOP, XREAD, WAIT...), whose reply may not come soon: a switchover's
	// hold does not wait for it (see conv.answered).
	blocks bool
	// unblocking: a blocking command a drain is releasing at the old master (drain.go). For a blocking
	// command sent on the session's own connection, n is its timeout in milliseconds (0: none, -1: not
	// known), heldUntil when it was sent, and raw its bytes.
	unblocking bool
	// write: the command may change the dataset, and its reply waits for a WAIT (durable.go) when the
	// group has wait_replicas on.
	write bool
	// nullNothing: a null reply to this write says it changed nothing, so it is not held
	// (nullWroteNothing).
	nullNothing bool
	mx          muxClass // how it may travel on a shared connection (mux.go)
	replies     int32    // replies still expected from the backend
	n           int32    // a number the effect needs: the database, the protocol, EXEC guarded by WATCH
	raw         span     // in the session's arena: the command's bytes (for a resend, or held), or a local answer
	// heldUntil is when a held command gets an error (unix nanoseconds).
	heldUntil int64
	x         *entryExt // what the rarer effects need
}

// entryExt holds what only connection-state commands need.
type entryExt struct {
	user, pass string
	name       string
	auth       bool     // HELLO with AUTH
	args       [][]byte // CLIENT TRACKING's arguments
	// EXEC: the commands of its transaction that set connection state (AUTH, HELLO, SELECT, CLIENT
	// SETNAME, CLIENT TRACKING), in force once it ran; aborted when it answered a null (a WATCH).
	tx      []entry
	aborted bool
}

func (e *entry) ext() *entryExt {
	if e.x == nil {
		e.x = &entryExt{}
	}
	return e.x
}

// span is a stretch of the arena: its absolute offset and length (length 0: none).
type span struct {
	off int64
	n   int32
}

// arena keeps the bytes of commands that may have to be sent again, in the order they came. Entries
// leave the queue in that order too, so what precedes the oldest live entry's bytes is dropped: the
// buffer is reused, with no allocation per command.
type arena struct {
	buf  []byte
	base int64 // absolute offset of buf[0]
}

func (a *arena) add(b []byte) span {
	s := span{off: a.base + int64(len(a.buf)), n: int32(len(b))}
	a.buf = append(a.buf, b...)
	return s
}

func (a *arena) get(s span) []byte {
	if s.n == 0 {
		return nil
	}
	i := s.off - a.base
	return a.buf[i : i+int64(s.n)]
}

// release drops what comes before from (absolute), once it is more than half of the buffer; empty
// drops everything.
func (a *arena) release(from int64, empty bool) {
	if empty {
		a.base += int64(len(a.buf))
		a.buf = a.buf[:0]
		if cap(a.buf) > 64<<10 {
			a.buf = nil // a burst does not keep its memory
		}
		return
	}
	dead := from - a.base
	if dead <= 0 || dead < int64(len(a.buf))/2 {
		return
	}
	a.buf = a.buf[:copy(a.buf, a.buf[dead:])]
	a.base = from
}

// queue is the session's commands in order. Entries leave from the front as their replies complete.
type queue struct {
	items []entry
	head  int
}

func (q *queue) len() int { return len(q.items) - q.head }

func (q *queue) front() *entry {
	if q.head == len(q.items) {
		return nil
	}
	return &q.items[q.head]
}

func (q *queue) at(i int) *entry { return &q.items[q.head+i] }

func (q *queue) push(e entry) { q.items = append(q.items, e) }

// pushFront puts e before every entry: a replay, answered before what was queued.
func (q *queue) pushFront(e entry) {
	if q.head > 0 {
		q.head--
		q.items[q.head] = e
		return
	}
	q.items = append(q.items, entry{})
	copy(q.items[1:], q.items)
	q.items[0] = e
}

func (q *queue) pop() {
	q.items[q.head] = entry{} // drop references
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
		if cap(q.items) > 64 {
			q.items = nil // a burst of pipelined commands does not keep its memory
		}
	}
}
