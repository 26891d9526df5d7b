package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/bench/harness"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

// checkTable states sentinel-proxy's probe settings, which are its defaults, in its configuration file:
// the same as the seed HAProxy's `check inter 1s` with HAProxy's default rise 2 and fall 3.
const checkTable = "[check]\ninterval = \"1s\"\ntimeout = \"1s\"\nrise = 2\nfall = 3\n"

// path is one way for clients to reach the master: a proxy started on hp.
type path struct {
	name    string
	slug    string // for file names
	isProxy bool   // sentinel-proxy, whose log is searched for fence events
	start   func(b *bed, dir string) (*harness.Process, error)
}

func paths(proxyBin, haproxyBin string) []path {
	proxy := func(master string) func(b *bed, dir string) (*harness.Process, error) {
		return func(b *bed, dir string) (*harness.Process, error) {
			// info level, so that events of any level (the fence's among them) reach the log.
			return harness.StartSentinelProxyWith(proxyBin, b.topo, dir, harness.ProxyOptions{Host: b.proxyHost(), Port: proxyPort,
				LogLevel: "info", Tables: checkTable, Master: master})
		}
	}
	return []path{
		{name: "sentinel-proxy", slug: "sentinel-proxy", isProxy: true, start: proxy("")},
		// Durable acknowledgements: the bed has two replicas, so wait_replicas = 2 is every one.
		{name: "durable (2 replicas)", slug: "durable", isProxy: true, start: proxy("mode = \"resp\"\nwait_replicas = 2")},
		{name: "durable multiplex (2)", slug: "durable-mux", isProxy: true,
			start: proxy("mode = \"resp\"\nmultiplex = true\nwait_replicas = 2")},
		{name: "durable (1 replica)", slug: "durable1", isProxy: true, start: proxy("mode = \"resp\"\nwait_replicas = 1")},
		{name: "haproxy (seed)", slug: "haproxy", start: func(b *bed, dir string) (*harness.Process, error) {
			return harness.StartHAProxyWith(haproxyBin, b.topo, dir, harness.ProxyOptions{Host: b.proxyHost(), Port: proxyPort})
		}},
	}
}

// runner runs scenarios one at a time and knows the current bed, so an interrupt can remove it.
type runner struct {
	out                        string // this invocation's directory for raw logs
	timings                    timings
	warmup                     time.Duration
	downAfter, failoverTimeout time.Duration
	settle                     time.Duration // how long the topology may take to agree after healing

	mu      sync.Mutex
	current *bed
}

func (rn *runner) setCurrent(b *bed) {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	rn.current = b
}

// abort removes the current bed: its processes and its lab.
func (rn *runner) abort() {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	if rn.current != nil {
		rn.current.close()
	}
}

