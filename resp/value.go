package resp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Value is one whole RESP value, as ReadValue returns it.
type Value struct {
	// Kind is the type byte: '+' simple string, '-' error, ':' integer, '$' bulk string, '*' array, and in
	// RESP3 '_' null, ',' double, '#' boolean, '!' bulk error, '=' verbatim string, '(' big number,
	// '%' map, '~' set, '>' push.
	Kind byte
	// Str is the text of a string, an error, a verbatim string (with its "txt:" prefix), or a number.
	Str  string
	Int  int64 // an integer
	Bool bool  // a boolean
	// Null is set for the RESP3 null and the RESP2 null bulk string and null array.
	Null bool
	// Elems are an aggregate's elements; a map's are key, value, key, value. Attributes are dropped.
	Elems []Value
}

// Error is an error reply from Redis: its text, e.g. "WRONGPASS invalid username-password pair".
type Error string

func (e Error) Error() string { return string(e) }

// Err returns the error reply as an Error, or nil when the value is not one.
func (v Value) Err() error {
	if v.Kind == '-' || v.Kind == '!' {
		return Error(v.Str)
	}
	return nil
}

// Text renders the value flat, for tests and logs: strings and numbers as themselves, a null as "",
// aggregates one element per line.
func (v Value) Text() string {
	switch v.Kind {
	case '*', '~', '>', '%':
		parts := make([]string, len(v.Elems))
		for i, e := range v.Elems {
			parts[i] = e.Text()
		}
		return strings.Join(parts, "\n")
	case ':':
		return strconv.FormatInt(v.Int, 10)
	case '#':
		if v.Bool {
			return "1"
		}
		return "0"
	}
	return v.Str
}

// ReadValue reads one whole value from r within lim. An error reply is a Value (see Err), not an
// error: the error is for I/O, for bytes that are not RESP (ErrProtocol) and for lengths beyond lim
// (ErrTooLarge). An aggregate's slice grows with what arrives, never to what its header announces.
func ReadValue(r *bufio.Reader, lim Limits) (Value, error) {
	for {
		v, attr, err := readValue(r, lim, 0)
		if err != nil || !attr {
			return v, err
		}
		// An attribute annotates the value after it: that value is the reply.
	}
}

// readValue reads one value; attr reports an attribute, which the caller skips.
func readValue(r *bufio.Reader, lim Limits, depth int) (v Value, attr bool, err error) {
	line, err := readLine(r, lim.maxLine())
	if err != nil {
		return Value{}, false, err
	}
	if len(line) == 0 {
		return Value{}, false, fmt.Errorf("%w: an empty line", ErrProtocol)
	}
	v.Kind = line[0]
	text := line[1:]
	switch v.Kind {
	case '+', '-', ',', '(':
		v.Str = string(text)
	case ':':
		v.Str = string(text)
		if v.Int, err = strconv.ParseInt(v.Str, 10, 64); err != nil {
			return Value{}, false, fmt.Errorf("%w: bad integer %q", ErrProtocol, clip(text))
		}
	case '_':
		if len(text) != 0 {
			return Value{}, false, fmt.Errorf("%w: a null with content", ErrProtocol)
		}
		v.Null = true
	case '#':
		if len(text) != 1 || (text[0] != 't' && text[0] != 'f') {
			return Value{}, false, fmt.Errorf("%w: a boolean that is not t or f", ErrProtocol)
		}
		v.Bool = text[0] == 't'
	case '$', '!', '=':
		n, err := length(text, v.Kind == '$')
		if err != nil {
			return Value{}, false, err
		}
		if n < 0 {
			v.Null = true
			return v, false, nil
		}
		if n > lim.maxBulk() {
			return Value{}, false, fmt.Errorf("%w: a bulk string of %d bytes (at most %d)", ErrTooLarge, n, lim.maxBulk())
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return Value{}, false, err
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return Value{}, false, fmt.Errorf("%w: a bulk string not ended by CRLF", ErrProtocol)
		}
		v.Str = string(buf[:n])
	case '*', '~', '>', '%', '|':
		n, err := length(text, v.Kind == '*')
		if err != nil {
			return Value{}, false, err
		}
		if n < 0 {
			v.Null = true
			return v, false, nil
		}
		if n, err = lim.elements(v.Kind, n); err != nil {
			return Value{}, false, err
		}
		if depth >= lim.maxDepth() {
			return Value{}, false, fmt.Errorf("%w: aggregates nested deeper than %d", ErrTooLarge, lim.maxDepth())
		}
		v.Elems = make([]Value, 0, min(n, 64))
		for int64(len(v.Elems)) < n {
			e, eattr, err := readValue(r, lim, depth+1)
			if err != nil {
				return Value{}, false, err
			}
			if !eattr {
				v.Elems = append(v.Elems, e)
			}
		}
		return v, v.Kind == '|', nil
	default:
		return Value{}, false, fmt.Errorf("%w: unknown type byte %q", ErrProtocol, v.Kind)
	}
	return v, false, nil
}

// readLine reads a CRLF-terminated line, without its CRLF, refusing one longer than max.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max+2 {
			return nil, fmt.Errorf("%w: a line longer than %d bytes", ErrTooLarge, max)
		}
		switch {
		case err == nil:
			line = append(line, chunk...)
			if len(line) < 2 || line[len(line)-2] != '\r' {
				return nil, fmt.Errorf("%w: a line not ended by CRLF", ErrProtocol)
			}
			return line[:len(line)-2], nil
		case errors.Is(err, bufio.ErrBufferFull):
			line = append(line, chunk...)
		default:
			return nil, err
		}
	}
}
