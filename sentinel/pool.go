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

	mu       sync.Mutex
	ctx      context.Context
	watchers map[string]*Watcher
	wg       sync.WaitGroup
}

// Run starts a watcher per address and blocks until ctx ends and every watcher has stopped.
func (p *Pool) Run(ctx context.Context, addrs []string) {
	p.mu.Lock()
	p.ctx = ctx
	p.watchers = map[string]*Watcher{}
	p.mu.Unlock()
	for _, a := range addrs {
		p.ensure(a, false)
	}
	<-ctx.Done()
	p.wg.Wait()
}

// ReconcileNow asks every Sentinel again at once.
func (p *Pool) ReconcileNow() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.watchers {
		w.ReconcileNow()
	}
}

func (p *Pool) ensure(addr string, discovered bool) {
	p.mu.Lock()
	if p.ctx == nil || p.ctx.Err() != nil || p.watchers[addr] != nil {
		p.mu.Unlock()
		return
	}
	o := p.Template
	o.Addr = addr
	onView := o.OnView
	o.OnView = func(v View) {
		for _, peer := range v.Peers {
			p.ensure(peer, true)
		}
		onView(v)
	}
	w := NewWatcher(o)
	p.watchers[addr] = w
	ctx := p.ctx
	p.wg.Add(1)
	p.mu.Unlock()
	if discovered && p.OnDiscover != nil {
		p.OnDiscover(addr)
	}
	go func() { defer p.wg.Done(); w.Run(ctx) }()
}
