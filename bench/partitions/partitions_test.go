package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/netlab"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

// TestPartitionsThroughSentinelProxy runs each partition scenario once, with short cuts, through
// sentinel-proxy on a lab of network namespaces, and checks what must hold whatever the timing: the
// fence closes soon after a proxy and the old master are cut off from the majority, and no write it
// acknowledged after that is lost; a proxy with the majority follows the failover and loses nothing
// acknowledged after its switch; without the Sentinels but beside the replicas, writes go on; and two
// nodes never take writes at once, through one proxy or a fleet. Scenario 1 runs as its fleet variant,
// which checks hp as the single-proxy run would and two more proxies besides. `make bench-partitions`
// runs every scenario at full length, beside HAProxy, and prints the figures. The bounds here are loose
// enough for a loaded 2-core machine.
func TestPartitionsThroughSentinelProxy(t *testing.T) {
	if err := netlab.Supported(); err != nil {
		t.Skipf("no network namespaces here: %v (CI runs this as root)", err)
	}
	proxy := sentinelProxyPath(buildProxy(t))
	rn := &runner{
		out:     t.TempDir(),
		timings: timings{hold: 8 * time.Second, flapFor: 12 * time.Second, flapEvery: 2 * time.Second},
		warmup:  time.Second, downAfter: 2 * time.Second, failoverTimeout: 10 * time.Second, settle: 2 * time.Minute,
	}
	if dir := os.Getenv("SENTINEL_PROXY_TEST_LOGS"); dir != "" {
		rn.out = filepath.Join(dir, "partitions")
	}
	checks := map[string]func(t *testing.T, r result){
		"sentinels": func(t *testing.T, r result) {
			if r.switches != 0 || r.lost != 0 || r.fenced != 0 {
				t.Errorf("cut from the Sentinels only: %d failovers, %d lost, %d fences; want none", r.switches, r.lost, r.fenced)
			}
			if r.gap > time.Second {
				t.Errorf("the fence cost availability: writes stopped for %s (at +%s)", r.gap, r.gapAt)
			}
		},
		"isolate": func(t *testing.T, r result) {
			followsTheMajority(t, r)
			neverTwoMasters(t, r)
		},
		"replicas": func(t *testing.T, r result) {
			followsTheMajority(t, r)
			neverTwoMasters(t, r)
		},
		"flap":        neverTwoMasters,
		"split-fleet": fleetAgrees,
	}
	for _, sc := range scenarios() {
		if sc.name == "split" {
			// split-fleet makes the same cut with a proxy on hp and checks it as this one would be
			// checked: running both would add the half minute of a run to make test for nothing.
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			check, ok := checks[sc.name]
			if !ok {
				t.Fatalf("no check for scenario %s", sc.name)
			}
			r, err := rn.runOnce(sc, proxy, 1)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range rows([]result{r}) {
				t.Log(line(x))
				for _, n := range x.notes {
					t.Log("note:", n)
				}
			}
			if r.tilts > 0 {
				t.Skipf("a Sentinel entered TILT mode: the machine stalled, the run shows nothing of the partition")
			}
			if r.acked < 1000 {
				t.Fatalf("only %d writes acknowledged: the load did not run", r.acked)
			}
			check(t, r)
		})
	}
}

// fleetAgrees checks scenario 1 with a fleet: the proxies on hp and hp2, cut off with the old master,
// fence as a single one does; the one on hq, with the majority, follows the failover during the cut;
// and over all their writers no two nodes take writes at once.
func fleetAgrees(t *testing.T, r result) {
	t.Helper()
	beside := map[string]bool{"hp": true, "hp2": true, "hq": false} // beside the old master
	if len(r.fleet) != len(beside) {
		t.Fatalf("%d proxies in the fleet, want %d", len(r.fleet), len(beside))
	}
	for _, m := range r.fleet {
		oldSide, ok := beside[m.proxyHost]
		if !ok {
			t.Fatalf("a proxy on %s, which the scenario does not have", m.proxyHost)
		}
		t.Run(m.proxyHost, func(t *testing.T) {
			// A third of the load each: enough to see every proxy's writes before, during and after the cut.
			if m.acked < 300 {
				t.Fatalf("only %d writes acknowledged through %s: its load did not run", m.acked, m.proxyHost)
			}
			if oldSide {
				fencesBesideTheOldMaster(t, m)
				return
			}
			if m.finalMaster == "h1" {
				t.Errorf("the final master is the old one, h1: nothing to follow")
			}
			followsTheMajority(t, m)
			// Whether the majority completes a failover before the heal is Sentinel's business (a split
			// vote postpones it by twice failover-timeout); once it has, the proxy with it must follow.
			switch {
			case !m.haveFailover || m.failoverAt >= m.healed:
				t.Logf("the failover completed after the heal (+%s): nothing to follow during the cut", m.healed)
			case m.firstOnFinal >= m.healed:
				t.Errorf("did not follow the failover during the cut: completed at +%s, first write on %s through hq at +%s, heal at +%s",
					m.failoverAt, m.finalMaster, m.firstOnFinal, m.healed)
			}
		})
	}
	neverTwoMasters(t, r)
	if r.dualBuckets > 0 {
		t.Errorf("in %d intervals of %s two nodes acknowledged writes through the fleet", r.dualBuckets, bucket)
	}
}

