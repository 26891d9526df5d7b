package respsession

import (
	"slices"
	"strconv"

	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// connState is what a client set on its connection that a new backend connection must be told again
// for the client to notice nothing: who it is, which protocol and database, its name, whether it wants
// replies, what it listens to. It changes only when the backend confirms a command (its effect runs on
// the reply), so it holds what the old backend had.
type connState struct {
	proto      int    // 2 or 3 (HELLO)
	user, pass string // AUTH or HELLO AUTH; empty user is the default user; pass empty: none
	authed     bool
	db         int
	name       string // CLIENT SETNAME or HELLO SETNAME
	replyOff   bool   // CLIENT REPLY OFF
	monitor    bool
	// inMulti and watching are the transaction state on the backend (MULTI sent and acknowledged; WATCH
	// in force). They are not replayed: a failover loses them, and lost is what the client is told.
	inMulti, watching bool
	// listening holds subscriptions and tracking: nil for the many sessions that have none.
	*listening
}

// listening is what a client listens to.
type listening struct {
	// subscriptions, by kind: the channels, patterns and shard channels subscribed to
	channels, patterns, shards []string
	// tracking holds the arguments of the CLIENT TRACKING ON command in force, nil when off
	tracking [][]byte
}

func newState() connState { return connState{proto: 2} }

// subscribed reports whether the connection listens to anything (it is in pub/sub mode, where RESP2
// replies are arrays of a known shape).
func (s *connState) subscribed() bool {
	return s.listening != nil && (len(s.channels) > 0 || len(s.patterns) > 0 || len(s.shards) > 0)
}

// tracked returns the CLIENT TRACKING arguments in force, nil when off.
func (s *connState) tracked() [][]byte {
	if s.listening == nil {
		return nil
	}
	return s.tracking
}

// listens returns what the client listens to, made on first use.
func (s *connState) listens() *listening {
	if s.listening == nil {
		s.listening = &listening{}
	}
	return s.listening
}

// subscriptions returns the list of a kind: "", "p" or "s" (SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE).
func (s *connState) subscriptions(kind byte) *[]string {
	l := s.listens()
	switch kind {
	case 'p':
		return &l.patterns
	case 's':
		return &l.shards
	}
	return &l.channels
}

// subscribe adds names to a kind's list, once each.
func (s *connState) subscribe(kind byte, names [][]byte) {
	list := s.subscriptions(kind)
	for _, n := range names {
		if !slices.Contains(*list, string(n)) {
			*list = append(*list, string(n))
		}
	}
}

// unsubscribe removes names from a kind's list; no names removes all of that kind.
func (s *connState) unsubscribe(kind byte, names [][]byte) {
	list := s.subscriptions(kind)
	if len(names) == 0 {
		*list = nil
		return
	}
	*list = slices.DeleteFunc(*list, func(c string) bool {
		return slices.ContainsFunc(names, func(n []byte) bool { return string(n) == c })
	})
}

// reset is what RESET does to a connection: the default user (unauthenticated if it has a password),
// RESP2, database 0, no name, replies on, no subscription, no monitor, no tracking, no transaction.
func (s *connState) reset() { *s = newState() }

// replay appends the commands that put a fresh backend connection in this state, and returns them with
// how many replies the backend sends for them (pushes excluded): the session swallows those, since the
// client saw them already. pushes is the number of subscription confirmations that come as RESP3 pushes
// instead of replies.
func (s *connState) replay(dst []byte) (out []byte, replies, pushes int) {
	out = dst
	switch {
	case s.proto == 3 || s.authed:
		// One HELLO says it all: the protocol, who the client is, its name.
		args := []string{"HELLO", strconv.Itoa(s.proto)}
		if s.authed {
			user := s.user
			if user == "" {
				user = "default"
			}
			args = append(args, "AUTH", user, s.pass)
		}
		if s.name != "" {
			args = append(args, "SETNAME", s.name)
		}
		out = resp.AppendCommand(out, args...)
		replies++
	case s.name != "":
		out = resp.AppendCommand(out, "CLIENT", "SETNAME", s.name)
		replies++
	}
	if s.db != 0 {
		out = resp.AppendCommand(out, "SELECT", strconv.Itoa(s.db))
		replies++
	}
	if t := s.tracked(); t != nil {
		args := make([]string, len(t))
		for i, a := range t {
			args[i] = string(a)
		}
		out = resp.AppendCommand(out, args...)
		replies++
	}
	l := s.listening
	if l == nil {
		l = &listening{}
	}
	for _, sub := range []struct {
		cmd  string
		list []string
	}{{"SUBSCRIBE", l.channels}, {"PSUBSCRIBE", l.patterns}, {"SSUBSCRIBE", l.shards}} {
		if len(sub.list) == 0 {
			continue
		}
		out = resp.AppendCommand(out, append([]string{sub.cmd}, sub.list...)...)
		if s.proto == 3 {
			pushes += len(sub.list)
		} else {
			replies += len(sub.list)
		}
	}
	if s.monitor {
		out = resp.AppendCommand(out, "MONITOR")
		replies++
	}
	if s.replyOff {
		out = resp.AppendCommand(out, "CLIENT", "REPLY", "OFF") // answered by nothing
	}
	return out, replies, pushes
}
