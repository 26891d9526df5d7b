// Command failover runs failover scenarios through sentinel-proxy (in tcp mode and in resp mode) and
// through HAProxy with the seed's tcp-check configuration, side by side on the same kind of topology, and
// prints one table: acknowledged writes, lost acknowledged writes, the writes the clients saw fail, the
// longest gap between acknowledged writes, how long after the first +switch-master (and after the
// leader's +failover-state-wait-promotion) the new master acknowledged its first write, and how many of
// 200 idle pooled clients (authenticated, on database 3, named) opened before the action fail their next
// command after it. See docs/failover.md.
//
// The switchover scenario is sentinel-proxy's planned switchover (POST /-/switchover, what
// `sentinel-proxy switchover` sends) to a replica chosen at random, so that it is not always the one
// Sentinel would pick; its rows also say in how many runs the new master was that replica (--to
// honoured) and the replicas' replica-priority was as before afterwards. HAProxy has no switchover: the
// manual scenario, a bare SENTINEL FAILOVER, is the comparison on every path.
//
//	go run ./bench/failover -proxy bin/sentinel-proxy -haproxy haproxy -runs 5
//	go run ./bench/failover -scenarios switchover,manual -runs 10
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/bench/harness"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

const password = "mypassword"

// Credentials of sentinel-proxy's stats port, where the switchover scenario asks for its switchover.
const statsUser, statsPassword = "admin", "bench-pw"

type target struct {
	key   string // what -targets names it by
	name  string
	start func(topo *redistest.Topology, dir string) (started, error)
	// moves: sessions are meant to move to the new master (resp mode): an idle client that fails keeps
	// the run's logs.
	moves bool
}

// started is a proxy a run goes through.
type started struct {
	masterAddr string
	stats      string // sentinel-proxy's stats port; "" for HAProxy
	stop       func()
}

type scenario struct {
	name       string
	appendOnly bool
	// switchover: the scenario asks the proxy for a planned switchover; paths without one skip it.
	switchover bool
	act        func(r *running) (newMaster string, err error)
}

// running is what a scenario's action works on.
type running struct {
	topo   *redistest.Topology
	events *redistest.EventLog
	proxy  started
	// to is the replica the switchover scenario asks for (chosen at random before the run); the outcome
	// is what the proxy answered, its last line.
	to, outcome string
}

type result struct {
	acked, errors, lost    int
	unconfirmed            int // of the errors, NOREPLICAS: a write applied but not confirmed (wait_replicas)
	idleFailed             int // idle clients whose next command failed after the failover
	gap                    time.Duration
	afterSwitch, afterProm time.Duration
	haveSwitch, haveProm   bool
	// The switchover scenario only: whether it completed, whether the new master is the replica asked
	// for, and whether every replica's replica-priority was as before afterwards.
	switchover, completed, toHonoured, prioritiesRestored bool
}

// idleClients is how many idle pooled clients each run opens before the action.
const idleClients = 200

