package e2e

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

// TestRESPHeldCommands kills the master with Sentinel's down-after long enough (5s) to see the proxy
// without a verified master. Two proxies on the same topology: one holds commands 1s, the other 30s.
// On the first, a command of an established session is held its 1s and then answered with the "no
// verified master" error, the connection stays open, and after the failover the same session works on
// the new master with its state. On the second, a write sent at the same time is held across the
// failover and applied once on the new master.
func TestRESPHeldCommands(t *testing.T) {
	topo := redistest.New(t, redistest.Options{Replicas: 2, Sentinels: 3, Password: testPassword, DownAfter: 5 * time.Second})
	shortCfg := inMode(testConfig(t, topo, topo.Name), "resp")
	shortCfg.Proxy.FailoverHold.Duration = time.Second
	longCfg := inMode(testConfig(t, topo, topo.Name), "resp")
	longCfg.Proxy.FailoverHold.Duration = 30 * time.Second
	short, long := startProxy(t, shortCfg), startProxy(t, longCfg)
	old := topo.Nodes[0]
	waitRoutedTo(t, short.master, old.Addr, 10*time.Second)
	waitRoutedTo(t, long.master, old.Addr, 10*time.Second)
	a := dialRESP(t, short.master, pooled("held-short")...)
	b := dialRESP(t, long.master, pooled("held-long")...)

	logFrom := []int{len(short.logs.String()), len(long.logs.String())}
	old.Kill()
	killed := time.Now()
	err := redistest.Eventually(10*time.Second, func() error {
		for i, p := range []*runningProxy{short, long} {
			if !strings.Contains(p.logs.String()[logFrom[i]:], `"event":"no_master"`) {
				return errors.New("the proxy still routes to the dead master")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	if err := b.send("INCR", "held-writes"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ { // held and refused, twice on the same connection
		start := time.Now()
		if err := a.send("CLIENT", "INFO"); err != nil {
			t.Fatal(err)
		}
		v, err := a.read(10 * time.Second)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("command %d while there is no master: %v", i, err)
		}
		want := fmt.Sprintf("ERR sentinel-proxy: no verified master for %q", topo.Name)
		if v.Kind != '-' || !strings.HasPrefix(v.Str, want) {
			t.Fatalf("command %d while there is no master (%s after the kill) answered %q, want %q...", i,
				time.Since(killed).Round(time.Millisecond), v.Text(), want)
		}
		if took < 950*time.Millisecond || took > 3*time.Second {
			t.Errorf("command %d refused after %s, want failover_hold (1s)", i, took.Round(time.Millisecond))
		}
		t.Logf("command %d: %q after %s", i, v.Str, took.Round(time.Millisecond))
	}

	newMaster := waitNewMaster(t, topo, old.Addr)
	t.Logf("Sentinel named %s %s after the kill", newMaster, time.Since(killed).Round(time.Millisecond))
	v, err := b.read(30 * time.Second)
	if err != nil || v.Kind != ':' || v.Int != 1 {
		t.Fatalf("the write held across the failover answered %q (kind %q), %v; want :1", v.Text(), v.Kind, err)
	}
	t.Logf("the held write was answered %s after the kill", time.Since(killed).Round(time.Millisecond))
	waitRoutedTo(t, short.master, newMaster, 10*time.Second)
	for _, s := range []struct {
		c    *respConn
		name string
	}{{a, "held-short"}, {b, "held-long"}} {
		f, err := s.c.whoAmI()
		if err == nil {
			err = wantState(f, s.name)
		}
		if err == nil && f["laddr"] != newMaster {
			err = fmt.Errorf("on %s, want the new master %s", f["laddr"], newMaster)
		}
		if err != nil {
			t.Errorf("%s after the failover: %v", s.name, err)
		}
	}
	if v, err := b.do("GET", "held-writes"); err != nil || v.Str != "1" {
		t.Errorf("held-writes on the new master is %q (%v): the held INCR must be applied once", v.Text(), err)
	}
}
