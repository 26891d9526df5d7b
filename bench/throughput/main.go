// Command throughput compares the data path of direct Redis, sentinel-proxy and HAProxy with the seed's
// configuration in one run: redis-benchmark GET, SET and GET -P 16 (rounds alternate the order of the
// paths; medians and ratios are reported), SET -P 16, then memory per idle proxied connection (RSS growth of a
// freshly started proxy holding N connections that each did AUTH + PING) and N active connections.
// See docs/benchmarks.md.
//
//	go run ./bench/throughput -proxy bin/sentinel-proxy -rounds 3
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/bench/harness"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

const password = "mypassword"

type workload struct {
	name    string
	args    []string // redis-benchmark's own, after the common ones
	clients int      // -c; 0: the -c flag's
	size    int      // -d; 0: 16
	share   int      // the run makes -n / share requests (big values take longer); 0: 1
	// mix: 90 % of the clients do GET and 10 % SET at once (two redis-benchmark processes side by side,
	// each with its share of the requests): the read-mostly mix of most caches.
	mix bool
}

// basicWorkloads are the workloads of -matrix=false: GET and SET of 16 B values at -c, then pipelined.
var basicWorkloads = []workload{
	{name: "GET", args: []string{"-t", "get"}},
	{name: "SET", args: []string{"-t", "set"}},
	{name: "GET -P 16", args: []string{"-t", "get", "-P", "16"}},
	{name: "SET -P 16", args: []string{"-t", "set", "-P", "16"}},
}

// matrixWorkloads add what users run beside the basic ones: values of 1 KB and 16 KB, 10 and 500
// clients, MGET of 10 keys and a 90/10 GET/SET mix. Debian has no memtier_benchmark; redis-benchmark
// does it all, the mix as two processes at once.
var matrixWorkloads = []workload{
	{name: "GET 1 KB", args: []string{"-t", "get"}, size: 1024},
	{name: "SET 1 KB", args: []string{"-t", "set"}, size: 1024},
	{name: "GET 16 KB", args: []string{"-t", "get"}, size: 16 << 10, share: 4},
	{name: "SET 16 KB", args: []string{"-t", "set"}, size: 16 << 10, share: 4},
	{name: "GET c 10", args: []string{"-t", "get"}, clients: 10, share: 2},
	{name: "SET c 10", args: []string{"-t", "set"}, clients: 10, share: 2},
	{name: "GET c 500", args: []string{"-t", "get"}, clients: 500},
	{name: "SET c 500", args: []string{"-t", "set"}, clients: 500},
	{name: "MGET 10 keys", args: append([]string{"-r", strconv.Itoa(mgetKeys), "MGET"}, slices.Repeat([]string{"key:__rand_int__"}, 10)...), share: 2},
	{name: "GET/SET 90/10", mix: true},
}

// mgetKeys is how many keys MGET picks from; they are written before the first round.
const mgetKeys = 10000

type sample struct{ rps, p50, p99, cpuPerReq, idle float64 }

