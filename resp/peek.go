package resp

import (
	"fmt"
	"strconv"
)

// A session that passes replies through as they stream must tell some values apart by their first
// bytes, before the rest has come: a pub/sub frame from a reply (its first element names it), and a
// null from a value. These peeks decide from a bounded prefix, so the bytes a caller keeps while it
// waits for more stay a few dozen, whatever the peer sends.

// The type bytes of the values a session tells apart by their first byte.
const (
	TypeArray byte = '*' // a RESP2 pub/sub frame is an array
	TypePush  byte = '>' // RESP3's out-of-band data: pub/sub frames, invalidations
)

// FrameKind is what a pub/sub frame (a RESP2 array in subscribed mode, or a RESP3 push) is, by its
// first element.
type FrameKind uint8

const (
	FrameOther        FrameKind = iota // not a pub/sub frame: a reply, or a push of another kind
	FrameMessage                       // message, pmessage, smessage: a publication
	FrameConfirmation                  // (p|s)(un)subscribe: a subscription's confirmation
)

// maxFrameWord is the longest first element PeekFrame reads: "punsubscribe" and some room.
const maxFrameWord = 32

// PeekFrame reads the first element of an aggregate whose start is b ("*3\r\n$7\r\nmessage\r\n..."),
// and says what frame it is; complete is false while b ends before that is known. It decides within
// the first PeekFrameMax bytes: a value that is no array or push, a longer header or first line, a
// count that is not positive, or a first element that is not a short string make it FrameOther.
func PeekFrame(b []byte) (kind FrameKind, complete bool) {
	if len(b) > 0 && b[0] != TypeArray && b[0] != TypePush {
		return FrameOther, true // not an array or a push
	}
	const maxLine = 24
	i := 0
	line := func() (l []byte, ok, tooLong bool) {
		for j := i; j+1 < len(b) && j-i <= maxLine; j++ {
			if b[j] == '\r' && b[j+1] == '\n' {
				l = b[i:j]
				i = j + 2
				return l, true, false
			}
		}
		return nil, false, len(b)-i > maxLine+1
	}
	header, ok, tooLong := line() // the aggregate's header
	if tooLong || (ok && (len(header) < 2 || header[1] < '1' || header[1] > '9')) {
		return FrameOther, true
	}
	if !ok {
		return FrameOther, false
	}
	head, ok, tooLong := line()
	if tooLong || (ok && len(head) == 0) {
		return FrameOther, true
	}
	if !ok {
		return FrameOther, false
	}
	var word []byte
	switch head[0] {
	case '+':
		word = head[1:]
	case '$':
		n := 0
		for _, d := range head[1:] {
			if d < '0' || d > '9' || n > maxFrameWord {
				return FrameOther, true
			}
			n = n*10 + int(d-'0')
		}
		if n > maxFrameWord {
			return FrameOther, true
		}
		if len(b) < i+n {
			return FrameOther, false
		}
		word = b[i : i+n]
	default:
		return FrameOther, true
	}
	if len(word) > maxFrameWord {
		return FrameOther, true
	}
	var buf [maxFrameWord]byte
	for k, c := range word {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[k] = c
	}
	switch string(buf[:len(word)]) {
	case "message", "pmessage", "smessage":
		return FrameMessage, true
	case "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe":
		return FrameConfirmation, true
	}
	return FrameOther, true
}

// PeekFrameMax is the most bytes PeekFrame needs to decide.
const PeekFrameMax = 2*(24+2) + maxFrameWord

// PeekNull says whether the value that starts b is a null: RESP3's "_", or RESP2's null bulk string
// or array ("$-1", "*-1"). complete is false while b is too short to tell (fewer than two bytes).
func PeekNull(b []byte) (null, complete bool) {
	switch {
	case len(b) == 0:
		return false, false
	case b[0] == '_':
		return true, true
	case b[0] != '$' && b[0] != '*':
		return false, true
	case len(b) < 2:
		return false, false
	}
	return b[1] == '-', true
}

// PeekErrorPrefix says whether the value that starts b is an error reply (simple or, in RESP3, bulk)
// whose text starts with prefix; complete is false while b is too short to tell.
func PeekErrorPrefix(b []byte, prefix string) (match, complete bool) {
	if len(b) == 0 {
		return false, false
	}
	switch b[0] {
	case '-':
		b = b[1:]
	case '!':
		// The length line: a bulk error's is short; one longer is not read as one here.
		i := 1
		for i < len(b) && i < maxErrLenLine && b[i] != '\r' {
			i++
		}
		switch {
		case i >= maxErrLenLine:
			return false, true
		case i+1 >= len(b):
			return false, false
		}
		b = b[i+2:]
	default:
		return false, true
	}
	n := min(len(b), len(prefix))
	if string(b[:n]) != prefix[:n] {
		return false, true
	}
	return n == len(prefix), n == len(prefix)
}

// maxErrLenLine bounds the length line PeekErrorPrefix reads: '!' and 20 digits.
const maxErrLenLine = 24

// maxPeekLine is the longest line PeekInt reads: an integer's 20 characters, or an error's start.
const maxPeekLine = 256

// PeekInt reads the value that starts b as a RESP integer (":3\r\n"); complete is false while its line
// has not ended within b (and b is shorter than its bound). A value that is not an integer gives an
// error: an error reply's text (a Redis error), or a description of what came instead.
func PeekInt(b []byte) (n int64, complete bool, err error) {
	end := -1
	for i := 0; i+1 < len(b) && i <= maxPeekLine; i++ {
		if b[i] == '\r' && b[i+1] == '\n' {
			end = i
			break
		}
	}
	if end < 0 {
		if len(b) > maxPeekLine+1 {
			return 0, true, fmt.Errorf("%w: a line longer than %d bytes", ErrProtocol, maxPeekLine)
		}
		return 0, false, nil
	}
	line := b[:end]
	if len(line) == 0 {
		return 0, true, fmt.Errorf("%w: an empty line", ErrProtocol)
	}
	switch line[0] {
	case ':':
		v, err := strconv.ParseInt(string(line[1:]), 10, 64) // as ReadValue reads it
		if err != nil {
			return 0, true, fmt.Errorf("%w: bad integer %q", ErrProtocol, clip(line[1:]))
		}
		return v, true, nil
	case '-':
		return 0, true, Error(line[1:])
	}
	return 0, true, fmt.Errorf("%w: a %q value where an integer was expected", ErrProtocol, line[0])
}
