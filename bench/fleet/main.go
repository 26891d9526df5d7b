// Command fleet measures what a fleet of sentinel-proxy processes costs the deployment they front: N
// proxies (one per application host, here processes on one machine) in front of one topology of a
// master, two replicas and three Sentinels. For each setting of the proxies' intervals it reports, idle:
// the CPU each Sentinel and each Redis node spends (share of one core, beyond what they spend with no
// proxy), the commands per second each receives, and the proxies' own CPU; then, over SENTINEL
// FAILOVERs, how long the switch takes to reach every proxy (first to last master_switched line, and
// from the Sentinel's +switch-master; every proxy must then serve the new master, or the run fails), and
// how long after the leader's +failover-state-send-slaveof-noone each proxy's route left the old master.
// -busy adds CPU-bound processes beside it all. See docs/deploy.md, "A fleet of proxies".
//
//	go run ./bench/fleet -proxy bin/sentinel-proxy -n 100 -intervals 1s/1s,5s/5s
//	go run ./bench/fleet -proxy bin/sentinel-proxy -n 1 -intervals 1s/1s -idle 1s -failovers 100 -busy 2
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/bench/harness"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

const password = "mypassword"

// setting is one pair of the proxies' intervals: [check] interval (probes of each node) and
// [sentinel] interval (each Sentinel asked for the group's view).
type setting struct{ check, sentinel time.Duration }

func (s setting) String() string { return s.check.String() + "/" + s.sentinel.String() }

func main() { os.Exit(fleet()) }

// fleet is main, with the exit status as a value, so that the busy processes stop on every way out.
func fleet() int {
	proxyBin := flag.String("proxy", "bin/sentinel-proxy", "sentinel-proxy binary")
	n := flag.Int("n", 100, "proxies in the fleet")
	intervals := flag.String("intervals", "1s/1s,2s/2s,5s/5s", "settings to measure: check interval/sentinel interval, comma-separated")
	idle := flag.Duration("idle", 20*time.Second, "how long the idle cost is measured")
	failovers := flag.Int("failovers", 3, "SENTINEL FAILOVERs per setting")
	busy := flag.Int("busy", 0, "CPU-bound processes (sh busy loops) running beside everything, as load")
	flag.Parse()
	for i := 0; i < *busy; i++ {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "fleet: -busy:", err)
			return 1
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	}
	var settings []setting
	for _, f := range strings.Split(*intervals, ",") {
		c, s, ok := strings.Cut(strings.TrimSpace(f), "/")
		cd, err1 := time.ParseDuration(c)
		sd, err2 := time.ParseDuration(s)
		if !ok || err1 != nil || err2 != nil {
			fmt.Fprintf(os.Stderr, "fleet: -intervals: %q is not check/sentinel, e.g. 1s/1s\n", f)
			return 2
		}
		settings = append(settings, setting{cd, sd})
	}
	if err := run(*proxyBin, *n, settings, *idle, *failovers, *busy); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		return 1
	}
	return 0
}

func run(bin string, n int, settings []setting, idle time.Duration, failovers, busy int) error {
	topo, err := redistest.Start(redistest.Options{Replicas: 2, Sentinels: 3, Password: password, DownAfter: 5 * time.Second})
	if err != nil {
		return err
	}
	defer topo.Close() // and removes its directory, where the proxies keep their files
	dir := topo.Dir()
	fmt.Printf("# fleet: %d proxies (resp mode, master port only) in front of 1 master, 2 replicas, 3 Sentinels; idle %s; %d SENTINEL FAILOVERs per setting; %d busy processes\n\n",
		n, idle, failovers, busy)
	base, err := measure(topo, nil, idle)
	if err != nil {
		return err
	}
	fmt.Printf("no proxy: Sentinels %s of a core, Redis nodes %s; commands/s: Sentinels %s, nodes %s\n\n",
		pctList(base.sentinelCPU), pctList(base.nodeCPU), rateList(base.sentinelCmds), rateList(base.nodeCmds))
	fmt.Println("| check / sentinel interval | Sentinel CPU (each, beyond none) | Redis node CPU (each) | commands/s per Sentinel | commands/s per node | proxies' CPU (all, each) | failover: first → last proxy | +switch-master → last proxy | old master cut: Sentinel event → proxy's route (p50, p99, max) | under 5 % of a core |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, st := range settings {
		row, err := measureSetting(bin, n, st, topo, dir, idle, failovers, base)
		if err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
		fmt.Println(row)
	}
	return nil
}

