// Package netlab builds hosts in network namespaces for tests: each host is a namespace with one
// address on a shared L2 segment (a Linux bridge), so processes bound to different hosts talk over a
// real network path that can be partitioned. Cut drops packets between groups of hosts on the bridge,
// the way a failed switch or firewall would (packets vanish; TCP stalls and retransmits), and Heal
// restores the segment.
//
// The test process stays in the root namespace, which has a port of its own on the segment (Lab.Root):
// it reaches every host, and no cut touches it unless a test names it. Processes are put on a host by
// prefixing their command line with Host.Wrap (ip netns exec).
//
// Every namespace a lab creates is named netlab-<pid>-<random>-<host>, so the labs of parallel tests
// never collide and each picks its own /24 in 10.64.0.0/10. Close removes a lab (New does it when the
// test ends, failed or not); Start first sweeps away the labs of processes that died without closing
// theirs.
//
// The package owns the namespaces, interfaces and nftables rules it creates, and nothing else: it
// never changes the root namespace beyond its one veth and that veth's address. It needs root, ip
// (iproute2) and nft (nftables); New skips a test when they are missing.
package netlab

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"sync"
)

// nsPrefix starts the name of every namespace a lab creates: netlab-<pid>-<hex>-<host>. The pid lets
// Sweep tell a leftover lab (its process is gone) from one in use.
const nsPrefix = "netlab-"

// rootHostName is the name of the root namespace's port, as Lab.Host knows it.
const rootHostName = "root"

// Lab is a set of hosts on one L2 segment. Its methods are safe for concurrent use.
type Lab struct {
	// ID is unique among the labs on this machine, even across processes: "<pid>-<8 hex digits>".
	ID string
	// Subnet is the segment's IPv4 /24, chosen so it overlaps no address of the root namespace.
	Subnet netip.Prefix
	// Root is the test process's own port on the segment: its namespace is the root one (Wrap is nil).
	Root *Host
	// Hosts are the hosts in the order they were named; the i-th has address .i+1 in Subnet.
	Hosts []*Host

	sw     string // the switch namespace: the bridge and every host's peer end of its veth
	rootIf string // the root namespace's end of its veth

	mu     sync.Mutex
	closed bool
}

// Host is one machine on the segment.
type Host struct {
	Name string // as given to Start
	NS   string // its network namespace; empty for Lab.Root
	IP   string // its address on the segment
}

// Wrap is the command prefix that runs a program on the host: ip netns exec, which execs the program in
// place (same pid), so signals sent to the started process reach the program itself. Nil for Lab.Root.
func (h *Host) Wrap() []string {
	if h.NS == "" {
		return nil
	}
	return []string{"ip", "netns", "exec", h.NS}
}

// Command prepares a program to run on the host.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	argv := append(h.Wrap(), name)
	argv = append(argv, args...)
	return exec.Command(argv[0], argv[1:]...)
}

// Addr is the host's address with a port, as host:port.
func (h *Host) Addr(port int) string { return net.JoinHostPort(h.IP, strconv.Itoa(port)) }

// String is the host's name and address, for messages.
func (h *Host) String() string { return h.Name + "(" + h.IP + ")" }

// validName says whether a host may be called name: it becomes part of a namespace name.
func validName(name string) bool {
	if name == "" || len(name) > 31 || name[0] == '-' || name[0] == '_' {
		return false
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// Start builds a lab with one host per name (lower-case letters, digits, '-' and '_'). Call Close when
// done; New does it for a test.
func Start(names ...string) (*Lab, error) {
	if len(names) == 0 || len(names) > 250 {
		return nil, fmt.Errorf("netlab: %d hosts; want 1 to 250", len(names))
	}
	seen := map[string]bool{rootHostName: true}
	for _, n := range names {
		if !validName(n) || seen[n] {
			return nil, fmt.Errorf("netlab: host name %q: duplicate, reserved or not [a-z0-9_-]", n)
		}
		seen[n] = true
	}
	// A crashed run leaves its namespaces behind; removing them here keeps the machine tidy without a
	// separate clean-up step. Failing to is no reason not to start.
	_ = Sweep()
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return nil, fmt.Errorf("netlab: lab id: %w", err)
	}
	id := fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(suffix[:]))
	l := &Lab{ID: id, sw: nsPrefix + id + "-sw", rootIf: "nl" + hex.EncodeToString(suffix[:])}
	ok := false
	defer func() {
		if !ok {
			_ = l.Close()
		}
	}()
	if err := l.buildSwitch(); err != nil {
		return nil, err
	}
	if err := l.attachRoot(suffix); err != nil {
		return nil, err
	}
	for i, n := range names {
		if err := l.attachHost(n, i+1); err != nil {
			return nil, err
		}
	}
	ok = true
	return l, nil
}

// Host returns the host called name ("root" for Lab.Root), or nil.
func (l *Lab) Host(name string) *Host {
	if name == rootHostName {
		return l.Root
	}
	for _, h := range l.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Close removes the lab: it kills any process still running on its hosts (they were started there for
// the lab), deletes the root namespace's veth and every namespace, which takes the bridge and the other
// veths with it. It returns every problem met, and may be called more than once.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	for _, h := range l.Hosts {
		killNamespace(h.NS)
	}
	if linkExists(l.rootIf) {
		if err := run("", "ip", "link", "del", l.rootIf); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range l.namespaces() {
		if nsExists(ns) {
			if err := run("", "ip", "netns", "del", ns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netlab %s: close: %w", l.ID, err)
	}
	return nil
}

// namespaces lists every namespace of the lab, the switch's last.
func (l *Lab) namespaces() []string {
	var out []string
	for _, h := range l.Hosts {
		out = append(out, h.NS)
	}
	return append(out, l.sw)
}