func main() {
	proxyBin := flag.String("proxy", "bin/sentinel-proxy", "sentinel-proxy binary")
	haproxyBin := flag.String("haproxy", "haproxy", "haproxy binary")
	runs := flag.Int("runs", 5, "runs of each scenario on each target, alternating")
	only := flag.String("scenarios", "kill,pause,manual,restart,switchover", "comma-separated scenarios")
	pause := flag.Duration("pause", 4*time.Second, "how long the pause scenario stops the master")
	downAfter := flag.Duration("down-after", time.Second, "Sentinel down-after-milliseconds")
	targetNames := flag.String("targets", "sentinel-proxy,sentinel-proxy-resp,sentinel-proxy-multiplex,sentinel-proxy-durable,sentinel-proxy-durable-mux,sentinel-proxy-durable1,haproxy",
		"comma-separated: sentinel-proxy, sentinel-proxy-resp, sentinel-proxy-durable (resp, wait_replicas = 2: every replica), sentinel-proxy-durable-mux (the same with multiplex), sentinel-proxy-durable1 (resp, wait_replicas = 1), haproxy")
	flag.Parse()

	sentinelProxy := func(o harness.ProxyOptions) func(*redistest.Topology, string) (started, error) {
		return func(topo *redistest.Topology, dir string) (started, error) {
			port, err := redistest.FreePort()
			if err != nil {
				return started{}, err
			}
			stats := fmt.Sprintf("127.0.0.1:%d", port)
			o.Tables = fmt.Sprintf("[stats]\nlisten = %q\nuser = %q\npassword = %q\n", stats, statsUser, statsPassword)
			p, err := harness.StartSentinelProxyWith(*proxyBin, topo, dir, o)
			if err != nil {
				return started{}, err
			}
			return started{masterAddr: p.Addr, stats: stats, stop: p.Stop}, nil
		}
	}
	targets := []target{
		{key: "sentinel-proxy", name: "sentinel-proxy", start: sentinelProxy(harness.ProxyOptions{Master: `mode = "tcp"`})},
		{key: "sentinel-proxy-resp", name: "sentinel-proxy resp", moves: true,
			start: sentinelProxy(harness.ProxyOptions{Master: `mode = "resp"`})},
		{key: "sentinel-proxy-multiplex", name: "sentinel-proxy multiplex", moves: true,
			start: sentinelProxy(harness.ProxyOptions{Master: "mode = \"resp\"\nmultiplex = true"})},
		// Durable acknowledgements: the topology has two replicas, so wait_replicas = 2 is every one.
		{key: "sentinel-proxy-durable", name: "durable (2 replicas)", moves: true,
			start: sentinelProxy(harness.ProxyOptions{Master: "mode = \"resp\"\nwait_replicas = 2"})},
		{key: "sentinel-proxy-durable-mux", name: "durable multiplex (2)", moves: true,
			start: sentinelProxy(harness.ProxyOptions{Master: "mode = \"resp\"\nmultiplex = true\nwait_replicas = 2"})},
		{key: "sentinel-proxy-durable1", name: "durable (1 replica)", moves: true,
			start: sentinelProxy(harness.ProxyOptions{Master: "mode = \"resp\"\nwait_replicas = 1"})},
		{key: "haproxy", name: "haproxy (seed)", start: func(topo *redistest.Topology, dir string) (started, error) {
			p, err := harness.StartHAProxy(*haproxyBin, topo, dir)
			if err != nil {
				return started{}, err
			}
			return started{masterAddr: p.Addr, stop: p.Stop}, nil
		}},
	}
	var keep []target
	for _, name := range strings.Split(*targetNames, ",") {
		for _, t := range targets {
			if t.key == strings.TrimSpace(name) {
				keep = append(keep, t)
			}
		}
	}
	targets = keep
	all := scenarios(*pause)
	var chosen []scenario
	for _, name := range strings.Split(*only, ",") {
		for _, s := range all {
			if s.name == name {
				chosen = append(chosen, s)
			}
		}
	}
	fmt.Printf("# failover benchmark: %d runs, Sentinel down-after %s, pause %s, 4 writers with 10s timeouts, %d idle clients\n",
		*runs, *downAfter, *pause, idleClients)
	results := map[string][]result{}
	for _, sc := range chosen {
		for run := 0; run < *runs; run++ {
			order := append([]target(nil), targets...)
			if run%2 == 1 {
				slices.Reverse(order) // alternate who goes first
			}
			for _, tg := range order {
				if sc.switchover && tg.key == "haproxy" {
					continue // HAProxy has no switchover: the manual scenario is its comparison
				}
				r, err := runOnce(tg, sc, *downAfter, fmt.Sprintf("%s-%s-run%d", sc.name, tg.key, run+1))
				if err != nil {
					fmt.Fprintf(os.Stderr, "%s on %s, run %d: %v\n", sc.name, tg.name, run+1, err)
					continue
				}
				key := sc.name + "|" + tg.name
				results[key] = append(results[key], r)
				line := fmt.Sprintf("%-10s %-19s run %d: acked=%d errors=%d noreplicas=%d lost=%d longest_gap=%s switch->first_write=%s promotion->first_write=%s idle_failed=%d/%d",
					sc.name, tg.name, run+1, r.acked, r.errors, r.unconfirmed, r.lost, r.gap.Round(time.Millisecond),
					fmtDur(r.afterSwitch, r.haveSwitch), fmtDur(r.afterProm, r.haveProm), r.idleFailed, idleClients)
				if r.switchover {
					line += fmt.Sprintf(" completed=%v to_honoured=%v priorities_restored=%v", r.completed, r.toHonoured, r.prioritiesRestored)
				}
				fmt.Println(line)
			}
		}
	}
	fmt.Println()
	fmt.Println("| scenario | path | runs | acked writes (median) | lost acked writes (median / max) | client-visible errors (median / max) | of them NOREPLICAS (median) | longest write gap (median / max) | first write on new master after first `+switch-master` (median / max) | after `+failover-state-wait-promotion` (median) | idle clients failing their next command, of 200 (median / max) | switchover: completed / `--to` honoured / priorities restored, runs |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|")
	var verdicts []string
	for _, sc := range chosen {
		for _, tg := range targets {
			rs := results[sc.name+"|"+tg.name]
			if len(rs) == 0 {
				continue
			}
			var acked, lost, errs, unconfirmed, idle, gaps, sw, pr []float64
			maxLost, maxErrs, maxIdle, maxSw, maxGap := 0, 0, 0, time.Duration(-1<<63), time.Duration(0)
			completed, honoured, restored := 0, 0, 0
			for _, r := range rs {
				maxGap = max(maxGap, r.gap)
				completed += boolInt(r.completed)
				honoured += boolInt(r.toHonoured)
				restored += boolInt(r.prioritiesRestored)
				acked = append(acked, float64(r.acked))
				lost = append(lost, float64(r.lost))
				errs = append(errs, float64(r.errors))
				unconfirmed = append(unconfirmed, float64(r.unconfirmed))
				idle = append(idle, float64(r.idleFailed))
				gaps = append(gaps, float64(r.gap))
				maxLost = max(maxLost, r.lost)
				maxErrs = max(maxErrs, r.errors)
				maxIdle = max(maxIdle, r.idleFailed)
				if r.haveSwitch {
					sw = append(sw, float64(r.afterSwitch))
					maxSw = max(maxSw, r.afterSwitch)
				}
				if r.haveProm {
					pr = append(pr, float64(r.afterProm))
				}
			}
			planned := "-"
			if sc.switchover {
				planned = fmt.Sprintf("%d / %d / %d of %d", completed, honoured, restored, len(rs))
			}
			fmt.Printf("| %s | %s | %d | %.0f | %.0f / %d | %.0f / %d | %.0f | %s / %s | %s / %s | %s | %.0f / %d | %s |\n", sc.name, tg.name, len(rs),
				harness.Median(acked), harness.Median(lost), maxLost, harness.Median(errs), maxErrs, harness.Median(unconfirmed),
				time.Duration(harness.Median(gaps)).Round(time.Millisecond), maxGap.Round(time.Millisecond),
				fmtDur(time.Duration(harness.Median(sw)), len(sw) > 0),
				fmtDur(maxSw, len(sw) > 0), fmtDur(time.Duration(harness.Median(pr)), len(pr) > 0),
				harness.Median(idle), maxIdle, planned)
			if sc.switchover {
				verdicts = append(verdicts, switchoverVerdict(tg, rs, time.Duration(harness.Median(gaps)), maxGap,
					maxLost, maxErrs, completed, honoured, restored))
			}
		}
	}
	if len(verdicts) > 0 {
		fmt.Println()
		for _, v := range verdicts {
			fmt.Println(v)
		}
	}
}

