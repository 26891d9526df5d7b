package respsession

// The epoll session's side of multiplexing: it joins a shared connection of its loop's pool, gathers
// what the conversation forwards into whole commands and sends them through its claim, receives its
// replies through the claim (receiver), and carries out the conversation's dispatch of held commands
// (sharedLink). It leaves for a connection of its own, for good, when the conversation says so.

// muxSession is what a session sharing backend connections keeps of them.
type muxSession struct {
	pool  *pool
	claim *claim // its place on the shared connection it is on, or waits for; nil for none
	// partial: bytes forwarded of commands that did not go out yet: the command being read (a shared
	// connection takes whole commands), or any while it moves to a connection of its own.
	partial []byte
	// partialPaused: the client is not read while partial is too long.
	partialPaused bool
}

// maxPartial is the longest command a session sharing a connection gathers before it goes out: a
// longer one moves the session to a connection of its own, where it streams.
const maxPartial = 64 << 10

var (
	_ receiver   = (*session)(nil)
	_ sharedLink = (*session)(nil)
	_ muxOutput  = (*session)(nil)
)

// joinShared puts the session, on its way to addr, on the shared connection of its key there;
// false when there is none to be had (the next backend is tried).
func (s *session) joinShared(addr string) bool {
	m := s.mux
	cl, err := m.pool.join(poolKey{addr: addr, muxKeyOf: s.conv.sharedKey(), dur: s.conv.dur}, s, s.c.ConnectTimeout())
	if err != nil {
		s.dial.tries.Failed(addr, err)
		return false
	}
	m.claim = cl
	if cl.ready() {
		s.onShared()
	}
	return true
}

// onShared finishes a connect to a shared connection, once it is up.
func (s *session) onShared() {
	s.dial = nil
	if !s.arrived(s.mux.claim.addr()) {
		if !s.closed {
			s.pump(&s.client)
		}
		return
	}
	s.gate()
	s.conv.attachShared()
	s.dispatch()
	s.pump(&s.client)
}

// gather keeps what the conversation forwards until its command is whole (commandSent).
func (s *session) gather(b []byte) {
	m := s.mux
	m.partial = append(m.partial, b...)
	if len(m.partial) > highWater && !s.client.paused {
		m.partialPaused, s.client.paused = true, true
	}
}

// commandSent implements muxOutput: a command forwarded in full goes out on the shared connection,
// unless the session is moving (then it waits in partial for the connection it moves to).
func (s *session) commandSent(replies int32) {
	m := s.mux
	if m == nil || m.claim == nil || s.connecting || !s.conv.attached || !s.conv.sharing() {
		return
	}
	if s.sendShared(m.partial, replies) {
		m.partial = m.partial[:0]
	}
}

// afterShared acts, after each step, on what the shared connection and the client left: room for
// the client again, a command or a reply too long to share a connection with, held commands to send.
func (s *session) afterShared() {
	m := s.mux
	if m.partialPaused && len(m.partial) <= highWater/2 {
		m.partialPaused, s.client.paused = false, false
		s.pump(&s.client)
	}
	if len(m.partial) > maxPartial || (m.claim != nil && m.claim.long) {
		s.conv.wantPrivate() // it streams on a connection of its own
	}
	if s.conv.attached && !s.connecting && !s.closed {
		s.dispatch()
	}
}

// dispatch has the conversation send what it holds for the shared connection.
func (s *session) dispatch() {
	if s.mux != nil && s.mux.claim != nil {
		s.conv.dispatchShared(s)
	}
}

// sharedOwed implements sharedLink.
func (s *session) sharedOwed() int32 { return s.mux.claim.owed }

// sendShared implements sharedLink: a connection that is stuck behind a long command takes no more,
// and the session, owed nothing there, goes on a new one.
func (s *session) sendShared(b []byte, replies int32) bool {
	m := s.mux
	if m.claim.owed == 0 && s.conv.held == nil && m.claim.stuck(s.lp.NowNs()) && !s.useShared(m.claim.key().muxKeyOf) {
		return false
	}
	if m.claim.send(b, replies) && !s.client.paused {
		s.client.paused = true // the shared connection's output is full: sharedRoom reads it again
	}
	return true
}

