package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/bench/harness"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

// Options say what to run and where.
type Options struct {
	Suite    *Suite
	ProxyBin string // sentinel-proxy, for the proxied paths
	Paths    []Path
	Units    []string // in the order runtest runs them
	Out      string   // directory for runtest's raw output and the proxy's log, one file per run
	Tags     string   // runtest's --tags; DefaultTags unless a run wants otherwise
	// Timeout is runtest's --timeout: how long it waits for a test to finish before it gives up.
	Timeout time.Duration
	// EventLoops is the proxy's [proxy].event_loops. 1: a few blocking tests send a command on one
	// connection and then one on another that must reach the server after it (XREADGROUP … BLOCK, then
	// DEL on a second client, without waiting for the first to block); with two loops the second can be
	// forwarded first and the test fails or hangs (seen with 2: stream-cgroups' "Blocking XREADGROUP:
	// key deleted").
	EventLoops int
	// Prefix starts the names of the files in Out, so that re-runs do not overwrite the first runs.
	Prefix   string
	Progress io.Writer // a line per finished unit; nil for none
}

// PathRun is what one path's runs produced. A run that stops early (an exception, a timeout) is followed
// by another on a fresh topology, from the unit after the one that stopped it, so one hang costs one unit.
type PathRun struct {
	Path    Path
	Tests   []Test
	Events  []ProxyEvent // the proxy's warn and error lines over all runs
	Aborts  []string     // why runs stopped early
	Runs    int
	Elapsed time.Duration // the suite's time, without starting topologies
	Err     error         // the suite could not run; Tests hold what it did before
}

// Run runs every path in turn, never side by side (timing tests would feel each other), and compares
// each proxied path with the direct one.
func Run(o Options) *Report {
	var runs []*PathRun
	for _, p := range o.Paths {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "%s: %d units\n", p.Name, len(o.Units))
		}
		runs = append(runs, RunPath(o, p))
	}
	return NewReport(runs)
}

// RunPath runs the units on p until every unit has had its turn.
func RunPath(o Options, p Path) *PathRun {
	pr := &PathRun{Path: p}
	remaining := o.Units
	for len(remaining) > 0 {
		pr.Runs++
		out, events, elapsed, err := runOnce(o, p, remaining, pr.Runs)
		pr.Tests = append(pr.Tests, out.Tests...)
		pr.Events = append(pr.Events, events...)
		pr.Elapsed += elapsed
		if err != nil {
			pr.Err = fmt.Errorf("%s, run %d: %w", p.Name, pr.Runs, err)
			return pr
		}
		if out.Aborted == "" && out.Ended {
			return pr
		}
		why := out.Aborted
		if why == "" {
			why = "runtest exited before the end of its list"
		}
		pr.Aborts = append(pr.Aborts, why)
		if len(out.Started) == 0 {
			pr.Err = fmt.Errorf("%s, run %d: %s before any unit started", p.Name, pr.Runs, why)
			return pr
		}
		last := slices.Index(remaining, out.Started[len(out.Started)-1])
		if last < 0 {
			pr.Err = fmt.Errorf("%s, run %d: runtest ran %s, which was not asked for", p.Name, pr.Runs, out.Started[len(out.Started)-1])
			return pr
		}
		remaining = remaining[last+1:]
	}
	return pr
}

// TopologyOptions is the deployment every run gets afresh: the suite leaves configuration behind (CONFIG
// SET, ACL users, scripts), so no run inherits another's master.
func TopologyOptions(dir string) redistest.Options {
	return redistest.Options{
		Replicas:  1,
		Sentinels: 3,
		Dir:       dir,
		// A test that blocks the server (DEBUG SLEEP, a slow script) must never look like a dead master
		// to Sentinel: a failover in the middle of the suite would fail the tests after it on every path.
		DownAfter:       60 * time.Second,
		FailoverTimeout: 60 * time.Second,
		// As Redis's CI configures the server it runs the suite against externally: DEBUG (needs:debug
		// tests), CONFIG SET of protected settings such as dir, and MODULE (no default unit loads one).
		NodeConf: []string{"enable-debug-command yes", "enable-protected-configs yes", "enable-module-command yes"},
	}
}

