package resp

import (
	"bytes"
	"errors"
	"fmt"
	"math"
)

var (
	// ErrProtocol is wrapped by every error about bytes that are not RESP.
	ErrProtocol = errors.New("protocol error")
	// ErrTooLarge is wrapped by every error about a length, a count or a nesting beyond the Limits.
	ErrTooLarge = errors.New("over the limit")
)

// Scanner finds the ends of RESP2 and RESP3 values in a byte stream fed to it in chunks of any size,
// keeping only a few bytes of state: the header line being read and, for each open aggregate, how many
// elements it still expects. It never holds a value's contents, so a 500 MB bulk string costs it nothing.
// A Scanner that returned an error stays failed. The zero value scans with the default Limits.
type Scanner struct {
	Limits Limits

	frames []frame // open aggregates, innermost last
	body   int64   // bytes of a bulk body and its CRLF still to pass; 0 when reading a line
	inBody bool
	header []byte // the start of a line that did not end in the last chunk (numbers only, see line)
	kind   byte   // the type byte of the line being read; 0 at the start of a line
	lineN  int    // bytes of that line seen so far
	lastCR bool   // the line's bytes so far end with CR (it may be split from its LF)
	top    byte   // the type byte of the current top-level value (after any attribute)
	err    error
}

// frame is an open aggregate.
type frame struct {
	left int64 // elements still expected
	attr bool  // an attribute: it annotates the value after it, and is not an element itself
}

// Next scans b, the next bytes of the stream, and returns how many it consumed. When a top-level value
// ends within b, it stops right after that value and reports done; call it again with the rest. A
// returned error means the stream is not RESP or breaks the Limits; n then says how far it got.
func (s *Scanner) Next(b []byte) (n int, done bool, err error) {
	if s.err != nil {
		return 0, false, s.err
	}
	for n < len(b) {
		if s.inBody {
			k := int64(len(b) - n)
			if k > s.body {
				k = s.body
			}
			n += int(k)
			s.body -= k
			if s.body > 0 {
				return n, false, nil
			}
			s.inBody = false
			if s.element() {
				return n, true, nil
			}
			continue
		}
		k, complete, err := s.line(b[n:])
		n += k
		if err != nil {
			s.err = err
			return n, false, err
		}
		if complete {
			return n, true, nil
		}
	}
	return n, false, nil
}

// Kind is the type byte of the top-level value being scanned, or of the last one once it is done
// ('+', '-', ':', '$', '*', '>', ...); 0 before the first byte. An attribute before a value does not
// count: Kind is the annotated value's.
func (s *Scanner) Kind() byte { return s.top }

// IsError reports whether the value being scanned (or the last one, once done) is an error reply: a
// simple or, in RESP3, a bulk error.
func (s *Scanner) IsError() bool { return s.top == '-' || s.top == '!' }

// IsPush reports whether the value being scanned (or the last one) is a RESP3 push.
func (s *Scanner) IsPush() bool { return s.top == TypePush }

// Reset forgets any partial value and error, keeping the Limits.
func (s *Scanner) Reset() {
	*s = Scanner{Limits: s.Limits, frames: s.frames[:0], header: s.header[:0]}
}

// line reads the rest of the current line from b. It returns how many bytes it consumed and whether a
// top-level value ended with it.
func (s *Scanner) line(b []byte) (int, bool, error) {
	start := 0
	if s.kind == 0 {
		s.kind = b[0]
		if len(s.frames) == 0 && s.kind != '|' {
			s.top = s.kind
		}
		if !known(s.kind) {
			return 0, false, fmt.Errorf("%w: unknown type byte %q", ErrProtocol, s.kind)
		}
		start = 1
	}
	i := bytes.IndexByte(b[start:], '\n')
	if i < 0 {
		if len(b) > start {
			s.lastCR = b[len(b)-1] == '\r'
		}
		cr := 0
		if s.lastCR {
			cr = 1 // it may be the line's CR, which MaxLine does not count
		}
		if err := s.grow(len(b), cr); err != nil {
			return len(b), false, err
		}
		if sized(s.kind) {
			s.header = append(s.header, b[start:]...)
			if len(s.header) > maxLengthLine {
				return len(b), false, fmt.Errorf("%w: bad length %q", ErrProtocol, clip(s.header))
			}
		}
		return len(b), false, nil
	}
	end := start + i + 1 // just past the LF
	if err := s.grow(end, 2); err != nil {
		return end, false, err
	}
	crlf := s.lastCR
	if end-1 > start {
		crlf = b[end-2] == '\r'
	}
	if !crlf {
		return end, false, fmt.Errorf("%w: a line not ended by CRLF", ErrProtocol)
	}
	var text []byte
	if sized(s.kind) {
		text = b[start : end-1]
		if len(s.header) > 0 {
			s.header = append(s.header, text...)
			text = s.header
		}
		text = text[:len(text)-1] // the CR
	}
	kind := s.kind
	s.kind, s.lineN, s.lastCR, s.header = 0, 0, false, s.header[:0]
	done, err := s.headerDone(kind, text)
	return end, done, err
}

