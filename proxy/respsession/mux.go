package respsession

import "strconv"

// Multiplexing (multiplex = true): the commands of many sessions share a few backend connections, one
// per node, event loop and connection state (pool.go; the session's side in shared.go). The
// conversation's part is to say which commands may go out on a shared connection as they stream, to
// hold the rest, and to send those one by one where each may go (dispatchShared): a command that
// changes the shared state's key (AUTH, SELECT, HELLO) to the connection of its new key once nothing
// else is owed, and one that needs a connection of its own (MULTI, blocking commands, subscriptions,
// CLIENT ...) by moving the session to a private connection. Its session does the sending (sharedLink).

// muxOutput is the output of a session sharing a backend connection: it is told where each command
// forwarded to it ends, with how many replies it expects, since only whole commands may go out on a
// connection that others share.
type muxOutput interface {
	output
	commandSent(replies int32)
}

// muxClass says how a command may travel on a shared connection.
type muxClass uint8

const (
	muxPlain   muxClass = iota // any connection with the session's state: its reply depends on nothing else
	muxKey                     // changes the state the connection must have (AUTH, SELECT, HELLO): see above
	muxPrivate                 // needs a connection of its own
)

// muxClassOf classifies a command by its lower-cased name and, once it is read, its arguments (nil
// while they are not; the class then is the strictest the name allows).
func muxClassOf(name []byte, args [][]byte) muxClass {
	switch string(name) {
	case "auth", "select":
		return muxKey
	case "hello":
		// HELLO answers with the connection's id, and SETNAME names it: only a plain protocol switch,
		// with or without AUTH, shares.
		if args == nil {
			return muxKey
		}
		if len(args) < 2 {
			return muxPrivate
		}
		if v, err := strconv.Atoi(string(args[1])); err != nil || v < 2 || v > 3 {
			return muxPrivate
		}
		for i := 2; i < len(args); i++ {
			if equalFold(args[i], "auth") && i+2 < len(args) {
				i += 2
				continue
			}
			return muxPrivate
		}
		return muxKey
	case "client":
		// SETINFO (which client libraries send as they connect) and GETNAME answer as they would on a
		// connection of the client's own: a shared connection has no name, and the library name it
		// shows in CLIENT LIST is the last one set. The rest (its id, name, info, reply mode, tracking,
		// caching, kill, pause...) is the connection's own. Known once the subcommand is read.
		if len(args) > 1 && (equalFold(args[1], "setinfo") || equalFold(args[1], "getname")) {
			return muxPlain
		}
		return muxPrivate
	case "script", "function":
		// SCRIPT KILL and FUNCTION KILL must reach Redis while a script runs: behind it, on the
		// connection it runs on, they would wait for it to end. The rest shares. Known once the
		// subcommand is read.
		if len(args) > 1 && !equalFold(args[1], "kill") {
			return muxPlain
		}
		return muxPrivate
	case "shutdown", // it too runs while a script does (SHUTDOWN NOSAVE)
		"multi", "exec", "discard", "watch", "unwatch", // a transaction holds the connection
		"subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe",
		"monitor", "sync", "psync", // the connection becomes a stream
		"quit", "reset", // they end or reset the connection itself
		"readonly", "readwrite", "asking", // cluster modes of the connection
		"wait", "waitaof": // they wait on the connection's own replication offset
		return muxPrivate
	}
	var sub []byte
	if len(args) > 1 {
		sub = args[1]
	}
	if info := lookup(name, sub); info != nil && info.flags&flagBlocking != 0 {
		return muxPrivate // a blocked command would hold every session behind it
	}
	return muxPlain
}

// muxKeyOf is the connection state a shared connection must have for this session: who it is, its
// database, its protocol. A session shares only while the rest of its state is the default.
type muxKeyOf struct {
	user, pass string
	authed     bool
	db, proto  int
}

func (s *connState) muxKey() muxKeyOf {
	return muxKeyOf{user: s.user, pass: s.pass, authed: s.authed, db: s.db, proto: s.proto}
}

// after is the key the connection has once e, a command of class muxKey, succeeded.
func (k muxKeyOf) after(e *entry) muxKeyOf {
	switch e.effect {
	case effAuth:
		k.user, k.pass, k.authed = e.x.user, e.x.pass, true
	case effSelect:
		k.db = int(e.n)
	case effHello:
		k.proto = int(e.n)
		if e.x != nil && e.x.auth {
			k.user, k.pass, k.authed = e.x.user, e.x.pass, true
		}
	}
	return k
}

// state is the connection state of a fresh connection with key k.
func (k muxKeyOf) state() connState {
	return connState{proto: k.proto, user: k.user, pass: k.pass, authed: k.authed, db: k.db}
}

// sharedLink is a session's shared backend connection, as the dispatch of its held commands uses it.
type sharedLink interface {
	// sharedOwed is how many replies the connection owes the session.
	sharedOwed() int32
	// useShared puts the session on the connection for key k on its node, when nothing is owed; false
	// when there is none to be had (the backend is gone: the session moves on).
	useShared(k muxKeyOf) bool
	// sendShared sends b, whole commands owed replies replies; false when there is no connection to be
	// had (as useShared).
	sendShared(b []byte, replies int32) bool
	// goPrivate moves the session, which is owed nothing, to a connection of its own.
	goPrivate()
}

