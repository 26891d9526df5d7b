package resp

import (
	"bytes"
	"errors"
)

// ClientError is bad input from a client, worded as Redis words it ("Protocol error: ..."): a proxy
// answers it as "-ERR <text>" and closes the connection, as Redis does.
type ClientError string

func (e ClientError) Error() string { return string(e) }

// Redis's own limits on a request (networking.c): the longest inline command or header line, the most
// arguments in one command.
const (
	MaxInline    = 64 << 10
	MaxArguments = 1<<31 - 1
)

// CommandScanner frames client commands in a stream fed in chunks of any size: RESP arrays of bulk
// strings, and inline commands (a line of words, as telnet and redis-cli's inline mode send). It keeps
// the arguments of the command being read up to a budget, so a proxy can tell what each command is and
// remember what it must replay, while the bytes themselves pass on unbuffered: a 50 MB value costs it
// the budget, not 50 MB. Bad input gets Redis's own error (ClientError). The zero value frames with
// Redis's limits and keeps DefaultBudget bytes of arguments.
type CommandScanner struct {
	// MaxBulk is the longest argument accepted (Redis's proto-max-bulk-len); 0 means DefaultMaxBulk.
	MaxBulk int64
	// Budget, if set, says how many bytes of arguments to keep for a command, once its name (the first
	// argument) is known; the name is always kept, up to MaxName bytes.
	Budget func(name []byte) int

	state    int
	left     int64 // bytes of the current argument still to come
	crlf     int   // bytes of the CRLF after an argument still to come
	argc     int64
	line     []byte // a header or inline line split across chunks
	spans    []span // where each kept argument is in buf
	args     [][]byte
	buf      []byte // the kept bytes of every argument
	budget   int
	cut      bool // an argument was kept only in part
	inline   bool
	named    bool  // the first argument is complete
	consumed int64 // bytes of the current command so far
}

// span is a kept argument: buf[off:off+n].
type span struct{ off, n int }

// DefaultBudget is how many bytes of arguments a CommandScanner keeps without a Budget.
const DefaultBudget = 256

// MaxName is the longest command name kept whole: longer, it cannot be a Redis command.
const MaxName = 64

const (
	cmdStart  = iota // before a command
	cmdHeader        // reading "*<n>"
	cmdArgLen        // reading "$<len>"
	cmdArg           // in an argument's bytes
	cmdArgEnd        // in the CRLF after them
	cmdInline        // reading an inline line
)

// Next scans b and returns how many bytes it consumed. When a command ends within b it stops right after
// it and reports done: Args, Argc and Truncated describe it until the next call. A blank inline line or
// an empty array is consumed without a command. err is a ClientError for bad input.
func (s *CommandScanner) Next(b []byte) (n int, done bool, err error) {
	for n < len(b) {
		switch s.state {
		case cmdStart:
			s.reset()
			if b[n] == '*' {
				s.state = cmdHeader
				n++
				s.consumed++
			} else {
				s.state, s.inline = cmdInline, true
			}
		case cmdHeader, cmdArgLen, cmdInline:
			k, text, complete := s.readLine(b[n:])
			n += k
			s.consumed += int64(k)
			if !complete {
				if len(s.line) > MaxInline {
					return n, false, s.tooBig()
				}
				continue
			}
			done, err := s.lineDone(text)
			if err != nil || done {
				return n, done, err
			}
		case cmdArg:
			k := int64(len(b) - n)
			if k > s.left {
				k = s.left
			}
			s.keep(b[n : n+int(k)])
			n += int(k)
			s.consumed += k
			s.left -= k
			if s.left == 0 {
				s.state, s.crlf = cmdArgEnd, 2
			}
		case cmdArgEnd:
			want := byte('\r')
			if s.crlf == 1 {
				want = '\n'
			}
			if b[n] != want {
				return n, false, ClientError("Protocol error: expected CRLF after bulk")
			}
			n++
			s.consumed++
			if s.crlf--; s.crlf > 0 {
				continue
			}
			if len(s.spans) == 1 {
				s.named = true
				s.budget = len(s.buf) + DefaultBudget
				if s.Budget != nil {
					s.budget = len(s.buf) + s.Budget(s.buf)
				}
			}
			if int64(len(s.spans)) == s.argc {
				s.state = cmdStart
				s.build()
				return n, true, nil
			}
			s.state = cmdArgLen
		}
	}
	return n, false, nil
}

// Args are the arguments of the last complete command, each cut to what the budget kept (Truncated).
// They are valid until the next call of Next.
func (s *CommandScanner) Args() [][]byte { return s.args }

// Argc is the last complete command's number of arguments, whether kept or not.
func (s *CommandScanner) Argc() int { return int(s.argc) }

// Truncated reports whether an argument of the last command was kept only in part.
func (s *CommandScanner) Truncated() bool { return s.cut }

// Inline reports whether the last command was an inline one.
func (s *CommandScanner) Inline() bool { return s.inline }

// Name is the first argument of the command being read, once it is complete; nil before. (An inline
// command is complete or nothing.)
func (s *CommandScanner) Name() []byte {
	if !s.named {
		return nil
	}
	return s.buf[:s.spans[0].n]
}

// InCommand reports whether a command has begun and not ended.
func (s *CommandScanner) InCommand() bool { return s.state != cmdStart }

// Consumed is how many bytes of the current (or last) command were scanned.
func (s *CommandScanner) Consumed() int64 { return s.consumed }

// build makes Args from the spans, once buf no longer moves.
func (s *CommandScanner) build() {
	s.args = s.args[:0]
	for _, sp := range s.spans {
		s.args = append(s.args, s.buf[sp.off:sp.off+sp.n:sp.off+sp.n])
	}
}

