package netlab

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Cuts are nftables rules in the switch namespace's bridge table: one place for every rule, applied
// atomically, and the hosts' own namespaces stay as a real machine's would. The rules match IPv4 only,
// so ARP still resolves: a cut looks like a firewall or routing failure that swallows packets, not like
// an unplugged cable, and TCP sees silence (retransmissions, timeouts), never a reset or "no route to
// host". Nothing tracks connections, so established ones stall exactly like new ones.
const cutTable = `table bridge netlab {
	chain forward {
		type filter hook forward priority 0; policy accept;
	}
}
`

func (l *Lab) installCutTable() error {
	return run(cutTable, "ip", "netns", "exec", l.sw, "nft", "-f", "-")
}

// Cut drops every IPv4 packet, both ways, between each host of a and each host of b, until Heal. Cuts
// compose: several may be in force at once, overlapping or not.
func (l *Lab) Cut(a, b []*Host) error { return l.cut(a, b, nil) }

// CutPorts is Cut for TCP traffic to or from the given ports only (on either end), both ways: to cut a
// host off from one service of another host while other services stay reachable.
func (l *Lab) CutPorts(a, b []*Host, ports ...int) error {
	if len(ports) == 0 {
		return errors.New("netlab: CutPorts without ports")
	}
	return l.cut(a, b, ports)
}

// Heal removes every cut.
func (l *Lab) Heal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("netlab %s: heal: lab closed", l.ID)
	}
	if err := run("", "ip", "netns", "exec", l.sw, "nft", "flush", "chain", "bridge", "netlab", "forward"); err != nil {
		return fmt.Errorf("netlab %s: heal: %w", l.ID, err)
	}
	return nil
}

// Rules lists the cut rules in force, as nftables prints them, for logs of a run.
func (l *Lab) Rules() (string, error) {
	return output("ip", "netns", "exec", l.sw, "nft", "list", "chain", "bridge", "netlab", "forward")
}

func (l *Lab) cut(a, b []*Host, ports []int) error {
	if err := l.checkGroups(a, b); err != nil {
		return err
	}
	ips := func(hs []*Host) string {
		var s []string
		for _, h := range hs {
			s = append(s, h.IP)
		}
		return "{ " + strings.Join(s, ", ") + " }"
	}
	var matches []string
	if ports == nil {
		matches = []string{""}
	} else {
		var ps []string
		for _, p := range ports {
			ps = append(ps, strconv.Itoa(p))
		}
		set := "{ " + strings.Join(ps, ", ") + " }"
		matches = []string{" tcp dport " + set, " tcp sport " + set}
	}
	var script strings.Builder
	for _, dir := range [][2]string{{ips(a), ips(b)}, {ips(b), ips(a)}} {
		for _, m := range matches {
			fmt.Fprintf(&script, "add rule bridge netlab forward ip saddr %s ip daddr %s%s drop\n", dir[0], dir[1], m)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("netlab %s: cut: lab closed", l.ID)
	}
	// One nft -f run is one transaction: both directions are in force together or not at all.
	if err := run(script.String(), "ip", "netns", "exec", l.sw, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("netlab %s: cut %v from %v: %w", l.ID, a, b, err)
	}
	return nil
}

// checkGroups refuses a cut that means nothing or something other than what was asked: an empty side,
// a host of another lab, or a host on both sides.
func (l *Lab) checkGroups(a, b []*Host) error {
	if len(a) == 0 || len(b) == 0 {
		return fmt.Errorf("netlab %s: cut: empty group", l.ID)
	}
	side := map[*Host]int{}
	for i, g := range [][]*Host{a, b} {
		for _, h := range g {
			if h == nil || l.Host(h.Name) != h {
				return fmt.Errorf("netlab %s: cut: %v is not a host of this lab", l.ID, h)
			}
			if s, ok := side[h]; ok && s != i {
				return fmt.Errorf("netlab %s: cut: %s is on both sides", l.ID, h.Name)
			}
			side[h] = i
		}
	}
	return nil
}