// fencesBesideTheOldMaster checks a proxy cut off with the old master from the majority: its fence
// closes, and no write acknowledged through it after that is lost.
func fencesBesideTheOldMaster(t *testing.T, r result) {
	t.Helper()
	// The target is 5 s with down-after 2 s; measured ~3 s. Loose here for a loaded machine.
	if !r.haveFenced || r.firstFenced > 8*time.Second {
		t.Errorf("the fence did not close within 8 s of the cut (fenced %v at %s)", r.haveFenced, r.firstFenced)
	}
	lostAfter(t, r, r.cut.Add(r.firstFenced+250*time.Millisecond), "the fence closed")
}

// followsTheMajority checks a proxy that hears the majority: a failover happened, and no write
// acknowledged through the proxy after its switch to the final master is lost.
func followsTheMajority(t *testing.T, r result) {
	t.Helper()
	if r.switches == 0 {
		t.Errorf("no failover")
	}
	lostAfter(t, r, switchedAt(t, r), "the switch")
}

// sentinelProxyPath is the sentinel-proxy path of the benchmark, with bin.
func sentinelProxyPath(bin string) path { return pathNamed(bin, "sentinel-proxy") }

// pathNamed is the benchmark's path called name, with bin.
func pathNamed(bin, name string) path {
	for _, p := range paths(bin, "haproxy") {
		if p.name == name {
			return p
		}
	}
	panic("no path " + name)
}

// TestPartitionDurableLosesNothing runs scenario 1 (the proxy cut off with the old master, the
// replicas and the Sentinels on the other side) through resp mode with wait_replicas = 2, short: no write
// it acknowledged is lost, not even in the seconds before the fence closes, since every acknowledged
// write was on both replicas; the writes after the cut get NOREPLICAS.
func TestPartitionDurableLosesNothing(t *testing.T) {
	if err := netlab.Supported(); err != nil {
		t.Skipf("no network namespaces here: %v (CI runs this as root)", err)
	}
	rn := &runner{
		out:     t.TempDir(),
		timings: timings{hold: 8 * time.Second, flapFor: 12 * time.Second, flapEvery: 2 * time.Second},
		warmup:  time.Second, downAfter: 2 * time.Second, failoverTimeout: 10 * time.Second, settle: 2 * time.Minute,
	}
	r, err := rn.runOnce(scenarios()[0], pathNamed(buildProxy(t), "durable (2 replicas)"), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(line(r))
	if r.tilts > 0 {
		t.Skipf("a Sentinel entered TILT mode: the machine stalled, the run shows nothing of the partition")
	}
	if r.acked < 500 {
		t.Fatalf("only %d writes acknowledged: the load did not run", r.acked)
	}
	if r.lost > 0 {
		t.Errorf("%d acknowledged writes lost (first acknowledged at +%s, last at +%s)", r.lost, r.lostFirst, r.lostLast)
	}
	neverTwoMasters(t, r)
}

// lostAfter fails the test for every lost write acknowledged after since.
func lostAfter(t *testing.T, r result, since time.Time, what string) {
	t.Helper()
	n := 0
	for _, a := range r.lostAcks {
		if a.At.After(since) {
			if n == 0 {
				t.Errorf("write %s acknowledged by %s at +%s, after %s (+%s), was lost", a.Key, a.Node,
					a.At.Sub(r.cut).Round(time.Millisecond), what, since.Sub(r.cut).Round(time.Millisecond))
			}
			n++
		}
	}
	if n > 1 {
		t.Errorf("%d writes acknowledged after %s were lost", n, what)
	}
}

// switchedAt is when the final master acknowledged its first write after the cut.
func switchedAt(t *testing.T, r result) time.Time {
	t.Helper()
	if !r.haveOnFinal {
		t.Fatalf("the final master %s acknowledged no write after the cut", r.final)
	}
	return r.cut.Add(r.firstOnFinal)
}

// neverTwoMasters checks that the node acknowledging writes changes only with a failover: once a node
// took writes from another, that other takes none again unless Sentinel moved the master back.
func neverTwoMasters(t *testing.T, r result) {
	t.Helper()
	var changes []redistest.Ack
	for i := 1; i < len(r.acks); i++ {
		if r.acks[i].Node != r.acks[i-1].Node {
			changes = append(changes, r.acks[i])
		}
	}
	if len(changes) > r.switches {
		// Two masters interleave their writes thousands of times; the first few show when and which.
		for _, c := range changes[:min(len(changes), 10)] {
			t.Logf("writes acknowledged by %s from +%s", c.Node, c.At.Sub(r.cut).Round(time.Millisecond))
		}
		t.Errorf("the acknowledging node changed %d times with %d failovers: two nodes took writes in turn", len(changes), r.switches)
	}
}

// buildProxy builds sentinel-proxy into a temporary directory, as the repository's binary tests do.
func buildProxy(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sentinel-proxy")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/sentinel-proxy/sentinel-proxy").CombinedOutput(); err != nil {
		t.Fatalf("build sentinel-proxy: %v\n%s", err, out)
	}
	return bin
}
