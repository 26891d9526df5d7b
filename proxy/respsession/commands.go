package respsession

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

// lookup returns what the table knows of the command named name (lower-case), with sub its first
// argument (for a container command); nil for a command the server does not declare (a module's, a
// newer server's).
func lookup(name, sub []byte) *commandInfo {
	c := commandTable[string(name)]
	if c == nil || c.subcommands == nil || sub == nil {
		return c
	}
	var buf [maxName]byte
	if s := c.subcommands[string(lowerInto(&buf, sub))]; s != nil {
		return s
	}
	return c
}

// maxName is the longest command name the session looks up: longer, it is no command of Redis's.
const maxName = 32

// lowerInto writes b lower-cased into buf and returns it, or nil when b is longer than buf: names are
// compared without allocating (a string conversion that does not escape stays on the stack).
func lowerInto(buf *[maxName]byte, b []byte) []byte {
	if len(b) > len(buf) {
		return nil
	}
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return buf[:len(b)]
}

// equalFold reports whether b is s in any case; s is lower-case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