// switchoverVerdict says whether a path met the planned switchover's targets (issue 17): no acknowledged
// write lost, --to honoured and priorities restored in every run; in resp mode also no client-visible
// error and a longest write stall of at most 100 ms (median) and 250 ms (max).
func switchoverVerdict(tg target, rs []result, medianGap, maxGap time.Duration, maxLost, maxErrs, completed, honoured, restored int) string {
	var missed []string
	if maxLost > 0 {
		missed = append(missed, fmt.Sprintf("%d acknowledged writes lost in a run", maxLost))
	}
	if completed < len(rs) || honoured < len(rs) || restored < len(rs) {
		missed = append(missed, fmt.Sprintf("completed %d, --to honoured %d, priorities restored %d of %d runs", completed, honoured, restored, len(rs)))
	}
	if tg.moves {
		if maxErrs > 0 {
			missed = append(missed, fmt.Sprintf("up to %d client-visible errors", maxErrs))
		}
		if medianGap > 100*time.Millisecond || maxGap > 250*time.Millisecond {
			missed = append(missed, fmt.Sprintf("longest write stall %s median / %s max (targets 100ms / 250ms)",
				medianGap.Round(time.Millisecond), maxGap.Round(time.Millisecond)))
		}
	}
	if len(missed) == 0 {
		return fmt.Sprintf("switchover targets on %s: met", tg.name)
	}
	return fmt.Sprintf("switchover targets on %s: MISSED: %s", tg.name, strings.Join(missed, "; "))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func fmtDur(d time.Duration, ok bool) string {
	if !ok {
		return "-"
	}
	return d.Round(100 * time.Microsecond).String()
}

// keepDir is where a run that failed or lost writes leaves its processes' logs (the proxy's, Redis's,
// Sentinel's) and the Sentinel events, to be read afterwards.
const keepDir = "bench/out/failover"

func runOnce(tg target, sc scenario, downAfter time.Duration, name string) (r result, err error) {
	parent, err := filepath.Abs(keepDir) // redis-server runs in its own directory: paths must be absolute
	if err != nil {
		return result{}, err
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return result{}, err
	}
	dir, err := os.MkdirTemp(parent, name+"-")
	if err != nil {
		return result{}, err
	}
	var events *redistest.EventLog
	defer func() {
		switchoverOK := !r.switchover || (r.completed && r.toHonoured && r.prioritiesRestored)
		if err == nil && r.lost == 0 && (!tg.moves || r.idleFailed == 0) && switchoverOK {
			os.RemoveAll(dir)
			return
		}
		if events != nil {
			var b strings.Builder
			for _, e := range events.Events() {
				fmt.Fprintf(&b, "%s %s %s %s\n", e.At.Format("15:04:05.000000"), e.Sentinel, e.Channel, e.Payload)
			}
			_ = os.WriteFile(filepath.Join(dir, "sentinel-events.txt"), []byte(b.String()), 0o644)
		}
		fmt.Fprintf(os.Stderr, "  logs kept in %s\n", dir)
	}()
	topo, err := redistest.Start(redistest.Options{Replicas: 2, Sentinels: 3, Password: password, Dir: dir,
		DownAfter: downAfter, FailoverTimeout: 5 * time.Second, AppendOnly: sc.appendOnly})
	if err != nil {
		return result{}, err
	}
	defer topo.Close()
	proxy, err := tg.start(topo, dir)
	if err != nil {
		return result{}, err
	}
	defer proxy.stop()
	masterPort := proxy.masterAddr
	run := &running{topo: topo, proxy: proxy}
	var prioritiesBefore map[string]string
	if sc.switchover {
		// A replica at random: half the time not the one Sentinel would pick by itself.
		run.to = topo.Nodes[1+rand.IntN(len(topo.Nodes)-1)].Addr
		if prioritiesBefore, err = priorities(topo); err != nil {
			return result{}, err
		}
	}
	if err := harness.WaitServedBy(masterPort, password, topo.Nodes[0].Addr, 20*time.Second); err != nil {
		return result{}, fmt.Errorf("%s never routed to the master: %w", tg.name, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err = redistest.RecordEvents(ctx, topo.SentinelAddrs())
	if err != nil {
		return result{}, err
	}
	run.events = events
	loadCtx, stopLoad := context.WithCancel(ctx)
	done := make(chan *redistest.LoadResult, 1)
	go func() {
		done <- (&redistest.WriteLoad{Addr: masterPort, Password: password, Writers: 4, Timeout: 10 * time.Second}).Run(loadCtx)
	}()
	time.Sleep(time.Second)
	idle, err := openIdle(masterPort, idleClients)
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	if err != nil {
		stopLoad()
		<-done
		return result{}, err
	}
	start := time.Now()
	newMaster, err := sc.act(run)
	if err != nil {
		stopLoad()
		<-done
		return result{}, err
	}
	// New clients must reach the new master through the proxy, however long the proxy takes.
	if err := harness.WaitServedBy(masterPort, password, newMaster, 60*time.Second); err != nil {
		stopLoad()
		<-done
		return result{}, fmt.Errorf("%s never routed to the new master: %w", tg.name, err)
	}
	time.Sleep(time.Second)
	stopLoad()
	res := <-done

	r = result{acked: len(res.Acks), errors: res.Errors, unconfirmed: res.Unconfirmed, switchover: sc.switchover}
	if sc.switchover {
		r.completed = strings.HasPrefix(run.outcome, "switchover completed")
		r.toHonoured = newMaster == run.to
		after, err := priorities(topo)
		if err != nil {
			return r, err
		}
		r.prioritiesRestored = maps.Equal(after, prioritiesBefore)
		if !r.completed || !r.toHonoured || !r.prioritiesRestored {
			fmt.Printf("  switchover to %s: new master %s, priorities %v (before %v): %s\n", run.to, newMaster, after, prioritiesBefore, run.outcome)
		}
	}
	failures := checkIdle(idle, newMaster)
	r.idleFailed = len(failures)
	for i, f := range failures {
		if i == 3 || !tg.moves {
			break
		}
		fmt.Printf("  idle client failed: %s\n", f)
	}
	lost, err := res.Lost(newMaster, password)
	if err != nil {
		return r, err
	}
	r.lost = len(lost)
	// Say which node acknowledged the first lost writes and when, relative to the scenario's action: a
	// write the old master acknowledged just before it was stopped, and had not yet sent to its replica,
	// is lost to asynchronous replication whatever the proxy does; one acknowledged well after the action
	// was routed to a node that was no longer the master.
	for i, a := range lost {
		if i == 3 {
			fmt.Printf("  ... %d more lost\n", len(lost)-i)
			break
		}
		fmt.Printf("  lost %s: acknowledged by %s at action%+v (new master %s)\n", a.Key, a.Node, a.At.Sub(start).Round(time.Microsecond), newMaster)
	}
	r.gap, _ = res.LongestGap()
	if first, ok := res.FirstAckBy(newMaster, start); ok {
		if sw, ok := events.First("+switch-master", start); ok {
			r.afterSwitch, r.haveSwitch = first.At.Sub(sw.At), true
		}
		if pr, ok := events.First("+failover-state-wait-promotion", start); ok {
			r.afterProm, r.haveProm = first.At.Sub(pr.At), true
		}
	}
	return r, nil
}

func scenarios(pause time.Duration) []scenario {
	waitOldConverted := func(topo *redistest.Topology, addr string) error {
		return topo.WaitRole(addr, "slave", 60*time.Second)
	}
	return []scenario{
		{name: "kill", act: func(r *running) (string, error) {
			topo := r.topo
			old := topo.Nodes[0].Addr
			topo.Nodes[0].Kill()
			return topo.WaitNewMaster(old, 60*time.Second)
		}},
		{name: "pause", act: func(r *running) (string, error) {
			topo := r.topo
			old := topo.Nodes[0]
			if err := old.Pause(); err != nil {
				return "", err
			}
			time.Sleep(pause)
			if err := old.Resume(); err != nil {
				return "", err
			}
			m, err := topo.WaitNewMaster(old.Addr, 60*time.Second)
			if err != nil {
				return "", err
			}
			return m, waitOldConverted(topo, old.Addr)
		}},
		{name: "manual", act: func(r *running) (string, error) {
			m, err := r.topo.Failover(60 * time.Second)
			if err != nil {
				return "", err
			}
			return m, waitOldConverted(r.topo, r.topo.Nodes[0].Addr)
		}},
		// The proxy's planned switchover to r.to. An aborted one is a result, not a failed run: the master
		// the Sentinels agree on afterwards is where the writes are checked.
		{name: "switchover", switchover: true, act: func(r *running) (string, error) {
			outcome, err := askSwitchover(r.proxy.stats, r.to, 5*time.Second)
			if err != nil {
				return "", err
			}
			r.outcome = outcome
			m, err := r.topo.AgreedMaster(60 * time.Second)
			if err != nil {
				return "", err
			}
			if m != r.topo.Nodes[0].Addr {
				return m, waitOldConverted(r.topo, r.topo.Nodes[0].Addr)
			}
			return m, nil
		}},
		{name: "restart", appendOnly: true, act: func(r *running) (string, error) {
			topo := r.topo
			old := topo.Nodes[0]
			old.Kill()
			m, err := topo.WaitNewMaster(old.Addr, 60*time.Second)
			if err != nil {
				return "", err
			}
			if err := old.Start(); err != nil {
				return "", err
			}
			return m, waitOldConverted(topo, old.Addr)
		}},
	}
}

// openIdle opens n clients through addr as a connection pool holds them: authenticated, on database 3,
// each with its name.
func openIdle(addr string, n int) ([]*redistest.Conn, error) {
	conns := make([]*redistest.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := redistest.Dial(addr, password)
		if err != nil {
			return conns, fmt.Errorf("idle client %d: %w", i, err)
		}
		conns = append(conns, c)
		for _, cmd := range [][]string{{"SELECT", "3"}, {"CLIENT", "SETNAME", fmt.Sprintf("idle-%d", i)}} {
			if r, err := c.Do(cmd...); err != nil || r != "OK" {
				return conns, fmt.Errorf("idle client %d: %v: %q %v", i, cmd, r, err)
			}
		}
	}
	return conns, nil
}

// checkIdle sends each idle client its next command, CLIENT INFO, and returns why each that failed did:
// an error (its connection was closed, say), or an answer from another node than master (a connection
// left on the old master, now a replica, whose next write would fail), or without its database and name.
func checkIdle(conns []*redistest.Conn, master string) []string {
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < 20; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if why := checkOne(conns[i], i, master); why != "" {
					mu.Lock()
					failures = append(failures, why)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range conns {
		next <- i
	}
	close(next)
	wg.Wait()
	sort.Strings(failures)
	return failures
}

func checkOne(c *redistest.Conn, i int, master string) string {
	info, err := c.Do("CLIENT", "INFO")
	if err != nil {
		return fmt.Sprintf("idle-%d: %v", i, err)
	}
	f := map[string]string{}
	for _, kv := range strings.Fields(info) {
		k, v, _ := strings.Cut(kv, "=")
		f[k] = v
	}
	if f["laddr"] != master || f["db"] != "3" || f["name"] != fmt.Sprintf("idle-%d", i) {
		return fmt.Sprintf("idle-%d: on %s as db=%s name=%s, want %s db=3 name=idle-%d", i, f["laddr"], f["db"], f["name"], master, i)
	}
	return ""
}

// askSwitchover asks sentinel-proxy at its stats port for a switchover to the replica to, as
// `sentinel-proxy switchover --to` does, and returns the last line it answered: the outcome.
func askSwitchover(stats, to string, timeout time.Duration) (string, error) {
	form := url.Values{"to": {to}, "timeout": {timeout.String()}}
	req, err := http.NewRequest("POST", "http://"+stats+"/-/switchover", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(statsUser, statsPassword)
	resp, err := (&http.Client{Timeout: timeout + time.Minute}).Do(req)
	if err != nil {
		return "", fmt.Errorf("POST /-/switchover: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("POST /-/switchover: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("POST /-/switchover: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	return lines[len(lines)-1], nil
}

// priorities is every running node's replica-priority (CONFIG GET), by address.
func priorities(topo *redistest.Topology) (map[string]string, error) {
	out := map[string]string{}
	for _, n := range topo.Nodes {
		if n.Pid() == 0 {
			continue
		}
		r, err := redistest.Do(n.Addr, topo.Password, "CONFIG", "GET", "replica-priority")
		if err != nil {
			return nil, fmt.Errorf("%s: CONFIG GET replica-priority: %w", n.Addr, err)
		}
		out[n.Addr] = strings.TrimPrefix(r, "replica-priority\n")
	}
	return out, nil
}