func main() {
	proxyBin := flag.String("proxy", "bin/sentinel-proxy", "sentinel-proxy binary")
	haproxyBin := flag.String("haproxy", "haproxy", "haproxy binary")
	rounds := flag.Int("rounds", 3, "rounds; each runs every workload on every path, in a rotated order (0: memory only)")
	requests := flag.Int("n", 200000, "requests per redis-benchmark run")
	clients := flag.Int("c", 50, "redis-benchmark clients")
	conns := flag.Int("conns", 8000, "connections for the memory and active-connection tests")
	extra := flag.String("proxy-config", "", "extra [proxy] keys for sentinel-proxy, e.g. 'forwarder = \"portable\"'")
	batch := flag.Bool("batch", true, "also measure a second sentinel-proxy with event_loop_scheduling = \"batch\"")
	baseline := flag.String("baseline", "", "also measure this sentinel-proxy binary in every mode measured (tcp, and resp and multiplex when on), e.g. a build of the commit before a change: A/B in one run")
	respMode := flag.Bool("resp", true, "also measure sentinel-proxy in resp mode ([[masters]] mode = \"resp\")")
	multiplex := flag.Bool("multiplex", true, "also measure sentinel-proxy in resp mode with multiplex = true")
	durable := flag.Bool("durable", true, "also measure durable acknowledgements: resp mode and multiplex with wait_replicas = 1 (the topology's one replica)")
	twemproxy := flag.String("twemproxy", "nutcracker", "twemproxy binary (empty: not measured)")
	burst := flag.Int("burst", 1000, "clients doing GET at once, for the backend connections and Redis's client memory per path (0: skip)")
	matrix := flag.Bool("matrix", true, "also measure values of 1 KB and 16 KB, 10 and 500 clients, MGET of 10 keys and a 90/10 GET/SET mix")
	only := flag.String("workloads", "", "measure only these workloads, comma-separated names as in the table (e.g. 'GET,SET')")
	flag.Parse()
	workloads := append([]workload(nil), basicWorkloads...)
	if *matrix {
		workloads = append(workloads, matrixWorkloads...)
	}
	if *only != "" {
		var picked []workload
		for _, name := range strings.Split(*only, ",") {
			for _, w := range workloads {
				if w.name == strings.TrimSpace(name) {
					picked = append(picked, w)
				}
			}
		}
		workloads = picked
	}
	variants := []variant{{name: "sentinel-proxy", bin: *proxyBin, proxy: *extra}}
	if *respMode {
		variants = append(variants, variant{name: "sentinel-proxy resp", bin: *proxyBin, proxy: *extra, master: `mode = "resp"`})
	}
	if *multiplex {
		variants = append(variants, variant{name: "sentinel-proxy multiplex", bin: *proxyBin, proxy: *extra,
			master: "mode = \"resp\"\nmultiplex = true"})
	}
	if *durable {
		variants = append(variants,
			variant{name: "sentinel-proxy durable", bin: *proxyBin, proxy: *extra, master: "mode = \"resp\"\nwait_replicas = 1"},
			variant{name: "sentinel-proxy durable multiplex", bin: *proxyBin, proxy: *extra,
				master: "mode = \"resp\"\nmultiplex = true\nwait_replicas = 1"})
	}
	if *batch {
		variants = append(variants, variant{name: "sentinel-proxy batch", bin: *proxyBin, proxy: *extra + "\n" + batchConfig})
	}
	if *baseline != "" {
		variants = append(variants, variant{name: "baseline", bin: *baseline, proxy: *extra})
		if *respMode {
			variants = append(variants, variant{name: "baseline resp", bin: *baseline, proxy: *extra, master: `mode = "resp"`})
		}
		if *multiplex {
			variants = append(variants, variant{name: "baseline multiplex", bin: *baseline, proxy: *extra,
				master: "mode = \"resp\"\nmultiplex = true"})
		}
		if *durable {
			variants = append(variants, variant{name: "baseline durable multiplex", bin: *baseline, proxy: *extra,
				master: "mode = \"resp\"\nmultiplex = true\nwait_replicas = 1"})
		}
	}
	if err := run(variants, workloads, *haproxyBin, *twemproxy, *rounds, *requests, *clients, *conns, *burst); err != nil {
		fmt.Fprintln(os.Stderr, "throughput:", err)
		os.Exit(1)
	}
}

// batchConfig is the [proxy] key of the "sentinel-proxy batch" path.
const batchConfig = `event_loop_scheduling = "batch"`

// variant is one sentinel-proxy measured: a binary and what its configuration adds.
type variant struct {
	name   string
	bin    string
	proxy  string // [proxy] keys
	master string // [[masters]] keys
}

func (v variant) start(topo *redistest.Topology, dir string) (*harness.Process, error) {
	return harness.StartSentinelProxyWith(v.bin, topo, dir, harness.ProxyOptions{Extra: v.proxy, Master: v.master})
}

