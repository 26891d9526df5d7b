package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/netlab"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

const password = "mypassword"

// Each data node and Sentinel has a port of its own although each host has its own address: the writers
// learn which node acknowledged a write from its CONFIG GET port, so a port must name one node. hN's
// node listens on firstNodePort+N-1, its Sentinel on firstSentinelPort+N-1.
const (
	firstNodePort     = 6381
	firstSentinelPort = 26381
)

// sentinelPorts are the three Sentinels' ports.
func sentinelPorts() []int {
	return []int{firstSentinelPort, firstSentinelPort + 1, firstSentinelPort + 2}
}

// proxyPort is a proxy's master port on its host, the seed's. Each proxy has a host of its own, so a
// fleet's proxies share it.
const proxyPort = 5000

// bed is one run's test bed: a fresh lab with h1 (master + Sentinel), h2 and h3 (replica + Sentinel)
// and a host per proxy (hp, or in a fleet's scenario hp and more); the writers run in this process, on
// the lab's root port, which no cut touches.
type bed struct {
	lab            *netlab.Lab
	topo           *redistest.Topology
	h1, h2, h3, hp *netlab.Host
	proxies        []*netlab.Host // the hosts that run a proxy, hp first
	out            string         // where the processes' logs are kept
	tmp            string         // where the processes run: tmpfs

	mu      sync.Mutex
	actions []action // what the scenario did to the network, for the report and the raw log
}

// action is one cut or heal and when it took effect.
type action struct {
	At   time.Time
	What string
}

// newBed builds the lab, with a host for each of proxyHosts (hp among them), and starts the topology
// on it. The processes run in a directory on tmpfs: a Sentinel fsyncs its configuration file on every new epoch and vote, and on this machine's disk an
// fsync has taken over two seconds, which put a Sentinel in TILT mode in the middle of a failover: a
// disk benchmark, not a partition one. close copies the logs to out.
func newBed(out string, proxyHosts []string, downAfter, failoverTimeout time.Duration) (*bed, error) {
	if !slices.Contains(proxyHosts, "hp") {
		// Every single-proxy scenario cuts hp; a bed without it would fail in the middle of a run.
		return nil, fmt.Errorf("proxy hosts %v: hp missing", proxyHosts)
	}
	tmp, err := os.MkdirTemp(tmpfsDir(), "bench-partitions-")
	if err != nil {
		return nil, err
	}
	lab, err := netlab.Start(append([]string{"h1", "h2", "h3"}, proxyHosts...)...)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("lab: %w", err)
	}
	b := &bed{lab: lab, h1: lab.Host("h1"), h2: lab.Host("h2"), h3: lab.Host("h3"), hp: lab.Host("hp"), out: out, tmp: tmp}
	b.proxies = b.hosts(proxyHosts...)
	var hosts []redistest.Host
	for _, h := range []*netlab.Host{b.h1, b.h2, b.h3} {
		hosts = append(hosts, redistest.Host{IP: h.IP, Wrap: h.Wrap()})
	}
	b.topo, err = redistest.Start(redistest.Options{Replicas: 2, Sentinels: 3, Password: password, Dir: tmp,
		DownAfter: downAfter, FailoverTimeout: failoverTimeout,
		Ports: append([]int{firstNodePort, firstNodePort + 1, firstNodePort + 2}, sentinelPorts()...), NodeHosts: hosts, SentinelHosts: hosts})
	if err != nil {
		_ = lab.Close()
		b.keepLogs()
		return nil, fmt.Errorf("topology on the lab: %w", err)
	}
	return b, nil
}

// close stops every process, removes the lab and keeps the processes' logs and configuration files.
func (b *bed) close() {
	b.topo.Close()
	_ = b.lab.Close()
	b.keepLogs()
}

// keepLogs copies each process's log and configuration (Sentinel rewrites its own) to out, and removes
// the tmpfs directory.
func (b *bed) keepLogs() {
	defer os.RemoveAll(b.tmp)
	procs, _ := filepath.Glob(filepath.Join(b.tmp, "*"))
	for _, dir := range procs {
		dst := filepath.Join(b.out, filepath.Base(dir))
		if err := os.MkdirAll(dst, 0o755); err != nil {
			continue
		}
		for _, f := range []string{"log.txt", "redis.conf"} {
			if data, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
				_ = os.WriteFile(filepath.Join(dst, f), data, 0o644)
			}
		}
	}
}

// tmpfsDir is /dev/shm where there is one, else the usual temporary directory.
func tmpfsDir() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// hosts are the lab's hosts called names, in that order; nil for a name the lab has not, which a cut
// refuses.
func (b *bed) hosts(names ...string) []*netlab.Host {
	hs := make([]*netlab.Host, len(names))
	for i, n := range names {
		hs[i] = b.lab.Host(n)
	}
	return hs
}

// onHost places a process on h.
func onHost(h *netlab.Host) redistest.Host { return redistest.Host{IP: h.IP, Wrap: h.Wrap()} }

// hostOf names the host of a node address, for the report: "h1" for the first node's address.
func (b *bed) hostOf(node string) string {
	for i, n := range b.topo.Nodes {
		if n.Addr == node {
			return fmt.Sprintf("h%d", i+1)
		}
	}
	return node
}

func (b *bed) cut(a, c []*netlab.Host) error {
	if err := b.lab.Cut(a, c); err != nil {
		return err
	}
	b.record("cut " + names(a) + " | " + names(c))
	return nil
}

func (b *bed) cutPorts(a, c []*netlab.Host, ports ...int) error {
	if err := b.lab.CutPorts(a, c, ports...); err != nil {
		return err
	}
	b.record(fmt.Sprintf("cut %s | %s on TCP ports %v", names(a), names(c), ports))
	return nil
}

func (b *bed) heal() error {
	if err := b.lab.Heal(); err != nil {
		return err
	}
	b.record("heal")
	return nil
}

func (b *bed) record(what string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.actions = append(b.actions, action{At: time.Now(), What: what})
}

// firstCut is when the first cut took effect: the zero of every time in the report.
func (b *bed) firstCut() time.Time { return b.first("cut") }

// firstHeal is when the first heal took effect: the end of a scenario's one cut, or of a flap's first.
func (b *bed) firstHeal() time.Time { return b.first("heal") }

// first is when the first action starting with what took effect; zero if none did.
func (b *bed) first(what string) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, a := range b.actions {
		if strings.HasPrefix(a.What, what) {
			return a.At
		}
	}
	return time.Time{}
}

func (b *bed) actionLog() []action {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]action(nil), b.actions...)
}

func names(hs []*netlab.Host) string {
	var s []string
	for _, h := range hs {
		s = append(s, h.Name)
	}
	return "{" + strings.Join(s, ",") + "}"
}