// runOnce runs one scenario on one path on a fresh lab and topology.
func (rn *runner) runOnce(sc scenario, p path, run int) (result, error) {
	started := time.Now()
	r := result{scenario: sc.name, path: p.name, run: run, isProxy: p.isProxy}
	dir := filepath.Join(rn.out, fmt.Sprintf("%s-%s-%d", sc.name, p.slug, run))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return r, err
	}
	b, err := newBed(dir, rn.downAfter, rn.failoverTimeout)
	if err != nil {
		return r, err
	}
	rn.setCurrent(b)
	defer rn.setCurrent(nil)
	defer b.close()
	proc, err := p.start(b, dir)
	if err != nil {
		return r, err
	}
	defer proc.Stop()
	if err := servedOnlyBy(b, proc.Addr, b.topo.Nodes[0].Addr, 30*time.Second); err != nil {
		return r, fmt.Errorf("%s never routed to the master alone: %w", p.name, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// From the root namespace, which no cut reaches: every Sentinel's events, whatever the proxy sees.
	events, err := redistest.RecordEvents(ctx, b.topo.SentinelAddrs())
	if err != nil {
		return r, fmt.Errorf("subscribe to the Sentinels: %w", err)
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	done := make(chan *redistest.LoadResult, 1)
	go func() {
		done <- (&redistest.WriteLoad{Addr: proc.Addr, Password: password, Writers: 4, Timeout: 10 * time.Second,
			NodeAddr: b.topo.NodeAddrByPort}).Run(loadCtx)
	}()
	stop := func() *redistest.LoadResult { stopLoad(); return <-done }
	time.Sleep(rn.warmup)
	if err := sc.act(b, rn.timings); err != nil {
		stop()
		return r, fmt.Errorf("scenario: %w", err)
	}
	final, notes, err := rn.settled(b, proc.Addr, p.name)
	r.notes = append(r.notes, notes...)
	if err != nil {
		stop()
		return r, err
	}
	time.Sleep(time.Second) // writes through the settled path, so the last gap ends
	res := stop()
	if again, err := b.topo.AgreedMaster(30 * time.Second); err == nil && again != final {
		r.notes = append(r.notes, fmt.Sprintf("the master moved from %s to %s after settling; checked against %s", final, again, again))
		final = again
	}

	cut := b.firstCut()
	lost, err := res.Lost(final, password)
	if err != nil {
		return r, fmt.Errorf("read back the acknowledged writes: %w", err)
	}
	measure(&r, b, res, lost, cut)
	r.finalMaster, r.final = b.hostOf(final), final
	r.switches, r.tilts = switches(events.Events()), tilts(events.Events())
	if r.tilts > 0 {
		r.notes = append(r.notes, "a Sentinel entered TILT mode (its timer stalled for over 2 s: a starved CPU or a slow disk); "+
			"it ignores failures and votes in TILT for 30 s, so this run does not show what the partition alone does")
	}
	if p.isProxy {
		if err := fenceEvents(&r, proc.LogPath, cut); err != nil {
			r.notes = append(r.notes, err.Error())
		}
	}
	if err := writeRaw(dir, b, res, lost, events.Events(), cut); err != nil {
		r.notes = append(r.notes, "raw logs: "+err.Error())
	}
	r.took = time.Since(started)
	return r, nil
}

// servedOnlyBy waits until 30 new clients in a row reach node through addr. HAProxy starts with every
// server up and balances over the replicas too until its checks have failed on them (about three
// seconds); writes sent there meanwhile fail, and those failures would be counted against the
// scenario.
func servedOnlyBy(b *bed, addr, node string, timeout time.Duration) error {
	return redistest.Eventually(timeout, func() error {
		for i := 0; i < 30; i++ {
			if err := harness.WaitServedByNode(b.topo, addr, node, 0); err != nil {
				return err
			}
		}
		return nil
	})
}

// settled waits, after the last heal, until the Sentinels agree on a master that says role:master,
// its replicas are in sync, and the path routes new clients to it. The last two only become notes: the
// writes can still be checked against the agreed master.
func (rn *runner) settled(b *bed, proxyAddr, pathName string) (master string, notes []string, err error) {
	master, err = b.topo.AgreedMaster(rn.settle)
	if err != nil {
		return "", nil, fmt.Errorf("the Sentinels never agreed after healing: %w", err)
	}
	if err := b.topo.WaitSettled(len(b.topo.Nodes)-1, rn.settle); err != nil {
		notes = append(notes, "replicas not in sync after healing: "+err.Error())
	}
	if err := harness.WaitServedByNode(b.topo, proxyAddr, master, time.Minute); err != nil {
		notes = append(notes, fmt.Sprintf("%s never routed to the final master %s: %v", pathName, b.hostOf(master), err))
	}
	return master, notes, nil
}

// writeRaw keeps what a reader of the table may want to check: the cuts, the Sentinel events and the
// acknowledgements per 100 ms and node, all in milliseconds from the first cut. The proxy's log and
// every Redis process's log are already in dir.
func writeRaw(dir string, b *bed, res *redistest.LoadResult, lost []redistest.Ack, events []redistest.SentinelEvent, cut time.Time) error {
	var actions strings.Builder
	for _, a := range b.actionLog() {
		fmt.Fprintf(&actions, "%8d ms  %s\n", a.At.Sub(cut).Milliseconds(), a.What)
	}
	fmt.Fprintf(&actions, "hosts: h1=%s h2=%s h3=%s hp=%s client(root)=%s\n", b.h1.IP, b.h2.IP, b.h3.IP, b.hp.IP, b.lab.Root.IP)
	if err := os.WriteFile(filepath.Join(dir, "cuts.txt"), []byte(actions.String()), 0o644); err != nil {
		return err
	}
	var ev strings.Builder
	for _, e := range events {
		fmt.Fprintf(&ev, "%8d ms  %s  %s %s\n", e.At.Sub(cut).Milliseconds(), e.Sentinel, e.Channel, e.Payload)
	}
	if err := os.WriteFile(filepath.Join(dir, "sentinel-events.txt"), []byte(ev.String()), 0o644); err != nil {
		return err
	}
	return writeTimeline(filepath.Join(dir, "timeline.csv"), b, res, lost, cut)
}
