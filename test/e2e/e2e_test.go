package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
	"github.com/sentinel-proxy/sentinel-proxy/server"
	"github.com/sentinel-proxy/sentinel-proxy/stats"
)

const testPassword = "test-pw-1"

// runningProxy is a proxy started in-process by a test.
type runningProxy struct {
	master, replica, stats string
	logs                   *redistest.SyncBuffer
	stop                   context.CancelFunc // what SIGTERM does
	finished               chan struct{}      // closed when run has returned, with runErr
	runErr                 error
}

// repoRoot is the repository's top directory, where go.mod is: the tests that read the repository's
// files (docs, contrib, the source) or build the binary start there, not in test/e2e.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// exitCode is the status a command exits with for err, as main gives it: the one err carries (a
// process's exit status, a cli.Exit error), or 1.
func exitCode(err error) int {
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

// freeAddrs returns n different loopback addresses with ports that were free a moment ago.
func freeAddrs(t *testing.T, n int) []any {
	t.Helper()
	ports, err := redistest.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	addrs := make([]any, n)
	for i, p := range ports {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	return addrs
}

// testConfig builds a config for the topology with fresh ports and fast checks.
func testConfig(t *testing.T, topo *redistest.Topology, masterName string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(testConfigDoc(t, topo, masterName)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// testConfigDoc is testConfig's TOML text. Its group names mode = "tcp": the tests written when tcp was
// the default rely on it; the tests of resp mode say so (inMode), and TestDefaultModeIsResp checks the
// default.
func testConfigDoc(t *testing.T, topo *redistest.Topology, masterName string) string {
	t.Helper()
	return fmt.Sprintf(`
[log]
level = "debug"
[sentinel]
addrs = [%s]
[redis]
password = %q
[check]
interval = "200ms"
timeout = "500ms"
[proxy]
shutdown_timeout = "1s"
[[masters]]
name = %q
master_listen = %q
replica_listen = %q
mode = "tcp"
[stats]
listen = %q
user = "admin"
password = "stats-pw"
`, append([]any{quoteAll(topo.SentinelAddrs()), topo.Password, masterName}, freeAddrs(t, 3)...)...)
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func startProxy(t *testing.T, cfg *config.Config) *runningProxy {
	t.Helper()
	return startProxyWith(t, cfg, server.Options{})
}

// startProxyWith runs the proxy in-process; the test's cleanup stops it as SIGTERM would, unless the
// test did (p.stop) and read p.done itself.
func startProxyWith(t *testing.T, cfg *config.Config, opts server.Options) *runningProxy {
	t.Helper()
	logs := &redistest.SyncBuffer{}
	log := server.NewLogger(config.Log{Level: "debug"}, logs)
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan map[string]string, 1)
	done := make(chan error, 1)
	opts.Started = func(a map[string]string) { addrs <- a }
	if opts.Version == "" {
		opts.Version = "dev " + runtime.Version() // as a build without a VCS stamp names itself
	}
	go func() { done <- server.Run(ctx, cfg, log, opts) }()
	var a map[string]string
	select {
	case a = <-addrs:
	case err := <-done:
		t.Fatalf("proxy did not start: %v", err)
	}
	p := &runningProxy{logs: logs, stats: a["stats"], stop: cancel, finished: make(chan struct{})}
	go func() { p.runErr = <-done; close(p.finished) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.finished:
			if p.runErr != nil {
				t.Errorf("run: %v", p.runErr)
			}
		case <-time.After(2*cfg.Proxy.ShutdownTimeout.Duration + 5*time.Second):
			t.Errorf("run did not return after the shutdown timeout")
		}
		if t.Failed() {
			t.Logf("proxy log:\n%s", logs.String())
		}
		if dir := os.Getenv("SENTINEL_PROXY_TEST_LOGS"); dir != "" {
			// Real lines for the examples of docs/logging.md.
			name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
			f, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			if err == nil {
				_, _ = f.WriteString(logs.String())
				f.Close()
			}
		}
	})
	for name, addr := range a {
		switch {
		case strings.HasSuffix(name, "/master"):
			p.master = addr
		case strings.HasSuffix(name, "/replica"):
			p.replica = addr
		}
	}
	return p
}

// servedBy returns the address of the node that answers through addr.
func servedBy(addr string) (string, error) { return servedByAuth(addr, testPassword) }

// servedByAuth is servedBy for nodes that need another password.
func servedByAuth(addr, password string) (string, error) {
	info, err := redistest.Do(addr, password, "INFO", "server")
	if err != nil {
		return "", err
	}
	return nodeOf(info)
}

// nodeOf reads the node's loopback address from its INFO server reply.
func nodeOf(info string) (string, error) {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "tcp_port:"); ok {
			return "127.0.0.1:" + v, nil
		}
	}
	return "", errors.New("no tcp_port in INFO server")
}

