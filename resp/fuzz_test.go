package resp

import (
	"bufio"
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzScanner feeds arbitrary bytes to the Scanner, whole and cut into chunks at every size, and to
// ReadValue. None may panic; the Scanner must find the same value ends and the same error however the
// stream is cut (a reply stream cut at every byte); and where ReadValue reads a value, the Scanner must
// end one at the same offset. It is the one fuzz target of everything that parses RESP (probes,
// Sentinel connections, test helpers).
func FuzzScanner(f *testing.F) {
	for _, seed := range []string{
		"+OK\r\n", "-ERR x\r\n", ":1\r\n", "$3\r\nfoo\r\n", "$-1\r\n", "*2\r\n$1\r\na\r\n*0\r\n", "*-1\r\n",
		"_\r\n", ",3.14\r\n", "#t\r\n", "(1\r\n", "%1\r\n+a\r\n:1\r\n", "~1\r\n+a\r\n", ">2\r\n+message\r\n+x\r\n",
		"=7\r\ntxt:abc\r\n", "!3\r\nERR\r\n", "|1\r\n+a\r\n+b\r\n:1\r\n", "*1\r\n|1\r\n+a\r\n+b\r\n:1\r\n",
		"$12\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n", "*3000000000\r\n", "$99999999999\r\n", "+OK\n", "?\r\n", "$?\r\n",
		"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
		"+" + strings.Repeat("a", 255) + "\r\n", "+" + strings.Repeat("a", 256) + "\r\n", // MaxLine below
	} {
		f.Add([]byte(seed))
	}
	lim := Limits{MaxBulk: 1 << 16, MaxElements: 1 << 10, MaxDepth: 8, MaxLine: 256}
	f.Fuzz(func(t *testing.T, in []byte) {
		whole, wholeErr := scanAll(&Scanner{Limits: lim}, in, 0)
		for size := 1; size <= len(in) && size <= 16; size++ {
			ends, err := scanAll(&Scanner{Limits: lim}, in, size)
			if !reflect.DeepEqual(ends, whole) || (err == nil) != (wholeErr == nil) {
				t.Fatalf("chunks of %d: ends %v err %v; whole: ends %v err %v", size, ends, err, whole, wholeErr)
			}
		}
		if wholeErr != nil && !errors.Is(wholeErr, ErrProtocol) && !errors.Is(wholeErr, ErrTooLarge) {
			t.Fatalf("an error that is neither ErrProtocol nor ErrTooLarge: %v", wholeErr)
		}
		src := bytes.NewReader(in)
		br := bufio.NewReaderSize(src, 16)
		if _, err := ReadValue(br, lim); err == nil {
			consumed := len(in) - src.Len() - br.Buffered()
			if len(whole) == 0 || whole[0] != consumed {
				t.Fatalf("ReadValue read a value of %d bytes; the Scanner's ends: %v (err %v)", consumed, whole, wholeErr)
			}
		}
	})
}

// FuzzCommandScanner feeds arbitrary client input to the CommandScanner whole and cut into chunks of
// every size up to 16: it must never panic, find the same commands with the same arguments at the same
// offsets however the stream is cut, and report every error as a ClientError.
func FuzzCommandScanner(f *testing.F) {
	for _, seed := range []string{
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "PING\r\n", "SET \"a b\" 'c'\n", "*0\r\n", "*1\r\n$0\r\n\r\n",
		"*1\r\n:1\r\n", "*x\r\n", "SET \"a", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n", "\r\n\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		budget := func(name []byte) int { return len(name) * 3 }
		whole, wholeEnds, wholeErr := scanCommands(&CommandScanner{Budget: budget, MaxBulk: 1 << 16}, string(in), 0)
		if wholeErr != nil && !IsClientError(wholeErr) {
			t.Fatalf("an error that is not a ClientError: %v", wholeErr)
		}
		for size := 1; size <= len(in) && size <= 16; size++ {
			cmds, ends, err := scanCommands(&CommandScanner{Budget: budget, MaxBulk: 1 << 16}, string(in), size)
			if !reflect.DeepEqual(cmds, whole) || !reflect.DeepEqual(ends, wholeEnds) || (err == nil) != (wholeErr == nil) {
				t.Fatalf("chunks of %d: %q %v %v; whole: %q %v %v", size, cmds, ends, err, whole, wholeEnds, wholeErr)
			}
		}
	})
}

