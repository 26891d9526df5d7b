// Command profile says where a request's time goes on each path: while redis-benchmark runs through
// it, perf counts the CPU time, context switches and system calls (by kind) of the proxy and of the
// Redis master, and the report divides them by the requests. The Redis master's reads per request are
// the batching a proxy gives it: 1.00 direct, 1/batch behind a shared connection. With -record, perf
// also samples the proxy's stacks and prints where its CPU goes. See docs/benchmarks.md.
//
//	go run ./bench/profile -proxy bin/sentinel-proxy -paths direct,multiplex,twemproxy -t get
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/bench/harness"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

const password = "mypassword"

// events are what perf counts, per process: the system calls a data path makes, by kind.
var events = []string{
	"task-clock", "context-switches",
	"raw_syscalls:sys_enter",
	"syscalls:sys_enter_read", "syscalls:sys_enter_write", "syscalls:sys_enter_writev",
	"syscalls:sys_enter_epoll_wait", "syscalls:sys_enter_epoll_pwait", "syscalls:sys_enter_futex",
	"syscalls:sys_enter_recvfrom", "syscalls:sys_enter_sendto",
}

func main() {
	proxyBin := flag.String("proxy", "bin/sentinel-proxy", "sentinel-proxy binary")
	pathsFlag := flag.String("paths", "direct,multiplex,twemproxy,haproxy,resp", "paths: direct, tcp, resp, multiplex, haproxy, twemproxy")
	test := flag.String("t", "get", "redis-benchmark test (-t)")
	clients := flag.Int("c", 50, "redis-benchmark clients")
	requests := flag.Int("n", 400000, "requests")
	pipeline := flag.Int("P", 1, "redis-benchmark pipeline")
	size := flag.Int("d", 16, "value size")
	extra := flag.String("proxy-config", "", "extra [proxy] keys for sentinel-proxy")
	record := flag.Bool("record", false, "also sample the proxy's stacks (perf record) and print its top functions")
	flag.Parse()
	if err := run(*proxyBin, strings.Split(*pathsFlag, ","), *extra, *test, *clients, *requests, *pipeline, *size, *record); err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		os.Exit(1)
	}
}

