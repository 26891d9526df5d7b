package main

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/bench/harness"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

// TestFleetShort is make bench-fleet's short version, for CI: three proxies with intervals of 500 ms,
// a second of idle measurement and one SENTINEL FAILOVER. The proxies' probes and view requests reach
// every node and Sentinel, and the failover reaches all three.
func TestFleetShort(t *testing.T) {
	redistest.SkipWithoutRedis(t)
	bin := filepath.Join(t.TempDir(), "sentinel-proxy")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/sentinel-proxy/sentinel-proxy").CombinedOutput(); err != nil {
		t.Fatalf("build sentinel-proxy: %v\n%s", err, out)
	}
	dir := t.TempDir()
	topo := redistest.New(t, redistest.Options{Replicas: 2, Sentinels: 3, Password: password, Dir: dir, DownAfter: 5 * time.Second})
	var proxies []*harness.Process
	t.Cleanup(func() {
		for _, p := range proxies {
			p.Stop()
		}
	})
	for range 3 {
		p, err := harness.StartSentinelProxyWith(bin, topo, dir, harness.ProxyOptions{Master: `mode = "resp"`,
			Tables: "[check]\ninterval = \"500ms\"\n", SentinelInterval: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		proxies = append(proxies, p)
	}
	if err := allServedBy(proxies, topo.Nodes[0].Addr); err != nil {
		t.Fatal(err)
	}
	c, err := measure(topo, proxies, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Three proxies each ask every Sentinel and probe every node twice a second, several commands each.
	for i, n := range c.sentinelCmds {
		if n < 6 {
			t.Errorf("Sentinel %d received %.0f commands/s from three proxies", i, n)
		}
	}
	for i, n := range c.nodeCmds {
		if n < 6 {
			t.Errorf("node %d received %.0f commands/s from three proxies", i, n)
		}
	}
	if c.proxiesCPU <= 0 {
		t.Errorf("the proxies' CPU read as %.3f", c.proxiesCPU)
	}
	t.Logf("idle: the three proxies spent %.2f %% of a core", 100*c.proxiesCPU)
	r, err := failover(topo, proxies) // fails unless all three serve the new master
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("switches %s apart, the last %s after +switch-master; old master cut after %v", r.spread, r.reach, r.cutLags)
	if r.spread > 5*time.Second || len(r.cutLags) != len(proxies) {
		t.Errorf("the failover did not reach the three proxies together: %s apart, %d cut the old master", r.spread, len(r.cutLags))
	}
}
