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
	"github.com/sentinel-proxy/sentinel-proxy/netlab"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

// checkTable states sentinel-proxy's probe settings, which are its defaults, in its configuration file:
// the same as the seed HAProxy's `check inter 1s` with HAProxy's default rise 2 and fall 3.
const checkTable = "[check]\ninterval = \"1s\"\ntimeout = \"1s\"\nrise = 2\nfall = 3\n"

// path is one way for clients to reach the master: a proxy started on a host of the bed.
type path struct {
	name    string
	slug    string // for file names
	isProxy bool   // sentinel-proxy, whose log is searched for fence events
	start   func(b *bed, on *netlab.Host, dir string) (*harness.Process, error)
}

func paths(proxyBin, haproxyBin string) []path {
	proxy := func(master string) func(b *bed, on *netlab.Host, dir string) (*harness.Process, error) {
		return func(b *bed, on *netlab.Host, dir string) (*harness.Process, error) {
			// info level, so that events of any level (the fence's among them) reach the log.
			return harness.StartSentinelProxyWith(proxyBin, b.topo, dir, harness.ProxyOptions{Host: onHost(on), Port: proxyPort,
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
		{name: "haproxy (seed)", slug: "haproxy", start: func(b *bed, on *netlab.Host, dir string) (*harness.Process, error) {
			return harness.StartHAProxyWith(haproxyBin, b.topo, dir, harness.ProxyOptions{Host: onHost(on), Port: proxyPort})
		}},
	}
}

// member is one proxy of a run and what the writers through it saw.
type member struct {
	host *netlab.Host
	name string // the path's name, and in a fleet the host's: "sentinel-proxy on hq"
	dir  string // its configuration and log: the run's directory, or in a fleet a directory per proxy
	proc *harness.Process
	load *redistest.LoadResult // once the writers stopped
}

// runner runs scenarios one at a time and knows the current bed, so an interrupt can remove it.
type runner struct {
	out                        string // this invocation's directory for raw logs
	timings                    timings
	warmup                     time.Duration
	downAfter, failoverTimeout time.Duration // Sentinel's; downAfter for scenarios without their own
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

// runOnce runs one scenario on one path on a fresh lab and topology. With one proxy the result is that
// proxy's; with a fleet it is over every proxy's writers, and result.fleet holds one per proxy.
func (rn *runner) runOnce(sc scenario, p path, run int) (result, error) {
	started := time.Now()
	base := result{scenario: sc.name, path: p.name, run: run, isProxy: p.isProxy}
	dir := filepath.Join(rn.out, fmt.Sprintf("%s-%s-%d", sc.name, p.slug, run))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return base, err
	}
	downAfter := rn.downAfter
	if sc.downAfter > 0 {
		downAfter = sc.downAfter
	}
	b, err := newBed(dir, sc.proxyHosts(), downAfter, rn.failoverTimeout)
	if err != nil {
		return base, err
	}
	rn.setCurrent(b)
	defer rn.setCurrent(nil)
	defer b.close()
	members, err := startProxies(b, p, dir)
	defer stopProxies(members)
	if err != nil {
		return base, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// From the root namespace, which no cut reaches: every Sentinel's events, whatever the proxies see.
	events, err := redistest.RecordEvents(ctx, b.topo.SentinelAddrs())
	if err != nil {
		return base, fmt.Errorf("subscribe to the Sentinels: %w", err)
	}
	stop := startLoads(ctx, b, members)
	time.Sleep(rn.warmup)
	if err := sc.act(b, rn.timings); err != nil {
		stop()
		return base, fmt.Errorf("scenario: %w", err)
	}
	final, notes, err := rn.settled(b, members)
	if err != nil {
		stop()
		return base, err
	}
	time.Sleep(time.Second) // writes through the settled paths, so the last gap ends
	stop()
	if again, err := b.topo.AgreedMaster(30 * time.Second); err == nil && again != final {
		notes = append(notes, fmt.Sprintf("the master moved from %s to %s after settling; checked against %s", final, again, again))
		final = again
	}
	r, err := measureRun(b, dir, base, members, final, events.Events())
	if err != nil {
		return base, err
	}
	r.notes = append(notes, r.notes...)
	r.took = time.Since(started)
	for i := range r.fleet {
		r.fleet[i].took = r.took
	}
	return r, nil
}

// measureRun measures what the writers saw, against the final master, and keeps the raw logs in dir.
// With one proxy the result is that proxy's; with a fleet it is over every proxy's writers, and
// result.fleet holds one per proxy. base holds what every result of the run shares.
func measureRun(b *bed, dir string, base result, members []*member, final string, evs []redistest.SentinelEvent) (result, error) {
	cut := b.firstCut()
	base.finalMaster, base.final = b.hostOf(final), final
	base.switches, base.tilts = switches(evs), tilts(evs)
	if at, ok := firstSwitch(evs); ok {
		base.failoverAt, base.haveFailover = at.Sub(cut), true
	}
	if heal := b.firstHeal(); !heal.IsZero() {
		base.healed = heal.Sub(cut)
	}
	each := make([]result, len(members))
	for i, m := range members {
		var err error
		if each[i], err = measureMember(b, m, base, final, cut); err != nil {
			return base, err
		}
	}
	r := each[0]
	load, lost := members[0].load, each[0].lostAcks
	if len(members) > 1 {
		loads := make([]*redistest.LoadResult, len(members))
		for i, m := range members {
			loads[i] = m.load
		}
		r, load, lost = base, mergeLoads(loads), mergeLost(each)
		r.path += " fleet " + names(b.proxies)
		measure(&r, b, load, lost, cut, final)
		fleetFence(&r, each)
		r.fleet = each
	}
	if r.tilts > 0 {
		r.notes = append(r.notes, "a Sentinel entered TILT mode (its timer stalled for over 2 s: a starved CPU or a slow disk); "+
			"it ignores failures and votes in TILT for 30 s, so this run does not show what the partition alone does")
	}
	if err := writeRaw(dir, b, load, lost, evs, cut); err != nil {
		r.notes = append(r.notes, "raw logs: "+err.Error())
	}
	return r, nil
}

// startProxies starts the path's proxy on each of the bed's proxy hosts and waits until each routes to
// the master alone. The members it returns are to be stopped whatever the error.
func startProxies(b *bed, p path, dir string) ([]*member, error) {
	var members []*member
	for _, h := range b.proxies {
		m := &member{host: h, name: p.name, dir: dir}
		if len(b.proxies) > 1 {
			// Each proxy writes its configuration and log under its port's name, which the fleet shares.
			m.name, m.dir = p.name+" on "+h.Name, filepath.Join(dir, h.Name)
			if err := os.MkdirAll(m.dir, 0o755); err != nil {
				return members, err
			}
		}
		proc, err := p.start(b, h, m.dir)
		if err != nil {
			return members, fmt.Errorf("start %s: %w", m.name, err)
		}
		m.proc = proc
		members = append(members, m)
	}
	for _, m := range members {
		if err := servedOnlyBy(b, m.proc.Addr, b.topo.Nodes[0].Addr, 30*time.Second); err != nil {
			return members, fmt.Errorf("%s never routed to the master alone: %w", m.name, err)
		}
	}
	return members, nil
}

func stopProxies(members []*member) {
	for _, m := range members {
		m.proc.Stop()
	}
}

// startLoads runs writers through each member's proxy, from this process, until the returned stop,
// which fills in each member's load. Each proxy's writers have keys of their own.
func startLoads(ctx context.Context, b *bed, members []*member) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make([]chan *redistest.LoadResult, len(members))
	for i, m := range members {
		done[i] = make(chan *redistest.LoadResult, 1)
		w := &redistest.WriteLoad{Addr: m.proc.Addr, Password: password, Writers: 4, Timeout: 10 * time.Second,
			Prefix: m.host.Name + "-w", NodeAddr: b.topo.NodeAddrByPort}
		go runLoad(ctx, w, done[i])
	}
	return func() {
		cancel()
		for i, m := range members {
			m.load = <-done[i]
		}
	}
}

func runLoad(ctx context.Context, w *redistest.WriteLoad, done chan<- *redistest.LoadResult) {
	done <- w.Run(ctx)
}

// measureMember measures what the writers through one proxy saw, against the final master; base holds
// what every result of the run shares.
func measureMember(b *bed, m *member, base result, final string, cut time.Time) (result, error) {
	r := base
	r.path, r.proxyHost = m.name, m.host.Name
	lost, err := m.load.Lost(final, password)
	if err != nil {
		return r, fmt.Errorf("%s: read back the acknowledged writes: %w", m.name, err)
	}
	measure(&r, b, m.load, lost, cut, final)
	if r.isProxy {
		if err := fenceEvents(&r, m.proc.LogPath, cut); err != nil {
			r.notes = append(r.notes, err.Error())
		}
	}
	if len(b.proxies) > 1 {
		if err := writeTimeline(filepath.Join(m.dir, "timeline.csv"), b, m.load, lost, cut); err != nil {
			r.notes = append(r.notes, "raw logs: "+err.Error())
		}
	}
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
// its replicas are in sync, and every proxy routes new clients to it. The last two only become notes:
// the writes can still be checked against the agreed master.
func (rn *runner) settled(b *bed, members []*member) (master string, notes []string, err error) {
	master, err = b.topo.AgreedMaster(rn.settle)
	if err != nil {
		return "", nil, fmt.Errorf("the Sentinels never agreed after healing: %w", err)
	}
	if err := b.topo.WaitSettled(len(b.topo.Nodes)-1, rn.settle); err != nil {
		notes = append(notes, "replicas not in sync after healing: "+err.Error())
	}
	for _, m := range members {
		if err := harness.WaitServedByNode(b.topo, m.proc.Addr, master, time.Minute); err != nil {
			notes = append(notes, fmt.Sprintf("%s never routed to the final master %s: %v", m.name, b.hostOf(master), err))
		}
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
	actions.WriteString("hosts:")
	for _, h := range b.lab.Hosts {
		fmt.Fprintf(&actions, " %s=%s", h.Name, h.IP)
	}
	fmt.Fprintf(&actions, " client(root)=%s\n", b.lab.Root.IP)
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
