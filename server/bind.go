package server

import (
	"fmt"
	"net"

	"github.com/hashicorp/go-multierror"

	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/respsession"
)

// ports is one [[masters]] block at run time: its configured addresses, the sockets bound to them and
// the listeners that serve them.
type ports struct {
	name                 string
	master, replica      *proxy.Listener
	masterLn, replicaLn  net.Listener
	masterAt, replicaAt  string // the configured listen addresses
	masterKey, replicaKy string // config keys, for errors
	tls                  config.ListenTLS
	mode                 string // "tcp" or "resp": kept, as tls, until a restart
	multiplex            bool   // kept as mode is
	// dur is the group's wait_replicas (resp mode), which its master listener's sessions apply; a
	// reload changes it in place (applyDurability).
	dur *respsession.Durability
}

// bindAll binds every address of cfg that current does not already listen on (all of them at start),
// and returns the ports of cfg's groups with their listeners: current ones kept, new ones created. The
// stats listener is returned when cfg's stats address is new. Nothing is bound when any address fails:
// every failure is returned at once.
func (rt *proxyRuntime) bindAll(cfg *config.Config, current []*ports, currentStats net.Listener) ([]*ports, net.Listener, error) {
	byName := map[string]*ports{}
	for _, g := range current {
		byName[g.name] = g
	}
	var errs *multierror.Error
	var fresh []net.Listener
	bind := func(key, addr string) net.Listener {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			errs = multierror.Append(errs, fmt.Errorf("%s: %w", key, err))
			return nil
		}
		fresh = append(fresh, ln)
		return ln
	}
	var out []*ports
	for i, m := range cfg.Masters {
		old := byName[m.Name]
		g := &ports{}
		if old != nil {
			*g = *old
		}
		g.name, g.masterAt, g.replicaAt = m.Name, m.MasterListen, m.ReplicaListen
		if old == nil {
			// A running listener keeps its TLS settings and its mode until a restart.
			g.tls, g.mode, g.multiplex = m.TLS, m.SessionMode(), m.Multiplex
			if g.mode == "resp" {
				g.dur = respsession.NewDurability(m.Name, rt.log)
			}
		}
		g.masterKey, g.replicaKy = fmt.Sprintf("masters[%d].master_listen", i), fmt.Sprintf("masters[%d].replica_listen", i)
		if old == nil || old.masterAt != m.MasterListen {
			g.masterLn = bind(g.masterKey, m.MasterListen)
		}
		if m.ReplicaListen != "" && (old == nil || old.replicaAt != m.ReplicaListen) {
			g.replicaLn = bind(g.replicaKy, m.ReplicaListen)
		}
		out = append(out, g)
	}
	var statsLn net.Listener
	if cfg.Stats.Listen != "" && (currentStats == nil || rt.cfg.Stats.Listen != cfg.Stats.Listen) {
		statsLn = bind("stats.listen", cfg.Stats.Listen)
	}
	if err := errs.ErrorOrNil(); err != nil {
		for _, ln := range fresh {
			ln.Close()
		}
		return nil, nil, err
	}
	return out, statsLn, nil
}

func (rt *proxyRuntime) newListener(cfg *config.Config, g *ports, name string) *proxy.Listener {
	l := &proxy.Listener{Name: name, MaxConns: cfg.Proxy.MaxConns,
		ConnectTimeout: cfg.Proxy.ConnectTimeout.Duration, IdleTimeout: cfg.Proxy.IdleTimeout.Duration,
		HoldTimeout: cfg.Proxy.FailoverHold.Duration, Log: rt.log.With().Str("group", g.name).Logger(),
		OnBackendFailure: func(addr string) { rt.monitor.ProbeNow(addr) }, DialContext: nodeDialer(cfg)}
	if g.tls.Enabled() {
		l.TLS, _ = g.tls.ServerConfig(name) // validated when the configuration was loaded
	}
	// TLS runs in Go's crypto/tls, on net.Conns: event loops move raw bytes between descriptors and
	// cannot carry it.
	l.Handler = rt.data.handler(g.mode, g.multiplex, l.TLS != nil || l.DialContext != nil)
	if name == g.name+"/master" && g.dur != nil {
		l.SessionConfig = g.dur // writes go to the master port: wait_replicas applies there
	}
	l.SetRoute(proxy.Route{Refusal: "starting up: master not verified yet"})
	return l
}

// applyDurability gives each resp-mode group its wait_replicas and wait_timeout from cfg: at the start,
// and after a reload is accepted (the commands that follow use them).
func applyDurability(cfg *config.Config, groups []*ports) {
	byName := map[string]config.Master{}
	for _, m := range cfg.Masters {
		byName[m.Name] = m
	}
	for _, g := range groups {
		if m, ok := byName[g.name]; ok && g.dur != nil {
			g.dur.Set(m.WaitReplicas, m.WaitFor())
		}
	}
}

// serve starts l on ln; a listener that fails ends the proxy (Run reads serveErrs).
func (rt *proxyRuntime) serve(l *proxy.Listener, ln net.Listener) {
	rt.log.Info().Str("event", "listener_started").Str("listener", l.Name).Str("addr", ln.Addr().String()).Msg("listening")
	rt.spawn(func() {
		if err := l.Serve(rt.ctx, ln); err != nil {
			rt.serveErrs <- err
		}
	})
}