func run(variants []variant, workloads []workload, haproxyBin, twemproxyBin string, rounds, requests, clients, conns, burst int) error {
	topo, err := redistest.Start(redistest.Options{Replicas: 1, Sentinels: 3, Password: password, DownAfter: 5 * time.Second})
	if err != nil {
		return err
	}
	defer topo.Close() // and removes its directory, where the proxies keep their files
	dir := topo.Dir()
	master := topo.Nodes[0].Addr

	type path struct {
		name, addr string
		pid        int // the proxy's, whose CPU time is measured; 0 for direct
	}
	paths := []path{{"direct", master, 0}}
	var procs []*harness.Process
	defer func() {
		for _, p := range procs {
			p.Stop()
		}
	}()
	for _, v := range variants {
		p, err := v.start(topo, dir)
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		procs = append(procs, p)
		paths = append(paths, path{v.name, p.Addr, p.Pid()})
	}
	hp, err := harness.StartHAProxy(haproxyBin, topo, dir)
	if err != nil {
		return err
	}
	procs = append(procs, hp)
	paths = append(paths, path{"haproxy", hp.Addr, hp.Pid()})
	if twemproxyBin != "" {
		tw, err := harness.StartTwemproxy(twemproxyBin, topo, dir)
		if err != nil {
			return err
		}
		procs = append(procs, tw)
		paths = append(paths, path{"twemproxy", tw.Addr, tw.Pid()})
	}
	for _, p := range paths {
		wait := harness.WaitServedBy(p.addr, password, master, 20*time.Second)
		if p.name == "twemproxy" { // it answers no CONFIG; it has one server
			wait = harness.WaitAnswers(p.addr, password, 20*time.Second)
		}
		if wait != nil {
			return fmt.Errorf("%s: %w", p.addr, wait)
		}
	}
	// MGET's keys, and the key GET reads, hold values of the size measured (written before each GET).
	if out, err := exec.Command("redis-benchmark", "-h", host(master), "-p", port(master), "-a", password, "-q",
		"-t", "set", "-r", strconv.Itoa(mgetKeys), "-n", strconv.Itoa(10*mgetKeys), "-d", "16").CombinedOutput(); err != nil {
		return fmt.Errorf("writing MGET's keys: %w: %s", err, out)
	}
	fmt.Printf("# throughput: redis-benchmark -c %d -n %d -d 16 unless a workload says otherwise, %d rounds, %d CPUs\n", clients, requests, rounds, numCPU())
	results := map[string][]sample{}
	for r := 0; r < rounds; r++ {
		for _, w := range workloads {
			for i := range paths {
				p := paths[(i+r)%len(paths)] // rotate who goes first
				var cpu0 time.Duration
				if p.pid != 0 {
					cpu0, _ = harness.CPUTime(p.pid)
				}
				idle0, total0, _ := harness.MachineCPU()
				s, err := w.run(p.addr, master, clients, requests)
				if err != nil {
					return fmt.Errorf("%s %s: %w", w.name, p.name, err)
				}
				if idle1, total1, err := harness.MachineCPU(); err == nil && total1 > total0 {
					s.idle = 100 * float64(idle1-idle0) / float64(total1-total0)
				}
				if p.pid != 0 {
					cpu1, _ := harness.CPUTime(p.pid)
					s.cpuPerReq = float64((cpu1 - cpu0).Microseconds()) / float64(w.requests(requests))
				}
				key := w.name + "|" + p.name
				results[key] = append(results[key], s)
				fmt.Printf("round %d %-14s %-20s rps=%.0f p50=%.3fms p99=%.3fms cpu=%.2fµs/req idle=%.1f%%\n", r+1, w.name, p.name, s.rps, s.p50, s.p99, s.cpuPerReq, s.idle)
			}
		}
	}
	fmt.Println()
	if rounds > 0 { // -rounds 0 measures memory only
		fmt.Println("| workload | path | rps (median) | vs HAProxy | vs direct | p50 ms | p99 ms | proxy CPU µs/request | machine idle |")
		fmt.Println("|---|---|---|---|---|---|---|---|---|")
	}
	for _, w := range workloads[:min(len(workloads), len(workloads)*rounds)] {
		med := func(path string, f func(sample) float64) float64 {
			var xs []float64
			for _, s := range results[w.name+"|"+path] {
				xs = append(xs, f(s))
			}
			return harness.Median(xs)
		}
		rps := func(s sample) float64 { return s.rps }
		for _, p := range paths {
			cpu := "-"
			if p.pid != 0 {
				cpu = fmt.Sprintf("%.2f", med(p.name, func(s sample) float64 { return s.cpuPerReq }))
			}
			fmt.Printf("| %s | %s | %.0f | %.2f× | %.2f× | %.3f | %.3f | %s | %.1f %% |\n", w.name, p.name, med(p.name, rps),
				med(p.name, rps)/med("haproxy", rps), med(p.name, rps)/med("direct", rps),
				med(p.name, func(s sample) float64 { return s.p50 }), med(p.name, func(s sample) float64 { return s.p99 }), cpu,
				med(p.name, func(s sample) float64 { return s.idle }))
		}
	}

	if rounds > 0 {
		names := make([]string, len(paths))
		for i, p := range paths {
			names[i] = p.name
		}
		ratios(workloads, names, results)
	}

	if burst > 0 {
		fmt.Printf("\n| path | %d clients doing GET at once: backend connections to the master | Redis's client memory (mem_clients_normal) | errors |\n", burst)
		fmt.Println("|---|---|---|---|")
		for _, p := range paths {
			n, mem, errs, err := burstOfClients(p.addr, master, burst)
			if err != nil {
				return fmt.Errorf("%s burst: %w", p.name, err)
			}
			fmt.Printf("| %s | %d | %.1f MiB | %d |\n", p.name, n, float64(mem)/(1<<20), errs)
		}
	}

	// Memory: fresh processes, so earlier benchmark traffic does not count. The batch variant forwards
	// as the default one does; it is left out.
	for _, p := range procs {
		p.Stop()
	}
	procs = nil
	fmt.Printf("\n| proxy | RSS before | RSS with %d idle proxied connections | per connection | %d active connections: errors |\n", conns, conns)
	fmt.Println("|---|---|---|---|---|")
	type starter struct {
		name  string
		start func() (*harness.Process, error)
	}
	var starts []starter
	for _, v := range variants {
		if !strings.Contains(v.proxy, batchConfig) {
			starts = append(starts, starter{v.name, func() (*harness.Process, error) { return v.start(topo, dir) }})
		}
	}
	starts = append(starts, starter{"haproxy", func() (*harness.Process, error) { return harness.StartHAProxy(haproxyBin, topo, dir) }})
	if twemproxyBin != "" {
		starts = append(starts, starter{"twemproxy", func() (*harness.Process, error) { return harness.StartTwemproxy(twemproxyBin, topo, dir) }})
	}
	for _, st := range starts {
		name := st.name
		p, err := st.start()
		if err != nil {
			return err
		}
		wait := harness.WaitServedBy(p.Addr, password, master, 20*time.Second)
		if name == "twemproxy" {
			wait = harness.WaitAnswers(p.Addr, password, 20*time.Second)
		}
		if wait != nil {
			p.Stop()
			return wait
		}
		before, after, errs, err := memory(p, conns)
		p.Stop()
		if err != nil {
			return fmt.Errorf("%s memory: %w", name, err)
		}
		fmt.Printf("| %s | %.1f MiB | %.1f MiB | %.2f KB | %d |\n", name, float64(before)/(1<<20), float64(after)/(1<<20),
			float64(after-before)/float64(conns)/1000, errs)
	}
	return nil
}