func run(proxyBin string, names []string, extra, test string, clients, requests, pipeline, size int, record bool) error {
	if _, err := exec.LookPath("perf"); err != nil {
		return fmt.Errorf("perf (apt-get install linux-perf): %w", err)
	}
	topo, err := redistest.Start(redistest.Options{Replicas: 1, Sentinels: 3, Password: password, DownAfter: 5 * time.Second})
	if err != nil {
		return err
	}
	defer topo.Close() // and removes its directory, where the proxies keep their files
	dir := topo.Dir()
	master := topo.Nodes[0]
	fmt.Printf("# profile: redis-benchmark -t %s -c %d -n %d -P %d -d %d\n\n", test, clients, requests, pipeline, size)
	fmt.Println("| path | rps | process | CPU µs/req | ctx switches/req | syscalls/req | read | write | epoll_wait | futex | other |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, name := range names {
		addr, pid, stop, err := start(name, proxyBin, extra, topo, dir)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		err = profileOne(name, addr, pid, master.Pid(), dir, test, clients, requests, pipeline, size, record)
		stop()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// start runs one path and returns its address, the pid of its proxy (0 for direct) and how to stop it.
func start(name, proxyBin, extra string, topo *redistest.Topology, dir string) (string, int, func(), error) {
	master := topo.Nodes[0].Addr
	var p *harness.Process
	var err error
	switch name {
	case "direct":
		return master, 0, func() {}, nil
	case "tcp":
		p, err = harness.StartSentinelProxyWith(proxyBin, topo, dir, harness.ProxyOptions{Extra: extra})
	case "resp":
		p, err = harness.StartSentinelProxyWith(proxyBin, topo, dir, harness.ProxyOptions{Extra: extra, Master: `mode = "resp"`})
	case "multiplex":
		p, err = harness.StartSentinelProxyWith(proxyBin, topo, dir, harness.ProxyOptions{Extra: extra, Master: "mode = \"resp\"\nmultiplex = true"})
	case "haproxy":
		p, err = harness.StartHAProxy("haproxy", topo, dir)
	case "twemproxy":
		p, err = harness.StartTwemproxy("nutcracker", topo, dir)
	default:
		return "", 0, nil, fmt.Errorf("unknown path %q", name)
	}
	if err != nil {
		return "", 0, nil, err
	}
	wait := harness.WaitServedBy(p.Addr, password, master, 20*time.Second)
	if name == "twemproxy" {
		wait = harness.WaitAnswers(p.Addr, password, 20*time.Second)
	}
	if wait != nil {
		p.Stop()
		return "", 0, nil, wait
	}
	return p.Addr, p.Pid(), p.Stop, nil
}

// profileOne warms the path up, then runs redis-benchmark through it with perf counting the proxy and
// the master, and prints one row per process.
func profileOne(name, addr string, proxyPid, redisPid int, dir, test string, clients, requests, pipeline, size int, record bool) error {
	if _, err := benchmark(addr, test, clients, requests/4, pipeline, size); err != nil { // warm-up
		return err
	}
	type counted struct {
		label string
		pid   int
		cmd   *exec.Cmd
		out   bytes.Buffer
	}
	procs := []*counted{{label: "redis", pid: redisPid}}
	if proxyPid != 0 {
		procs = append([]*counted{{label: "proxy", pid: proxyPid}}, procs...)
	}
	for _, p := range procs {
		p.cmd = exec.Command("perf", "stat", "-x", ",", "-e", strings.Join(events, ","), "-p", strconv.Itoa(p.pid))
		p.cmd.Stderr = &p.out
		if err := p.cmd.Start(); err != nil {
			return fmt.Errorf("perf stat: %w", err)
		}
	}
	var rec *exec.Cmd
	recFile := fmt.Sprintf("%s/perf-%s.data", dir, strings.ReplaceAll(name, " ", "-"))
	if record && proxyPid != 0 {
		rec = exec.Command("perf", "record", "-q", "-g", "-F", "2000", "-o", recFile, "-p", strconv.Itoa(proxyPid))
		if err := rec.Start(); err != nil {
			return fmt.Errorf("perf record: %w", err)
		}
	}
	time.Sleep(200 * time.Millisecond) // perf attaches
	rps, err := benchmark(addr, test, clients, requests, pipeline, size)
	for _, p := range procs {
		_ = p.cmd.Process.Signal(os.Interrupt)
		_ = p.cmd.Wait()
	}
	if rec != nil {
		_ = rec.Process.Signal(os.Interrupt)
		_ = rec.Wait()
	}
	if err != nil {
		return err
	}
	// perf counted the 200 ms before the run too; an idle process does next to nothing in them.
	n := float64(requests)
	for _, p := range procs {
		c := parseStat(p.out.String())
		known := c["syscalls:sys_enter_read"] + c["syscalls:sys_enter_write"] + c["syscalls:sys_enter_writev"] +
			c["syscalls:sys_enter_epoll_wait"] + c["syscalls:sys_enter_epoll_pwait"] + c["syscalls:sys_enter_futex"] +
			c["syscalls:sys_enter_recvfrom"] + c["syscalls:sys_enter_sendto"]
		fmt.Printf("| %s | %.0f | %s | %.2f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |\n", name, rps, p.label,
			c["task-clock"]*1000/n, // task-clock is in ms
			c["context-switches"]/n, c["raw_syscalls:sys_enter"]/n,
			(c["syscalls:sys_enter_read"]+c["syscalls:sys_enter_recvfrom"])/n,
			(c["syscalls:sys_enter_write"]+c["syscalls:sys_enter_writev"]+c["syscalls:sys_enter_sendto"])/n,
			(c["syscalls:sys_enter_epoll_wait"]+c["syscalls:sys_enter_epoll_pwait"])/n,
			c["syscalls:sys_enter_futex"]/n, (c["raw_syscalls:sys_enter"]-known)/n)
	}
	if rec != nil {
		out, err := exec.Command("perf", "report", "-i", recFile, "--no-children", "--stdio", "-q", "-g", "none",
			"--percent-limit", "1.5", "--sort", "symbol").Output()
		if err != nil {
			return fmt.Errorf("perf report: %w", err)
		}
		dso, err := exec.Command("perf", "report", "-i", recFile, "--no-children", "--stdio", "-q", "-g", "none",
			"--sort", "dso").Output()
		if err != nil {
			return fmt.Errorf("perf report: %w", err)
		}
		fmt.Printf("\n%s: where the proxy's CPU goes (perf record: by object, then symbols over 1.5 %%)\n\n```\n%s\n%s```\n\n", name, dso, out)
	}
	return nil
}

// parseStat reads perf stat's CSV output (-x ,): value,unit,event,...
func parseStat(out string) map[string]float64 {
	c := map[string]float64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		c[f[2]] = v
	}
	return c
}

// benchmark runs redis-benchmark and returns its requests per second (the median of its tests').
func benchmark(addr, test string, clients, requests, pipeline, size int) (float64, error) {
	rs, err := harness.RedisBenchmark(addr, password, "-c", strconv.Itoa(clients), "-n", strconv.Itoa(requests),
		"-P", strconv.Itoa(pipeline), "-d", strconv.Itoa(size), "-t", test)
	if err != nil {
		return 0, err
	}
	rates := make([]float64, len(rs))
	for i, r := range rs {
		rates[i] = r.RPS
	}
	return harness.Median(rates), nil
}
