package e2e

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/redistest"
	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// killStopped sends SIGKILL to a process that may be stopped (Pause), without resuming it first, so it
// answers nothing more, and reaps it.
func killStopped(t *testing.T, p *redistest.Process) {
	t.Helper()
	if pid := p.Pid(); pid != 0 {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	p.Kill()
}

// unreadAt returns how many bytes wait unread in the receive queue of the socket of the node at node
// connected to the local port peerPort (a proxy's session), from /proc/net/tcp: what a paused node was
// sent and has not read. ok is false when there is no such socket.
func unreadAt(node, peerPort string) (n int, ok bool, err error) {
	_, port, _ := net.SplitHostPort(node)
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, false, err
	}
	hexPort := func(addr string) string {
		_, h, _ := strings.Cut(addr, ":")
		v, _ := strconv.ParseUint(h, 16, 16)
		return strconv.FormatUint(v, 10)
	}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 5 || hexPort(f[1]) != port || hexPort(f[2]) != peerPort {
			continue
		}
		_, rx, _ := strings.Cut(f[4], ":")
		v, err := strconv.ParseUint(rx, 16, 32)
		return int(v), true, err
	}
	return 0, false, nil
}

// sentinelsSeeDown waits until every running Sentinel flags the data node addr s_down.
func sentinelsSeeDown(t *testing.T, topo *redistest.Topology, addr string) {
	t.Helper()
	err := redistest.Eventually(20*time.Second, func() error {
		for _, s := range topo.Sentinels {
			if s.Pid() == 0 {
				continue
			}
			r, err := redistest.Do(s.Addr, "", "SENTINEL", "REPLICAS", topo.Name)
			if err != nil {
				return err
			}
			// Each replica is a flat list of field, value, ...: find addr's flags.
			lines := strings.Split(r, "\n")
			found := false
			for i := 0; i+1 < len(lines); i += 2 {
				if lines[i] == "name" {
					found = lines[i+1] == addr
				}
				if found && lines[i] == "flags" {
					if !strings.Contains(lines[i+1], "s_down") {
						return fmt.Errorf("sentinel %s: %s has flags %s", s.Addr, addr, lines[i+1])
					}
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// replicaSession is a pooled client of the replica port and the node it was put on.
type replicaSession struct {
	c    *respConn
	name string
	node string // where it was when opened
	peer string // the proxy's port on that node (CLIENT INFO addr)
}

// replicaSessions opens pooled clients on the replica port until each of nodes holds at least n.
func replicaSessions(t *testing.T, addr string, n int, nodes ...string) map[string][]*replicaSession {
	t.Helper()
	out := map[string][]*replicaSession{}
	for i := 0; i < 10*n*len(nodes); i++ {
		done := true
		for _, node := range nodes {
			done = done && len(out[node]) >= n
		}
		if done {
			return out
		}
		name := fmt.Sprintf("ridle-%d", i)
		c := dialRESP(t, addr, pooled(name)...)
		f, err := c.whoAmI()
		if err != nil {
			t.Fatal(err)
		}
		_, peer, _ := net.SplitHostPort(f["addr"])
		out[f["laddr"]] = append(out[f["laddr"]], &replicaSession{c: c, name: name, node: f["laddr"], peer: peer})
	}
	t.Fatalf("could not open %d sessions on each of %v through %s", n, nodes, addr)
	return nil
}

// replicaPool waits until the proxy's replica port routes to exactly the nodes want (in any order) and
// none of its sessions is left on a node in gone.
func replicaPool(t *testing.T, p *runningProxy, want []string, gone ...string) {
	t.Helper()
	err := redistest.Eventually(20*time.Second, func() error {
		page := statsJSON(t, p)
		for _, l := range page.Groups[0].Listeners {
			if l.Role != "replica" {
				continue
			}
			if len(l.Backends) != len(want) {
				return fmt.Errorf("replica pool %v, want %v", l.Backends, want)
			}
			for _, w := range want {
				if !strings.Contains(strings.Join(l.Backends, " "), w) {
					return fmt.Errorf("replica pool %v, want %v", l.Backends, want)
				}
			}
		}
		for _, n := range page.Groups[0].Nodes {
			for _, g := range gone {
				if n.Addr == g && n.CurrentSessions != 0 {
					return fmt.Errorf("%s still has %d sessions", g, n.CurrentSessions)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRESPReplicaSessionsMove checks the replica port in resp mode: pooled clients (database 3, a name)
// whose replica is SIGKILLed, and then those whose replica is promoted by a failover, go on on another
// replica with their state. Idle ones see no error; a read in flight on the killed replica (sent while it
// was stopped, so it cannot have answered) is sent again and answered by another replica; readers that
// loop the whole time see no error at all. Sentinel's down-after is 2s: the failover is a manual one,
// and a loaded machine must not add others.
func TestRESPReplicaSessionsMove(t *testing.T) {
	topo := redistest.New(t, redistest.Options{Replicas: 3, Sentinels: 3, Password: testPassword, DownAfter: 2 * time.Second})
	p := startProxy(t, inMode(testConfig(t, topo, topo.Name), "resp"))
	waitRoutedTo(t, p.master, topo.Nodes[0].Addr, 10*time.Second)
	replicas := []string{topo.Nodes[1].Addr, topo.Nodes[2].Addr, topo.Nodes[3].Addr}
	replicaPool(t, p, replicas)
	seed := dialRESP(t, p.master, pooled("seed")...)
	if _, err := seed.do("SET", "rkey", "v"); err != nil {
		t.Fatal(err)
	}
	if v, err := seed.do("WAIT", "3", "10000"); err != nil || v.Int != 3 {
		t.Fatalf("WAIT for the replicas: %v %v", v.Text(), err)
	}
	seed.conn.Close()

	sessions := replicaSessions(t, p.replica, 4, replicas...)

	// Readers loop on the replica port the whole time: every reply must come, right.
	stop := make(chan struct{})
	var readerWG sync.WaitGroup
	var reads atomic.Int64
	readerErrs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		name := fmt.Sprintf("reader-%d", i)
		c := dialRESP(t, p.replica, pooled(name)...)
		readerWG.Add(1)
		go func() {
			defer readerWG.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				f, err := c.whoAmI()
				if err == nil {
					err = wantState(f, name)
				}
				if err == nil {
					var v resp.Value
					if v, err = c.do("GET", "rkey"); err == nil && v.Str != "v" {
						err = fmt.Errorf("GET rkey on %s answered %q", f["laddr"], v.Text())
					}
				}
				if err != nil {
					readerErrs <- fmt.Errorf("%s: %w", name, err)
					return
				}
				reads.Add(1)
			}
		}()
	}
	stopReaders := sync.OnceFunc(func() { close(stop); readerWG.Wait() })
	defer stopReaders()

	// A replica dies with a read in flight: stopped first, so the read is surely unanswered when it dies.
	victim := topo.Nodes[1]
	if err := victim.Pause(); err != nil {
		t.Fatal(err)
	}
	inflight, idle := sessions[victim.Addr][:2], sessions[victim.Addr][2:]
	for _, s := range inflight {
		if err := s.c.send("CLIENT", "INFO"); err != nil {
			t.Fatal(err)
		}
	}
	err := redistest.Eventually(5*time.Second, func() error {
		for _, s := range inflight {
			if n, ok, err := unreadAt(victim.Addr, s.peer); err != nil || !ok || n == 0 {
				return fmt.Errorf("CLIENT INFO of %s not waiting at %s yet (%d bytes, socket %v, %v)", s.name, victim.Addr, n, ok, err)
			}
		}
		return nil
	})
	if err != nil {
		_ = victim.Resume()
		t.Fatal(err)
	}
	logFrom := len(p.logs.String())
	killStopped(t, victim)
	// Where the sessions may go: another replica, or the master if the replica port fell back to it
	// (no replica qualified for a moment).
	allowed := func(node string) bool {
		if node == topo.Nodes[0].Addr {
			return strings.Contains(p.logs.String()[logFrom:], `"event":"replica_fallback"`)
		}
		return node != victim.Addr && slices.Contains(replicas, node)
	}
	for _, s := range inflight {
		v, err := s.c.read(10 * time.Second)
		if err == nil {
			err = v.Err()
		}
		var f map[string]string
		if err == nil {
			f, err = infoFields(v)
		}
		if err == nil {
			err = wantState(f, s.name)
		}
		if err == nil && !allowed(f["laddr"]) {
			err = fmt.Errorf("answered by %s", f["laddr"])
		}
		if err != nil {
			t.Errorf("the read %s had in flight on the killed replica: %v", s.name, err)
		}
	}
	for _, s := range idle {
		f, err := s.c.whoAmI()
		if err == nil {
			err = wantState(f, s.name)
		}
		if err == nil && !allowed(f["laddr"]) {
			err = fmt.Errorf("answered by %s", f["laddr"])
		}
		if err != nil {
			t.Errorf("idle %s after its replica was killed: %v", s.name, err)
		}
	}

	// A failover promotes one of the two replicas left: its sessions move to a replica.
	sentinelsSeeDown(t, topo, victim.Addr)
	promoted, err := topo.Failover(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	newMaster, err := topo.AgreedMaster(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if newMaster != promoted {
		t.Logf("Sentinel failed over again, to %s", newMaster)
	}
	waitRoutedTo(t, p.master, newMaster, 10*time.Second)
	var left []string
	for _, r := range append(replicas[1:], topo.Nodes[0].Addr) {
		if r != newMaster {
			left = append(left, r)
		}
	}
	for _, r := range left {
		if err := topo.WaitRole(r, "slave", 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	replicaPool(t, p, left, newMaster, victim.Addr)
	moved := 0
	for node, ss := range sessions {
		for _, s := range ss {
			f, err := s.c.whoAmI()
			if err == nil {
				err = wantState(f, s.name)
			}
			if err == nil && !slices.Contains(left, f["laddr"]) {
				err = fmt.Errorf("answered by %s, not a replica in the pool %v", f["laddr"], left)
			}
			if err != nil {
				t.Errorf("idle %s (first on %s) after the failover to %s: %v", s.name, node, newMaster, err)
			}
			if node == promoted {
				moved++
			}
		}
	}
	before := reads.Load()
	if err := redistest.Eventually(10*time.Second, func() error {
		if reads.Load() < before+20 {
			return fmt.Errorf("%d reads since the failover", reads.Load()-before)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	stopReaders()
	close(readerErrs)
	for err := range readerErrs {
		t.Errorf("a reader saw an error: %v", err)
	}
	t.Logf("%d sessions moved off the killed replica %s, %d off the promoted %s; readers made %d reads",
		len(sessions[victim.Addr]), victim.Addr, moved, promoted, reads.Load())
}
