package main

import (
	"regexp"
	"strings"
	"time"
)

// Status is what the suite said about one test.
type Status string

// The suite's own words ([ok], [err], …), plus timeout and not-run, which it does not print per test.
const (
	StatusOK        Status = "ok"
	StatusErr       Status = "err"
	StatusException Status = "exception" // a Tcl error outside any test: the whole run stops
	StatusTimeout   Status = "timeout"   // no progress for --timeout seconds: the whole run stops
	StatusSkip      Status = "skip"      // left out by name (--only, --skiptest)
	StatusIgnore    Status = "ignore"    // left out by tag (external:skip, slow, large-memory, …)
	StatusNotRun    Status = "not run"   // never reached: an earlier test stopped its run
)

// Failed reports whether the status counts as a failure.
func (s Status) Failed() bool {
	return s == StatusErr || s == StatusException || s == StatusTimeout || s == StatusNotRun
}

// Test is one test's outcome as the suite printed it.
type Test struct {
	Unit   string // e.g. unit/type/list
	Name   string // the test's name; for a tag-level [ignore] without one, the reason
	Status Status
	Error  string // the suite's message for err, exception and timeout
	// Start and End are when the output line before this test's line and its own line arrived, so that
	// the proxy's log lines in between can be put beside a failure.
	Start, End time.Time
}

// Line is one line of runtest's output and when the runner read it.
type Line struct {
	At   time.Time
	Text string
}

// Outcome is one runtest run, parsed.
type Outcome struct {
	Tests   []Test
	Started []string // units in the order they began ("Testing unit/x")
	Done    []string // units that ran to their end ("[n/m done]: unit/x")
	// Ended is set when runtest printed "The End": it went through its whole list, unless Aborted.
	Ended bool
	// Aborted says why the run stopped before its list was through (an exception or a timeout).
	Aborted string
}

var (
	okLine   = regexp.MustCompile(`^\[ok\]: (.*) \(\d+ ms\)$`)
	doneLine = regexp.MustCompile(`^\[\d+/\d+ done\]: (\S+) \(\d+ seconds\)$`)
	// show_clients_state after a timeout: "sock5581… => (IN PROGRESS) <test name>".
	inProgress = regexp.MustCompile(`=> \(IN PROGRESS\) (.*)$`)
)

// Parse reads runtest's output. It expects TERM not to be an xterm, so that the status words carry no
// colour codes (tests/support/util.tcl, color_term).
func Parse(lines []Line) Outcome {
	var o Outcome
	unit := ""
	var last time.Time // when the previous test line (or unit start) arrived
	var open *Test     // the failure whose message lines are still coming
	add := func(t Test, at time.Time) *Test {
		t.Unit, t.Start, t.End = unit, last, at
		if t.Start.IsZero() {
			t.Start = at
		}
		o.Tests = append(o.Tests, t)
		last = at
		return &o.Tests[len(o.Tests)-1]
	}
	for i, l := range lines {
		text := strings.TrimRight(l.Text, "\r")
		status, data, isStatus := statusLine(text)
		if open != nil && !isStatus && !strings.HasPrefix(text, "Testing ") && text != "" {
			open.Error = strings.TrimSpace(open.Error + "\n" + text)
			continue
		}
		open = nil
		switch {
		case strings.HasPrefix(text, "Testing "):
			unit = strings.TrimSpace(strings.TrimPrefix(text, "Testing "))
			o.Started = append(o.Started, unit)
			last = l.At
		case doneLine.MatchString(text):
			o.Done = append(o.Done, doneLine.FindStringSubmatch(text)[1])
		case strings.TrimSpace(text) == "The End":
			o.Ended = true
			return o // what follows is runtest's summary, which repeats the failures
		case !isStatus:
			// A test's own output, or runtest's chatter.
		case status == "ok":
			name := data
			if m := okLine.FindStringSubmatch(text); m != nil {
				name = m[1]
			}
			add(Test{Name: name, Status: StatusOK}, l.At)
		case status == "err":
			// "[err]: <name> in tests/unit/x.tcl", the message on the lines that follow.
			name := data
			if i := strings.LastIndex(name, " in tests/"); i >= 0 {
				name = name[:i]
			}
			open = add(Test{Name: name, Status: StatusErr}, l.At)
		case status == "skip":
			add(Test{Name: data, Status: StatusSkip}, l.At)
		case status == "ignore":
			add(Test{Name: data, Status: StatusIgnore}, l.At)
		case status == "exception":
			open = add(Test{Name: "(outside any test)", Status: StatusException, Error: data}, l.At)
			o.Aborted = "exception in " + unit
		case status == "TIMEOUT":
			t := add(Test{Name: "(unknown test)", Status: StatusTimeout, Error: "no progress within runtest's --timeout"}, l.At)
			o.Aborted = "timeout in " + unit
			open = nil
			// The test in progress is named on the lines that follow.
			for _, rest := range lines[i+1:] {
				if m := inProgress.FindStringSubmatch(rest.Text); m != nil {
					t.Name = strings.TrimSpace(m[1])
					break
				}
			}
		}
	}
	return o
}

// statusLine splits "[word]: data" for the status words the test server prints.
func statusLine(text string) (status, data string, ok bool) {
	rest, found := strings.CutPrefix(text, "[")
	if !found {
		return "", "", false
	}
	word, data, found := strings.Cut(rest, "]: ")
	if !found {
		return "", "", false
	}
	switch word {
	case "ok", "err", "skip", "ignore", "exception", "TIMEOUT":
		return word, strings.TrimSpace(data), true
	}
	return "", "", false
}
