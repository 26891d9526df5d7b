package redistest

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// New starts a topology for a test and stops it when the test ends. It skips the test only under
// `make unit` (SkipWithoutRedis): anywhere else a missing redis-server is a failure, since CI installs it.
func New(tb testing.TB, o Options) *Topology {
	tb.Helper()
	SkipWithoutRedis(tb)
	t, err := Start(o)
	if err != nil {
		tb.Fatalf("start topology: %v", err)
	}
	tb.Cleanup(t.Close)
	return t
}

// Dir is the topology's directory: Options.Dir, or the temporary one Start made, which Close removes.
// Whatever runs beside the topology (a proxy's configuration and log) may keep its files there.
func (t *Topology) Dir() string { return t.dir }

// SentinelAddrs lists the Sentinels' addresses.
func (t *Topology) SentinelAddrs() []string {
	addrs := make([]string, len(t.Sentinels))
	for i, s := range t.Sentinels {
		addrs[i] = s.Addr
	}
	return addrs
}

// Node returns the data node listening on addr, or nil.
func (t *Topology) Node(addr string) *Process {
	for _, n := range t.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// NodeAddrByPort returns the address of the data node listening on port (as CONFIG GET port reports
// it), or 127.0.0.1:<port> when none is. Ports are unique within a topology, so this names the node
// wherever it runs; it is what WriteLoad.NodeAddr wants.
func (t *Topology) NodeAddrByPort(port string) string {
	for _, n := range t.Nodes {
		if strconv.Itoa(n.Port) == port {
			return n.Addr
		}
	}
	return "127.0.0.1:" + port
}

// MasterAddr asks the Sentinels, in order, which address they name as master; the first that
// answers wins.
func (t *Topology) MasterAddr() (string, error) {
	var lastErr error
	for _, s := range t.Sentinels {
		addr, err := t.namedBy(s)
		if err == nil {
			return addr, nil
		}
		lastErr = err
	}
	return "", lastErr
}

// namedBy asks one Sentinel which address it names as master.
func (t *Topology) namedBy(s *Process) (string, error) {
	r, err := DoTLS(s.Addr, t.SentinelPassword, t.TLS, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", t.Name)
	if err != nil {
		return "", fmt.Errorf("sentinel %s: %w", s.Addr, err)
	}
	parts := strings.Split(r, "\n")
	if len(parts) != 2 {
		return "", fmt.Errorf("sentinel %s: GET-MASTER-ADDR-BY-NAME: %q", s.Addr, r)
	}
	return net.JoinHostPort(parts[0], parts[1]), nil
}

// Role returns what a node says its role is.
func (t *Topology) Role(addr string) (string, error) {
	info, err := DoTLS(addr, t.Password, t.TLS, "INFO", "replication")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "role:"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no role in INFO")
}

// WaitSettled waits until every node that is running agrees with Sentinel: the named master says
// role:master, `replicas` replicas are synced to it, and every Sentinel knows them and the others.
func (t *Topology) WaitSettled(replicas int, timeout time.Duration) error {
	return Eventually(timeout, func() error {
		master, err := t.MasterAddr()
		if err != nil {
			return err
		}
		role, err := t.Role(master)
		if err != nil || role != "master" {
			return fmt.Errorf("named master %s: role %q, %v", master, role, err)
		}
		info, err := DoTLS(master, t.Password, t.TLS, "INFO", "replication")
		if err != nil {
			return err
		}
		if got := strings.Count(info, "state=online"); got < replicas {
			return fmt.Errorf("master %s has %d online replicas, want %d", master, got, replicas)
		}
		running := 0
		for _, s := range t.Sentinels {
			if s.Pid() != 0 {
				running++
			}
		}
		for _, s := range t.Sentinels {
			if s.Pid() == 0 {
				continue
			}
			r, err := DoTLS(s.Addr, t.SentinelPassword, t.TLS, "SENTINEL", "REPLICAS", t.Name)
			if err != nil {
				return fmt.Errorf("sentinel %s: %w", s.Addr, err)
			}
			// Connected and not judged down: a Sentinel that lists a replica it has not reached yet
			// could not promote it.
			if got := strings.Count(r, "\nflags\nslave\n"); got < replicas {
				return fmt.Errorf("sentinel %s knows %d healthy replicas, want %d", s.Addr, got, replicas)
			}
			r, err = DoTLS(s.Addr, t.SentinelPassword, t.TLS, "SENTINEL", "SENTINELS", t.Name)
			if err != nil {
				return fmt.Errorf("sentinel %s: %w", s.Addr, err)
			}
			// Known from the configuration (redistest.Start writes them in) and linked: flags without
			// "disconnected".
			others := strings.Count(r, "\nflags\nsentinel\n")
			if others < running-1 {
				return fmt.Errorf("sentinel %s is linked to %d other sentinels, want %d", s.Addr, others, running-1)
			}
		}
		return nil
	})
}

// Failover asks a Sentinel for a manual failover and waits until a different node is named master
// and says role:master. It returns the new master's address.
func (t *Topology) Failover(timeout time.Duration) (string, error) {
	old, err := t.MasterAddr()
	if err != nil {
		return "", err
	}
	var lastErr error
	for _, s := range t.Sentinels {
		if _, lastErr = DoTLS(s.Addr, t.SentinelPassword, t.TLS, "SENTINEL", "FAILOVER", t.Name); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		return "", fmt.Errorf("SENTINEL FAILOVER: %w", lastErr)
	}
	return t.WaitNewMaster(old, timeout)
}

// WaitNewMaster waits until the Sentinels name a master other than old and it says role:master.
func (t *Topology) WaitNewMaster(old string, timeout time.Duration) (string, error) {
	var master string
	err := Eventually(timeout, func() error {
		m, err := t.MasterAddr()
		if err != nil {
			return err
		}
		if m == old {
			return fmt.Errorf("master is still %s", old)
		}
		if role, err := t.Role(m); err != nil || role != "master" {
			return fmt.Errorf("new master %s: role %q, %v", m, role, err)
		}
		master = m
		return nil
	})
	return master, err
}

// WaitRole waits until the node at addr reports role ("master" or "slave").
func (t *Topology) WaitRole(addr, role string, timeout time.Duration) error {
	return Eventually(timeout, func() error {
		got, err := t.Role(addr)
		if err != nil || got != role {
			return fmt.Errorf("%s: role %q, want %q (%v)", addr, got, role, err)
		}
		return nil
	})
}

// AgreedMaster waits until every running Sentinel names the same master, none is running a failover,
// that node says role:master, and all of this still holds a second later (a failover can be on its
// way while the previous one's announcement is still what everyone names).
func (t *Topology) AgreedMaster(timeout time.Duration) (string, error) {
	var agreed string
	err := Eventually(timeout, func() error {
		first, err := t.settledMaster()
		if err != nil {
			return err
		}
		time.Sleep(time.Second)
		again, err := t.settledMaster()
		if err != nil {
			return err
		}
		if again != first {
			return fmt.Errorf("master moved from %s to %s", first, again)
		}
		agreed = again
		return nil
	})
	return agreed, err
}

func (t *Topology) settledMaster() (string, error) {
	agreed := ""
	for _, s := range t.Sentinels {
		if s.Pid() == 0 {
			continue
		}
		addr, err := t.namedBy(s)
		if err != nil {
			return "", err
		}
		if agreed != "" && addr != agreed {
			return "", fmt.Errorf("the Sentinels disagree: %s and %s", agreed, addr)
		}
		agreed = addr
		flags, err := DoTLS(s.Addr, t.SentinelPassword, t.TLS, "SENTINEL", "MASTER", t.Name)
		if err != nil {
			return "", fmt.Errorf("sentinel %s: %w", s.Addr, err)
		}
		if strings.Contains(flags, "failover_in_progress") {
			return "", fmt.Errorf("sentinel %s is running a failover", s.Addr)
		}
	}
	if role, err := t.Role(agreed); err != nil || role != "master" {
		return "", fmt.Errorf("agreed master %s: role %q, %v", agreed, role, err)
	}
	return agreed, nil
}

// UnitOnly is the environment variable `make unit` sets: run only the tests that need no Redis process.
const UnitOnly = "SENTINEL_PROXY_UNIT"

// SkipWithoutRedis skips the test under `make unit`: it needs real Redis processes (the tests beside it
// that need none still run). Everywhere else, Redis must be there: a missing redis-server fails.
func SkipWithoutRedis(tb testing.TB) {
	tb.Helper()
	if os.Getenv(UnitOnly) != "" {
		tb.Skip("needs Redis processes; " + UnitOnly + " is set (make unit)")
	}
}
