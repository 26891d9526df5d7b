package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
	"github.com/sentinel-proxy/sentinel-proxy/server"
	"github.com/sentinel-proxy/sentinel-proxy/stats"
	"github.com/sentinel-proxy/sentinel-proxy/switchover"
)

// The planned switchover (sentinel-proxy switchover, POST /-/switchover) on real processes: under write
// load in both modes, --to through the command line, a timeout mid-way, a target that dies between the
// catch-up and the failover, a Sentinel that refuses SENTINEL FAILOVER, and two switchovers at once.
// After each one: the replicas' priorities and the Sentinels' INFO periods are as before, the surviving
// master takes a write at once (no CLIENT PAUSE left), the log has the events, and the failover history
// has the switch (or, after an abort, none).

// switchoverSetup is a topology of a master, two replicas and three Sentinels, and a proxy in front of it
// whose switchovers call hook after each step that succeeded.
type switchoverSetup struct {
	topo *redistest.Topology
	cfg  *config.Config
	p    *runningProxy
	path string // the proxy's configuration file, for the command line
	// before are the replica-priority of every node, and the INFO period of every Sentinel, at the start.
	priorities  map[string]string
	infoPeriods map[string]string
}

// startSwitchoverSetup starts the topology and the proxy in mode, writes the configuration where the
// command line can read it, and waits until a switchover could start: the master routed, both replicas
// probed and in the replica pool.
func startSwitchoverSetup(t *testing.T, mode string, topoOpts redistest.Options, hook func(step string), edit func(*config.Config)) *switchoverSetup {
	t.Helper()
	topoOpts.Replicas, topoOpts.Sentinels, topoOpts.Password = 2, 3, testPassword
	topo := redistest.New(t, topoOpts)
	doc := testConfigDoc(t, topo, topo.Name)
	path := filepath.Join(t.TempDir(), "sentinel-proxy.toml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	inMode(cfg, mode)
	if edit != nil {
		edit(cfg)
	}
	var opts server.Options
	if hook != nil {
		opts.SwitchoverStep = func(group, step string) {
			if group == topo.Name {
				hook(step)
			}
		}
	}
	p := startProxyWith(t, cfg, opts)
	waitRoutedTo(t, p.master, topo.Nodes[0].Addr, 10*time.Second)
	err = redistest.Eventually(10*time.Second, func() error {
		for _, l := range statsJSON(t, p).Groups[0].Listeners {
			if l.Role == "replica" && len(l.Backends) != 2 {
				return fmt.Errorf("replica pool %v", l.Backends)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &switchoverSetup{topo: topo, cfg: cfg, p: p, path: path}
	s.priorities = s.readPriorities(t)
	s.infoPeriods = s.readInfoPeriods(t)
	return s
}

// readPriorities is CONFIG GET replica-priority on every running node.
func (s *switchoverSetup) readPriorities(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range s.topo.Nodes {
		if n.Pid() == 0 {
			continue
		}
		r, err := redistest.Do(n.Addr, testPassword, "CONFIG", "GET", "replica-priority")
		if err != nil {
			t.Fatalf("%s: CONFIG GET replica-priority: %v", n.Addr, err)
		}
		out[n.Addr] = strings.TrimPrefix(r, "replica-priority\n")
	}
	return out
}

// readInfoPeriods is each Sentinel's INFO period (SENTINEL DEBUG), which a switchover lowers while the
// Sentinel must learn the steered priorities.
func (s *switchoverSetup) readInfoPeriods(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, sn := range s.topo.Sentinels {
		r, err := redistest.Do(sn.Addr, "", "SENTINEL", "DEBUG")
		if err != nil {
			t.Fatalf("sentinel %s: SENTINEL DEBUG: %v", sn.Addr, err)
		}
		f := strings.Split(r, "\n")
		if i := slices.Index(f, "INFO-PERIOD"); i >= 0 && i+1 < len(f) {
			out[sn.Addr] = f[i+1]
		} else {
			t.Fatalf("sentinel %s: no INFO-PERIOD in SENTINEL DEBUG: %q", sn.Addr, r)
		}
	}
	return out
}

// checkRestored checks what a switchover must leave as it found it, whatever ended it: every running
// node's replica-priority and every Sentinel's INFO period as at the start, and master (the master that
// survived it) taking a write directly, at once: no CLIENT PAUSE left on it.
func (s *switchoverSetup) checkRestored(t *testing.T, master string) {
	t.Helper()
	now := s.readPriorities(t)
	for addr, v := range now {
		if want, ok := s.priorities[addr]; ok && v != want {
			t.Errorf("replica-priority of %s is %s after the switchover, was %s", addr, v, want)
		}
	}
	for addr, v := range s.readInfoPeriods(t) {
		if want := s.infoPeriods[addr]; v != want {
			t.Errorf("Sentinel %s's INFO period is %s after the switchover, was %s", addr, v, want)
		}
	}
	c, err := redistest.Dial(master, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if r, err := c.DoWithin(time.Second, "SET", "after-switchover", "1"); err != nil || r != "OK" {
		t.Errorf("a write directly to the master %s: %q %v after %s (writes still paused?)", master, r, err,
			time.Since(start).Round(time.Millisecond))
	}
}

// switchoverHTTP asks the proxy for a switchover with POST /-/switchover and returns the status and the
// lines of the answer.
func switchoverHTTP(t *testing.T, p *runningProxy, form url.Values) (int, []string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+p.stats+"/-/switchover", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("admin", "stats-pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("POST /-/switchover: %v", err)
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.Split(strings.TrimSpace(string(body)), "\n")
}

// switchoverCLI runs `sentinel-proxy switchover -c path args...` as an operator does and returns what it
// printed and its exit status.
func switchoverCLI(t *testing.T, bin, path string, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, append([]string{"switchover", "-c", path}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil {
		return out.String(), 0
	}
	if _, ok := err.(*exec.ExitError); !ok {
		t.Fatalf("switchover command: %v", err)
	}
	return out.String(), exitCode(err)
}

// logEvents are the proxy's log lines whose event is name, decoded.
func logEvents(t *testing.T, logs, name string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, `"event":"`+name+`"`) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// checkEvents checks the log of exactly one switchover of the test: one switchover_started naming the
// target, then one switchover_completed, or one switchover_aborted in step abortedIn, with the time of
// each step it ran.
func checkEvents(t *testing.T, logs, target, abortedIn string) (end map[string]any) {
	t.Helper()
	started := logEvents(t, logs, "switchover_started")
	completed := logEvents(t, logs, "switchover_completed")
	aborted := logEvents(t, logs, "switchover_aborted")
	if len(started) != 1 {
		t.Errorf("%d switchover_started lines, want 1", len(started))
	} else if started[0]["target"] != target || started[0]["group"] == "" || started[0]["old_master"] == "" {
		t.Errorf("switchover_started: %v, want target %s", started[0], target)
	}
	if abortedIn == "" {
		if len(completed) != 1 || len(aborted) != 0 {
			t.Fatalf("%d switchover_completed and %d switchover_aborted lines, want 1 and 0", len(completed), len(aborted))
		}
		end = completed[0]
		for _, f := range []string{"choose_ms", "steer_ms", "hold_ms", "catch_up_ms", "failover_ms", "release_ms", "verify_ms", "rejoin_ms", "total_ms", "held_ms"} {
			if _, ok := end[f].(float64); !ok {
				t.Errorf("switchover_completed lacks %s: %v", f, end)
			}
		}
	} else {
		if len(completed) != 0 || len(aborted) != 1 {
			t.Fatalf("%d switchover_completed and %d switchover_aborted lines, want 0 and 1", len(completed), len(aborted))
		}
		end = aborted[0]
		if end["step"] != abortedIn || end["error"] == "" || end["restored"] != true {
			t.Errorf("switchover_aborted: step %v error %v restored %v, want step %s, an error, restored", end["step"],
				end["error"], end["restored"], abortedIn)
		}
		if _, ok := end[strings.ReplaceAll(abortedIn, "-", "_")+"_ms"].(float64); !ok {
			t.Errorf("switchover_aborted lacks the time of step %s: %v", abortedIn, end)
		}
	}
	if end["target"] != target {
		t.Errorf("%s names target %v, want %s", end["event"], end["target"], target)
	}
	return end
}

// checkHistory checks the stats page's failover history: after a completed switchover its newest entry
// is the switch from old to target, marked as a switchover, with a trigger that says so; after an aborted
// one there is no switch at all.
func checkHistory(t *testing.T, p *runningProxy, old, target string, completed bool) {
	t.Helper()
	var h []stats.SwitchView
	err := redistest.Eventually(5*time.Second, func() error {
		h = statsJSON(t, p).Groups[0].History
		if completed && len(h) == 0 {
			return fmt.Errorf("no switch in the history")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !completed {
		if len(h) != 0 {
			t.Errorf("failover history after an aborted switchover: %+v, want none", h)
		}
		return
	}
	sw := h[0]
	if !sw.Switchover || sw.Old != old || sw.New != target || !strings.HasPrefix(sw.Trigger, "switchover") {
		t.Errorf("newest history entry %+v, want a switchover from %s to %s with a trigger starting \"switchover\"", sw, old, target)
	}
}

// lastLine is the outcome line of a switchover's answer.
func lastLine(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

// TestSwitchoverUnderWriteLoad moves the master while four writers that do not retry write through the
// proxy: no acknowledged write is lost in either mode; in resp mode the writers see no error, the
// longest stall stays short (loosely: 1 s, for a loaded two-core machine; the benchmark holds the
// 250 ms target) and 50 idle pooled clients answer from the new master with their state.
func TestSwitchoverUnderWriteLoad(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := startSwitchoverSetup(t, mode, redistest.Options{}, nil, nil)
			old := s.topo.Nodes[0].Addr
			var idle []*redistest.Conn
			if mode == "resp" {
				idle = idleClients(t, s.p.master, 50)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			load := &redistest.WriteLoad{Addr: s.p.master, Password: testPassword, Writers: 4, Timeout: 10 * time.Second,
				Pause: 200 * time.Microsecond}
			results := make(chan *redistest.LoadResult, 1)
			go func() { results <- load.Run(ctx) }()
			time.Sleep(300 * time.Millisecond)
			logFrom := len(s.p.logs.String())

			status, lines := switchoverHTTP(t, s.p, url.Values{"timeout": {"10s"}})
			t.Logf("POST /-/switchover: %d\n%s", status, strings.Join(lines, "\n"))
			if status != 200 || !strings.HasPrefix(lastLine(lines), "switchover completed") {
				cancel()
				<-results
				t.Fatalf("switchover did not complete: %d %q", status, lastLine(lines))
			}
			end := checkEvents(t, s.p.logs.String(), s.topoTarget(t, lines), "")
			target := end["target"].(string)
			waitRoutedTo(t, s.p.master, target, 5*time.Second)
			time.Sleep(300 * time.Millisecond) // writes on the new master
			cancel()
			res := <-results

			if m, err := s.topo.AgreedMaster(10 * time.Second); err != nil || m != target {
				t.Fatalf("the Sentinels name %s (%v), want the target %s", m, err, target)
			}
			lost, err := res.Lost(target, testPassword)
			if err != nil {
				t.Fatal(err)
			}
			gap, gapFrom := res.LongestGap()
			cuts := routeCuts(s.p.logs.String()[logFrom:])
			t.Logf("%s: %d writes acknowledged, %d failed, %d lost; longest stall %s (+%s); writes held %.1f ms; %d route changes",
				mode, len(res.Acks), res.Errors, len(lost), gap.Round(time.Millisecond), gapFrom.Sub(res.Acks[0].At).Round(time.Millisecond),
				end["held_ms"], cuts)
			if len(lost) > 0 {
				t.Errorf("%d acknowledged writes lost (first %s by %s at %s)", len(lost), lost[0].Key, lost[0].Node,
					lost[0].At.Format("15:04:05.000"))
			}
			if first, ok := res.FirstAckBy(target, time.Time{}); !ok {
				t.Errorf("no write acknowledged by the new master %s", target)
			} else {
				for _, a := range res.Acks {
					if a.At.After(first.At) && a.Node != target {
						t.Errorf("write %s acknowledged by %s after the new master took writes", a.Key, a.Node)
						break
					}
				}
			}
			if len(res.Acks) < 100 {
				t.Errorf("only %d writes acknowledged: the load did not run", len(res.Acks))
			}
			switch mode {
			case "resp":
				if res.Errors > 0 {
					t.Errorf("%d writes failed: a switchover in resp mode must show clients no error: %q", res.Errors, res.ErrorTexts)
				}
				if gap > time.Second {
					t.Errorf("longest write stall %s, want well under 1s", gap)
				}
				checkIdleClients(t, idle, target)
			case "tcp":
				// Sessions are cut at the switch, as in any tcp-mode failover: at most the write in flight
				// of each writer fails at each cut.
				if res.Errors > load.Writers*max(cuts, 1) {
					t.Errorf("%d failed writes: more than the writes in flight at %d cuts", res.Errors, cuts)
				}
			}
			checkHistory(t, s.p, old, target, true)
			s.checkRestored(t, target)
		})
	}
}

// topoTarget reads the target from the choose step's line ("target <addr> (...").
func (s *switchoverSetup) topoTarget(t *testing.T, lines []string) string {
	t.Helper()
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) > 4 && f[0] == switchover.StepChoose && f[3] == "target" {
			return f[4]
		}
	}
	t.Fatalf("no target in the choose step's line:\n%s", strings.Join(lines, "\n"))
	return ""
}

// TestSwitchoverCommandLineTo runs `sentinel-proxy switchover --to` with the replica Sentinel would not
// pick by itself (its replica-priority is the higher number): the command prints every step in order,
// exits 0, and the Sentinels name that replica; the other's lowered priority is put back.
func TestSwitchoverCommandLineTo(t *testing.T) {
	bin := buildBinary(t, t.TempDir())
	s := startSwitchoverSetup(t, "tcp", redistest.Options{}, nil, nil)
	old, target, other := s.topo.Nodes[0].Addr, s.topo.Nodes[2].Addr, s.topo.Nodes[1].Addr
	// Sentinel prefers the lower number: left alone, it would promote other.
	for addr, prio := range map[string]string{target: "100", other: "50"} {
		if _, err := redistest.Do(addr, testPassword, "CONFIG", "SET", "replica-priority", prio); err != nil {
			t.Fatal(err)
		}
	}
	s.priorities = s.readPriorities(t)

	out, code := switchoverCLI(t, bin, s.path, "--to", target, "--timeout", "10s")
	t.Logf("sentinel-proxy switchover --to %s: exit %d\n%s", target, code, out)
	if code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var steps []string
	for _, l := range lines[:len(lines)-1] {
		steps = append(steps, strings.Fields(l)[0])
	}
	want := []string{switchover.StepChoose, switchover.StepSteer, switchover.StepHold, switchover.StepCatchUp,
		switchover.StepFailover, switchover.StepRelease, switchover.StepVerify, switchover.StepRejoin}
	if !slices.Equal(steps, want) {
		t.Errorf("printed steps %v, want %v", steps, want)
	}
	// The old master follows the new one when the command returns, not when Sentinel converts it (8 s
	// after it last saw it as a master at the soonest).
	if len(lines) >= 2 && (!strings.Contains(lines[len(lines)-2], "REPLICAOF "+target+" on "+old+", "+other) ||
		!strings.Contains(lines[len(lines)-2], "links up after")) {
		t.Errorf("rejoin step %q, want %s and %s replicating from %s", lines[len(lines)-2], old, other, target)
	}
	if err := s.topo.WaitRole(old, "slave", time.Second); err != nil {
		t.Errorf("the old master %s right after the switchover: %v", old, err)
	}
	if !strings.Contains(lines[0], "target "+target+" (named by --to)") {
		t.Errorf("choose step %q does not name %s as given by --to", lines[0], target)
	}
	if !strings.Contains(lines[1], other+" (was 50)") {
		t.Errorf("steer step %q does not lower %s's priority", lines[1], other)
	}
	if l := lastLine(lines); !strings.HasPrefix(l, "switchover completed") || !strings.Contains(l, old+" -> "+target) {
		t.Errorf("last line %q, want switchover completed %s -> %s", l, old, target)
	}
	if m, err := s.topo.AgreedMaster(10 * time.Second); err != nil || m != target {
		t.Fatalf("the Sentinels name %s (%v), want %s as --to said", m, err, target)
	}
	waitRoutedTo(t, s.p.master, target, 5*time.Second)
	checkEvents(t, s.p.logs.String(), target, "")
	checkHistory(t, s.p, old, target, true)
	s.checkRestored(t, target)
}

// switchoverAbort is one way a switchover fails mid-way, set up before the proxy starts.
type switchoverAbort struct {
	topoOpts redistest.Options
	edit     func(*config.Config)
	// hook is called after each step that succeeded (Options.SwitchoverStep) with the setup; it breaks
	// something.
	hook func(t *testing.T, s *switchoverSetup, target, step string)
	// after is called once the switchover has answered, before anything is checked; it may undo what
	// hook broke.
	after func(s *switchoverSetup, target string)
	// step is where the switchover must abort, and errText what its error must say.
	step, errText string
	timeout       time.Duration
}

// runSwitchoverAbort runs a switchover that must abort under write load, through POST /-/switchover,
// and checks that the master did not move, the writes went on on it (none lost, none held), and
// everything was put back.
func runSwitchoverAbort(t *testing.T, mode string, a switchoverAbort) {
	var s *switchoverSetup
	target := ""
	var hookMu sync.Mutex
	hook := func(step string) {
		hookMu.Lock()
		defer hookMu.Unlock()
		if a.hook != nil && s != nil {
			a.hook(t, s, target, step)
		}
	}
	setup := startSwitchoverSetup(t, mode, a.topoOpts, hook, a.edit)
	hookMu.Lock()
	s, target = setup, setup.topo.Nodes[1].Addr
	hookMu.Unlock()
	old := s.topo.Nodes[0].Addr
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	load := &redistest.WriteLoad{Addr: s.p.master, Password: testPassword, Writers: 4, Timeout: 10 * time.Second,
		Pause: 200 * time.Microsecond}
	results := make(chan *redistest.LoadResult, 1)
	go func() { results <- load.Run(ctx) }()
	time.Sleep(300 * time.Millisecond)

	start := time.Now()
	status, lines := switchoverHTTP(t, s.p, url.Values{"to": {target}, "timeout": {a.timeout.String()}})
	took := time.Since(start)
	t.Logf("POST /-/switchover after %s: %d\n%s", took.Round(time.Millisecond), status, strings.Join(lines, "\n"))
	if a.after != nil {
		a.after(s, target)
	}
	last := lastLine(lines)
	if status != 200 || !strings.HasPrefix(last, "switchover aborted in step "+a.step) || !strings.Contains(last, a.errText) {
		t.Errorf("outcome %d %q, want switchover aborted in step %s with %q", status, last, a.step, a.errText)
	}
	if strings.Contains(last, "NOT RESTORED") {
		t.Errorf("the switchover could not put everything back: %s", last)
	}
	// An abort keeps the writes held at most the timeout and the grace for a failover already asked for.
	if limit := a.timeout + 5*time.Second; took > limit {
		t.Errorf("the switchover took %s, more than its timeout %s allows", took, a.timeout)
	}
	end := checkEvents(t, s.p.logs.String(), target, a.step)
	if !strings.Contains(fmt.Sprint(end["error"]), a.errText) {
		t.Errorf("switchover_aborted error %q, want %q", end["error"], a.errText)
	}

	// The master stays where it was, and writes go on on it through the proxy after the abort.
	m, err := s.topo.AgreedMaster(10 * time.Second)
	if err != nil || m != old {
		t.Fatalf("the Sentinels name %s (%v) after the abort, want the old master %s", m, err, old)
	}
	waitRoutedTo(t, s.p.master, old, 5*time.Second)
	abortedAt := time.Now()
	if err := redistest.Eventually(5*time.Second, func() error {
		if c, err := redistest.Do(s.p.master, testPassword, "SET", "through-proxy", "1"); err != nil || c != "OK" {
			return fmt.Errorf("%q %v", c, err)
		}
		return nil
	}); err != nil {
		t.Errorf("a write through the proxy after the abort: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	res := <-results
	lost, err := res.Lost(old, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	gap, _ := res.LongestGap()
	t.Logf("%d writes acknowledged, %d failed, %d lost; longest stall %s", len(res.Acks), res.Errors, len(lost), gap.Round(time.Millisecond))
	if len(lost) > 0 {
		t.Errorf("%d acknowledged writes lost (first %s by %s)", len(lost), lost[0].Key, lost[0].Node)
	}
	if _, ok := res.FirstAckBy(old, abortedAt.Add(-time.Second)); !ok {
		t.Errorf("the writers got no acknowledgement from %s after the abort: writes still held", old)
	}
	checkHistory(t, s.p, old, target, false)
	s.checkRestored(t, old)
}

// TestSwitchoverTimeoutMidway stops the target (SIGSTOP) once the writes are held: the catch-up waits for
// it, as for any slow node, until the timeout, then the switchover aborts and lets the writes go to the
// old master.
func TestSwitchoverTimeoutMidway(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			runSwitchoverAbort(t, mode, switchoverAbort{
				// The stopped target must not be failed over to or away from meanwhile.
				topoOpts: redistest.Options{DownAfter: 5 * time.Second},
				timeout:  1500 * time.Millisecond, step: switchover.StepCatchUp, errText: "past the timeout, 1.5s",
				hook: func(t *testing.T, s *switchoverSetup, target, step string) {
					if step == switchover.StepHold {
						if err := s.topo.Node(target).Pause(); err != nil {
							t.Error(err)
						}
					}
				},
				after: func(s *switchoverSetup, target string) { _ = s.topo.Node(target).Resume() },
			})
		})
	}
}

// TestSwitchoverTargetDies kills the target between the catch-up and the failover: the Sentinel has no
// replica left that it may promote (the other one is steered away), so the switchover aborts, the other
// replica's priority is put back and the writes go on on the old master.
func TestSwitchoverTargetDies(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			runSwitchoverAbort(t, mode, switchoverAbort{
				// The Sentinel refuses at once (NOGOODSLAVE) when it has seen the target go; otherwise it
				// starts a failover that finds no replica to promote, and the switchover times out.
				timeout: 3 * time.Second, step: switchover.StepFailover,
				hook: func(t *testing.T, s *switchoverSetup, target, step string) {
					if step == switchover.StepCatchUp {
						s.topo.Node(target).Kill()
					}
				},
			})
		})
	}
}

// TestSwitchoverSentinelRefuses runs the switchover with a Sentinel user that may do everything but
// SENTINEL FAILOVER (ACL): the Sentinel answers an error, and the switchover aborts at once in that step.
// One mode is enough: the release after an abort in the failover step is TestSwitchoverTargetDies's in both.
func TestSwitchoverSentinelRefuses(t *testing.T) {
	runSwitchoverAbort(t, "resp", switchoverAbort{
		topoOpts: redistest.Options{SentinelConf: []string{"user switcher on >switcher-pw ~* &* +@all -sentinel|failover"}},
		edit: func(cfg *config.Config) {
			cfg.Sentinel.Username, cfg.Sentinel.Password = "switcher", "switcher-pw"
		},
		timeout: 5 * time.Second, step: switchover.StepFailover, errText: "NOPERM",
	})
}

// TestSwitchoverTwoAtOnce starts a switchover and, while it waits between two steps, asks for a second
// one through the stats port and through the command line: both are refused (409, exit 1) and change
// nothing; the first then completes.
func TestSwitchoverTwoAtOnce(t *testing.T) {
	bin := buildBinary(t, t.TempDir())
	paused := make(chan struct{})
	resume := make(chan struct{})
	var once, resumeOnce sync.Once
	s := startSwitchoverSetup(t, "resp", redistest.Options{}, func(step string) {
		if step == switchover.StepSteer {
			once.Do(func() { close(paused) })
			<-resume
		}
	}, nil)
	// Registered after the proxy's: runs before it is stopped.
	t.Cleanup(func() { resumeOnce.Do(func() { close(resume) }) })
	old, target := s.topo.Nodes[0].Addr, s.topo.Nodes[2].Addr

	type outcome struct {
		status int
		lines  []string
	}
	first := make(chan outcome, 1)
	go func() {
		status, lines := switchoverHTTP(t, s.p, url.Values{"to": {target}, "timeout": {"20s"}})
		first <- outcome{status, lines}
	}()
	select {
	case <-paused:
	case o := <-first:
		t.Fatalf("the first switchover ended before its steer step: %d %v", o.status, o.lines)
	case <-time.After(15 * time.Second):
		t.Fatal("the first switchover never reached its steer step")
	}

	status, lines := switchoverHTTP(t, s.p, url.Values{"to": {s.topo.Nodes[1].Addr}})
	if status != http.StatusConflict || !strings.Contains(strings.Join(lines, "\n"), "already running") {
		t.Errorf("a second switchover through POST /-/switchover: %d %q, want 409 already running", status, lines)
	}
	out, code := switchoverCLI(t, bin, s.path, "--timeout", "2s")
	if code != 1 || !strings.Contains(out, "409") || !strings.Contains(out, "already running") {
		t.Errorf("a second switchover through the command line: exit %d\n%s\nwant exit 1, 409, already running", code, out)
	}
	resumeOnce.Do(func() { close(resume) })

	var o outcome
	select {
	case o = <-first:
	case <-time.After(30 * time.Second):
		t.Fatal("the first switchover never ended")
	}
	if o.status != 200 || !strings.HasPrefix(lastLine(o.lines), "switchover completed") {
		t.Fatalf("the first switchover: %d\n%s", o.status, strings.Join(o.lines, "\n"))
	}
	if m, err := s.topo.AgreedMaster(10 * time.Second); err != nil || m != target {
		t.Fatalf("the Sentinels name %s (%v), want %s", m, err, target)
	}
	checkEvents(t, s.p.logs.String(), target, "")
	checkHistory(t, s.p, old, target, true)
	s.checkRestored(t, target)
}
