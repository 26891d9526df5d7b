package netlab

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

const echoPort = 7000

// echo serves an echo listener on each host, on port, for the test's duration.
func echo(t *testing.T, port int, hosts ...*Host) {
	t.Helper()
	for _, h := range hosts {
		l, err := h.Listen("tcp", h.Addr(port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go acceptEchoes(l)
	}
}

func acceptEchoes(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

// dial connects from one host to another's echo port.
func dial(t *testing.T, from, to *Host, port int) net.Conn {
	t.Helper()
	c, err := from.DialTimeout("tcp", to.Addr(port), 2*time.Second)
	if err != nil {
		t.Fatalf("%s -> %s: %v", from, to, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes a line and waits up to wait for it to come back.
func roundTrip(c net.Conn, wait time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != "ping\n" {
		return errors.New("echo garbled: " + string(buf))
	}
	return nil
}

func TestHostsReachEachOther(t *testing.T) {
	l := New(t, "a", "b", "c")
	if l.Root.IP == "" || !l.Subnet.Contains(netip.MustParseAddr(l.Root.IP)) {
		t.Fatalf("root %s outside subnet %s", l.Root.IP, l.Subnet)
	}
	echo(t, echoPort, l.Hosts...)
	for _, from := range append([]*Host{l.Root}, l.Hosts...) {
		for _, to := range l.Hosts {
			if from == to {
				continue
			}
			if err := roundTrip(dial(t, from, to, echoPort), 2*time.Second); err != nil {
				t.Errorf("%s -> %s: %v", from, to, err)
			}
		}
	}
	// A program started on a host sees the host's address and nothing of the root namespace's.
	out, err := l.Host("b").Command("ip", "-4", "-o", "addr", "show").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), l.Host("b").IP+"/24") || strings.Contains(string(out), l.Root.IP) {
		t.Errorf("addresses on b:\n%s", out)
	}
}

func TestCloseLeavesNothingBehind(t *testing.T) {
	if err := Supported(); err != nil {
		t.Skipf("netlab: no network namespaces here: %v", err)
	}
	l, err := Start("a", "b")
	if err != nil {
		t.Fatal(err)
	}
	// A process still running on a host must not keep the lab alive.
	sleeper := l.Host("a").Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sleeper.Wait() }()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Error("the process on a host outlived Close")
	}
	assertGone(t, l)
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSweepRemovesLabsOfDeadProcesses(t *testing.T) {
	if err := Supported(); err != nil {
		t.Skipf("netlab: no network namespaces here: %v", err)
	}
	// A lab whose owner is gone: name it after a process that has exited.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := nsPrefix + strconv.Itoa(gone.Process.Pid) + "-0badcafe-h1"
	if err := run("", "ip", "netns", "add", dead); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = run("", "ip", "netns", "del", dead) })
	live := New(t, "a") // Start sweeps
	if nsExists(dead) {
		t.Errorf("Start left the dead lab's namespace %s", dead)
	}
	if err := Sweep(); err != nil {
		t.Fatal(err)
	}
	for _, ns := range live.namespaces() {
		if !nsExists(ns) {
			t.Errorf("Sweep removed %s of a running lab", ns)
		}
	}
}

// assertGone checks that no namespace or root interface of l remains (namespace teardown is
// asynchronous in the kernel, hence the wait).
func assertGone(t *testing.T, l *Lab) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []string
		for _, ns := range l.namespaces() {
			if nsExists(ns) {
				left = append(left, "namespace "+ns)
			}
		}
		if linkExists(l.rootIf) {
			left = append(left, "interface "+l.rootIf)
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