// maxLengthLine is the longest a line holding a length can be: 19 digits and a CR.
const maxLengthLine = 20

// grow counts k more bytes of the current line and checks it against MaxLine, which bounds a line
// without its CRLF, as ReadValue does: crlf is how many of the bytes counted so far are (or may be) the
// line's end.
func (s *Scanner) grow(k, crlf int) error {
	s.lineN += k
	if s.lineN-crlf > s.Limits.maxLine() {
		return fmt.Errorf("%w: a line longer than %d bytes", ErrTooLarge, s.Limits.maxLine())
	}
	return nil
}

// headerDone acts on a complete line of the given type, text without its CRLF.
func (s *Scanner) headerDone(kind byte, text []byte) (bool, error) {
	switch kind {
	case '+', '-', ':', ',', '(':
		return s.element(), nil
	case '_':
		if len(text) != 0 {
			return false, fmt.Errorf("%w: a null with content", ErrProtocol)
		}
		return s.element(), nil
	case '#':
		if len(text) != 1 || (text[0] != 't' && text[0] != 'f') {
			return false, fmt.Errorf("%w: a boolean that is not t or f", ErrProtocol)
		}
		return s.element(), nil
	case '$', '!', '=':
		n, err := length(text, kind == '$')
		if err != nil {
			return false, err
		}
		if n > s.Limits.maxBulk() {
			return false, fmt.Errorf("%w: a bulk string of %d bytes (at most %d)", ErrTooLarge, n, s.Limits.maxBulk())
		}
		if n < 0 { // $-1: the RESP2 null
			return s.element(), nil
		}
		s.body, s.inBody = n+2, true
		return false, nil
	default: // '*', '~', '>', '%', '|'
		n, err := length(text, kind == '*')
		if err != nil {
			return false, err
		}
		if n, err = s.Limits.elements(kind, n); err != nil {
			return false, err
		}
		if n <= 0 { // empty, or *-1: the RESP2 null array
			if kind == '|' {
				return false, nil // an empty attribute annotates the value that follows
			}
			return s.element(), nil
		}
		if len(s.frames) >= s.Limits.maxDepth() {
			return false, fmt.Errorf("%w: aggregates nested deeper than %d", ErrTooLarge, s.Limits.maxDepth())
		}
		s.frames = append(s.frames, frame{left: n, attr: kind == '|'})
		return false, nil
	}
}

// element counts one complete element toward the open aggregates, closing those it completes. It
// reports whether the top-level value is complete.
func (s *Scanner) element() bool {
	for len(s.frames) > 0 {
		f := &s.frames[len(s.frames)-1]
		f.left--
		if f.left > 0 {
			return false
		}
		attr := f.attr
		s.frames = s.frames[:len(s.frames)-1]
		if attr {
			return false // the attribute is complete; the value it annotates comes next
		}
	}
	return true
}

// known reports whether c starts a RESP2 or RESP3 value. Streamed strings and aggregates ($? and *?)
// are rejected where their length is read: Redis never sends them.
func known(c byte) bool {
	switch c {
	case '+', '-', ':', '$', '*', '_', ',', '#', '!', '=', '(', '%', '~', '>', '|':
		return true
	}
	return false
}

// sized reports whether the scanner must read the text of a line of this type: a length, a null or a
// boolean. The text of the other lines (strings, errors, numbers) is passed over.
func sized(c byte) bool {
	switch c {
	case '$', '!', '=', '*', '~', '>', '%', '|', '_', '#':
		return true
	}
	return false
}

// length parses a length: a decimal that fits an int64, or -1 where a null is allowed. (A 19-digit
// number beyond int64 once wrapped to a negative length and was read as a null.)
func length(text []byte, nullOK bool) (int64, error) {
	if nullOK && len(text) == 2 && text[0] == '-' && text[1] == '1' {
		return -1, nil
	}
	if len(text) == 0 || len(text) > 19 {
		return 0, fmt.Errorf("%w: bad length %q", ErrProtocol, clip(text))
	}
	var n int64
	for _, c := range text {
		if c < '0' || c > '9' || n > (math.MaxInt64-int64(c-'0'))/10 {
			return 0, fmt.Errorf("%w: bad length %q", ErrProtocol, clip(text))
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// clip shortens what an error quotes from the stream.
func clip(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}