// dispatchShared sends the commands the conversation holds for a session on a shared connection, in
// order, each where it may go: a plain one on the session's connection; one that changes the
// connection's state on the connection of its new state, once nothing else is owed, and nothing after
// it until its reply; one that needs a connection of its own moves the session there once nothing is
// owed. With nothing held, commands stream again.
func (c *conv) dispatchShared(l sharedLink) {
	if c.holding || c.gated || c.draining || c.mux == nil || (!c.muxHeld && !c.muxKeyWait && !c.muxPrivate) {
		return
	}
	if c.muxKeyWait {
		if c.sharedBusy(l) {
			return
		}
		c.muxKeyWait = false
		if !l.useShared(c.st.muxKey()) { // the state the reply left: the new one, or the old if refused
			return
		}
	}
	for !c.muxPrivate {
		e := c.nextHeld()
		if e == nil {
			break
		}
		switch e.mx {
		case muxPrivate:
			c.muxPrivate = true
			continue
		case muxKey:
			if c.sharedBusy(l) || !l.useShared(c.st.muxKey().after(e)) {
				return
			}
			if c.sendHeldShared(l, e) {
				c.muxKeyWait = true
			}
			return
		}
		if !c.sendHeldShared(l, e) {
			return
		}
	}
	if c.muxPrivate {
		c.muxHeld = true
		if !c.sharedBusy(l) {
			l.goPrivate()
		}
		return
	}
	if c.cmd.InCommand() && c.disp == hold {
		// Its turn came while it streams in: the rest streams too, unless it is one that must wait
		// whole for its turn (its class is known once it is read).
		if c.muxClassNow() != muxPlain {
			return
		}
		b := c.streamHeld()
		c.muxHeld = false
		c.out.toBackend(b)
		return
	}
	c.muxHeld = false
}

// sharedBusy reports whether the session must stay on its shared connection for now: replies are owed
// to it there, or write replies wait for its pool's WAIT, whose answer comes through its claim.
func (c *conv) sharedBusy(l sharedLink) bool { return l.sharedOwed() > 0 || c.held != nil }

// sendHeldShared sends e, a held command, on the session's shared connection.
func (c *conv) sendHeldShared(l sharedLink, e *entry) bool {
	if !l.sendShared(c.kept.get(e.raw), e.replies) {
		return false
	}
	e.sent = true
	return true
}

// wantPrivate is told that the session should move to a connection of its own once nothing is owed: a
// reply too long to share the connection with, or a command too long to gather whole.
func (c *conv) wantPrivate() {
	if c.mux != nil && !c.muxPrivate {
		c.muxPrivate, c.muxHeld = true, true
	}
}

// sharing reports whether the session is to stay on shared connections: it shares, and is not moving
// to a connection of its own.
func (c *conv) sharing() bool { return c.mux != nil && !c.muxPrivate }

// sharedKey is the connection state a shared connection must have for the session now.
func (c *conv) sharedKey() muxKeyOf { return c.st.muxKey() }

// nextHeld returns the first command held in the queue, nil when none is.
func (c *conv) nextHeld() *entry {
	for i := 0; i < c.q.len(); i++ {
		if e := c.q.at(i); e.kind == viaBackend && !e.sent {
			return e
		}
	}
	return nil
}

// muxExempt reports whether a command held now may grow past maxKept instead of being refused: it waits
// for its session's turn on a shared connection, or for the private connection the session is moving
// to, not for a master. The session stops reading its client while it keeps too much (keptFull).
func (c *conv) muxExempt() bool {
	return c.privateSoon || (c.mux != nil && c.attached && !c.holding && !c.gated)
}

// streamHeld returns the bytes read so far of a command that is being held as it streams in, and
// forwards the rest as it comes: its turn came before it was read in full.
func (c *conv) streamHeld() []byte {
	if !c.cmd.InCommand() || c.disp != hold || !c.keep {
		return nil
	}
	c.disp = forward
	b := c.kept.buf[c.keptFrom-c.kept.base:]
	if c.kept.base+int64(len(c.kept.buf))-c.keptFrom > maxKept {
		// Too long to send again: no longer kept (the caller copies b at once).
		out := append([]byte(nil), b...)
		c.unkeep()
		return out
	}
	return b
}

// attachShared is told that the session is on a shared connection, whose state is the session's: no
// replay; its session sends what is held.
func (c *conv) attachShared() {
	c.attached, c.muxHeld = true, true
	if c.verdictPending {
		c.sendProbe(probeNew) // where the new master's history stands, before anything of the client's (drain.go)
	}
}

// leaveMux is told that the session leaves its shared connection for one of its own, with nothing owed
// on the shared one. Until that connection is up, commands are held, and not refused for their length.
func (c *conv) leaveMux() {
	c.mux, c.muxHeld, c.muxKeyWait, c.attached, c.privateSoon = nil, false, false, false, true
}