// FuzzPeek feeds arbitrary bytes to PeekFrame, PeekNull and PeekInt: neither may panic; each decides within its
// bound (PeekFrameMax bytes, two bytes) and, once it decided, more bytes do not change its answer; and
// where the bytes hold a whole value, the answer is what that value is (ReadValue).
func FuzzPeek(f *testing.F) {
	for _, seed := range []string{
		"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n", ">3\r\n+SUBSCRIBE\r\n+ch\r\n:1\r\n",
		"*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$2\r\nch\r\n$1\r\nx\r\n", "*2\r\n$3\r\nfoo\r\n$3\r\nbar\r\n", "*0\r\n",
		"*-1\r\n", "$-1\r\n", "_\r\n", "*1\r\n:1\r\n", "*1\r\n$99\r\n", "*99999999999999999999999999\r\n",
		":2\r\n", ":-12\r\n", "-NOPERM no permission\r\n", ":99999999999999999999\r\n",
	} {
		f.Add([]byte(seed))
	}
	lim := Limits{MaxBulk: 1 << 16, MaxElements: 1 << 10, MaxDepth: 8, MaxLine: 256}
	f.Fuzz(func(t *testing.T, in []byte) {
		kind, complete := PeekFrame(in)
		if !complete && len(in) >= PeekFrameMax {
			t.Fatalf("PeekFrame undecided after %d bytes", len(in))
		}
		for n := 0; n < len(in); n++ {
			k, c := PeekFrame(in[:n])
			if c && (!complete || k != kind) {
				t.Fatalf("PeekFrame of the first %d bytes: %d, of all %d: %d (complete %v)", n, k, len(in), kind, complete)
			}
		}
		null, nullComplete := PeekNull(in)
		if !nullComplete && len(in) >= 2 {
			t.Fatal("PeekNull undecided after two bytes")
		}
		if n1, c1 := PeekNull(in[:min(1, len(in))]); c1 && (n1 != null || !nullComplete) {
			t.Fatal("PeekNull changed its answer with more bytes")
		}
		unblocked, ubComplete := PeekErrorPrefix(in, "UNBLOCKED")
		for n := 0; n < len(in) && n <= 64; n++ {
			if u, c := PeekErrorPrefix(in[:n], "UNBLOCKED"); c && (!ubComplete || u != unblocked) {
				t.Fatalf("PeekErrorPrefix of the first %d bytes: %v, of all: %v (complete %v)", n, u, unblocked, ubComplete)
			}
		}
		n, intComplete, intErr := PeekInt(in)
		if !intComplete && len(in) > maxPeekLine+1 {
			t.Fatalf("PeekInt undecided after %d bytes", len(in))
		}
		v, err := ReadValue(bufio.NewReader(bytes.NewReader(in)), lim)
		if err != nil {
			return
		}
		if intComplete && intErr == nil && (v.Kind != ':' || v.Int != n) {
			t.Fatalf("PeekInt %d for %q, ReadValue %c %d", n, in, v.Kind, v.Int)
		}
		if v.Kind == ':' && len(in) <= maxPeekLine && (!intComplete || intErr != nil || n != v.Int) {
			t.Fatalf("PeekInt %d %v %v for the integer %d", n, intComplete, intErr, v.Int)
		}
		if ubComplete && unblocked != (v.Err() != nil && strings.HasPrefix(v.Str, "UNBLOCKED")) {
			t.Fatalf("PeekErrorPrefix %v for %q, ReadValue %c %q", unblocked, in, v.Kind, v.Str)
		}
		if nullComplete && null != v.Null && (in[0] == '_' || in[0] == '$' || in[0] == '*') {
			t.Fatalf("PeekNull %v for %q, ReadValue's Null %v", null, in, v.Null)
		}
		if !complete {
			return // a whole value shorter than its frame's word: only a protocol error reads so
		}
		want := FrameOther
		if (v.Kind == '*' || v.Kind == '>') && len(v.Elems) > 0 {
			switch e := v.Elems[0]; {
			case e.Kind != '$' && e.Kind != '+':
			case strings.EqualFold(e.Str, "message"), strings.EqualFold(e.Str, "pmessage"), strings.EqualFold(e.Str, "smessage"):
				want = FrameMessage
			case strings.EqualFold(e.Str, "subscribe"), strings.EqualFold(e.Str, "psubscribe"), strings.EqualFold(e.Str, "ssubscribe"),
				strings.EqualFold(e.Str, "unsubscribe"), strings.EqualFold(e.Str, "punsubscribe"), strings.EqualFold(e.Str, "sunsubscribe"):
				want = FrameConfirmation
			}
		}
		if kind != want && kind != FrameOther {
			t.Fatalf("PeekFrame says %d for %q, the value's first element says %d", kind, in, want)
		}
	})
}
