package redistest_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/netlab"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

// labTopology starts a master and two replicas, each with a Sentinel, on hosts h1, h2, h3 of a lab.
func labTopology(t *testing.T) (*netlab.Lab, *redistest.Topology) {
	t.Helper()
	lab := netlab.New(t, "h1", "h2", "h3")
	var hosts []redistest.Host
	for _, h := range lab.Hosts {
		hosts = append(hosts, redistest.Host{IP: h.IP, Wrap: h.Wrap()})
	}
	topo := redistest.New(t, redistest.Options{Replicas: 2, Sentinels: 3, Password: "pw", NodeHosts: hosts, SentinelHosts: hosts})
	return lab, topo
}

// TestTopologyOnLabHosts runs the helpers the failover tests use against processes on lab hosts: each
// process on its host's address, Sentinels announcing those addresses, writes attributed to the node
// that acknowledged them, and pause, failover and restart as on loopback.
func TestTopologyOnLabHosts(t *testing.T) {
	lab, topo := labTopology(t)
	h1 := lab.Host("h1")
	for i, n := range topo.Nodes {
		if host := lab.Hosts[i]; !strings.HasPrefix(n.Addr, host.IP+":") {
			t.Fatalf("node %d at %s, want on %s", i, n.Addr, host)
		}
	}
	master, err := topo.MasterAddr()
	if err != nil || master != topo.Nodes[0].Addr || !strings.HasPrefix(master, h1.IP+":") {
		t.Fatalf("master %s %v, want %s", master, err, topo.Nodes[0].Addr)
	}
	others, err := redistest.Do(topo.Sentinels[0].Addr, "", "SENTINEL", "SENTINELS", topo.Name)
	if err != nil || !strings.Contains(others, lab.Host("h2").IP) || !strings.Contains(others, lab.Host("h3").IP) {
		t.Errorf("Sentinel on h1 knows the others as:\n%s %v", others, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res := (&redistest.WriteLoad{Addr: master, Password: "pw", Writers: 2, NodeAddr: topo.NodeAddrByPort}).Run(ctx)
	if len(res.Acks) == 0 || res.Acks[0].Node != master {
		t.Fatalf("acks %d, first by %v, want %s", len(res.Acks), res.Acks[:min(1, len(res.Acks))], master)
	}
	if lost, err := res.Lost(master, "pw"); err != nil || len(lost) != 0 {
		t.Errorf("lost %d %v", len(lost), err)
	}

	// The wrapper execs in place: the pid is redis-server's own, so Pause stops the server itself.
	pid := topo.Nodes[1].Pid()
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "redis-server" {
		t.Errorf("pid %d is %q, not redis-server", pid, comm)
	}
	if err := topo.Nodes[1].Pause(); err != nil {
		t.Fatal(err)
	}
	if err := redistest.Eventually(2*time.Second, func() error { return processState(pid, 'T') }); err != nil {
		t.Error(err)
	}
	if err := topo.Nodes[1].Resume(); err != nil {
		t.Fatal(err)
	}
	newMaster, err := topo.Failover(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.WaitRole(master, "slave", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := topo.Nodes[0].Restart(); err != nil {
		t.Fatal(err)
	}
	if err := topo.WaitRole(master, "slave", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if agreed, err := topo.AgreedMaster(30 * time.Second); err != nil || agreed != newMaster {
		t.Errorf("agreed master %s %v, want %s", agreed, err, newMaster)
	}
}

// TestMajorityFailsOverAcrossACut cuts the master's host from the other two: their Sentinels are the
// majority, promote a replica, and after the heal the old master is made its replica.
func TestMajorityFailsOverAcrossACut(t *testing.T) {
	lab, topo := labTopology(t)
	old := topo.Nodes[0].Addr
	h1, h2, h3 := lab.Host("h1"), lab.Host("h2"), lab.Host("h3")
	if err := lab.Cut([]*netlab.Host{h1}, []*netlab.Host{h2, h3}); err != nil {
		t.Fatal(err)
	}
	// The Sentinel on h1 cannot see the failover; ask those of the majority.
	majority := &redistest.Topology{Name: topo.Name, Sentinels: topo.Sentinels[1:], Password: topo.Password}
	newMaster, err := majority.WaitNewMaster(old, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The old master, alone, still thinks it is one: that is what a partition does.
	if role, err := topo.Role(old); err != nil || role != "master" {
		t.Errorf("old master during the cut: %q %v", role, err)
	}
	if err := lab.Heal(); err != nil {
		t.Fatal(err)
	}
	if err := topo.WaitRole(old, "slave", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if agreed, err := topo.AgreedMaster(30 * time.Second); err != nil || agreed != newMaster {
		t.Errorf("agreed master %s %v, want %s", agreed, err, newMaster)
	}
}

// processState checks the state letter of /proc/<pid>/stat.
func processState(pid int, want byte) error {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return err
	}
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 || i+2 >= len(stat) || stat[i+2] != want {
		return fmt.Errorf("pid %d: state not %c: %s", pid, want, stat)
	}
	return nil
}
