package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Regression is a test that passed directly and did not pass through a proxy path.
type Regression struct {
	Path   string
	Test   Test         // its outcome through the proxy
	Events []ProxyEvent // the proxy's warn and error lines while it ran
	// Disrupted is set when, in a run where it failed, the proxy logged closing or refusing clients
	// since its unit began: the proxy explains the failure, so Confirm keeps it whatever re-runs show.
	Disrupted bool
	// How often it passed directly and failed through the proxy, over the first run and Confirm's.
	DirectPassed, DirectRuns, ProxyFailed, ProxyRuns int
	key                                              testKey
}

// Counts sum up one path's tests as the suite printed them.
type Counts struct {
	Passed, Failed, Skipped int
}

// Count sums up tests; skipped holds both [skip] and [ignore] lines (a tag-level [ignore] stands for a
// whole block of tests the suite does not name).
func Count(tests []Test) Counts {
	var c Counts
	for _, t := range tests {
		switch {
		case t.Status == StatusOK:
			c.Passed++
		case t.Status.Failed():
			c.Failed++
		default:
			c.Skipped++
		}
	}
	return c
}

// testKey names a test within a run: a unit may run a test of the same name more than once (once per
// encoding, say), so the n-th occurrence is part of the name.
type testKey struct {
	unit, name string
	n          int
}

func keys(tests []Test) []testKey {
	seen := map[[2]string]int{}
	out := make([]testKey, len(tests))
	for i, t := range tests {
		k := [2]string{t.Unit, t.Name}
		out[i] = testKey{t.Unit, t.Name, seen[k]}
		seen[k]++
	}
	return out
}

// outcome is a test's result in a path's runs, with the proxy's lines that may explain a failure.
type outcome struct {
	test      Test
	events    []ProxyEvent
	disrupted bool
}

// outcomes indexes a path's tests.
func outcomes(pr *PathRun) map[testKey]outcome {
	m := map[testKey]outcome{}
	unitStart := map[string]time.Time{}
	for i, k := range keys(pr.Tests) {
		t := pr.Tests[i]
		if _, ok := unitStart[t.Unit]; !ok {
			unitStart[t.Unit] = t.Start
		}
		o := outcome{test: t}
		if t.Status.Failed() {
			o.events, o.disrupted = eventsFor(pr.Events, unitStart[t.Unit], t.Start, t.End)
		}
		m[k] = o
	}
	return m
}

// Compare lists the tests that passed on direct and not on via, in the order the suite ran them. A test
// missing from via's output (its run stopped earlier) counts as not passed.
func Compare(direct, via *PathRun) []Regression {
	got := outcomes(via)
	var regs []Regression
	for i, k := range keys(direct.Tests) {
		d := direct.Tests[i]
		if d.Status != StatusOK {
			continue
		}
		v, ok := got[k]
		if !ok {
			why := "not in the output through the proxy"
			if via.Err != nil {
				why += ": " + via.Err.Error()
			} else if len(via.Aborts) > 0 {
				why += " (runs that stopped early: " + strings.Join(via.Aborts, "; ") + ")"
			}
			v.test = Test{Unit: d.Unit, Name: d.Name, Status: StatusNotRun, Error: why}
		}
		if v.test.Status == StatusOK {
			continue
		}
		regs = append(regs, Regression{Path: via.Path.Name, Test: v.test, Events: v.events, Disrupted: v.disrupted,
			DirectPassed: 1, DirectRuns: 1, ProxyFailed: 1, ProxyRuns: 1, key: k})
	}
	return regs
}

// Report is the comparison of every path's runs with the direct one.
type Report struct {
	Runs        []*PathRun
	Regressions []Regression
	Flaky       []Regression // failed through a proxy once, but Confirm saw another outcome too
}

// NewReport compares each proxied run with the direct run, when there is one.
func NewReport(runs []*PathRun) *Report {
	r := &Report{Runs: runs}
	var direct *PathRun
	for _, pr := range runs {
		if !pr.Path.Proxied {
			direct = pr
		}
	}
	if direct == nil {
		return r
	}
	for _, pr := range runs {
		if pr.Path.Proxied {
			r.Regressions = append(r.Regressions, Compare(direct, pr)...)
		}
	}
	return r
}

