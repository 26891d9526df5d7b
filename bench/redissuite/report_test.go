package main

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCompare(t *testing.T) {
	at := time.Date(2026, 11, 29, 20, 0, 0, 0, time.UTC)
	sec := func(n int) time.Time { return at.Add(time.Duration(n) * time.Second) }
	test := func(unit, name string, s Status, start, end int) Test {
		return Test{Unit: unit, Name: name, Status: s, Start: sec(start), End: sec(end)}
	}
	direct := &PathRun{Path: Path{Name: "direct"}, Tests: []Test{
		test("unit/a", "same", StatusOK, 0, 1),
		test("unit/a", "closed", StatusOK, 1, 2),
		test("unit/a", "after the close", StatusOK, 2, 3),
		test("unit/a", "fails everywhere", StatusErr, 3, 4),
		test("unit/c", "twice", StatusOK, 4, 5),
		test("unit/c", "twice", StatusOK, 5, 6),
		test("unit/b", "never reached", StatusOK, 6, 7),
		test("unit/b", "skipped", StatusIgnore, 7, 8),
	}}
	via := &PathRun{Path: Path{Name: "tcp", Proxied: true}, Aborts: []string{"timeout in unit/a"},
		Tests: []Test{
			test("unit/a", "same", StatusOK, 0, 1),
			test("unit/a", "closed", StatusErr, 1, 20),
			test("unit/a", "after the close", StatusErr, 20, 30),
			test("unit/a", "fails everywhere", StatusErr, 30, 31),
			test("unit/c", "twice", StatusOK, 31, 32),
			test("unit/c", "twice", StatusTimeout, 32, 40),
		},
		Events: []ProxyEvent{
			{At: sec(10), Name: "no_master", Text: "no_master sessions_closed=1", Disrupts: true},
			{At: sec(11), Name: "server_down", Text: "server_down"},
			{At: sec(39), Name: "replica_fallback", Text: "replica_fallback"},
		}}
	var got []string
	for _, r := range Compare(direct, via) {
		var events []string
		for _, e := range r.Events {
			events = append(events, e.Name)
		}
		got = append(got, r.Test.Name+" | "+string(r.Test.Status)+" | "+strings.Join(events, ",")+" | "+map[bool]string{true: "disrupted", false: "-"}[r.Disrupted])
	}
	want := []string{
		"closed | err | no_master,server_down | disrupted",
		"after the close | err | no_master | disrupted", // the session closed earlier in its unit
		"twice | timeout | replica_fallback | -",        // the second "twice"; another unit: only lines near it
		"never reached | not run |  | -",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("regressions:\n got %q\nwant %q", got, want)
	}
	if c := Count(via.Tests); c != (Counts{Passed: 2, Failed: 4}) {
		t.Errorf("counts %+v", c)
	}
}

func TestSettle(t *testing.T) {
	regs := []Regression{
		{Test: Test{Name: "fails every time"}, DirectPassed: 2, DirectRuns: 2, ProxyFailed: 2, ProxyRuns: 2},
		{Test: Test{Name: "failed once"}, DirectPassed: 2, DirectRuns: 2, ProxyFailed: 1, ProxyRuns: 2},
		{Test: Test{Name: "fails direct too"}, DirectPassed: 1, DirectRuns: 2, ProxyFailed: 2, ProxyRuns: 2},
		{Test: Test{Name: "the proxy closed its session once"}, DirectPassed: 2, DirectRuns: 2, ProxyFailed: 1, ProxyRuns: 2, Disrupted: true},
	}
	kept, flaky := settle(regs)
	names := func(rs []Regression) (n []string) {
		for _, r := range rs {
			n = append(n, r.Test.Name)
		}
		return n
	}
	if got := names(kept); !reflect.DeepEqual(got, []string{"fails every time", "the proxy closed its session once"}) {
		t.Errorf("kept %q", got)
	}
	if got := names(flaky); !reflect.DeepEqual(got, []string{"failed once", "fails direct too"}) {
		t.Errorf("flaky %q", got)
	}
}

func TestReportFailed(t *testing.T) {
	ok := &Report{Runs: []*PathRun{{Path: Path{Name: "direct"}}}, Flaky: []Regression{{}}}
	if ok.Failed() {
		t.Error("flaky tests alone must not fail the run")
	}
	broken := &Report{Runs: []*PathRun{{Path: Path{Name: "tcp", Proxied: true}, Err: errTest}}}
	if !broken.Failed() {
		t.Error("a path where the suite could not run must fail the run")
	}
	if !(&Report{Regressions: []Regression{{}}}).Failed() {
		t.Error("a regression must fail the run")
	}
}

var errTest = &testError{}

type testError struct{}

func (*testError) Error() string { return "test" }

func TestErrorLines(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want []string
	}{
		{"reading reply\nI/O error reading reply\n    while executing", []string{"I/O error reading reply", "    while executing"}},
		{"Expected 1 got 0", []string{"Expected 1 got 0"}},
		{"Expected 1 got 0\n(context: ...)", []string{"Expected 1 got 0", "(context: ...)"}},
	} {
		if got := errorLines(tc.msg); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("errorLines(%q) = %q, want %q", tc.msg, got, tc.want)
		}
	}
}