// waitRoutedTo waits until new clients of addr reach node.
func waitRoutedTo(t *testing.T, addr, node string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	err := redistest.Eventually(timeout, func() error {
		got, err := servedBy(addr)
		if err != nil {
			return err
		}
		if got != node {
			return fmt.Errorf("served by %s, want %s", got, node)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s never routed to %s: %v", addr, node, err)
	}
	return time.Since(start)
}

func newTopology(t *testing.T, replicas int) *redistest.Topology {
	return redistest.New(t, redistest.Options{Replicas: replicas, Sentinels: 3, Password: testPassword})
}

func TestRoutesMasterAndReplicasRoundRobin(t *testing.T) {
	topo := newTopology(t, 2)
	p := startProxy(t, testConfig(t, topo, topo.Name))
	waitRoutedTo(t, p.master, topo.Nodes[0].Addr, 10*time.Second)

	if r, err := redistest.Do(p.master, testPassword, "SET", "greeting", "hello"); err != nil || r != "OK" {
		t.Fatalf("SET through the master port: %q %v", r, err)
	}
	// Replicas take a moment to receive the write; every replica must serve it.
	err := redistest.Eventually(10*time.Second, func() error {
		for i := 0; i < 2; i++ {
			if v, err := redistest.Do(p.replica, testPassword, "GET", "greeting"); err != nil || v != "hello" {
				return fmt.Errorf("GET through the replica port: %q %v", v, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Consecutive clients alternate between the two replicas and never reach the master, once both
	// are in the pool (the first probe of each comes within milliseconds of the start, not at once).
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
	seen := map[string]int{}
	for i := 0; i < 10; i++ {
		node, err := servedBy(p.replica)
		if err != nil {
			t.Fatal(err)
		}
		seen[node]++
	}
	if len(seen) != 2 || seen[topo.Nodes[1].Addr] != 5 || seen[topo.Nodes[2].Addr] != 5 {
		t.Fatalf("replica port spread %v, want 5 each on %s and %s", seen, topo.Nodes[1].Addr, topo.Nodes[2].Addr)
	}
	if _, err := redistest.Do(p.replica, testPassword, "SET", "x", "y"); err == nil || !strings.Contains(err.Error(), "READONLY") {
		t.Fatalf("a write through the replica port must hit a read-only replica, got %v", err)
	}
}

// modes are the two ways a group serves its clients; the traffic tests run in both.
var modes = []string{"tcp", "resp"}

// inMode returns cfg with every group in mode.
func inMode(cfg *config.Config, mode string) *config.Config {
	for i := range cfg.Masters {
		cfg.Masters[i].Mode = mode
	}
	return cfg
}

func TestRedisTrafficThroughProxy(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { trafficThroughProxy(t, mode, "auto") })
	}
	// resp mode on goroutines (what a TLS listener uses), without TLS.
	t.Run("resp-portable", func(t *testing.T) { trafficThroughProxy(t, "resp", "portable") })
	// resp mode with shared backend connections.
	t.Run("resp-multiplex", func(t *testing.T) { trafficThroughProxy(t, "resp", "multiplex") })
}

func trafficThroughProxy(t *testing.T, mode, forwarder string) {
	topo := newTopology(t, 1)
	cfg := inMode(testConfig(t, topo, topo.Name), mode)
	if forwarder == "multiplex" {
		forwarder = "auto"
		cfg.Masters[0].Multiplex = true
	}
	cfg.Proxy.Forwarder = forwarder
	p := startProxy(t, cfg)
	waitRoutedTo(t, p.master, topo.Nodes[0].Addr, 10*time.Second)
	ctx := context.Background()

	for _, protocol := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", protocol), func(t *testing.T) {
			client := redis.NewClient(&redis.Options{Addr: p.master, Password: testPassword, Protocol: protocol,
				DisableIdentity: true, DB: 2, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
			defer client.Close()
			if protocol == 3 {
				hello, err := client.Do(ctx, "HELLO", "3").Result()
				if err != nil {
					t.Fatalf("HELLO 3: %v", err)
				}
				if m, ok := hello.(map[interface{}]interface{}); !ok || m["proto"] != int64(3) {
					t.Fatalf("HELLO 3 answered %#v", hello)
				}
			}
			// SELECT 2 (DB option) and AUTH went through: the key lands in db 2 only.
			if err := client.Set(ctx, "db-key", "in-2", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if v, err := redistest.Do(topo.Nodes[0].Addr, testPassword, "EXISTS", "db-key"); err != nil || v != "0" {
				t.Fatalf("key leaked into db 0: %q %v", v, err)
			}

			// MULTI/EXEC
			cmds, err := client.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
				pipe.Incr(ctx, "tx-counter")
				pipe.Incr(ctx, "tx-counter")
				return nil
			})
			if err != nil || cmds[1].(*redis.IntCmd).Val()%2 != 0 {
				t.Fatalf("MULTI/EXEC: %v %v", cmds, err)
			}

			// A pipeline of 1,000 commands.
			pipe := client.Pipeline()
			for i := 0; i < 1000; i++ {
				pipe.Set(ctx, fmt.Sprintf("pipe:%d", i), i, 0)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatalf("pipeline: %v", err)
			}
			if v, err := client.Get(ctx, "pipe:999").Result(); err != nil || v != "999" {
				t.Fatalf("pipeline result: %q %v", v, err)
			}

			// Blocking command: BLPOP waits in one session while another pushes.
			got := make(chan []string, 1)
			go func() {
				v, _ := client.BLPop(ctx, 10*time.Second, "queue").Result()
				got <- v
			}()
			time.Sleep(100 * time.Millisecond)
			if err := client.RPush(ctx, "queue", "job").Err(); err != nil {
				t.Fatal(err)
			}
			select {
			case v := <-got:
				if len(v) != 2 || v[1] != "job" {
					t.Fatalf("BLPOP got %v", v)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("BLPOP never returned")
			}

			// Pub/sub across two proxied sessions.
			sub := client.Subscribe(ctx, "news")
			defer sub.Close()
			if _, err := sub.Receive(ctx); err != nil {
				t.Fatal(err)
			}
			if err := client.Publish(ctx, "news", "hello").Err(); err != nil {
				t.Fatal(err)
			}
			msg, err := sub.ReceiveMessage(ctx)
			if err != nil || msg.Payload != "hello" {
				t.Fatalf("pub/sub: %v %v", msg, err)
			}
		})
	}

	t.Run("50MB value", func(t *testing.T) {
		client := redis.NewClient(&redis.Options{Addr: p.master, Password: testPassword, DisableIdentity: true,
			ReadTimeout: time.Minute, WriteTimeout: time.Minute})
		defer client.Close()
		big := bytes.Repeat([]byte("0123456789abcdef"), 50<<20/16)
		big[12345] = 'X'
		if err := client.Set(ctx, "big", big, 0).Err(); err != nil {
			t.Fatal(err)
		}
		back, err := client.Get(ctx, "big").Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back, big) {
			t.Fatalf("50MB value came back different (%d bytes)", len(back))
		}
	})
}

func TestManualFailoverSwitchesAndClosesOldSessions(t *testing.T) {
	topo := newTopology(t, 2)
	p := startProxy(t, testConfig(t, topo, topo.Name))
	oldMaster := topo.Nodes[0].Addr
	waitRoutedTo(t, p.master, oldMaster, 10*time.Second)

	// An established session to the old master must be closed on the switch.
	old, err := net.Dial("tcp", p.master)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.Write([]byte("AUTH " + testPassword + "\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = old.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := old.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "OK") {
		t.Fatalf("old session: %q %v", buf[:n], err)
	}

	newMaster, err := topo.Failover(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	waitRoutedTo(t, p.master, newMaster, 5*time.Second)

	_ = old.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := old.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("session to the old master still open after the switch")
			}
			break
		}
	}
	logs := p.logs.String()
	for _, want := range []string{`"event":"master_switched"`, `"old":"` + oldMaster + `"`, `"new":"` + newMaster + `"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	if r, err := redistest.Do(p.master, testPassword, "SET", "after", "failover"); err != nil || r != "OK" {
		t.Fatalf("write after failover: %q %v", r, err)
	}
}

func TestKilledMasterFailsOver(t *testing.T) {
	topo := newTopology(t, 2)
	p := startProxy(t, testConfig(t, topo, topo.Name))
	oldMaster := topo.Nodes[0].Addr
	waitRoutedTo(t, p.master, oldMaster, 10*time.Second)

	topo.Nodes[0].Kill()
	newMaster, err := topo.WaitNewMaster(oldMaster, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	took := waitRoutedTo(t, p.master, newMaster, 5*time.Second)
	t.Logf("proxy routed to %s %s after Sentinel named it", newMaster, took)
	// On a busy machine Sentinel may fail over once more; whatever it settles on, the proxy follows.
	if final, err := topo.AgreedMaster(30 * time.Second); err != nil {
		t.Fatal(err)
	} else if final != newMaster {
		t.Logf("Sentinel failed over again, to %s", final)
		waitRoutedTo(t, p.master, final, 5*time.Second)
	}
	if r, err := redistest.Do(p.master, testPassword, "SET", "after", "kill"); err != nil || r != "OK" {
		t.Fatalf("write after failover: %q %v", r, err)
	}
	// The dead node leaves the replica pool; the other replica (or the master) serves reads.
	err = redistest.Eventually(10*time.Second, func() error {
		for i := 0; i < 4; i++ {
			if _, err := servedBy(p.replica); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("replica port after the kill: %v", err)
	}
}

func TestNoVerifiedMasterGetsRESPError(t *testing.T) {
	topo := newTopology(t, 0)
	// Sentinel does not know "ghost": nothing can be verified. A client is held for failover_hold, then
	// told why, never left hanging.
	cfg := testConfig(t, topo, "ghost")
	cfg.Proxy.FailoverHold.Duration = 300 * time.Millisecond
	p := startProxy(t, cfg)
	start := time.Now()
	_, err := redistest.Do(p.master, "", "PING")
	if err == nil || !strings.Contains(err.Error(), `sentinel-proxy: no verified master for "ghost"`) {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 2500*time.Millisecond {
		t.Errorf("refusal after %s, want about failover_hold (300ms)", d)
	}
	_, err = redistest.Do(p.replica, "", "PING")
	if err == nil || !strings.Contains(err.Error(), "sentinel-proxy: no healthy replica") {
		t.Fatalf("replica port: got %v", err)
	}
}

func TestCheckCommand(t *testing.T) {
	topo := newTopology(t, 2)
	cfg := testConfig(t, topo, topo.Name)
	var out bytes.Buffer
	if err := server.Check(context.Background(), cfg, &out); err != nil {
		t.Fatalf("check on a healthy topology failed: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{"NODE", "ROLE BY SENTINEL", "ROLE BY PROBE", "LINK STATUS", "VERDICT",
		topo.Nodes[0].Addr, "MASTER", "REPLICA", "OK: every group"} {
		if !strings.Contains(text, want) {
			t.Errorf("check output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, testPassword) {
		t.Errorf("check output shows the password")
	}

	topo.Nodes[2].Kill()
	topo.Sentinels[2].Kill()
	out.Reset()
	err := server.Check(context.Background(), cfg, &out)
	if err == nil || exitCode(err) != 1 {
		t.Fatalf("check with a dead replica and Sentinel must exit 1, got %v\n%s", err, out.String())
	}
	for _, want := range []string{"PROBLEMS", topo.Sentinels[2].Addr + " unreachable", topo.Nodes[2].Addr} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestFollowsFailoverWithOneSentinelDown(t *testing.T) {
	topo := newTopology(t, 2)
	p := startProxy(t, testConfig(t, topo, topo.Name))
	waitRoutedTo(t, p.master, topo.Nodes[0].Addr, 10*time.Second)

	topo.Sentinels[2].Kill() // two of three still answer: a majority
	err := redistest.Eventually(10*time.Second, func() error {
		if !strings.Contains(p.logs.String(), `"event":"sentinel_lost","sentinel":"`+topo.Sentinels[2].Addr) {
			return errors.New("sentinel_lost not logged")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	newMaster, err := topo.Failover(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	waitRoutedTo(t, p.master, newMaster, 5*time.Second)

	// The stats page shows the new master and the lost Sentinel.
	req, _ := http.NewRequest("GET", "http://"+p.stats+"/stats.json", nil)
	req.SetBasicAuth("admin", "stats-pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page stats.Page
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	g := page.Groups[0]
	if g.Master != newMaster {
		t.Errorf("stats master = %s, want %s", g.Master, newMaster)
	}
	for _, s := range g.Sentinels {
		if s.Reachable == (s.Addr == topo.Sentinels[2].Addr) {
			t.Errorf("sentinel %s reachable=%v", s.Addr, s.Reachable)
		}
	}
	resp, err = http.Get("http://" + p.stats + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}
