package netlab

import (
	"fmt"
	"net/netip"
	"strconv"
)

// bridge is the bridge's name inside the switch namespace, where nothing else can clash with it.
const bridge = "br0"

// The bridge lives in a namespace of its own rather than in the root namespace: the root namespace's
// firewall (with br_netfilter, bridged packets pass through iptables' FORWARD chain, which Docker sets
// to DROP) cannot interfere with the lab, the lab's nftables table cannot interfere with the machine,
// and deleting that one namespace removes the bridge and every host's peer veth even when the process
// that built the lab is gone.
func (l *Lab) buildSwitch() error {
	if err := run("", "ip", "netns", "add", l.sw); err != nil {
		return fmt.Errorf("netlab %s: switch: %w", l.ID, err)
	}
	// No spanning tree and no forwarding delay: a port forwards as soon as it is up.
	if err := run("", "ip", "-n", l.sw, "link", "add", bridge, "type", "bridge", "forward_delay", "0", "stp_state", "0"); err != nil {
		return fmt.Errorf("netlab %s: switch: %w", l.ID, err)
	}
	if err := run("", "ip", "-n", l.sw, "link", "set", bridge, "up"); err != nil {
		return fmt.Errorf("netlab %s: switch: %w", l.ID, err)
	}
	if err := l.installCutTable(); err != nil {
		return fmt.Errorf("netlab %s: switch: %w", l.ID, err)
	}
	return nil
}

// attachRoot gives the root namespace its port on the segment. The subnet is chosen and the address
// assigned under one machine-wide lock, so two labs starting at once cannot pick the same subnet.
func (l *Lab) attachRoot(suffix [4]byte) error {
	unlock, err := lockSubnets()
	if err != nil {
		return fmt.Errorf("netlab %s: %w", l.ID, err)
	}
	defer unlock()
	subnet, err := pickSubnet(suffix)
	if err != nil {
		return fmt.Errorf("netlab %s: %w", l.ID, err)
	}
	l.Subnet = subnet
	l.Root = &Host{Name: rootHostName, IP: hostIP(subnet, 254).String()}
	steps := [][]string{
		{"ip", "link", "add", l.rootIf, "type", "veth", "peer", "name", "root", "netns", l.sw},
		{"ip", "-n", l.sw, "link", "set", "root", "master", bridge, "up"},
		{"ip", "addr", "add", l.Root.IP + "/24", "dev", l.rootIf},
		{"ip", "link", "set", l.rootIf, "up"},
	}
	for _, s := range steps {
		if err := run("", s[0], s[1:]...); err != nil {
			return fmt.Errorf("netlab %s: root port: %w", l.ID, err)
		}
	}
	return nil
}

// attachHost creates host n's namespace and plugs it into the bridge with address .n of the subnet. The
// veth is created with each end already in its namespace, so no name is ever taken in the root one. The
// host is added to l.Hosts as soon as its namespace exists, so Close removes it even if a later step
// fails.
func (l *Lab) attachHost(name string, n int) error {
	h := &Host{Name: name, NS: nsPrefix + l.ID + "-" + name, IP: hostIP(l.Subnet, n).String()}
	if err := run("", "ip", "netns", "add", h.NS); err != nil {
		return fmt.Errorf("netlab %s: host %s: %w", l.ID, name, err)
	}
	l.Hosts = append(l.Hosts, h)
	port := "p" + strconv.Itoa(n)
	steps := [][]string{
		{"ip", "link", "add", "eth0", "netns", h.NS, "type", "veth", "peer", "name", port, "netns", l.sw},
		{"ip", "-n", l.sw, "link", "set", port, "master", bridge, "up"},
		{"ip", "-n", h.NS, "addr", "add", h.IP + "/24", "dev", "eth0"},
		{"ip", "-n", h.NS, "link", "set", "eth0", "up"},
		// Loopback too: a program on the host may listen on 127.0.0.1 (a proxy's stats page).
		{"ip", "-n", h.NS, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := run("", s[0], s[1:]...); err != nil {
			return fmt.Errorf("netlab %s: host %s: %w", l.ID, name, err)
		}
	}
	return nil
}

// hostIP is address .n of a /24.
func hostIP(subnet netip.Prefix, n int) netip.Addr {
	a := subnet.Addr().As4()
	a[3] = byte(n)
	return netip.AddrFrom4(a)
}
