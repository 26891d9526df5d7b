package sentinel

import (
	"context"
	"sync"
)

// Pool runs a Watcher for every configured Sentinel and for every other Sentinel they report (SENTINEL
// SENTINELS), so that an event published only by a Sentinel missing from the configuration is still
// heard. Discovered Sentinels are followed until the pool stops.
type Pool struct {
	// Template is copied for each watcher; its Addr is replaced.
	Template Options
	// OnDiscover, if set, is called when a Sentinel not in the configuration is first followed.
	OnDiscover func(addr string)

	mu         sync.Mutex
	ctx        context.Context
	watchers   map[string]*watcherRun
	configured map[string]bool
	wg         sync.WaitGroup
}

type watcherRun struct {
	w          *Watcher
	cancel     context.CancelFunc
	discovered bool
}

// Run starts a watcher per address and blocks until ctx ends and every watcher has stopped.
func (p *Pool) Run(ctx context.Context, addrs []string) {
	p.mu.Lock()
	p.ctx = ctx
	p.watchers = map[string]*watcherRun{}
	p.configured = addrSet(addrs)
	p.mu.Unlock()
	for _, a := range addrs {
		p.ensure(a, false, false)
	}
	<-ctx.Done()
	p.wg.Wait()
}

// Reconfigure applies a reload: every watcher restarts with tmpl (credentials, masters), following the
// configured addrs and the Sentinels discovered so far. It returns the Sentinels no longer followed, whose
// last word must stop counting. Run must have started.
func (p *Pool) Reconfigure(tmpl Options, addrs []string) (dropped []string) {
	p.mu.Lock()
	p.Template = tmpl
	follow := addrSet(addrs)
	discovered := map[string]bool{}
	for a, r := range p.watchers {
		r.cancel()
		if r.discovered && !follow[a] {
			follow[a], discovered[a] = true, true
		}
		if !follow[a] {
			dropped = append(dropped, a)
		}
	}
	p.watchers = map[string]*watcherRun{}
	p.configured = addrSet(addrs)
	p.mu.Unlock()
	for a := range follow {
		p.ensure(a, discovered[a], false)
	}
	return dropped
}

func addrSet(addrs []string) map[string]bool {
	set := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		set[a] = true
	}
	return set
}

func (p *Pool) current(addr string, w *Watcher) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.watchers[addr]
	return r != nil && r.w == w
}

// ReconcileNow asks every Sentinel again at once.
func (p *Pool) ReconcileNow() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.watchers {
		r.w.ReconcileNow()
	}
}

func (p *Pool) ensure(addr string, discovered, announce bool) {
	p.mu.Lock()
	if p.ctx == nil || p.ctx.Err() != nil || p.watchers[addr] != nil {
		p.mu.Unlock()
		return
	}
	announce = announce && !p.configured[addr]
	o := p.Template
	o.Addr = addr
	onView, onEvent := o.OnView, o.OnEvent
	var w *Watcher
	// A watcher stopped by Reconfigure may still deliver what it was receiving; only the current one
	// speaks for its Sentinel.
	o.OnView = func(v View) {
		if !p.current(addr, w) {
			return
		}
		for _, peer := range v.Peers {
			p.ensure(peer, true, true)
		}
		onView(v)
	}
	if onEvent != nil {
		o.OnEvent = func(e Event) {
			if p.current(addr, w) {
				onEvent(e)
			}
		}
	}
	w = NewWatcher(o)
	ctx, cancel := context.WithCancel(p.ctx)
	p.watchers[addr] = &watcherRun{w: w, cancel: cancel, discovered: discovered}
	p.wg.Add(1)
	p.mu.Unlock()
	if announce && p.OnDiscover != nil {
		p.OnDiscover(addr)
	}
	go func() { defer p.wg.Done(); w.Run(ctx) }()
}
