package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/bench/harness"
	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

// TestClientGarbageHurtsNobodyElse sends random bytes through both ports from many clients at once, in
// each mode: they get protocol errors (Redis's, or in resp mode the proxy's, worded as Redis's) and are
// closed; the proxy stays healthy and other sessions do not notice.
func TestClientGarbageHurtsNobodyElse(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { clientGarbage(t, mode) })
	}
}

func clientGarbage(t *testing.T, mode string) {
	topo := newTopology(t, 1)
	p := startProxy(t, inMode(testConfig(t, topo, topo.Name), mode))
	waitRoutedTo(t, p.master, topo.Nodes[0].Addr, 10*time.Second)
	waitRoutedTo(t, p.replica, topo.Nodes[1].Addr, 10*time.Second)
	good := map[string]*redistest.Conn{}
	for _, addr := range []string{p.master, p.replica} {
		c, err := redistest.Dial(addr, testPassword)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		good[addr] = c
	}
	if _, err := good[p.master].Do("SET", "survivor", "1"); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		addr := []string{p.master, p.replica}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				t.Errorf("dial %s: %v", addr, err)
				return
			}
			defer c.Close()
			junk := make([]byte, 64<<10)
			for j := range junk {
				junk[j] = byte(rand.IntN(256))
			}
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			go func() { _, _ = c.Write(junk) }()
			buf := make([]byte, 4096)
			for { // read until Redis closes the protocol-broken connection (or the deadline)
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	for addr, c := range good {
		if r, err := c.Do("GET", "survivor"); err != nil || (addr == p.master && r != "1") {
			t.Errorf("a well-behaved session on %s after the garbage: %q %v", addr, r, err)
		}
	}
	if r, err := redistest.Do(p.master, testPassword, "PING"); err != nil || r != "PONG" {
		t.Errorf("a new client after the garbage: %q %v", r, err)
	}
	if code, body := statsRequest(t, "GET", p.stats, "/readyz", "", ""); code != 200 {
		t.Errorf("readyz after the garbage: %d %s", code, body)
	}
}

// TestHostileSentinelIsIgnored lists, besides the real Sentinels, one that answers with a two-billion
// element array: it is marked unreachable and logged, and the proxy routes as if it were not there.
func TestHostileSentinelIsIgnored(t *testing.T) {
	topo := newTopology(t, 1)
	bad := redistest.Hostile(t, redistest.HugeArray)
	cfg := testConfig(t, topo, topo.Name)
	cfg.Sentinel.Addrs = append(cfg.Sentinel.Addrs, bad)
	p := startProxy(t, cfg)
	waitRoutedTo(t, p.master, topo.Nodes[0].Addr, 10*time.Second)
	if err := redistest.Eventually(10*time.Second, func() error {
		for _, s := range statsJSON(t, p).Groups[0].Sentinels {
			if s.Addr == bad {
				if s.Reachable {
					return fmt.Errorf("the hostile Sentinel shows as reachable")
				}
				return nil
			}
		}
		return fmt.Errorf("the hostile Sentinel is not on the page")
	}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.logs.String(), `"event":"sentinel_lost","sentinel":"`+bad+`"`) {
		t.Errorf("the hostile Sentinel was not logged as lost")
	}
	// And failover still follows the real ones.
	if _, err := topo.Failover(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitRoutedTo(t, p.master, topo.Nodes[1].Addr, 15*time.Second)
}

// TestOutOfFileDescriptors runs the binary with `ulimit -n 64` and opens more clients than it can hold:
// it neither crashes nor spins, clients beyond the limit get a RESP error or wait in the backlog, and
// once clients leave it serves normally again.
func TestOutOfFileDescriptors(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	topo := newTopology(t, 1)
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(testConfigDoc(t, topo, topo.Name)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	b := startBinary(t, exec.Command("sh", "-c", `ulimit -n 64 && exec "$0" run -c "$1"`, bin, path))
	proc, logs, exited := b.proc, b.logs, b.exited
	master := cfg.Masters[0].MasterListen
	waitRoutedTo(t, master, topo.Nodes[0].Addr, 10*time.Second)

	// 60 clients need 120 descriptors: far beyond 64.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 60; i++ {
		c, err := net.DialTimeout("tcp", master, time.Second)
		if err != nil {
			break // the kernel's backlog is full too
		}
		conns = append(conns, c)
		_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = c.Write([]byte("*2\r\n$4\r\nAUTH\r\n$" + strconv.Itoa(len(testPassword)) + "\r\n" + testPassword + "\r\n"))
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	served, refused := 0, 0
	var refusal string
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			line := make([]byte, 256)
			n, rerr := c.Read(line)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case n == 0:
				t.Logf("a client got no answer: %v", rerr)
			case bytes.HasPrefix(line[:n], []byte("+OK")):
				served++
			case bytes.HasPrefix(line[:n], []byte("-ERR sentinel-proxy")):
				refused++
				refusal = strings.TrimSpace(string(line[:n]))
			default:
				t.Logf("a client got %q", line[:n])
			}
		}()
	}
	wg.Wait()
	t.Logf("with 64 descriptors: %d of %d clients served, %d refused with %q", served, len(conns), refused, refusal)
	// A client that connects while no descriptor is free is accepted with the reserve descriptor and told
	// "out of file descriptors"; one accepted whose backend cannot be dialled is told "too many open
	// files". A few may see a reset instead, when the kernel drops a connection the proxy could not
	// accept in time; most must be told why.
	if served == 0 || served > 32 || refused == 0 || (served+refused)*10 < len(conns)*9 {
		t.Errorf("%d served, %d refused of %d; want some served (fewer than the descriptors allow) and nearly all others told why",
			served, refused, len(conns))
	}
	if refused > 0 && !strings.Contains(refusal, "out of file descriptors") && !strings.Contains(refusal, "too many open files") {
		t.Errorf("refusal %q does not say why", refusal)
	}
	// While it is out of descriptors, it must not spin.
	before, err := harness.CPUTime(proc.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	after, err := harness.CPUTime(proc.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if used := after - before; used > 400*time.Millisecond {
		t.Errorf("the proxy used %v of CPU in 2s while out of descriptors: it spins", used)
	}
	if !strings.Contains(logs.String(), `"event":"accept_error"`) && refused == 0 {
		t.Errorf("running out of descriptors was neither logged (accept_error) nor told to clients")
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	if err := redistest.Eventually(10*time.Second, func() error {
		r, err := redistest.Do(master, testPassword, "PING")
		if err != nil || r != "PONG" {
			return fmt.Errorf("PING: %q %v", r, err)
		}
		return nil
	}); err != nil {
		t.Errorf("after the clients left: %v", err)
	}
	select {
	case err := <-exited:
		t.Fatalf("the proxy exited: %v", err)
	default:
	}
	_ = proc.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Errorf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("no exit after SIGTERM")
	}
}