// useShared implements sharedLink.
func (s *session) useShared(k muxKeyOf) bool {
	m := s.mux
	key := poolKey{addr: m.claim.addr(), muxKeyOf: k, dur: s.conv.dur}
	if m.claim.key() == key && m.claim.usable() {
		return true
	}
	cl, err := m.pool.join(key, s, s.c.ConnectTimeout())
	if err != nil {
		s.backend.broken = true // after() moves it on
		return false
	}
	old := m.claim
	m.claim = cl
	old.cancel()
	return true
}

// goPrivate implements sharedLink: the session, owed nothing on its shared connection, moves to a
// connection of its own: the key's spare when one is ready (no connect, no replay), else a new one with
// its state replayed.
func (s *session) goPrivate() {
	m := s.mux
	m.pool.countUnshared(s.addr)
	fd := -1
	if m.claim != nil {
		fd = m.pool.takeSpare(m.claim.key()) // before leaving: the last to leave closes the spare
	}
	s.leaveShared()
	s.conv.leaveMux()
	if fd < 0 {
		s.linked = false
		s.core.connect()
		return
	}
	// The spare is on the same node, with the session's state: the session stays registered where it
	// is, and nothing is replayed.
	s.lp.Rebind(fd, &s.backend)
	s.backend.fd, s.backend.broken, s.backend.hup, s.backend.paused = fd, false, false, false
	s.attachOwn(false)
}

// leaveShared takes the session off its shared connection, owed or not.
func (s *session) leaveShared() {
	if m := s.mux; m.claim != nil {
		cl := m.claim
		m.claim = nil
		cl.cancel()
	}
}

// dropShared is dropBackend's part for a session sharing connections: it leaves its connection, and
// what it gathered there goes with the conversation's detach (a read is sent again, a write gets the
// "may or may not" error, a command being read is kept whole). While it moves to a connection of its
// own (not attached), what it gathered waits for that connection.
func (s *session) dropShared() {
	m := s.mux
	s.leaveShared()
	if s.conv.attached {
		m.partial = m.partial[:0]
		if m.partialPaused {
			m.partialPaused, s.client.paused = false, false
		}
	}
}

// sharedReplies implements receiver.
func (s *session) sharedReplies(b []byte) {
	s.lastActive = s.lp.NowNs()
	s.counters.Out(len(b))
	if err := s.conv.fromBackend(b); err != nil && !s.conversationEnded(true, err) {
		s.backend.broken = true // it broke the protocol: leave it as a failed backend
	}
}

// sharedSettled implements receiver.
func (s *session) sharedSettled() { s.after() }

// sharedReady implements receiver.
func (s *session) sharedReady() {
	if s.closed || !s.connecting {
		return
	}
	s.onShared()
	s.after()
}

// sharedFailed implements receiver.
func (s *session) sharedFailed(cl *claim, err error) {
	m := s.mux
	if s.closed || m == nil || m.claim != cl {
		return
	}
	m.claim = nil
	if s.connecting && s.dial != nil {
		s.dial.tries.Failed(s.dial.addr, err)
		s.tryNext()
	} else {
		s.backendGone(false)
	}
	s.after()
}

// sharedConfirmed implements receiver.
func (s *session) sharedConfirmed(replicas int64, err error, upto int) {
	if !s.closed && s.conv.dur != nil && !s.conv.draining && !s.conv.verdictPending {
		s.conv.confirmedUpTo(replicas, err, upto)
	}
}

// sharedHeld implements receiver.
func (s *session) sharedHeld() int {
	if s.closed || s.conv.held == nil || len(s.conv.held.writes) == 0 || s.conv.draining || s.conv.verdictPending {
		return 0 // nothing to cover
	}
	return int(s.conv.writesHeld)
}

// sharedRoom implements receiver.
func (s *session) sharedRoom() {
	if !s.closed && s.client.paused && !s.closing && !s.keptFull && (s.mux == nil || !s.mux.partialPaused) {
		s.client.paused = false
		s.pump(&s.client)
		s.after()
	}
}
