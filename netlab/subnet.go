package netlab

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
)

// lockPath serialises choosing a subnet across every process on the machine. It is under /run because
// only root can build a lab, and /run is cleared at boot.
const lockPath = "/run/netlab.lock"

// The lab subnets are /24s in 10.64.0.0/10 (10.64.0.0 to 10.127.255.0): 16,384 of them, away from the
// 10.0.x.0 and 10.1.x.0 ranges that defaults (Docker, libvirt, cloud VPCs) tend to use.
const (
	firstSubnet = 10<<24 | 64<<16
	subnetCount = 1 << 14
)

// lockSubnets takes the machine-wide lock and returns its release.
func lockSubnets() (unlock func(), err error) {
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("subnet lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("subnet lock %s: %w", lockPath, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// pickSubnet derives a /24 from the lab's random suffix and moves on to the next one while it overlaps
// an address of the root namespace, which includes every other running lab's root port.
func pickSubnet(suffix [4]byte) (netip.Prefix, error) {
	used, err := rootPrefixes()
	if err != nil {
		return netip.Prefix{}, err
	}
	return freeSubnet(binary.BigEndian.Uint32(suffix[:])%subnetCount, used)
}

// freeSubnet is the first lab /24, from the start-th on and wrapping around, that overlaps none of used.
func freeSubnet(start uint32, used []netip.Prefix) (netip.Prefix, error) {
	for i := uint32(0); i < subnetCount; i++ {
		n := (start + i) % subnetCount
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], firstSubnet+n<<8)
		candidate := netip.PrefixFrom(netip.AddrFrom4(a), 24)
		if !overlapsAny(candidate, used) {
			return candidate, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free /24 in 10.64.0.0/10")
}

// rootPrefixes lists the IPv4 networks of the root namespace's addresses.
func rootPrefixes() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipnet.IP)
		if !ok || !ip.Unmap().Is4() {
			continue
		}
		bits, _ := ipnet.Mask.Size()
		if bits == 0 {
			continue // a default-like /0 says nothing about collisions
		}
		out = append(out, netip.PrefixFrom(ip.Unmap(), bits).Masked())
	}
	return out, nil
}

func overlapsAny(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if p.Overlaps(u) {
			return true
		}
	}
	return false
}
