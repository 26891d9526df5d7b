package check

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// maxBulk bounds a bulk string a probe will accept. INFO replication is a few hundred bytes; a node
// that answers with megabytes is broken or hostile, and must not make the proxy allocate them.
const maxBulk = 1 << 20

// ErrReplyTooLarge is returned for a reply larger than a probe ever needs.
var ErrReplyTooLarge = errors.New("reply too large")

// RedisError is an error reply ("-ERR ...", "-WRONGPASS ...") from the node.
type RedisError string

func (e RedisError) Error() string { return string(e) }

// writeCommand encodes args as a RESP array of bulk strings.
func writeCommand(w *bufio.Writer, args ...string) error {
	fmt.Fprintf(w, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(w, "$%d\r\n%s\r\n", len(a), a)
	}
	return w.Flush()
}

// readReply reads one RESP2 reply of the kinds a probe expects: a simple string, an error, an
// integer or a bulk string. It returns the text of the reply; an error reply becomes a RedisError.
// Arrays are read and discarded so the stream stays in step, but they are a protocol error here.
func readReply(r *bufio.Reader) (string, error) {
	line, err := readLine(r)
	if err != nil {
		return "", err
	}
	if len(line) == 0 {
		return "", fmt.Errorf("protocol error: empty line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", RedisError(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < -1 {
			return "", fmt.Errorf("protocol error: bad bulk length %q", truncate(line))
		}
		if n == -1 {
			return "", fmt.Errorf("protocol error: unexpected nil reply")
		}
		if n > maxBulk {
			return "", fmt.Errorf("bulk of %d bytes: %w", n, ErrReplyTooLarge)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return "", fmt.Errorf("protocol error: bulk not terminated by CRLF")
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("protocol error: unexpected reply type %q", truncate(line))
	}
}

// readLine reads a CRLF-terminated line without letting a line that never ends grow without bound.
func readLine(r *bufio.Reader) (string, error) {
	var line []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return "", err
		}
		line = append(line, chunk...)
		if len(line) > 64<<10 {
			return "", fmt.Errorf("line: %w", ErrReplyTooLarge)
		}
		if !isPrefix {
			return string(line), nil
		}
	}
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
