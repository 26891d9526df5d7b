package check

import (
	"context"
	"sync"
	"time"
)

// Monitor probes a changing set of nodes, each every Interval, and hands every Result to Report. One
// goroutine per node keeps a slow node from delaying the others' checks.
type Monitor struct {
	Prober   *Prober
	Interval time.Duration
	// Report receives every result, from the probing goroutines. It should not block for long.
	Report func(Result)

	mu      sync.Mutex
	ctx     context.Context
	targets map[string]*target
	wg      sync.WaitGroup
}

type target struct {
	cancel  context.CancelFunc
	trigger chan struct{}
}

// Run starts probing and blocks until ctx ends, then waits for every probe to stop.
func (m *Monitor) Run(ctx context.Context) {
	m.mu.Lock()
	m.ctx = ctx
	if m.targets == nil {
		m.targets = map[string]*target{}
	}
	for addr, t := range m.targets {
		if t.cancel == nil {
			m.start(addr, t)
		}
	}
	m.mu.Unlock()
	<-ctx.Done()
	m.wg.Wait()
}

// SetTargets replaces the set of probed nodes. New nodes are probed at once; removed ones stop.
func (m *Monitor) SetTargets(addrs []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.targets == nil {
		m.targets = map[string]*target{}
	}
	want := map[string]bool{}
	for _, a := range addrs {
		want[a] = true
		if _, ok := m.targets[a]; !ok {
			t := &target{trigger: make(chan struct{}, 1)}
			m.targets[a] = t
			if m.ctx != nil {
				m.start(a, t)
			}
		}
	}
	for a, t := range m.targets {
		if !want[a] {
			if t.cancel != nil {
				t.cancel()
			}
			delete(m.targets, a)
		}
	}
}

// ProbeNow asks for an immediate probe of addr, without waiting for its next interval. A probe already
// asked for and not yet run absorbs the request. Unknown addresses are ignored.
func (m *Monitor) ProbeNow(addr string) {
	m.mu.Lock()
	t, ok := m.targets[addr]
	m.mu.Unlock()
	if !ok {
		return
	}
	select {
	case t.trigger <- struct{}{}:
	default:
	}
}

// start must be called with m.mu held.
func (m *Monitor) start(addr string, t *target) {
	if m.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(m.ctx)
	t.cancel = cancel
	m.wg.Add(1)
	go m.probeLoop(ctx, addr, t.trigger)
}

// Reconfigure replaces the prober (credentials, timeout) and the interval, after a reload. Every node is
// probed again at once with the new settings.
func (m *Monitor) Reconfigure(p *Prober, interval time.Duration) {
	m.mu.Lock()
	m.Prober, m.Interval = p, interval
	addrs := make([]string, 0, len(m.targets))
	for a := range m.targets {
		addrs = append(addrs, a)
	}
	m.mu.Unlock()
	for _, a := range addrs {
		m.ProbeNow(a)
	}
}

func (m *Monitor) settings() (*Prober, time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Interval <= 0 {
		return m.Prober, time.Second
	}
	return m.Prober, m.Interval
}

func (m *Monitor) probeLoop(ctx context.Context, addr string, trigger <-chan struct{}) {
	defer m.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-trigger:
			timer.Stop()
		}
		prober, interval := m.settings()
		res := prober.Probe(ctx, addr)
		if ctx.Err() != nil {
			return // a probe cut short by shutdown or removal says nothing about the node
		}
		m.Report(res)
		timer.Reset(interval)
	}
}
