package main

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// lines stamps each line of text one second after the previous one.
func lines(text string) []Line {
	var ls []Line
	at := time.Date(2026, 11, 29, 20, 0, 0, 0, time.UTC)
	for _, l := range strings.Split(strings.TrimPrefix(text, "\n"), "\n") {
		ls = append(ls, Line{At: at, Text: l})
		at = at.Add(time.Second)
	}
	return ls
}

// brief is what a test table compares: unit, name, status and the message's first line.
func brief(tests []Test) []string {
	var out []string
	for _, t := range tests {
		s := t.Unit + " | " + t.Name + " | " + string(t.Status)
		if t.Error != "" {
			s += " | " + strings.SplitN(t.Error, "\n", 2)[0]
		}
		out = append(out, s)
	}
	return out
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		output  string
		tests   []string
		started []string
		done    []string
		ended   bool
		aborted string
	}{
		{
			name: "a run to the end, its summary not counted twice",
			output: `
Cleanup: may take some time... OK
Starting test server at port 21079
[ready]: 18622
Testing unit/type/incr
[ok]: INCR against non existing key (1 ms)
[skip]: INCR over 32bit value
[1/2 done]: unit/type/incr (0 seconds)
Testing unit/latency-monitor
[ignore]: Not supported on external server
[ignore]: Test LPUSH and LPOP on plain nodes over 4GB: large memory flag not provided
[err]: LATENCY of expire events are correctly collected in tests/unit/latency-monitor.tcl
I/O error reading reply
    while executing
"[srv $level "client"] {*}$args"
[ok]: LATENCY HELP should not have unexpected options (0 ms)
[2/2 done]: unit/latency-monitor (5 seconds)

                   The End

Execution time of different units:
  0 seconds - unit/type/incr

!!! WARNING The following tests failed:

*** [err]: LATENCY of expire events are correctly collected in tests/unit/latency-monitor.tcl
[ok]: not a test (0 ms)`,
			tests: []string{
				"unit/type/incr | INCR against non existing key | ok",
				"unit/type/incr | INCR over 32bit value | skip",
				"unit/latency-monitor | Not supported on external server | ignore",
				"unit/latency-monitor | Test LPUSH and LPOP on plain nodes over 4GB: large memory flag not provided | ignore",
				"unit/latency-monitor | LATENCY of expire events are correctly collected | err | I/O error reading reply",
				"unit/latency-monitor | LATENCY HELP should not have unexpected options | ok",
			},
			started: []string{"unit/type/incr", "unit/latency-monitor"},
			done:    []string{"unit/type/incr", "unit/latency-monitor"},
			ended:   true,
		},
		{
			name: "a hang: runtest names the test in progress, then still prints The End",
			output: `
Testing unit/type/list
[ok]: BLPOP with a key (3 ms)
[TIMEOUT]: clients state report follows.
sock55ab8d2f7f50 => (IN PROGRESS) BLPOP: second list has an entry
Killing still running Redis server 1234

                   The End
`,
			tests: []string{
				"unit/type/list | BLPOP with a key | ok",
				"unit/type/list | BLPOP: second list has an entry | timeout | no progress within runtest's --timeout",
			},
			started: []string{"unit/type/list"},
			ended:   true,
			aborted: "timeout in unit/type/list",
		},
		{
			name: "an exception ends the run without The End",
			output: `
Testing unit/multi
[ok]: MULTI / EXEC basics (0 ms)
[exception]: Executing test client: I/O error reading reply.
I/O error reading reply
    while executing`,
			tests: []string{
				"unit/multi | MULTI / EXEC basics | ok",
				"unit/multi | (outside any test) | exception | Executing test client: I/O error reading reply.",
			},
			started: []string{"unit/multi"},
			aborted: "exception in unit/multi",
		},
		{
			name:   "nothing: runtest could not start",
			output: "You need tcl 8.5 or newer in order to run the Redis test",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Parse(lines(tc.output))
			if got := brief(o.Tests); !reflect.DeepEqual(got, tc.tests) {
				t.Errorf("tests:\n got %q\nwant %q", got, tc.tests)
			}
			if !reflect.DeepEqual(o.Started, tc.started) || !reflect.DeepEqual(o.Done, tc.done) {
				t.Errorf("started %q done %q, want %q %q", o.Started, o.Done, tc.started, tc.done)
			}
			if o.Ended != tc.ended || o.Aborted != tc.aborted {
				t.Errorf("ended %v aborted %q, want %v %q", o.Ended, o.Aborted, tc.ended, tc.aborted)
			}
		})
	}
}

// A failure's time window runs from the line before it to its own, so the proxy's lines in between can
// be put beside it.
func TestParseWindows(t *testing.T) {
	ls := lines(`
Testing unit/pubsub
[ok]: PUBLISH basics (0 ms)
[err]: PUBSUB count in tests/unit/pubsub.tcl
Expected 1 got 0`)
	o := Parse(ls)
	if len(o.Tests) != 2 {
		t.Fatalf("tests: %v", brief(o.Tests))
	}
	if got := o.Tests[1]; !got.Start.Equal(ls[1].At) || !got.End.Equal(ls[2].At) {
		t.Errorf("window %v–%v, want %v–%v", got.Start, got.End, ls[1].At, ls[2].At)
	}
	if got := o.Tests[0]; !got.Start.Equal(ls[0].At) {
		t.Errorf("the first test starts with its unit: %v, want %v", got.Start, ls[0].At)
	}
}