// Failed reports whether the runner must exit non-zero: a test passed directly and not through a proxy,
// or the suite could not run on some path.
func (r *Report) Failed() bool {
	if len(r.Regressions) > 0 {
		return true
	}
	for _, pr := range r.Runs {
		if pr.Err != nil {
			return true
		}
	}
	return false
}

// Write prints the table of counts, then each path's failures and regressions.
func (r *Report) Write(w io.Writer) {
	fmt.Fprintln(w, "| path | passed | failed | skipped | runs (stopped early) | suite time |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, pr := range r.Runs {
		c := Count(pr.Tests)
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d (%d) | %s |\n", pr.Path.Name, c.Passed, c.Failed, c.Skipped, pr.Runs,
			len(pr.Aborts), pr.Elapsed.Round(time.Second))
	}
	for _, pr := range r.Runs {
		if pr.Err != nil {
			fmt.Fprintf(w, "\n%s: the suite could not run: %v\n", pr.Path.Name, pr.Err)
		}
		for _, a := range pr.Aborts {
			fmt.Fprintf(w, "\n%s: a run stopped early (%s); the next run started after that unit\n", pr.Path.Name, a)
		}
		if pr.Path.Proxied {
			continue
		}
		var failed []Test
		for _, t := range pr.Tests {
			if t.Status.Failed() {
				failed = append(failed, t)
			}
		}
		if len(failed) > 0 {
			fmt.Fprintf(w, "\nFailed on %s, so not compared (%d):\n", pr.Path.Name, len(failed))
			for _, t := range failed {
				writeTest(w, t, nil)
			}
		}
	}
	for _, pr := range r.Runs {
		if !pr.Path.Proxied {
			continue
		}
		var regs []Regression
		for _, reg := range r.Regressions {
			if reg.Path == pr.Path.Name {
				regs = append(regs, reg)
			}
		}
		fmt.Fprintf(w, "\nPassed direct, not through %s (%d):\n", pr.Path.Name, len(regs))
		for _, reg := range regs {
			writeRegression(w, reg)
		}
	}
	if len(r.Flaky) > 0 {
		fmt.Fprintf(w, "\nFlaky, not counted: failed through a proxy once, another outcome when run again (%d):\n", len(r.Flaky))
		for _, reg := range r.Flaky {
			writeRegression(w, reg)
		}
	}
}

func writeRegression(w io.Writer, reg Regression) {
	writeTest(w, reg.Test, reg.Events)
	if reg.ProxyRuns > 1 {
		fmt.Fprintf(w, "    (failed through %s in %d of %d runs, passed direct in %d of %d)\n", reg.Path, reg.ProxyFailed, reg.ProxyRuns, reg.DirectPassed, reg.DirectRuns)
	}
	if reg.Disrupted {
		fmt.Fprintf(w, "    (the proxy closed or refused clients while its unit ran)\n")
	}
}

// writeTest prints one test, the first lines of the suite's message and the proxy's lines beside it.
func writeTest(w io.Writer, t Test, events []ProxyEvent) {
	fmt.Fprintf(w, "- %s: %s [%s]\n", t.Unit, t.Name, t.Status)
	lines := errorLines(t.Error)
	const most = 4
	if len(lines) > most {
		lines = append(lines[:most], "…")
	}
	for _, l := range lines {
		if l != "" {
			fmt.Fprintf(w, "    %s\n", strings.TrimSpace(l))
		}
	}
	for i, e := range events {
		if i == most {
			fmt.Fprintf(w, "    proxy: … %d more\n", len(events)-most)
			break
		}
		fmt.Fprintf(w, "    proxy %s: %s\n", e.At.Format("15:04:05.000"), e.Text)
	}
}

// errorLines splits the suite's message into lines. runtest cuts the first ten characters off a message
// that is not an assertion ("I/O error reading reply" becomes "reading reply"); the next line of
// errorInfo repeats it whole, so the cut one is dropped.
func errorLines(msg string) []string {
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	if len(lines) > 1 && strings.HasSuffix(strings.TrimSpace(lines[1]), strings.TrimSpace(lines[0])) {
		lines = lines[1:]
	}
	return lines
}
