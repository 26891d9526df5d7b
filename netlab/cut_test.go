package netlab

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestCutStallsEstablishedConnectionsAndHealRestoresThem(t *testing.T) {
	l := New(t, "a", "b", "c")
	a, b, c := l.Host("a"), l.Host("b"), l.Host("c")
	echo(t, echoPort, a, b, c)
	ab, ac, bc, rootB := dial(t, a, b, echoPort), dial(t, a, c, echoPort), dial(t, b, c, echoPort), dial(t, l.Root, b, echoPort)
	for _, conn := range []net.Conn{ab, ac, bc, rootB} {
		if err := roundTrip(conn, 2*time.Second); err != nil {
			t.Fatalf("before the cut: %v", err)
		}
	}

	if err := l.Cut([]*Host{a}, []*Host{b}); err != nil {
		t.Fatal(err)
	}
	// The established connection stalls: no reset, no error, just no answer.
	var ne net.Error
	if err := roundTrip(ab, time.Second); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("a -> b across the cut: want a timeout, got %v", err)
	}
	if _, err := a.DialTimeout("tcp", b.Addr(echoPort), time.Second); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("new connection a -> b across the cut: want a timeout, got %v", err)
	}
	for name, conn := range map[string]net.Conn{"a -> c": ac, "b -> c": bc, "root -> b": rootB} {
		if err := roundTrip(conn, 2*time.Second); err != nil {
			t.Errorf("%s is not cut but: %v", name, err)
		}
	}

	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	// The stalled write is retransmitted and answered: the connection lived through the cut. The one
	// from the stalled round trip arrives first, then this one's.
	_ = ab.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := ab.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(ab, buf); err != nil || string(buf) != "ping\nping\n" {
		t.Errorf("a -> b after heal: %q %v", buf, err)
	}
	if err := roundTrip(dial(t, a, b, echoPort), 2*time.Second); err != nil {
		t.Errorf("new connection a -> b after heal: %v", err)
	}
}

func TestCutsCompose(t *testing.T) {
	l := New(t, "a", "b", "c", "d")
	a, b, c, d := l.Host("a"), l.Host("b"), l.Host("c"), l.Host("d")
	echo(t, echoPort, l.Hosts...)
	if err := l.Cut([]*Host{a}, []*Host{b}); err != nil {
		t.Fatal(err)
	}
	if err := l.Cut([]*Host{c}, []*Host{a, d}); err != nil {
		t.Fatal(err)
	}
	reach := func(from, to *Host) bool {
		c, err := from.DialTimeout("tcp", to.Addr(echoPort), 500*time.Millisecond)
		if err != nil {
			return false
		}
		defer c.Close()
		return roundTrip(c, time.Second) == nil
	}
	want := map[[2]*Host]bool{{a, b}: false, {b, a}: false, {c, a}: false, {d, c}: false, {a, d}: true, {b, c}: true, {b, d}: true}
	for pair, ok := range want {
		if got := reach(pair[0], pair[1]); got != ok {
			t.Errorf("%s -> %s reachable = %v, want %v", pair[0], pair[1], got, ok)
		}
	}
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	for pair := range want {
		if !reach(pair[0], pair[1]) {
			t.Errorf("%s -> %s after heal: unreachable", pair[0], pair[1])
		}
	}
	if rules, err := l.Rules(); err != nil || strings.Contains(rules, "drop") {
		t.Errorf("rules after heal: %q %v", rules, err)
	}
}

func TestCutPortsLeavesOtherPortsAlone(t *testing.T) {
	l := New(t, "a", "b")
	a, b := l.Host("a"), l.Host("b")
	echo(t, echoPort, b)
	echo(t, echoPort+1, b)
	kept, cut := dial(t, a, b, echoPort), dial(t, a, b, echoPort+1)
	if err := l.CutPorts([]*Host{a}, []*Host{b}, echoPort+1); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(cut, time.Second); err == nil {
		t.Errorf("port %d across the cut still answers", echoPort+1)
	}
	if err := roundTrip(kept, 2*time.Second); err != nil {
		t.Errorf("port %d is not cut but: %v", echoPort, err)
	}
}

func TestCutRefusesNonsense(t *testing.T) {
	l := New(t, "a", "b")
	other := &Host{Name: "a", NS: "elsewhere", IP: "10.9.9.9"}
	for name, groups := range map[string][2][]*Host{
		"empty side":       {{l.Hosts[0]}, nil},
		"both sides":       {{l.Hosts[0]}, {l.Hosts[0], l.Hosts[1]}},
		"another lab host": {{other}, {l.Hosts[1]}},
	} {
		if err := l.Cut(groups[0], groups[1]); err == nil {
			t.Errorf("%s: Cut accepted it", name)
		}
	}
	if _, err := Start("a", "a"); err == nil {
		t.Error("Start accepted two hosts with the same name")
	}
}
