package main

import "testing"

func TestParseProxyEvent(t *testing.T) {
	for _, tc := range []struct {
		line     string
		ok       bool
		text     string
		disrupts bool
	}{
		{`{"level":"info","event":"server_up","node":"127.0.0.1:6380","time":"2026-11-24T23:02:43.452338Z","message":"node is UP"}`, false, "", false},
		{`{"level":"warn","event":"server_down","node":"127.0.0.1:6380","check_status":"L7STS","time":"2026-11-24T23:02:43.452338Z","message":"node is DOWN"}`,
			true, "server_down check_status=L7STS node=127.0.0.1:6380", false},
		{`{"level":"error","event":"no_master","group":"mymaster","sessions_closed":0,"time":"2026-11-24T23:02:43.465259Z","message":"no verified master"}`,
			true, "no_master group=mymaster sessions_closed=0", true},
		{`{"level":"warn","event":"master_switched","sessions_closed":4,"time":"2026-11-24T23:04:21.258224Z","message":"master switched"}`,
			true, "master_switched sessions_closed=4", true},
		{`{"level":"warn","event":"replica_fallback","time":"2026-11-24T23:02:43.452344Z","message":"no healthy replica"}`,
			true, "replica_fallback", false},
		{`{"level":"warn","time":"2026-11-24T23:02:43.452344Z","message":"no event field"}`, true, "no event field", false},
		{`not json`, false, "", false},
	} {
		e, ok := parseProxyEvent([]byte(tc.line))
		if ok != tc.ok || e.Text != tc.text || e.Disrupts != tc.disrupts {
			t.Errorf("%s:\n got %v %q disrupts=%v\nwant %v %q disrupts=%v", tc.line, ok, e.Text, e.Disrupts, tc.ok, tc.text, tc.disrupts)
		}
		if ok && e.At.IsZero() {
			t.Errorf("%s: no time", tc.line)
		}
	}
}