// ratios prints, per workload, the ratios the data path's targets are set in (docs/benchmarks.md):
// multiplex against twemproxy, direct Redis and HAProxy, resp and tcp mode against HAProxy, the durable
// mode against the same mode without it; medians of the per-round ratios, which alternate the order.
func ratios(workloads []workload, paths []string, results map[string][]sample) {
	has := map[string]bool{}
	for _, p := range paths {
		has[p] = true
	}
	type column struct{ title, a, b string }
	var cols []column
	for _, c := range []column{
		{"multiplex / twemproxy", "sentinel-proxy multiplex", "twemproxy"},
		{"multiplex / direct", "sentinel-proxy multiplex", "direct"},
		{"multiplex / HAProxy", "sentinel-proxy multiplex", "haproxy"},
		{"resp / HAProxy", "sentinel-proxy resp", "haproxy"},
		{"tcp / HAProxy", "sentinel-proxy", "haproxy"},
		{"durable multiplex / multiplex", "sentinel-proxy durable multiplex", "sentinel-proxy multiplex"},
		{"p99 multiplex / twemproxy", "sentinel-proxy multiplex", "twemproxy"},
	} {
		if has[c.a] && has[c.b] {
			cols = append(cols, c)
		}
	}
	if len(cols) == 0 {
		return
	}
	fmt.Print("\n| workload |")
	for _, c := range cols {
		fmt.Printf(" %s |", c.title)
	}
	fmt.Print("\n|---|")
	for range cols {
		fmt.Print("---|")
	}
	fmt.Println()
	for _, w := range workloads {
		fmt.Printf("| %s |", w.name)
		for _, c := range cols {
			a, b := results[w.name+"|"+c.a], results[w.name+"|"+c.b]
			var xs []float64
			for i := 0; i < len(a) && i < len(b); i++ {
				if strings.HasPrefix(c.title, "p99") {
					xs = append(xs, a[i].p99/b[i].p99)
				} else {
					xs = append(xs, a[i].rps/b[i].rps)
				}
			}
			if len(xs) == 0 {
				fmt.Print(" - |")
				continue
			}
			fmt.Printf(" %.2f (%.2f–%.2f) |", harness.Median(xs), slices.Min(xs), slices.Max(xs))
		}
		fmt.Println()
	}
}

