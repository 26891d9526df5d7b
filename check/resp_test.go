package check

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

// TestReadReply: the kinds of reply a probe accepts, and what the rest become. How RESP is read is
// resp's (and its fuzz target's); this is what the probe makes of it.
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
		{"$5\r\nhelloXX", "", "not ended by CRLF"},
		{"$abc\r\n", "", "bad length"},
		{"$99999999999\r\n", "", "over the limit"},
		{"$1048577\r\n", "", "over the limit"}, // 1 MiB and a byte: more than INFO replication ever is
		{"*1\r\n+OK\r\n", "", "unexpected reply type"},
		{"%7000000000000000000\r\n", "", "over the limit"}, // a RESP3 map header once made the probe panic
		{"\r\n", "", "empty line"},
		{"+" + strings.Repeat("x", 70<<10) + "\r\n", "", "over the limit"},
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
	if !errors.As(err, &re) || string(re) != "NOAUTH x" {
		t.Errorf("error reply should be a RedisError, got %T %v", err, err)
	}
}
