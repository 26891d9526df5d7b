package resp

import (
	"bufio"
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// scanAll scans in with s in chunks of size (all at once when size is 0) and returns the offsets at
// which top-level values ended, and the error, if any.
func scanAll(s *Scanner, in []byte, size int) (ends []int, err error) {
	off := 0
	for off < len(in) {
		end := len(in)
		if size > 0 && off+size < end {
			end = off + size
		}
		chunk := in[off:end]
		for len(chunk) > 0 {
			n, done, err := s.Next(chunk)
			off += n
			chunk = chunk[n:]
			if err != nil {
				return ends, err
			}
			if done {
				ends = append(ends, off)
			}
		}
	}
	return ends, nil
}

func TestScannerFramesValues(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ends []int // offsets after each complete top-level value
		kind byte  // Kind after the last value
		err  error
	}{
		{"simple string", "+OK\r\n", []int{5}, '+', nil},
		{"error", "-ERR no\r\n", []int{9}, '-', nil},
		{"integer", ":42\r\n", []int{5}, ':', nil},
		{"bulk", "$3\r\nfoo\r\n", []int{9}, '$', nil},
		{"bulk holding CRLF", "$4\r\n\r\n\r\n\r\n", []int{10}, '$', nil},
		{"null bulk", "$-1\r\n", []int{5}, '$', nil},
		{"empty bulk", "$0\r\n\r\n", []int{6}, '$', nil},
		{"array", "*2\r\n$1\r\na\r\n:1\r\n", []int{15}, '*', nil},
		{"null array", "*-1\r\n", []int{5}, '*', nil},
		{"empty array", "*0\r\n", []int{4}, '*', nil},
		{"nested", "*2\r\n*1\r\n+a\r\n*0\r\n", []int{16}, '*', nil},
		{"pipeline", "+OK\r\n:1\r\n$1\r\nx\r\n", []int{5, 9, 16}, '$', nil},
		{"RESP3 null, double, boolean, big number", "_\r\n,1.5\r\n#t\r\n(123\r\n", []int{3, 9, 13, 19}, '(', nil},
		{"RESP3 map", "%1\r\n+a\r\n:1\r\n", []int{12}, '%', nil},
		{"RESP3 set and push", "~1\r\n+a\r\n>2\r\n+message\r\n+x\r\n", []int{8, 26}, '>', nil},
		{"RESP3 verbatim and bulk error", "=7\r\ntxt:abc\r\n!3\r\nERR\r\n", []int{13, 22}, '!', nil},
		{"attribute before a reply", "|1\r\n+key\r\n+val\r\n:5\r\n", []int{20}, ':', nil},
		{"attribute inside an array", "*1\r\n|1\r\n+k\r\n+v\r\n:5\r\n", []int{20}, '*', nil},
		{"unknown type", "?\r\n", nil, 0, ErrProtocol},
		{"line without CR", "+OK\n", nil, 0, ErrProtocol},
		{"bad length", "$x\r\n", nil, 0, ErrProtocol},
		{"negative length", "$-2\r\n", nil, 0, ErrProtocol},
		{"null map", "%-1\r\n", nil, 0, ErrProtocol},
		{"streamed string", "$?\r\n", nil, 0, ErrProtocol},
		{"bad boolean", "#x\r\n", nil, 0, ErrProtocol},
		{"null with content", "_x\r\n", nil, 0, ErrProtocol},
		{"huge bulk", "$99999999999\r\n", nil, 0, ErrTooLarge},
		{"huge array", "*3000000000\r\n", nil, 0, ErrTooLarge},
		{"length of 20 digits", "$12345678901234567890\r\n", nil, 0, ErrProtocol},
		{"length of 19 digits beyond int64", "*9999999999999999999\r\n", nil, 0, ErrProtocol},
		{"bulk length just beyond int64", "$9223372036854775808\r\n", nil, 0, ErrProtocol},
		{"map whose doubled count wraps", "%7000000000000000000\r\n", nil, 0, ErrTooLarge},
		{"attribute whose doubled count wraps", "|7000000000000000000\r\n", nil, 0, ErrTooLarge},
	}
	for _, tt := range tests {
		for _, size := range []int{0, 1, 2, 3, 7} {
			s := &Scanner{Limits: Limits{MaxBulk: 1 << 30, MaxElements: 1 << 30}}
			ends, err := scanAll(s, []byte(tt.in), size)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Errorf("%s (chunks of %d): err %v, want %v", tt.name, size, err, tt.err)
				continue
			}
			if tt.err == nil && (!reflect.DeepEqual(ends, tt.ends) || s.Kind() != tt.kind) {
				t.Errorf("%s (chunks of %d): ends %v kind %q, want %v %q", tt.name, size, ends, s.Kind(), tt.ends, tt.kind)
			}
		}
	}
}

func TestScannerLimits(t *testing.T) {
	lim := Limits{MaxBulk: 10, MaxElements: 3, MaxDepth: 2, MaxLine: 16}
	for _, tt := range []struct {
		in  string
		err error
	}{
		{"$10\r\n0123456789\r\n", nil},
		{"$11\r\n", ErrTooLarge},
		{"*3\r\n:1\r\n:2\r\n:3\r\n", nil},
		{"*4\r\n", ErrTooLarge},
		{"%2\r\n", ErrTooLarge}, // two pairs are four elements
		{"*1\r\n*1\r\n:1\r\n", nil},
		{"*1\r\n*1\r\n*1\r\n", ErrTooLarge},
		{"+0123456789012\r\n", nil},
		{"+012345678901234\r\n", nil}, // 16 bytes and its CRLF: MaxLine does not count the CRLF
		{"+0123456789012345\r\n", ErrTooLarge},
		{"+0123456789012345", ErrTooLarge}, // not ended yet, but already too long
		{"+012345678901234\r", nil},        // the CR may be the line's own
		{"+01234567890123456789\r\n", ErrTooLarge},
	} {
		_, err := scanAll(&Scanner{Limits: lim}, []byte(tt.in), 0)
		if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
			t.Errorf("%q: %v, want %v", tt.in, err, tt.err)
		}
	}
}

