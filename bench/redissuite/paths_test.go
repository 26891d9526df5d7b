package main

import "testing"

func TestParsePaths(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{"all", "direct, tcp, resp, multiplex, durable", false},
		{"durable,resp", "resp, durable", false},
		{"multiplex,direct", "direct, multiplex", false},
		{"tcp,direct", "direct, tcp", false}, // direct first: the others are compared with it
		{"tcp", "tcp", false},
		{" direct , ", "direct", false},
		{"resp,tcp", "tcp, resp", false},
		{"udp", "", true},
		{"", "", true},
	} {
		paths, err := ParsePaths(tc.in)
		if (err != nil) != tc.err || err == nil && pathNames(paths) != tc.want {
			t.Errorf("ParsePaths(%q) = %q, %v; want %q, error %v", tc.in, pathNames(paths), err, tc.want, tc.err)
		}
	}
}
