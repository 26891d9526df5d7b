package netlab

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// Supported reports why labs cannot be built here, or nil when they can. It tries for real: it creates
// a namespace with a bridge-family nftables table in it and deletes it again, so a missing kernel
// feature shows up here rather than in the middle of a test.
func Supported() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("network namespaces need Linux, this is %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("network namespaces need root (running as uid %d)", os.Geteuid())
	}
	for _, bin := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found (apt-get install iproute2 nftables): %w", bin, err)
		}
	}
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return err
	}
	ns := fmt.Sprintf("%s%d-%s-probe", nsPrefix, os.Getpid(), hex.EncodeToString(suffix[:]))
	if err := run("", "ip", "netns", "add", ns); err != nil {
		return fmt.Errorf("cannot create a network namespace: %w", err)
	}
	defer func() { _ = run("", "ip", "netns", "del", ns) }()
	if err := run(cutTable, "ip", "netns", "exec", ns, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("cannot filter bridged packets with nftables: %w", err)
	}
	return nil
}

// New builds a lab for a test and removes it when the test ends, failed or not. It skips the test, with
// the reason, where labs cannot be built (not root, no ip or nft); CI runs as root, so there it runs.
func New(tb testing.TB, names ...string) *Lab {
	tb.Helper()
	if err := Supported(); err != nil {
		tb.Skipf("netlab: no network namespaces here: %v", err)
	}
	l, err := Start(names...)
	if err != nil {
		tb.Fatalf("netlab: %v", err)
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Errorf("%v", err)
		}
	})
	return l
}
