package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/redistest"
	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// monitorLine is what MONITOR streams: "<time> [<db> <client>] <command ...>".
var monitorLine = regexp.MustCompile(`^\d+\.\d+ \[\d+ \S+\] "`)

// TestRESPMonitorFollowsFailover keeps a MONITOR client through resp mode across a failover: after it,
// the client sees the commands run on the new master (sent to the node itself, not through the proxy),
// and nothing else (no replayed reply leaks into the stream).
func TestRESPMonitorFollowsFailover(t *testing.T) {
	for _, how := range []string{"manual", "kill"} {
		t.Run(how, func(t *testing.T) {
			// Down-after 1 s, as TestRESPFailoverIsInvisible's kill: at 300 ms the Sentinels often failed
			// the promoted replica over again.
			topo := redistest.New(t, redistest.Options{Replicas: 2, Sentinels: 3, Password: testPassword, DownAfter: time.Second})
			p := startProxy(t, inMode(testConfig(t, topo, topo.Name), "resp"))
			old := topo.Nodes[0]
			waitRoutedTo(t, p.master, old.Addr, 10*time.Second)
			mon := dialRESP(t, p.master, []string{"AUTH", testPassword})
			if v, err := mon.do("MONITOR"); err != nil || v.Str != "OK" {
				t.Fatalf("MONITOR: %q %v", v.Text(), err)
			}
			seen := func(node, marker string) {
				t.Helper()
				deadline := time.Now().Add(15 * time.Second)
				if _, err := redistest.Do(node, testPassword, "SET", marker, "1"); err != nil {
					t.Fatal(err)
				}
				for {
					v, err := mon.read(time.Until(deadline))
					if err != nil {
						t.Fatalf("the monitor never showed %s run on %s: %v", marker, node, err)
					}
					if v.Kind != '+' || !monitorLine.MatchString(v.Str) {
						t.Fatalf("the monitor got %q (kind %q), not a monitor line", v.Text(), v.Kind)
					}
					if strings.Contains(v.Str, `"`+marker+`"`) {
						return
					}
				}
			}
			seen(old.Addr, "before-failover")

			var newMaster string
			if how == "kill" {
				old.Kill()
				newMaster = waitNewMaster(t, topo, old.Addr)
			} else {
				m, err := topo.Failover(30 * time.Second)
				if err != nil {
					t.Fatal(err)
				}
				newMaster = m
			}
			final, err := topo.AgreedMaster(30 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if final != newMaster {
				t.Logf("Sentinel failed over again, to %s", final)
			}
			waitRoutedTo(t, p.master, final, 10*time.Second)
			seen(final, "after-failover")
		})
	}
}

// TestRESPTrackingInvalidatedAtFailover follows a RESP3 client with client-side caching (HELLO 3,
// CLIENT TRACKING ON) across a failover: the new master does not know what it cached, so the client
// must be told to drop everything (a push "invalidate" with a null) without having to send a command
// first - a caching client serves its cached keys without asking - and tracking must go on on the new
// master.
func TestRESPTrackingInvalidatedAtFailover(t *testing.T) {
	topo := newTopology(t, 2)
	p := startProxy(t, inMode(testConfig(t, topo, topo.Name), "resp"))
	waitRoutedTo(t, p.master, topo.Nodes[0].Addr, 10*time.Second)
	c := dialRESP(t, p.master, []string{"HELLO", "3", "AUTH", "default", testPassword}, []string{"CLIENT", "TRACKING", "ON"})
	writer := dialRESP(t, p.master, []string{"AUTH", testPassword})

	// invalidations reads an invalidation push: the keys it names, or all (a null).
	invalidations := func(v resp.Value) (keys []string, all, ok bool) {
		if v.Kind != '>' || len(v.Elems) != 2 || v.Elems[0].Str != "invalidate" {
			return nil, false, false
		}
		if v.Elems[1].Null {
			return nil, true, true
		}
		for _, k := range v.Elems[1].Elems {
			keys = append(keys, k.Str)
		}
		return keys, false, true
	}
	// cache reads key so the client tracks it.
	cache := func(key string) {
		t.Helper()
		if _, err := writer.do("SET", key, "1"); err != nil {
			t.Fatal(err)
		}
		// The SET may invalidate a key the client tracked before: skip pushes until GET's reply.
		if err := c.send("GET", key); err != nil {
			t.Fatal(err)
		}
		for {
			v, err := c.read(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, push := invalidations(v); push {
				continue
			}
			if v.Str != "1" {
				t.Fatalf("GET %s answered %q", key, v.Text())
			}
			return
		}
	}
	// invalidated waits for the push that invalidates key (or everything), without sending anything.
	invalidated := func(key string, within time.Duration) (all bool, err error) {
		deadline := time.Now().Add(within)
		for {
			v, err := c.read(time.Until(deadline))
			if err != nil {
				return false, err
			}
			keys, all, ok := invalidations(v)
			if !ok {
				return false, fmt.Errorf("got %q (kind %q), not an invalidation", v.Text(), v.Kind)
			}
			if all || slices.Contains(keys, key) {
				return all, nil
			}
		}
	}

	cache("k1")
	if _, err := writer.do("SET", "k1", "2"); err != nil {
		t.Fatal(err)
	}
	if _, err := invalidated("k1", 10*time.Second); err != nil {
		t.Fatalf("before the failover: %v", err)
	}
	cache("k1")

	newMaster, err := topo.Failover(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	waitRoutedTo(t, p.master, newMaster, 10*time.Second)
	// The client sends nothing: a caching client reads k1 from its cache. Another client changes k1 on
	// the new master; the tracking client must learn of it.
	if _, err := writer.do("SET", "k1", "3"); err != nil {
		t.Fatal(err)
	}
	all, err := invalidated("k1", 10*time.Second)
	switch {
	case err != nil:
		t.Errorf("bug: an idle tracking client is not told its cache is stale after the failover (k1 changed on the new master %s): %v", newMaster, err)
	case !all:
		t.Errorf("after the failover the first invalidation names k1 only: the client is not told to drop the rest")
	}

	// Its next command: the full invalidation (if it has not come yet) comes before the reply, which
	// comes from the new master; tracking goes on there.
	if err := c.send("CLIENT", "INFO"); err != nil {
		t.Fatal(err)
	}
	sawAll := all
	for {
		v, err := c.read(10 * time.Second)
		if err != nil {
			t.Fatalf("CLIENT INFO after the failover: %v", err)
		}
		if _, all, push := invalidations(v); push {
			sawAll = sawAll || all
			continue
		}
		f, err := infoFields(v)
		if err != nil {
			t.Fatal(err)
		}
		if f["laddr"] != newMaster || f["resp"] != "3" || !strings.Contains(f["flags"], "t") {
			t.Errorf("after the failover the client is on %s with resp=%s flags=%s, want %s, resp=3, tracking (t)",
				f["laddr"], f["resp"], f["flags"], newMaster)
		}
		break
	}
	if !sawAll {
		t.Errorf("no full invalidation (invalidate with a null) reached the client after the failover")
	}
	cache("k2")
	if _, err := writer.do("SET", "k2", "2"); err != nil {
		t.Fatal(err)
	}
	if _, err := invalidated("k2", 10*time.Second); err != nil {
		t.Errorf("tracking on the new master: %v", err)
	}
}
