package check

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

func TestReadReply(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{"+OK\r\n", "OK", ""},
		{":42\r\n", "42", ""},
		{"$5\r\nhello\r\n", "hello", ""},
		{"$0\r\n\r\n", "", ""},
		{"-WRONGPASS invalid username-password pair\r\n", "", "WRONGPASS"},
		{"$-1\r\n", "", "nil reply"},
		{"$5\r\nhelloXX", "", "not terminated"},
		{"$abc\r\n", "", "bad bulk length"},
		{"$99999999999\r\n", "", "too large"},
		{"*1\r\n+OK\r\n", "", "unexpected reply type"},
		{"\r\n", "", "empty line"},
		{"+" + strings.Repeat("x", 70<<10) + "\r\n", "", "too large"},
		{"$10\r\nshort", "", "EOF"},
	}
	for _, tt := range tests {
		got, err := readReply(bufio.NewReaderSize(strings.NewReader(tt.in), 16))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err = %v, want %q", truncate(tt.in), err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: got %q, %v; want %q", truncate(tt.in), got, err, tt.want)
		}
	}
	var re RedisError
	_, err := readReply(bufio.NewReader(strings.NewReader("-NOAUTH x\r\n")))
	if !errors.As(err, &re) {
		t.Errorf("error reply should be a RedisError, got %T", err)
	}
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "$5\r\nhello\r\n", "-ERR x\r\n", ":1\r\n", "$-1\r\n", "*2\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := readReply(bufio.NewReader(strings.NewReader(string(in))))
		if err == nil && len(got) > len(in) {
			t.Fatalf("reply %d bytes from %d bytes of input", len(got), len(in))
		}
	})
}
