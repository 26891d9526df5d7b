package netlab

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Sweep removes what labs of processes that no longer exist left behind: a test binary killed by a
// timeout or a signal runs no clean-up. It kills the processes still in those namespaces and deletes
// the namespaces and root-side veths. Labs of running processes, this one's included, are left alone.
// Start calls it.
func Sweep() error {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("netlab: sweep: %w", err)
	}
	var errs []error
	for _, e := range entries {
		pid, suffix, ok := parseNamespace(e.Name())
		if !ok || alive(pid) {
			continue
		}
		killNamespace(e.Name())
		if rootIf := "nl" + suffix; linkExists(rootIf) {
			_ = run("", "ip", "link", "del", rootIf) // the switch going takes it too; this is for a half-built lab
		}
		if err := run("", "ip", "netns", "del", e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netlab: sweep: %w", err)
	}
	return nil
}

// parseNamespace reads netlab-<pid>-<hex>-<host>.
func parseNamespace(name string) (pid int, suffix string, ok bool) {
	rest, ok := strings.CutPrefix(name, nsPrefix)
	if !ok {
		return 0, "", false
	}
	parts := strings.SplitN(rest, "-", 3)
	if len(parts) != 3 || len(parts[1]) != 8 {
		return 0, "", false
	}
	pid, err := strconv.Atoi(parts[0])
	if err != nil || pid <= 0 {
		return 0, "", false
	}
	return pid, parts[1], true
}

// alive reports whether a process with this pid exists (EPERM means it does, owned by someone else).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