// cost is what each Sentinel and node spent over a window: CPU as a share of one core, and commands
// per second; and the proxies' CPU.
type cost struct {
	sentinelCPU, nodeCPU, sentinelCmds, nodeCmds []float64
	proxiesCPU                                   float64 // all proxies, share of one core
}

func measure(topo *redistest.Topology, proxies []*harness.Process, window time.Duration) (cost, error) {
	procs := append(append([]*redistest.Process(nil), topo.Sentinels...), topo.Nodes...)
	cpu0 := make([]time.Duration, len(procs))
	cmds0 := make([]float64, len(procs))
	for i, p := range procs {
		cpu0[i], _ = harness.CPUTime(p.Pid())
		cmds0[i] = commandsProcessed(p.Addr, i >= len(topo.Sentinels))
	}
	var proxy0 time.Duration
	for _, p := range proxies {
		c, _ := harness.CPUTime(p.Pid())
		proxy0 += c
	}
	start := time.Now()
	time.Sleep(window)
	elapsed := time.Since(start)
	var c cost
	for i, p := range procs {
		cpu1, err := harness.CPUTime(p.Pid())
		if err != nil {
			return c, err
		}
		// The INFO that reads the count is one command of the window's: taken out.
		cmds := (commandsProcessed(p.Addr, i >= len(topo.Sentinels)) - cmds0[i] - 1) / elapsed.Seconds()
		share := float64(cpu1-cpu0[i]) / float64(elapsed)
		if i < len(topo.Sentinels) {
			c.sentinelCPU, c.sentinelCmds = append(c.sentinelCPU, share), append(c.sentinelCmds, cmds)
		} else {
			c.nodeCPU, c.nodeCmds = append(c.nodeCPU, share), append(c.nodeCmds, cmds)
		}
	}
	var proxy1 time.Duration
	for _, p := range proxies {
		c, _ := harness.CPUTime(p.Pid())
		proxy1 += c
	}
	c.proxiesCPU = float64(proxy1-proxy0) / float64(elapsed)
	return c, nil
}

// commandsProcessed is INFO stats' total_commands_processed of a Sentinel or a data node.
func commandsProcessed(addr string, node bool) float64 {
	pw := ""
	if node {
		pw = password
	}
	info, err := redistest.Do(addr, pw, "INFO", "stats")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func measureSetting(bin string, n int, st setting, topo *redistest.Topology, dir string, idle time.Duration, failovers int, base cost) (string, error) {
	tables := fmt.Sprintf("[check]\ninterval = %q\n", st.check.String())
	proxies := make([]*harness.Process, 0, n)
	defer func() {
		for _, p := range proxies {
			p.Stop()
		}
	}()
	for i := 0; i < n; i++ {
		p, err := harness.StartSentinelProxyWith(bin, topo, dir, harness.ProxyOptions{Master: `mode = "resp"`,
			Tables: tables, SentinelInterval: st.sentinel})
		if err != nil {
			return "", err
		}
		proxies = append(proxies, p)
	}
	master, err := topo.MasterAddr()
	if err != nil {
		return "", err
	}
	if err := allServedBy(proxies, master); err != nil {
		return "", err
	}
	c, err := measure(topo, proxies, idle)
	if err != nil {
		return "", err
	}
	var spreads, reaches, cutLags []time.Duration
	for f := 0; f < failovers; f++ {
		r, err := failover(topo, proxies)
		if err != nil {
			return "", fmt.Errorf("failover %d: %w", f+1, err)
		}
		spreads, reaches, cutLags = append(spreads, r.spread), append(reaches, r.reach), append(cutLags, r.cutLags...)
	}
	worst := 0.0
	for i := range c.sentinelCPU {
		worst = max(worst, c.sentinelCPU[i]-base.sentinelCPU[i])
	}
	for i := range c.nodeCPU {
		worst = max(worst, c.nodeCPU[i]-base.nodeCPU[i])
	}
	under := "yes"
	if worst >= 0.05 {
		under = fmt.Sprintf("no (%.1f %%)", 100*worst)
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %.1f %%, %.2f %% | %s | %s | %s | %s |", st,
		pctList(minus(c.sentinelCPU, base.sentinelCPU)), pctList(minus(c.nodeCPU, base.nodeCPU)),
		rateList(c.sentinelCmds), rateList(c.nodeCmds), 100*c.proxiesCPU, 100*c.proxiesCPU/float64(n),
		durList(spreads), durList(reaches), percentiles(cutLags), under), nil
}

func minus(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

// allServedBy waits until every proxy's master port reaches master.
func allServedBy(proxies []*harness.Process, master string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(proxies))
	for i, p := range proxies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = harness.WaitServedBy(p.Addr, password, master, 60*time.Second)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("proxy %d (%s): %w", i, proxies[i].Addr, err)
		}
	}
	return nil
}

