package check

import (
	"bufio"
	"fmt"

	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// RedisError is an error reply ("-ERR ...", "-WRONGPASS ...") from the node. It is resp.Error, so
// errors.As finds it in a probe's error however the reply was read.
type RedisError = resp.Error

// readReply reads one reply, within resp.ProbeLimits, of the kinds a probe expects: a simple string, an
// integer or a bulk string. It returns the text of the reply; an error reply becomes a RedisError, and
// any other reply (a null, an array) a protocol error.
func readReply(r *bufio.Reader) (string, error) {
	v, err := resp.ReadValue(r, resp.ProbeLimits)
	if err != nil {
		return "", err
	}
	if err := v.Err(); err != nil {
		return "", err
	}
	switch {
	case v.Null:
		return "", fmt.Errorf("%w: unexpected nil reply", resp.ErrProtocol)
	case v.Kind == '+' || v.Kind == ':' || v.Kind == '$':
		return v.Str, nil
	}
	return "", fmt.Errorf("%w: unexpected reply type %q", resp.ErrProtocol, v.Kind)
}