// runOnce starts a fresh topology (and proxy), runs runtest on units and parses what it printed.
func runOnce(o Options, p Path, units []string, n int) (Outcome, []ProxyEvent, time.Duration, error) {
	dir, err := os.MkdirTemp("", "redissuite-")
	if err != nil {
		return Outcome{}, nil, 0, err
	}
	defer os.RemoveAll(dir)
	topo, err := redistest.Start(TopologyOptions(dir))
	if err != nil {
		return Outcome{}, nil, 0, fmt.Errorf("start topology: %w", err)
	}
	defer topo.Close()
	addr := topo.Nodes[0].Addr
	var proxy *harness.Process
	if p.Proxied {
		proxy, err = harness.StartSentinelProxyWith(o.ProxyBin, topo, dir, harness.ProxyOptions{
			LogLevel: "info", Extra: fmt.Sprintf("event_loops = %d", o.EventLoops), Master: p.Master})
		if err != nil {
			return Outcome{}, nil, 0, fmt.Errorf("start sentinel-proxy: %w", err)
		}
		defer func() {
			if proxy != nil {
				proxy.Stop()
			}
		}()
		if err := harness.WaitServedBy(proxy.Addr, "", addr, 30*time.Second); err != nil {
			return Outcome{}, nil, 0, fmt.Errorf("sentinel-proxy never routed to the master: %w", err)
		}
		addr = proxy.Addr
	}
	_, portText, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portText)
	base := filepath.Join(o.Out, fmt.Sprintf("%s%s-%d", o.Prefix, p.Name, n))
	start := time.Now()
	lines, runErr := runSuite(o, port, units, base+".txt")
	elapsed := time.Since(start)
	out := Parse(lines)
	if runErr != nil && len(out.Started) == 0 {
		return out, nil, elapsed, runErr
	}
	var events []ProxyEvent
	if proxy != nil {
		proxy.Stop()
		logPath := proxy.LogPath
		proxy = nil
		if events, err = keepProxyLog(logPath, base+"-proxy.log"); err != nil {
			return out, events, elapsed, err
		}
	}
	return out, events, elapsed, nil
}

// runSuite runs runtest and returns its output lines, each stamped with when it arrived; they are
// written to raw as well. runtest's exit status is not an error: failed tests make it exit 1.
func runSuite(o Options, port int, units []string, raw string) ([]Line, error) {
	f, err := os.Create(raw)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	args := o.Suite.Args(port, units, o.Tags, o.Timeout)
	fmt.Fprintf(f, "# %s: ./runtest %s\n", o.Suite.Dir, strings.Join(args, " "))
	cmd := exec.Command("./runtest", args...)
	cmd.Dir = o.Suite.Dir
	// Not an xterm, so the status words come without colour codes (util.tcl, color_term).
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "TERM=") }), "TERM=dumb")
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	cmd.Stdout, cmd.Stderr = wr, wr
	ownGroup(cmd)
	if err := cmd.Start(); err != nil {
		wr.Close()
		return nil, fmt.Errorf("start runtest: %w", err)
	}
	wr.Close()
	exited := make(chan error, 1)
	go waitRuntest(cmd, exited)
	// runtest stops itself after --timeout without progress; this is for a runtest that cannot even do
	// that. Its test client may also outlive it and hold the pipe open, hence the kill on exit.
	watchdog := time.AfterFunc(o.Timeout+2*time.Minute, func() { killGroup(cmd) })
	defer watchdog.Stop()
	var lines []Line
	br := bufio.NewReader(rd)
	for {
		text, err := br.ReadString('\n')
		if text != "" {
			watchdog.Reset(o.Timeout + 2*time.Minute)
			text = strings.TrimRight(text, "\n")
			lines = append(lines, Line{At: time.Now(), Text: text})
			fmt.Fprintln(f, text)
			if o.Progress != nil && doneLine.MatchString(text) {
				fmt.Fprintln(o.Progress, "  "+text)
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				killGroup(cmd)
				<-exited
				return lines, fmt.Errorf("read runtest output: %w", err)
			}
			break
		}
	}
	if err := <-exited; err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return lines, fmt.Errorf("runtest: %w", err)
		}
	}
	return lines, nil
}

// waitRuntest waits for runtest itself, then ends whatever it left running, so that the output pipe
// closes.
func waitRuntest(cmd *exec.Cmd, exited chan<- error) {
	err := cmd.Wait()
	killGroup(cmd)
	exited <- err
}

// keepProxyLog copies the proxy's log next to the suite's output and returns its warn and error lines.
func keepProxyLog(from, to string) ([]ProxyEvent, error) {
	data, err := os.ReadFile(from)
	if err != nil {
		return nil, fmt.Errorf("proxy log: %w", err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		return nil, fmt.Errorf("proxy log: %w", err)
	}
	return ReadProxyEvents(to)
}