func (s *CommandScanner) reset() {
	s.args, s.spans, s.buf, s.line = s.args[:0], s.spans[:0], s.buf[:0], s.line[:0]
	s.argc, s.left, s.cut, s.inline, s.named, s.consumed = 0, 0, false, false, false, 0
	s.budget = MaxName
}

// readLine reads up to a LF. It returns how much of b it consumed, the line without its line ending once
// complete, and whether it is.
func (s *CommandScanner) readLine(b []byte) (int, []byte, bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		s.line = append(s.line, b...)
		return len(b), nil, false
	}
	text := b[:i]
	if len(s.line) > 0 {
		s.line = append(s.line, text...)
		text = s.line
	}
	return i + 1, text, true
}

func (s *CommandScanner) tooBig() error {
	switch s.state {
	case cmdInline:
		return ClientError("Protocol error: too big inline request")
	case cmdHeader:
		return ClientError("Protocol error: too big mbulk count string")
	}
	return ClientError("Protocol error: too big bulk count string")
}

// lineDone acts on a complete header or inline line.
func (s *CommandScanner) lineDone(text []byte) (bool, error) {
	s.line = s.line[:0]
	switch s.state {
	case cmdInline:
		text = bytes.TrimSuffix(text, []byte{'\r'})
		if len(text) > MaxInline {
			return false, ClientError("Protocol error: too big inline request")
		}
		s.state = cmdStart
		if err := s.splitInline(text); err != nil {
			return false, err
		}
		s.build()
		s.named = len(s.args) > 0
		return len(s.args) > 0, nil // a blank line is no command
	case cmdHeader:
		n, ok := number(bytes.TrimSuffix(text, []byte{'\r'}))
		if !ok || n > MaxArguments || len(text) == 0 || text[len(text)-1] != '\r' {
			return false, ClientError("Protocol error: invalid multibulk length")
		}
		if n <= 0 {
			s.state = cmdStart // an empty command: Redis reads on
			return false, nil
		}
		s.argc, s.state = n, cmdArgLen
		return false, nil
	default: // cmdArgLen
		if len(text) == 0 || text[0] != '$' {
			c := byte(' ')
			if len(text) > 0 {
				c = text[0]
			}
			return false, ClientError("Protocol error: expected '$', got '" + string(c) + "'")
		}
		n, ok := number(bytes.TrimSuffix(text[1:], []byte{'\r'}))
		if !ok || n < 0 || n > s.maxBulk() || text[len(text)-1] != '\r' {
			return false, ClientError("Protocol error: invalid bulk length")
		}
		s.spans = append(s.spans, span{off: len(s.buf)})
		s.left, s.state = n, cmdArg
		if n == 0 {
			s.state, s.crlf = cmdArgEnd, 2
		}
		return false, nil
	}
}

// keep appends b to the current argument, as far as the budget allows.
func (s *CommandScanner) keep(b []byte) {
	room := s.budget - len(s.buf)
	if len(b) > room {
		b = b[:max(room, 0)]
		s.cut = true
	}
	s.buf = append(s.buf, b...)
	s.spans[len(s.spans)-1].n += len(b)
}

func (s *CommandScanner) maxBulk() int64 {
	if s.MaxBulk <= 0 {
		return DefaultMaxBulk
	}
	return s.MaxBulk
}

// number parses a decimal integer, negative allowed, as Redis's string2ll does for lengths.
func number(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// splitInline splits an inline command into arguments as Redis's sdssplitargs does: words separated by
// spaces, "double quotes" with \n \r \t \b \a \\ \" and \xHH escapes, 'single quotes' with \'. A quote
// must be followed by a space or the end of the line.
func (s *CommandScanner) splitInline(line []byte) error {
	i := 0
	for {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i == len(line) {
			s.argc = int64(len(s.spans))
			return nil
		}
		start := len(s.buf)
		inDouble, inSingle := false, false
		for ; ; i++ {
			if i == len(line) {
				if inDouble || inSingle {
					return errUnbalanced
				}
				break
			}
			c := line[i]
			switch {
			case inDouble:
				switch {
				case c == '\\' && i+3 < len(line) && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]):
					s.buf = append(s.buf, unhex(line[i+2])<<4|unhex(line[i+3]))
					i += 3
				case c == '\\' && i+1 < len(line):
					i++
					s.buf = append(s.buf, unescape(line[i]))
				case c == '"':
					if i+1 < len(line) && !isSpace(line[i+1]) {
						return errUnbalanced
					}
					inDouble = false
				default:
					s.buf = append(s.buf, c)
				}
				continue
			case inSingle:
				switch {
				case c == '\\' && i+1 < len(line) && line[i+1] == '\'':
					i++
					s.buf = append(s.buf, '\'')
				case c == '\'':
					if i+1 < len(line) && !isSpace(line[i+1]) {
						return errUnbalanced
					}
					inSingle = false
				default:
					s.buf = append(s.buf, c)
				}
				continue
			}
			if isSpace(c) {
				break
			}
			switch c {
			case '"':
				inDouble = true
			case '\'':
				inSingle = true
			default:
				s.buf = append(s.buf, c)
			}
		}
		s.spans = append(s.spans, span{off: start, n: len(s.buf) - start})
	}
}

var errUnbalanced = ClientError("Protocol error: unbalanced quotes in request")

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	}
	return c
}

// IsClientError reports whether err is bad client input (see ClientError).
func IsClientError(err error) bool {
	var ce ClientError
	return errors.As(err, &ce)
}
