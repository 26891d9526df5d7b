// Command redissuite runs Redis's own test suite (runtest, in external-server mode) against the master
// of a fresh Sentinel topology, directly and through sentinel-proxy, and lists the tests that pass
// directly but not through the proxy, with the suite's error and the proxy's log lines beside each. It
// exits 1 when there is such a test or when the suite could not run, 2 on a usage mistake. Raw outputs
// and proxy logs go to a new directory under -out.
//
//	make redis-suite ARGS='-units unit/type/list,unit/latency-monitor'
//	go run ./bench/redissuite -src .cache/redis-src -proxy bin/sentinel-proxy -via direct,tcp
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	src := flag.String("src", ".cache/redis-src", "Redis source tree holding runtest and tests/ (make redis-suite-src fetches the installed server's)")
	proxyBin := flag.String("proxy", "bin/sentinel-proxy", "sentinel-proxy binary (make build)")
	via := flag.String("via", "all", "comma-separated paths to run: direct, tcp, resp, or all")
	units := flag.String("units", "", "comma-separated units, e.g. unit/type/list,unit/latency-monitor (runtest --single each); empty: runtest's whole list")
	out := flag.String("out", "bench/out", "where a directory for this invocation's raw outputs and proxy logs is made")
	tags := flag.String("tags", DefaultTags, "runtest --tags (see Suite.Args for why these)")
	confirm := flag.Int("confirm", 1, "re-run the units with a test that passed direct and failed through a proxy this many times; it counts if it failed every time, or if the proxy closed or refused clients while it failed")
	loops := flag.Int("event-loops", 1, "the proxy's [proxy].event_loops (see Options.EventLoops for why 1)")
	timeout := flag.Duration("timeout", 5*time.Minute, "runtest --timeout: a test running longer stops its run (the longest direct one takes ~35s)")
	flag.Parse()

	o := Options{Tags: *tags, EventLoops: *loops, Timeout: *timeout, Progress: os.Stdout}
	if err := o.setUp(*src, *proxyBin, *via, *units, *out); err != nil {
		fmt.Fprintln(os.Stderr, "redissuite:", err)
		os.Exit(2)
	}
	fmt.Printf("# Redis test suite in %s, %d units, via %s; raw outputs in %s\n", o.Suite.Dir, len(o.Units), pathNames(o.Paths), o.Out)
	report := Run(o)
	Confirm(o, report, *confirm)
	fmt.Println()
	report.Write(os.Stdout)
	if report.Failed() {
		os.Exit(1)
	}
}

// setUp fills in what the flags name, checking everything a run needs before the first topology.
func (o *Options) setUp(src, proxyBin, via, units, out string) error {
	var err error
	if o.Paths, err = ParsePaths(via); err != nil {
		return err
	}
	if o.Suite, err = OpenSuite(src); err != nil {
		return err
	}
	for _, u := range strings.Split(units, ",") {
		if u = strings.TrimSpace(u); u != "" {
			o.Units = append(o.Units, u)
		}
	}
	if len(o.Units) == 0 {
		if o.Units, err = o.Suite.Units(); err != nil {
			return err
		}
	}
	for _, p := range o.Paths {
		if p.Proxied {
			if o.ProxyBin, err = filepath.Abs(proxyBin); err != nil {
				return err
			}
			if _, err := os.Stat(o.ProxyBin); err != nil {
				return fmt.Errorf("sentinel-proxy binary (make build): %w", err)
			}
			break
		}
	}
	o.Out = filepath.Join(out, "redissuite-"+time.Now().Format("20060102-150405"))
	return os.MkdirAll(o.Out, 0o755)
}
