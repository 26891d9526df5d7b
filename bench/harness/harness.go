// Package harness starts the things the benchmarks compare, the same way for each: sentinel-proxy as a
// separate process, and HAProxy with the seed's tcp-check configuration. Benchmarks only.
package harness

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

// Process is a started proxy.
type Process struct {
	Addr    string // the master port
	Cmd     *exec.Cmd
	LogPath string // the file its stdout and stderr go to
	log     *os.File
}

// Stop kills the process and waits for it.
func (p *Process) Stop() {
	_ = p.Cmd.Process.Kill()
	_ = p.Cmd.Wait()
	p.log.Close()
}

// Pid is the process id, for reading its memory use.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// ProxyOptions say where a proxy runs and how sentinel-proxy is configured. The zero value is what the
// loopback benchmarks use.
type ProxyOptions struct {
	// Host is where the proxy runs and the address its master port binds: a netlab host, say. Zero:
	// this namespace, 127.0.0.1.
	Host     redistest.Host
	Port     int    // the master port; zero picks a free one
	LogLevel string // sentinel-proxy's [log] level; default "warn"
	Extra    string // appended to sentinel-proxy's [proxy] table
	// Tables are further TOML tables for sentinel-proxy, e.g. "[check]\ninterval = \"1s\"".
	Tables string
	// Master is appended to sentinel-proxy's [[masters]] block, e.g. a session mode. Without a mode line
	// the block says mode = "tcp": the byte forwarder, which the benches compare with HAProxy as "tcp"
	// (the product's default is resp since 0.25).
	Master string
	// SentinelInterval is sentinel-proxy's [sentinel] interval; zero leaves its default.
	SentinelInterval time.Duration
}

func (o ProxyOptions) listen() (ip string, port int, err error) {
	ip, port = o.Host.IP, o.Port
	if ip == "" {
		ip = "127.0.0.1"
	}
	if port == 0 {
		port, err = redistest.FreePort()
	}
	return ip, port, err
}

// StartSentinelProxy runs bin with a config for topo; extra is appended to the [proxy] table.
func StartSentinelProxy(bin string, topo *redistest.Topology, dir, extra string) (*Process, error) {
	return StartSentinelProxyWith(bin, topo, dir, ProxyOptions{Extra: extra})
}

// StartSentinelProxyWith runs bin with a config for topo, placed and configured as o says. Its log goes
// to sentinel-proxy-<port>.log in dir.
func StartSentinelProxyWith(bin string, topo *redistest.Topology, dir string, o ProxyOptions) (*Process, error) {
	ip, port, err := o.listen()
	if err != nil {
		return nil, err
	}
	level := o.LogLevel
	if level == "" {
		level = "warn"
	}
	quoted := make([]string, len(topo.Sentinels))
	for i, s := range topo.Sentinels {
		quoted[i] = fmt.Sprintf("%q", s.Addr)
	}
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	master := o.Master
	if !strings.Contains(master, "mode =") {
		master = "mode = \"tcp\"\n" + master
	}
	conf := filepath.Join(dir, fmt.Sprintf("sentinel-proxy-%d.toml", port))
	sentinel := fmt.Sprintf("addrs = [%s]\n", strings.Join(quoted, ", "))
	if o.SentinelInterval > 0 {
		sentinel += fmt.Sprintf("interval = %q\n", o.SentinelInterval.String())
	}
	doc := fmt.Sprintf("[log]\nlevel = %q\n[sentinel]\n%s[redis]\npassword = %q\n[proxy]\n%s\n%s\n[[masters]]\nname = %q\nmaster_listen = %q\n%s\n",
		level, sentinel, topo.Password, o.Extra, o.Tables, topo.Name, addr, master)
	if err := os.WriteFile(conf, []byte(doc), 0o600); err != nil {
		return nil, err
	}
	return start(filepath.Join(dir, fmt.Sprintf("sentinel-proxy-%d.log", port)), addr, o.Host.Wrap, bin, "run", "-c", conf)
}

// SeedConfig is the seed's HAProxy master frontend and tcp-check backend for nodes, listening on port.
// Two seed settings cannot be used as written on HAProxy 2.6 on this machine: `maxconn 1000000` needs
// more file descriptors than a process may hold (20,000), and `timeout tunnel 365d` overflows HAProxy's
// timer (at most ~24.8 days). Both are lowered; neither affects what is measured.
func SeedConfig(port int, password string, nodes []string) string {
	return seedConfig(fmt.Sprintf("127.0.0.1:%d", port), password, nodes)
}

