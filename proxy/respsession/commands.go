package respsession

import "strings"

//go:generate go run ./internal/gencommands -o commands_gen.go

// commandInfo is what the server declares of a command (COMMAND): its arity (negative: at least that
// many arguments, the name included) and the flags a session acts on.
type commandInfo struct {
	arity       int64
	flags       commandFlags
	subcommands map[string]*commandInfo // for container commands (CLIENT, CONFIG, ...), by lower-case name
}

type commandFlags uint32

// The flags as Redis names them (COMMAND's third field).
const (
	flagWrite        commandFlags = 1 << iota // may modify the dataset
	flagReadonly                              // only reads the dataset
	flagAdmin                                 // an administrative command
	flagPubsub                                // a pub/sub command
	flagNoscript                              // not allowed in scripts
	flagBlocking                              // may block the client
	flagLoading                               // allowed while the dataset loads
	flagStale                                 // allowed on a replica with stale data
	flagFast                                  // O(1) or O(log N)
	flagNoAuth                                // allowed before AUTH
	flagMayReplicate                          // may be replicated though not a write (EVAL, PUBLISH, ...)
	flagNoMulti                               // not allowed in MULTI
	flagAllowBusy                             // allowed while a script runs
)

// lookup returns what the table knows of the command named name, with sub its first argument (for a
// container command); nil for a command the server does not declare (a module's, a newer server's).
func lookup(name, sub []byte) *commandInfo {
	c := commandTable[lower(name)]
	if c == nil || c.subcommands == nil || sub == nil {
		return c
	}
	if s := c.subcommands[lower(sub)]; s != nil {
		return s
	}
	return c
}

// lower returns b lower-cased as a string; command names are ASCII.
func lower(b []byte) string {
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			return strings.ToLower(string(b))
		}
	}
	return string(b)
}