// failover runs one SENTINEL FAILOVER and returns how far apart the proxies' switches were (first to
// last master_switched line), how long after the first +switch-master the last one came, and whether
// every proxy then served the same, new master.
// failoverResult is what one SENTINEL FAILOVER showed of the fleet.
type failoverResult struct {
	spread, reach time.Duration
	// cutLags: per proxy, from the leader's +failover-state-send-slaveof-noone as a client of the
	// Sentinels saw it to the proxy's line saying its route left the old master (no_master or
	// master_switched): the time in which the proxy could still send the old master writes.
	cutLags []time.Duration
}

func failover(topo *redistest.Topology, proxies []*harness.Process) (r failoverResult, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	events, err := redistest.RecordEvents(ctx, topo.SentinelAddrs())
	if err != nil {
		return r, err
	}
	start := time.Now()
	newMaster, err := topo.Failover(30 * time.Second)
	if err != nil {
		return r, err
	}
	if err := allServedBy(proxies, newMaster); err != nil {
		return r, err
	}
	var times []time.Time
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range proxies {
		for {
			at, ok := switchedAfter(p.LogPath, start, newMaster)
			if ok {
				times = append(times, at)
				break
			}
			if time.Now().After(deadline) {
				return r, fmt.Errorf("%s logged no master_switched to %s", p.Addr, newMaster)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	r.spread = times[len(times)-1].Sub(times[0])
	if cut, ok := events.First("+failover-state-send-slaveof-noone", start); ok {
		for _, p := range proxies {
			if at, ok := routeLeftAfter(p.LogPath, start); ok {
				r.cutLags = append(r.cutLags, at.Sub(cut.At))
			}
		}
	}
	// Let Sentinel convert the old master before the next failover (it refuses one meanwhile). The
	// proxies switch before +switch-master is published: it is read only now.
	if err := topo.WaitSettled(2, 60*time.Second); err != nil {
		return r, err
	}
	if sw, ok := events.First("+switch-master", start); ok {
		r.reach = times[len(times)-1].Sub(sw.At)
	}
	return r, nil
}

// routeLeftAfter returns the time of the first line after t saying the master port left its master.
func routeLeftAfter(path string, t time.Time) (time.Time, bool) {
	return firstLineAfter(path, t, func(event, _ string) bool { return event == "no_master" || event == "master_switched" })
}

// switchedAfter returns the time of the first master_switched line to master logged after t.
func switchedAfter(path string, t time.Time, master string) (time.Time, bool) {
	return firstLineAfter(path, t, func(event, newMaster string) bool { return event == "master_switched" && newMaster == master })
}

// firstLineAfter returns the time of the first line of the proxy log at path, logged after t, whose event
// (and new master, for a switch) match.
func firstLineAfter(path string, t time.Time, match func(event, newMaster string) bool) (time.Time, bool) {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev struct {
			Event string    `json:"event"`
			New   string    `json:"new"`
			Time  time.Time `json:"time"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Time.After(t) && match(ev.Event, ev.New) {
			return ev.Time, true
		}
	}
	return time.Time{}, false
}

func pctList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f %%", 100*x)
	}
	return strings.Join(parts, ", ")
}

func rateList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, ", ")
}

// percentiles is the p50, p99 and largest of ds, and how many.
func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return fmt.Sprintf("%s, %s, %s (%d)", at(0.5).Round(100*time.Microsecond), at(0.99).Round(100*time.Microsecond),
		s[len(s)-1].Round(100*time.Microsecond), len(s))
}

// durList is the median and the largest of ds.
func durList(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("%s (max %s)", s[len(s)/2].Round(100*time.Microsecond), s[len(s)-1].Round(100*time.Microsecond))
}
