package redistest

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

// TestReadFlat pins what Do returns for each kind of reply the tests meet: error replies as errors with
// Redis's text (tests match on it), arrays one element per line, nulls as "".
func TestReadFlat(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{"+OK\r\n", "OK", ""},
		{":-7\r\n", "-7", ""},
		{"$5\r\nhello\r\n", "hello", ""},
		{"$-1\r\n", "", ""},
		{"*-1\r\n", "", ""},
		{"*0\r\n", "", ""},
		{"*2\r\n$4\r\nport\r\n$4\r\n6379\r\n", "port\n6379", ""},
		{"*3\r\n$1\r\na\r\n$-1\r\n:1\r\n", "a\n\n1", ""},
		{"*2\r\n*2\r\n+a\r\n+b\r\n*1\r\n+c\r\n", "a\nb\nc", ""},
		{"-READONLY You can't write against a read only replica.\r\n", "", "READONLY You can't write against a read only replica."},
		{"*2\r\n+OK\r\n-ERR inner\r\n", "", "ERR inner"},
		{"", "", io.EOF.Error()},
		{"$3\r\nab", "", io.ErrUnexpectedEOF.Error()},
	}
	for _, tt := range tests {
		got, err := readFlat(bufio.NewReader(strings.NewReader(tt.in)))
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("%q: %q, %v; want the error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	// After an error inside an array, the rest of the array is read: the next reply is the next one.
	rd := bufio.NewReader(strings.NewReader("*2\r\n-ERR inner\r\n+after\r\n+next\r\n"))
	if _, err := readFlat(rd); err == nil {
		t.Fatal("no error for an error inside an array")
	}
	if got, err := readFlat(rd); got != "next" || err != nil {
		t.Errorf("the reply after: %q, %v", got, err)
	}
}
