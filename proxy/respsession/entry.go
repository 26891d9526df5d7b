package respsession

// entryKind says where the reply to a command comes from and where it goes.
type entryKind uint8

const (
	// viaBackend: the command was (or will be) sent to the backend, and its reply goes to the client.
	viaBackend entryKind = iota
	// swallowed: a command the session sent itself (a replay on a new backend); its replies are read
	// and dropped, the client saw them already.
	swallowed
	// local: the session answers itself; reply holds the answer.
	local
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
)

// entry is one command waiting for its reply, oldest first in the session's queue.
type entry struct {
	kind    entryKind
	effect  effect
	replies int  // replies still expected from the backend
	sent    bool // sent to the backend (false: held while the session has no backend)
	resend  bool // may be sent again to another backend: reads, and commands that only set connection state
	started bool // part of its reply reached the client: it cannot be sent again
	// raw is the command's bytes: kept for a command that may be resent, or is held.
	raw   []byte
	reply []byte // a local entry's answer
	// what the effect needs
	n          int
	user, pass string
	name       string
	args       [][]byte
	heldUntil  int64 // unix nanoseconds: a held command gets an error after failover_hold
	auth, hold bool  // HELLO with AUTH; held at the deadline
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
