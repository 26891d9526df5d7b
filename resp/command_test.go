package resp

import (
	"reflect"
	"strings"
	"testing"
)

// scanCommands frames in with a fresh scanner, chunk bytes at a time (all at once for 0), and returns
// each command's arguments as strings, the offsets where commands ended, and the error.
func scanCommands(s *CommandScanner, in string, chunk int) (cmds [][]string, ends []int, err error) {
	b := []byte(in)
	off := 0
	for off < len(b) {
		end := len(b)
		if chunk > 0 && off+chunk < end {
			end = off + chunk
		}
		part := b[off:end]
		for len(part) > 0 {
			n, done, err := s.Next(part)
			off += n
			part = part[n:]
			if err != nil {
				return cmds, ends, err
			}
			if done {
				var args []string
				for _, a := range s.Args() {
					args = append(args, string(a))
				}
				cmds = append(cmds, args)
				ends = append(ends, off)
			}
		}
	}
	return cmds, ends, nil
}

func TestCommandScanner(t *testing.T) {
	tests := []struct {
		name string
		in   string
		cmds [][]string
		ends []int
		err  string
	}{
		{"multibulk", "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", [][]string{{"GET", "k"}}, []int{20}, ""},
		{"pipeline", "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", [][]string{{"PING"}, {"PING"}}, []int{14, 28}, ""},
		{"binary value with CRLF inside", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n", [][]string{{"SET", "k", "a\r\nb"}}, []int{30}, ""},
		{"empty argument", "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", [][]string{{"ECHO", ""}}, []int{20}, ""},
		{"empty array is no command", "*0\r\n*1\r\n$4\r\nPING\r\n", [][]string{{"PING"}}, []int{18}, ""},
		{"inline", "PING\r\n", [][]string{{"PING"}}, []int{6}, ""},
		{"inline with LF only", "SET k v\n", [][]string{{"SET", "k", "v"}}, []int{8}, ""},
		{"inline blank lines", "\r\n\nPING\r\n", [][]string{{"PING"}}, []int{9}, ""},
		{"inline quotes", `SET "a b" 'c\'d' "\x41\n"` + "\r\n", [][]string{{"SET", "a b", "c'd", "A\n"}}, []int{27}, ""},
		{"inline unbalanced", "SET \"a\r\n", nil, nil, "Protocol error: unbalanced quotes in request"},
		{"inline quote not followed by space", "SET \"a\"b\r\n", nil, nil, "Protocol error: unbalanced quotes in request"},
		{"bad multibulk length", "*x\r\n", nil, nil, "Protocol error: invalid multibulk length"},
		{"expected dollar", "*1\r\n:1\r\n", nil, nil, "Protocol error: expected '$', got ':'"},
		{"bad bulk length", "*1\r\n$-5\r\n", nil, nil, "Protocol error: invalid bulk length"},
		{"bulk too long", "*1\r\n$600000000\r\n", nil, nil, "Protocol error: invalid bulk length"},
		{"no CRLF after bulk", "*1\r\n$1\r\nab\r\n", nil, nil, "Protocol error: expected CRLF after bulk"},
		{"inline too big", strings.Repeat("a", MaxInline+2), nil, nil, "Protocol error: too big inline request"},
	}
	for _, tt := range tests {
		for _, chunk := range []int{0, 1, 3} {
			cmds, ends, err := scanCommands(&CommandScanner{}, tt.in, chunk)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err || !IsClientError(err) {
					t.Errorf("%s (chunk %d): err %v, want %q", tt.name, chunk, err, tt.err)
				}
				continue
			}
			if err != nil || !reflect.DeepEqual(cmds, tt.cmds) || !reflect.DeepEqual(ends, tt.ends) {
				t.Errorf("%s (chunk %d): %q %v %v, want %q %v", tt.name, chunk, cmds, ends, err, tt.cmds, tt.ends)
			}
		}
	}
}

func TestCommandScannerBudget(t *testing.T) {
	value := strings.Repeat("v", 1000)
	in := "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$1000\r\n" + value + "\r\n*2\r\n$9\r\nSUBSCRIBE\r\n$300\r\n" + strings.Repeat("c", 300) + "\r\n"
	s := &CommandScanner{Budget: func(name []byte) int {
		if strings.EqualFold(string(name), "subscribe") {
			return 1 << 20
		}
		return 16
	}}
	for _, chunk := range []int{0, 7} {
		cmds, _, err := scanCommands(s, in, chunk)
		if err != nil || len(cmds) != 2 {
			t.Fatalf("chunk %d: %q %v", chunk, cmds, err)
		}
		if cmds[0][0] != "SET" || cmds[0][1] != "key" || cmds[0][2] != strings.Repeat("v", 13) {
			t.Errorf("chunk %d: SET kept %q, want the name and 16 bytes of the rest", chunk, cmds[0])
		}
		if len(cmds[1]) != 2 || cmds[1][1] != strings.Repeat("c", 300) {
			t.Errorf("chunk %d: SUBSCRIBE kept %d bytes of the channel, want all", chunk, len(cmds[1][1]))
		}
	}
	// Name is known while the value still streams in.
	s = &CommandScanner{}
	n, done, err := s.Next([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nxx"))
	if done || err != nil || string(s.Name()) != "SET" || !s.InCommand() || s.Consumed() != int64(n) {
		t.Errorf("mid-command: name %q done %v err %v in %v consumed %d of %d", s.Name(), done, err, s.InCommand(), s.Consumed(), n)
	}
}