func numCPU() int {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

func host(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }
func port(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

// requests is how many requests one run of w makes.
func (w workload) requests(n int) int { return n / max(w.share, 1) }

// run measures w through addr: for GET, master's key first holds a value of the size measured.
func (w workload) run(addr, master string, clients, requests int) (sample, error) {
	if w.clients > 0 {
		clients = w.clients
	}
	size := max(w.size, 16)
	requests = w.requests(requests)
	if w.mix || (len(w.args) > 1 && w.args[1] == "get") {
		if _, err := redistest.Do(master, password, "SET", "key:__rand_int__", strings.Repeat("x", size)); err != nil {
			return sample{}, fmt.Errorf("writing GET's key: %w", err)
		}
	}
	if !w.mix {
		return redisBenchmark(addr, clients, requests, size, w.args)
	}
	getClients := max(clients*9/10, 1)
	var set sample
	var setErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		set, setErr = redisBenchmark(addr, max(clients-getClients, 1), requests/10, size, []string{"-t", "set"})
	}()
	get, err := redisBenchmark(addr, getClients, requests-requests/10, size, []string{"-t", "get"})
	<-done
	if err == nil {
		err = setErr
	}
	// Both ran at once over about the same time: their rates add up; the latencies are the GETs'.
	return sample{rps: get.rps + set.rps, p50: get.p50, p99: get.p99}, err
}

// redisBenchmark runs redis-benchmark against addr and returns its (first) test's sample.
func redisBenchmark(addr string, clients, requests, size int, args []string) (sample, error) {
	rs, err := harness.RedisBenchmark(addr, password, append([]string{"-c", strconv.Itoa(clients),
		"-n", strconv.Itoa(requests), "-d", strconv.Itoa(size)}, args...)...)
	if err != nil {
		return sample{}, err
	}
	return sample{rps: rs[0].RPS, p50: rs[0].P50, p99: rs[0].P99}, nil
}

// memory opens n connections through p, each doing AUTH + PING, and reports the process's RSS before
// and after; then every connection sends PINGs at once, and errors are counted.
func memory(p *harness.Process, n int) (before, after int64, errs int64, err error) {
	time.Sleep(time.Second)
	if before, err = harness.RSS(p.Pid()); err != nil {
		return
	}
	conns := make([]net.Conn, 0, n)
	readers := make([]*bufio.Reader, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	auth := fmt.Sprintf("*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n", len(password), password)
	for i := 0; i < n; i++ {
		c, derr := net.DialTimeout("tcp", p.Addr, 5*time.Second)
		if derr != nil {
			return before, 0, 0, fmt.Errorf("connection %d: %w", i, derr)
		}
		conns = append(conns, c)
		rd := bufio.NewReaderSize(c, 64)
		readers = append(readers, rd)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, werr := c.Write([]byte(auth)); werr != nil {
			return before, 0, 0, werr
		}
		for _, want := range []string{"+OK\r\n", "+PONG\r\n"} {
			line, rerr := rd.ReadString('\n')
			if rerr != nil || line != want {
				return before, 0, 0, fmt.Errorf("connection %d: %q %v", i, line, rerr)
			}
		}
	}
	time.Sleep(2 * time.Second)
	if after, err = harness.RSS(p.Pid()); err != nil {
		return
	}
	// All n at once: 10 PINGs each, concurrently.
	var failed atomic.Int64
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, rd := conns[i], readers[i]
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			for k := 0; k < 10; k++ {
				if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
					failed.Add(1)
					return
				}
				if line, err := rd.ReadString('\n'); err != nil || line != "+PONG\r\n" {
					failed.Add(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	return before, after, failed.Load(), nil
}

// burstOfClients opens n clients through addr, each authenticated, has them all send a GET at once,
// and while they are all still connected counts the master's connections whose last command was that
// GET (the proxy's backend connections, or the clients themselves when direct) and reads Redis's memory
// for normal clients.
func burstOfClients(addr, master string, n int) (backends int, memClients int64, errs int64, err error) {
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	auth := fmt.Sprintf("*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(password), password)
	readers := make([]*bufio.Reader, 0, n)
	for i := 0; i < n; i++ {
		c, derr := net.DialTimeout("tcp", addr, 5*time.Second)
		if derr != nil {
			return 0, 0, 0, fmt.Errorf("connection %d: %w", i, derr)
		}
		conns = append(conns, c)
		rd := bufio.NewReaderSize(c, 256)
		readers = append(readers, rd)
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, werr := c.Write([]byte(auth)); werr != nil {
			return 0, 0, 0, werr
		}
		if line, rerr := rd.ReadString('\n'); rerr != nil || line != "+OK\r\n" {
			return 0, 0, 0, fmt.Errorf("connection %d AUTH: %q %v", i, line, rerr)
		}
	}
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := conns[i].Write([]byte("*2\r\n$3\r\nGET\r\n$10\r\nburst:none\r\n")); err != nil {
				failed.Add(1)
				return
			}
			if line, err := readers[i].ReadString('\n'); err != nil || line != "$-1\r\n" {
				failed.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	list, err := redistest.Do(master, password, "CLIENT", "LIST")
	if err != nil {
		return 0, 0, 0, err
	}
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, " cmd=get ") {
			backends++
		}
	}
	info, err := redistest.Do(master, password, "INFO", "memory")
	if err != nil {
		return 0, 0, 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "mem_clients_normal:"); ok {
			memClients, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return backends, memClients, failed.Load(), nil
}
