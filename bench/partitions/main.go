// Command partitions runs network-partition scenarios through sentinel-proxy and through HAProxy with
// the seed's tcp-check configuration, each run on a fresh lab of network namespaces (package netlab):
// h1 runs the master and a Sentinel, h2 and h3 a replica and a Sentinel each, hp the proxy, and the
// writers run in this process on the lab's root port, which is never cut. Cuts drop packets on the
// lab's bridge, so TCP stalls as on a real network. Scenario split-fleet runs three proxies, on hp and
// hp2 beside the old master and on hq beside the majority, with writers through each, and reports the
// fleet as a whole and each proxy.
//
// For each scenario and path it prints the acknowledged writes, those the final master does not have
// (and when they were acknowledged, from the first cut), the longest time without an acknowledgement,
// the failed writes, the 100 ms intervals in which two nodes acknowledged writes, the failovers, and
// for sentinel-proxy its master_fenced / master_unfenced log lines. Raw logs go to -out. Needs root.
//
//	go run ./bench/partitions -proxy bin/sentinel-proxy -runs 1
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/netlab"
)

func main() {
	proxyBin := flag.String("proxy", "bin/sentinel-proxy", "sentinel-proxy binary")
	haproxyBin := flag.String("haproxy", "haproxy", "haproxy binary")
	runs := flag.Int("runs", 1, "runs of each scenario on each path, alternating which path goes first")
	all := scenarios()
	only := flag.String("scenarios", scenarioNames(all), fmt.Sprintf("comma-separated scenarios, by name or number 1-%d", len(all)))
	pathNames := flag.String("paths", "sentinel-proxy,durable,haproxy", "comma-separated, each the start of a path's name: sentinel-proxy, durable (every durable path: wait_replicas = 2, the same with multiplex, wait_replicas = 1), haproxy")
	short := flag.Bool("short", false, "shorter cuts (8 s, flapping for 12 s) for a quick check")
	out := flag.String("out", "bench/out", "directory for raw logs (a subdirectory per invocation)")
	downAfter := flag.Duration("down-after", 0, "Sentinel down-after-milliseconds for every scenario; 0 is 2s, and 5s for split-fleet, whose fleet can agree only when it is longer than the fence's replica_timeout (3s)")
	flag.Parse()

	chosen, err := pickScenarios(*only)
	if err != nil {
		fail(err)
	}
	if *downAfter > 0 {
		for i := range chosen {
			chosen[i].downAfter = *downAfter
		}
	}
	var chosenPaths []path
	for _, name := range strings.Split(*pathNames, ",") {
		for _, p := range paths(*proxyBin, *haproxyBin) {
			if strings.HasPrefix(p.name, strings.TrimSpace(name)) {
				chosenPaths = append(chosenPaths, p)
			}
		}
	}
	if len(chosenPaths) == 0 {
		fail(fmt.Errorf("no path in %q", *pathNames))
	}
	if err := netlab.Supported(); err != nil {
		fail(fmt.Errorf("the partition benchmark needs network namespaces: %w", err))
	}

	// Absolute, because each Redis process runs in its own directory under it and is given paths there.
	outDir, err := filepath.Abs(filepath.Join(*out, "partitions-"+time.Now().Format("20060102-150405")))
	if err != nil {
		fail(err)
	}
	rn := &runner{
		out:       outDir,
		timings:   timings{hold: 20 * time.Second, flapFor: 30 * time.Second, flapEvery: 2 * time.Second},
		warmup:    2 * time.Second,
		downAfter: 2 * time.Second,
		// Long enough for a promotion and the replicas' reconfiguration on this small machine; short
		// enough that a failover the flapping interrupts is retried (after twice this) within the run
		// rather than after Sentinel's default three minutes.
		failoverTimeout: 10 * time.Second,
		settle:          2 * time.Minute,
	}
	if *short {
		rn.timings = timings{hold: 8 * time.Second, flapFor: 12 * time.Second, flapEvery: 2 * time.Second}
		rn.warmup = time.Second
	}
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-interrupted
		rn.abort() // the lab's processes and namespaces; Redis dies with this process anyway
		os.Exit(130)
	}()

	fmt.Printf("# partition benchmark: %d run(s), cuts of %s (flapping: %s cut / %s healed for %s), Sentinel down-after %s unless a scenario says otherwise, failover-timeout %s, 4 writers per proxy with 10 s timeouts; raw logs in %s\n",
		*runs, rn.timings.hold, rn.timings.flapEvery, rn.timings.flapEvery, rn.timings.flapFor, rn.downAfter, rn.failoverTimeout, rn.out)
	for i, sc := range chosen {
		about := sc.about
		if sc.downAfter > 0 {
			about += fmt.Sprintf(" (down-after %s)", sc.downAfter)
		}
		fmt.Printf("#   %d. %s: %s\n", i+1, sc.name, about)
	}
	var results []result
	failed := 0
	for _, sc := range chosen {
		for run := 1; run <= *runs; run++ {
			order := append([]path(nil), chosenPaths...)
			if run%2 == 0 {
				slices.Reverse(order) // alternate which path goes first
			}
			for _, p := range order {
				r, err := rn.runOnce(sc, p, run)
				if err != nil {
					failed++
					fmt.Fprintf(os.Stderr, "%s on %s, run %d: %v\n", sc.name, p.name, run, err)
					continue
				}
				results = append(results, r)
				for _, x := range rows([]result{r}) {
					fmt.Println(line(x))
					for _, n := range x.notes {
						fmt.Println("  note:", n)
					}
				}
			}
		}
	}
	fmt.Println()
	table(os.Stdout, results)
	if f, err := os.Create(filepath.Join(rn.out, "results.md")); err == nil {
		table(f, results)
		f.Close()
	}
	if failed > 0 {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "partitions:", err)
	os.Exit(2)
}