// TestLineLimitAgrees: the Scanner and ReadValue accept the same lines, however the stream is cut (the
// Scanner once refused a line of MaxLine bytes that ReadValue read).
func TestLineLimitAgrees(t *testing.T) {
	lim := Limits{MaxLine: 16}
	for n := 14; n <= 18; n++ {
		in := "+" + strings.Repeat("x", n-1) + "\r\n"
		_, rerr := ReadValue(bufio.NewReaderSize(strings.NewReader(in), 16), lim)
		for _, size := range []int{0, 1, n, n + 1} {
			_, serr := scanAll(&Scanner{Limits: lim}, []byte(in), size)
			if (rerr == nil) != (serr == nil) || (n <= 16) != (serr == nil) {
				t.Errorf("a line of %d bytes (chunks of %d): ReadValue %v, Scanner %v", n, size, rerr, serr)
			}
		}
	}
}

func TestScannerStaysFailedAndResets(t *testing.T) {
	var s Scanner
	if _, _, err := s.Next([]byte("?")); err == nil {
		t.Fatal("want an error")
	}
	if _, _, err := s.Next([]byte("+OK\r\n")); err == nil {
		t.Fatal("a failed scanner must stay failed")
	}
	s.Reset()
	if n, done, err := s.Next([]byte("+OK\r\n")); n != 5 || !done || err != nil {
		t.Fatalf("after Reset: %d %v %v", n, done, err)
	}
}

func TestReadValue(t *testing.T) {
	read := func(in string) (Value, error) {
		return ReadValue(bufio.NewReader(strings.NewReader(in)), Limits{})
	}
	v, err := read("*3\r\n$3\r\nfoo\r\n:-7\r\n*1\r\n+ok\r\n")
	if err != nil || v.Kind != '*' || len(v.Elems) != 3 || v.Elems[0].Str != "foo" || v.Elems[1].Int != -7 ||
		v.Elems[2].Elems[0].Str != "ok" {
		t.Fatalf("array: %+v %v", v, err)
	}
	if v.Text() != "foo\n-7\nok" {
		t.Errorf("Text: %q", v.Text())
	}
	v, err = read("-WRONGPASS invalid\r\n")
	var e Error
	if err != nil || !errors.As(v.Err(), &e) || string(e) != "WRONGPASS invalid" {
		t.Errorf("error reply: %+v %v", v, err)
	}
	if v, err := read("|1\r\n+a\r\n+b\r\n%1\r\n+k\r\n#t\r\n"); err != nil || v.Kind != '%' || len(v.Elems) != 2 || !v.Elems[1].Bool {
		t.Errorf("attribute then map: %+v %v", v, err)
	}
	if v, err := read("$-1\r\n"); err != nil || !v.Null {
		t.Errorf("null: %+v %v", v, err)
	}
	if _, err := ReadValue(bufio.NewReader(strings.NewReader("$2000000\r\n")), ProbeLimits); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over ProbeLimits: %v", err)
	}
	// Counts and lengths that overflow int64 (a map's pairs once doubled): errors, not a panic or a null.
	for _, in := range []string{"%7000000000000000000\r\n", "|7000000000000000000\r\n", "*9999999999999999999\r\n", "$9223372036854775808\r\n"} {
		if v, err := read(in); err == nil {
			t.Errorf("%q: %+v, want an error", in, v)
		}
	}
	if _, err := read("$3\r\nfoobar"); !errors.Is(err, ErrProtocol) {
		t.Errorf("bulk without CRLF: %v", err)
	}
	if _, err := read("$3\r\nfo"); err == nil {
		t.Errorf("short bulk: no error")
	}
}

func TestAppend(t *testing.T) {
	got := string(AppendCommand(nil, "SET", "k", "v\r\n"))
	if got != "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n" {
		t.Errorf("command: %q", got)
	}
	if got := string(AppendError(nil, "ERR line\r\nbreak")); got != "-ERR line  break\r\n" {
		t.Errorf("error: %q", got)
	}
	for _, tt := range []struct{ got, want string }{
		{string(AppendSimple(nil, "OK")), "+OK\r\n"},
		{string(AppendInt(nil, -3)), ":-3\r\n"},
		{string(AppendNull(nil, 2)), "$-1\r\n"},
		{string(AppendNull(nil, 3)), "_\r\n"},
		{string(AppendNullArray(nil, 2)), "*-1\r\n"},
		{string(AppendArray(nil, 2)), "*2\r\n"},
	} {
		if tt.got != tt.want {
			t.Errorf("%q, want %q", tt.got, tt.want)
		}
	}
	// What the writer makes, the readers read.
	in := AppendCommand(nil, "a", "", strings.Repeat("x", 100))
	if ends, err := scanAll(&Scanner{}, in, 3); err != nil || !reflect.DeepEqual(ends, []int{len(in)}) {
		t.Errorf("scan own command: %v %v", ends, err)
	}
	if v, err := ReadValue(bufio.NewReader(bytes.NewReader(in)), Limits{}); err != nil || len(v.Elems) != 3 || v.Elems[2].Str != strings.Repeat("x", 100) {
		t.Errorf("read own command: %+v %v", v, err)
	}
}
