package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/stats"
)

// reload re-reads the configuration and applies it without dropping sessions that stay valid. A config
// that does not load, or whose new addresses cannot be bound, is rejected as a whole and the running one
// kept. It returns the rejection, if any.
//
// The order matters: the new ports accept first, then the control plane follows the new groups, and
// only then are the removed groups' sessions closed and the stats page moved.
func (rt *proxyRuntime) reload(load func() (*config.Config, error), trigger string) error {
	rt.reloadMu.Lock()
	defer rt.reloadMu.Unlock()
	if rt.stopping.Load() {
		return rt.rejectReload(trigger, errors.New("shutting down: reload refused"))
	}
	cfg, err := load()
	if err != nil {
		return rt.rejectReload(trigger, err)
	}
	old := rt.cfg
	rt.mu.Lock()
	current := append([]*ports(nil), rt.ports...)
	rt.mu.Unlock()
	next, newStatsLn, err := rt.bindAll(cfg, current, rt.statsLn)
	if err != nil {
		return rt.rejectReload(trigger, err)
	}
	changes, restartNeeded := configChanges(old, cfg)

	// Data plane first: new listeners and moved addresses accept before anything else changes.
	retire := rt.serveNewPorts(cfg, current, next)
	applyDurability(cfg, next)
	rt.mu.Lock()
	rt.ports = next
	rt.cfg = cfg
	rt.mu.Unlock()
	for _, f := range retire {
		f()
	}

	// Control plane: probes, Sentinels, then the router, which routes the new groups.
	dropped := rt.reconfigureControlPlane(cfg)
	closeRemovedGroups(current, next)

	// Stats: new settings at once; a new address replaces the old server.
	rt.reloadStats(old, cfg, newStatsLn, load)
	rt.log.Info().Str("event", "config_reloaded").Str("trigger", trigger).Strs("changed", changes).
		Strs("restart_needed", restartNeeded).Strs("sentinels_dropped", dropped).
		Msg("configuration reloaded; established sessions kept")
	return nil
}

// rejectReload logs a rejected reload with every problem, and returns err.
func (rt *proxyRuntime) rejectReload(trigger string, err error) error {
	ev := rt.log.Error().Str("event", "config_rejected").Str("trigger", trigger)
	var merr *multierror.Error
	if errors.As(err, &merr) {
		msgs := make([]string, len(merr.Errors))
		for i, e := range merr.Errors {
			msgs[i] = e.Error()
		}
		ev.Strs("errors", msgs)
	} else {
		ev.Strs("errors", []string{err.Error()})
	}
	ev.Msg("new configuration rejected; the running one is kept")
	return err
}

// serveNewPorts makes the listeners next needs and serves every newly bound address of next (current
// are the ports in force). It returns what retires the old ones — unbinding a moved address, closing a
// replica port that is gone with its sessions — to be called once next is in force.
func (rt *proxyRuntime) serveNewPorts(cfg *config.Config, current, next []*ports) (retire []func()) {
	byName := map[string]*ports{}
	for _, c := range current {
		byName[c.name] = c
	}
	for _, g := range next {
		if g.master == nil {
			g.master = rt.newListener(cfg, g, g.name+"/master")
		}
		prev := byName[g.name]
		if prev == nil || prev.masterLn != g.masterLn {
			if prev != nil {
				oldLn, l := prev.masterLn, g.master
				retire = append(retire, func() { l.Unbind(oldLn) })
			}
			rt.serve(g.master, g.masterLn)
		}
		switch {
		case g.replicaAt == "" && g.replica != nil:
			l := g.replica
			retire = append(retire, l.Close) // the replica port is gone: its sessions with it
			g.replica, g.replicaLn = nil, nil
		case g.replicaAt != "" && g.replica == nil:
			g.replica = rt.newListener(cfg, g, g.name+"/replica")
			rt.serve(g.replica, g.replicaLn)
		case g.replicaAt != "" && prev != nil && prev.replicaLn != g.replicaLn:
			oldLn, l := prev.replicaLn, g.replica
			retire = append(retire, func() { l.Unbind(oldLn) })
			rt.serve(g.replica, g.replicaLn)
		}
	}
	return retire
}

// reconfigureControlPlane gives the probes, the Sentinel pool and the router cfg, and returns once the
// router has applied it (the new groups route). It returns the Sentinels no longer followed.
func (rt *proxyRuntime) reconfigureControlPlane(cfg *config.Config) (dropped []string) {
	rt.monitor.Reconfigure(newProber(cfg), cfg.Check.Interval.Duration)
	dropped = rt.sentinels.Reconfigure(rt.sentinelOptions(cfg), cfg.Sentinel.Addrs)
	done := make(chan struct{})
	rt.router.Submit(rt.ctx, routerConfig(cfg, dropped, done))
	select {
	case <-done:
	case <-rt.ctx.Done():
	}
	return dropped
}

// closeRemovedGroups closes the listeners of the groups of current that next no longer has: a removed
// group's sessions are no longer valid.
func closeRemovedGroups(current, next []*ports) {
	keep := map[string]bool{}
	for _, g := range next {
		keep[g.name] = true
	}
	for _, g := range current {
		if !keep[g.name] {
			g.master.Close()
			if g.replica != nil {
				g.replica.Close()
			}
		}
	}
}

// reloadStats gives the stats page its new settings, and moves it when its address changed (newLn is
// the new address, bound by bindAll; nil when the page is turned off).
func (rt *proxyRuntime) reloadStats(old, cfg *config.Config, newLn net.Listener, load func() (*config.Config, error)) {
	if rt.statsSrv != nil {
		rt.statsSrv.Update(stats.Settings{User: cfg.Stats.User, Password: cfg.Stats.Password,
			PasswordHash: cfg.Stats.PasswordHash, Admin: cfg.Stats.Admin,
			Groups: rt.statsPorts()})
	}
	if old.Stats.Listen == cfg.Stats.Listen {
		return
	}
	oldHTTP := rt.http
	if newLn != nil {
		rt.startStats(cfg, newLn, load)
	} else {
		rt.http, rt.statsLn = nil, nil
	}
	if oldHTTP != nil {
		// The reply to the request that asked for this reload may still be on its way.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = oldHTTP.Shutdown(ctx)
		}()
	}
}

// configChanges names the top-level keys that differ, and those among them that only a restart applies.
func configChanges(old, cfg *config.Config) (changed, restartNeeded []string) {
	o, n := reflect.ValueOf(*old), reflect.ValueOf(*cfg)
	for i := 0; i < o.NumField(); i++ {
		if reflect.DeepEqual(o.Field(i).Interface(), n.Field(i).Interface()) {
			continue
		}
		name := o.Type().Field(i).Tag.Get("toml")
		changed = append(changed, name)
		if name == "proxy" || name == "log" {
			restartNeeded = append(restartNeeded, name)
		}
	}
	// Established listeners keep the TLS they were started with (their sessions use it).
	if !reflect.DeepEqual(old.Redis.TLS, cfg.Redis.TLS) {
		restartNeeded = append(restartNeeded, "redis.tls")
	}
	// ... and the mode their sessions run in.
	before := map[string]config.Master{}
	for _, m := range old.Masters {
		before[m.Name] = m
	}
	for i, m := range cfg.Masters {
		b, ok := before[m.Name]
		if ok && b.TLS != m.TLS {
			restartNeeded = append(restartNeeded, fmt.Sprintf("masters[%d].tls", i))
		}
		if ok && b.SessionMode() != m.SessionMode() {
			restartNeeded = append(restartNeeded, fmt.Sprintf("masters[%d].mode", i))
		}
	}
	return changed, restartNeeded
}
