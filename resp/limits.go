// Package resp reads and writes the Redis serialization protocol, RESP2 and RESP3: the one place
// sentinel-proxy parses what Redis, Sentinel and clients send. Every length it reads is bounded by a
// Limits, and it never allocates what a header merely announces: a broken or hostile peer that sends
// "*2000000000" gets an error, not a 30 GB allocation. It imports nothing of sentinel-proxy.
//
// Scanner finds where values end in a stream, a chunk at a time, without keeping them: for forwarding
// and for guarding a connection another library reads. ReadValue reads one whole value for code that
// wants it (probes, tests). The Append functions write commands and replies.
package resp

import "fmt"

// Limits bound what a reader accepts. A zero field means the package default for it.
type Limits struct {
	// MaxBulk is the longest bulk string (or verbatim string, or bulk error) accepted, in bytes.
	MaxBulk int64
	// MaxElements is the largest element count an aggregate header may announce (map and attribute
	// pairs count twice).
	MaxElements int64
	// MaxDepth is how deeply aggregates may nest.
	MaxDepth int
	// MaxLine is the longest line accepted, not counting its CRLF: a header, a simple string, an error,
	// a number.
	MaxLine int
}

// The defaults are Redis's own limits on what a client may send it: proto-max-bulk-len (512 MB), the
// largest multibulk length it accepts, and PROTO_INLINE_MAX_SIZE for a line; nesting is not limited by
// Redis, but no reply it sends nests more than a few levels (COMMAND DOCS, XINFO STREAM FULL).
const (
	DefaultMaxBulk     = 512 << 20
	DefaultMaxElements = 1<<31 - 1
	DefaultMaxDepth    = 128
	DefaultMaxLine     = 64 << 10
)

// Limits for the proxy's own conversations, where the replies are known and small. A peer that breaks
// them is broken or hostile; rejecting early keeps it from making the proxy allocate or wait for
// megabytes.
var (
	// ProbeLimits bound the replies to a health check: AUTH, PING and INFO replication (a few hundred
	// bytes, a few KB with many replicas).
	ProbeLimits = Limits{MaxBulk: 1 << 20, MaxElements: 1 << 10, MaxDepth: 4, MaxLine: 64 << 10}
	// SentinelLimits bound a Sentinel's replies and published messages: a few dozen array elements of a
	// few hundred bytes each (SENTINEL REPLICAS of a big deployment, INFO sentinel).
	SentinelLimits = Limits{MaxBulk: 16 << 20, MaxElements: 1 << 16, MaxDepth: 8, MaxLine: 64 << 10}
)

func (l Limits) maxBulk() int64 {
	if l.MaxBulk <= 0 {
		return DefaultMaxBulk
	}
	return l.MaxBulk
}

func (l Limits) maxElements() int64 {
	if l.MaxElements <= 0 {
		return DefaultMaxElements
	}
	return l.MaxElements
}

func (l Limits) maxDepth() int {
	if l.MaxDepth <= 0 {
		return DefaultMaxDepth
	}
	return l.MaxDepth
}

func (l Limits) maxLine() int {
	if l.MaxLine <= 0 {
		return DefaultMaxLine
	}
	return l.MaxLine
}

// elements returns how many elements an aggregate header announcing n holds (a map's or an
// attribute's pairs count twice), or ErrTooLarge beyond MaxElements. It compares before doubling: a
// doubled count of 7000000000000000000 pairs wraps to a negative number, which once read as empty.
func (l Limits) elements(kind byte, n int64) (int64, error) {
	if kind == '%' || kind == '|' {
		if n > l.maxElements()/2 {
			return 0, fmt.Errorf("%w: an aggregate of %d pairs (at most %d elements)", ErrTooLarge, n, l.maxElements())
		}
		n *= 2
	}
	if n > l.maxElements() {
		return 0, fmt.Errorf("%w: an aggregate of %d elements (at most %d)", ErrTooLarge, n, l.maxElements())
	}
	return n, nil
}