func seedConfig(bind, password string, nodes []string) string {
	var servers strings.Builder
	for i, n := range nodes {
		fmt.Fprintf(&servers, "    server R%d %s check inter 1s\n", i+1, n)
	}
	return fmt.Sprintf(`global
    maxconn 9000
defaults REDIS
    mode tcp
    timeout connect 4s
    timeout server 15s
    timeout client 15s
    timeout tunnel 24d
frontend ft_redis_master
    bind %s name redis
    default_backend bk_redis_master
backend bk_redis_master
    option tcp-check
    tcp-check send AUTH\ %s\r\n
    tcp-check expect string +OK
    tcp-check send PING\r\n
    tcp-check expect string +PONG
    tcp-check send info\ replication\r\n
    tcp-check expect string role:master
    tcp-check expect string repl_backlog_active:1
    tcp-check send QUIT\r\n
    tcp-check expect string +OK
%s`, bind, password, servers.String())
}

// StartHAProxy runs HAProxy with SeedConfig for the topology's data nodes.
func StartHAProxy(bin string, topo *redistest.Topology, dir string) (*Process, error) {
	return StartHAProxyWith(bin, topo, dir, ProxyOptions{})
}

// StartHAProxyWith runs HAProxy with the seed's configuration, placed as o says (its sentinel-proxy
// settings do not apply).
func StartHAProxyWith(bin string, topo *redistest.Topology, dir string, o ProxyOptions) (*Process, error) {
	ip, port, err := o.listen()
	if err != nil {
		return nil, err
	}
	nodes := make([]string, len(topo.Nodes))
	for i, n := range topo.Nodes {
		nodes[i] = n.Addr
	}
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	path := filepath.Join(dir, fmt.Sprintf("haproxy-%d.cfg", port))
	if err := os.WriteFile(path, []byte(seedConfig(addr, topo.Password, nodes)), 0o600); err != nil {
		return nil, err
	}
	p, err := start(filepath.Join(dir, fmt.Sprintf("haproxy-%d.log", port)), addr, o.Host.Wrap, bin, "-db", "-f", path)
	if err != nil {
		return nil, fmt.Errorf("haproxy (apt-get install haproxy): %w", err)
	}
	return p, nil
}

// start runs bin, behind wrap when it is set (a command prefix that execs it in place on another host).
func start(logPath, addr string, wrap []string, bin string, args ...string) (*Process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	argv := append(append(append([]string(nil), wrap...), bin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	return &Process{Addr: addr, Cmd: cmd, LogPath: logPath, log: logFile}, nil
}

// WaitServedBy waits until a new client of addr reaches node.
func WaitServedBy(addr, password, node string, timeout time.Duration) error {
	return redistest.Eventually(timeout, func() error {
		r, err := redistest.Do(addr, password, "CONFIG", "GET", "port")
		if err != nil {
			return err
		}
		if got := "127.0.0.1:" + strings.TrimPrefix(r, "port\n"); got != node {
			return fmt.Errorf("served by %s", got)
		}
		return nil
	})
}

// WaitServedByNode waits until a new client of addr reaches node, naming the serving node by the
// topology's own addresses, so it works wherever the nodes run.
func WaitServedByNode(topo *redistest.Topology, addr, node string, timeout time.Duration) error {
	return redistest.Eventually(timeout, func() error {
		r, err := redistest.Do(addr, topo.Password, "CONFIG", "GET", "port")
		if err != nil {
			return err
		}
		if got := topo.NodeAddrByPort(strings.TrimPrefix(r, "port\n")); got != node {
			return fmt.Errorf("served by %s", got)
		}
		return nil
	})
}

// Median of xs (sorted in place); 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

// RSS returns a process's resident set size in bytes, from /proc.
func RSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// CPUTime returns the CPU time a process has used. It adds up the nanosecond counts of its live threads
// (/proc/<pid>/task/*/schedstat): /proc/<pid>/stat counts in ticks of 10 ms, and an idle proxy measured
// for a second read as 0 there (CI). Threads that ended are missing from the sum, which is why it falls
// back to the ticks only when schedstat is not there (a kernel without CONFIG_SCHED_INFO).
func CPUTime(pid int) (time.Duration, error) {
	if d, err := threadsCPUTime(pid); err == nil {
		return d, nil
	}
	return ticksCPUTime(pid)
}

func threadsCPUTime(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var total time.Duration
	read := 0
	for _, task := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, task.Name()))
		if err != nil {
			continue // the thread ended between the listing and the read
		}
		var ns int64
		if _, err := fmt.Sscan(string(data), &ns); err != nil {
			return 0, fmt.Errorf("/proc/%d/task/%s/schedstat: %w", pid, task.Name(), err)
		}
		total += time.Duration(ns)
		read++
	}
	if read == 0 {
		return 0, fmt.Errorf("no schedstat for pid %d", pid)
	}
	return total, nil
}

func ticksCPUTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after its closing parenthesis are fixed.
	text := string(data)
	f := strings.Fields(text[strings.LastIndexByte(text, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}

// MachineCPU returns the machine's idle and total CPU time so far, in USER_HZ ticks, from the first line
// of /proc/stat (idle includes iowait). The idle share between two readings tells whether the cores
// waited during a run: on a shared machine throughput is lost to waiting as much as to work.
func MachineCPU() (idle, total int64, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("unexpected /proc/stat line %q", line)
	}
	for i, v := range f[1:] {
		var n int64
		fmt.Sscan(v, &n)
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return idle, total, nil
}

// StartTwemproxy runs twemproxy (Debian's nutcracker) in front of the topology's master alone: one
// server, one shared connection to it (server_connections: 1, twemproxy's default), AUTH handled by
// twemproxy with the master's password (redis_auth). It does not follow failovers: it is here for its
// data path only.
func StartTwemproxy(bin string, topo *redistest.Topology, dir string) (*Process, error) {
	_, port, err := ProxyOptions{}.listen()
	if err != nil {
		return nil, err
	}
	statsPort, err := redistest.FreePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	master, err := topo.MasterAddr()
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`bench:
  listen: %s
  redis: true
  redis_auth: %s
  hash: fnv1a_64
  distribution: ketama
  auto_eject_hosts: false
  server_connections: 1
  timeout: 10000
  servers:
   - %s:1 master
`, addr, topo.Password, master)
	path := filepath.Join(dir, fmt.Sprintf("nutcracker-%d.yml", port))
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	p, err := start(filepath.Join(dir, fmt.Sprintf("nutcracker-%d.log", port)), addr, nil, bin, "-c", path,
		"-s", strconv.Itoa(statsPort), "-a", "127.0.0.1", "-o", filepath.Join(dir, fmt.Sprintf("nutcracker-%d.out", port)),
		"-p", filepath.Join(dir, fmt.Sprintf("nutcracker-%d.pid", port)))
	if err != nil {
		return nil, fmt.Errorf("nutcracker (apt-get install nutcracker): %w", err)
	}
	return p, nil
}

// WaitAnswers waits until a new client of addr gets an answer to GET (a proxy that answers no
// CONFIG, twemproxy).
func WaitAnswers(addr, password string, timeout time.Duration) error {
	return redistest.Eventually(timeout, func() error {
		_, err := redistest.Do(addr, password, "GET", "bench:ready")
		return err
	})
}

// BenchmarkResult is one test of a redis-benchmark run, as its CSV output gives it.
type BenchmarkResult struct {
	Test     string
	RPS      float64
	P50, P99 float64 // ms
}

// RedisBenchmark runs redis-benchmark against addr with AUTH password and args (after -h, -p, -a), in CSV
// mode, and returns one result per test it ran.
func RedisBenchmark(addr, password string, args ...string) ([]BenchmarkResult, error) {
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command("redis-benchmark", append([]string{"-h", host, "-p", port, "-a", password, "--csv"}, args...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("redis-benchmark (apt-get install redis-tools): %w", err)
	}
	// "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
	var results []BenchmarkResult
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(strings.ReplaceAll(line, `"`, ""), ",")
		if len(f) == 8 && f[0] != "test" {
			rps, _ := strconv.ParseFloat(f[1], 64)
			p50, _ := strconv.ParseFloat(f[4], 64)
			p99, _ := strconv.ParseFloat(f[6], 64)
			results = append(results, BenchmarkResult{Test: f[0], RPS: rps, P50: p50, P99: p99})
		}
	}
	if len(results) == 0 {
		return nil, fmt.Errorf("no result in redis-benchmark output: %q", out)
	}
	return results, nil
}
