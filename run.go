package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/sentinel-proxy/sentinel-proxy/check"
	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/eventloop"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/pipe"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
	"github.com/sentinel-proxy/sentinel-proxy/sentinel"
	"github.com/sentinel-proxy/sentinel-proxy/stats"
)

// loadConfig turns a bad file into exit code 2, before anything listens.
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, cli.Exit(err.Error(), 2)
	}
	return cfg, nil
}

func newLogger(c config.Log, w io.Writer) zerolog.Logger {
	if c.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	}
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(level).Hook(timestampHook{})
}

// timestampHook stamps each line with millisecond-or-better UTC time. zerolog's own Timestamp() formats
// with a package-level setting (seconds by default); failover timelines need milliseconds, and changing
// that global would be shared mutable state.
type timestampHook struct{}

func (timestampHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str("time", time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
}

// runOptions are what the command line (or a test) adds to the configuration.
type runOptions struct {
	// Reload re-reads the configuration (SIGHUP, POST /-/reload). Nil means reload is not possible.
	Reload func() (*config.Config, error)
	// ReloadSignal delivers SIGHUP; nil in tests, which reload through the stats port.
	ReloadSignal <-chan os.Signal
	// Started reports the bound addresses to tests.
	Started func(addrs map[string]string)
}

// group is one [[masters]] block at run time.
type group struct {
	name                 string
	master, replica      *proxy.Listener
	masterLn, replicaLn  net.Listener
	masterAt, replicaAt  string // the configured listen addresses
	masterKey, replicaKy string // config keys, for errors
	tls                  config.ListenTLS
}

// proxyRuntime is a running proxy: the data plane (listeners, handler, sessions), which outlives a
// reload, and the control plane (router, probes, Sentinel watchers, stats), which a reload reconfigures.
type proxyRuntime struct {
	log       zerolog.Logger
	handler   proxy.Handler   // serves the admitted clients: the byte forwarder on event loops, or portable
	ctx       context.Context // lives until the sessions are closed, past a graceful drain
	router    *routing.Router
	monitor   *check.Monitor
	sentinels *sentinel.Pool
	statsSrv  *stats.Server
	metrics   *stats.Metrics
	stopping  atomic.Bool // set when the drain starts: no reload after that
	http      *http.Server
	statsLn   net.Listener
	wg        sync.WaitGroup
	serveErrs chan error

	reloadMu sync.Mutex // one reload at a time
	cfg      *config.Config

	mu     sync.Mutex // guards groups: read by the router goroutine (applyRoutes), changed by reload
	groups []*group
}

// run wires every package together and blocks until ctx ends and the sessions have drained. All
// ports are bound before anything else starts, so a busy port fails the start instead of leaving a
// half-running proxy.
func run(ctx context.Context, cfg *config.Config, log zerolog.Logger, opts runOptions) error {
	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()

	handler, loops, err := dataPath(cfg)
	if err != nil {
		return err
	}
	if loops != nil {
		defer loops.Close() // after every listener has stopped (deferred first, runs last)
	}

	rt := &proxyRuntime{log: log, handler: handler, ctx: serveCtx, cfg: cfg, serveErrs: make(chan error, 16)}
	groups, statsLn, err := rt.bindAll(cfg, nil, nil)
	if err != nil {
		return cli.Exit(fmt.Sprintf("cannot listen: %v", err), 1)
	}
	for _, g := range groups {
		g.master = rt.newListener(cfg, g, g.name+"/master")
		if g.replicaAt != "" {
			g.replica = rt.newListener(cfg, g, g.name+"/replica")
		}
	}
	rt.groups = groups

	rt.router = routing.NewRouter(groupNames(cfg), cfg.Check.Rise, cfg.Check.Fall, cfg.Check.MaxReplicaLag.Duration, log)
	rt.monitor = &check.Monitor{Prober: newProber(cfg), Interval: cfg.Check.Interval.Duration,
		Report: func(r check.Result) { rt.router.Submit(serveCtx, routing.ProbeInput{Result: r}) }}
	rt.sentinels = &sentinel.Pool{
		Template: rt.sentinelOptions(cfg),
		OnDiscover: func(addr string) {
			log.Info().Str("event", "sentinel_discovered").Str("sentinel", addr).
				Msg("following a Sentinel the configured ones report (SENTINEL SENTINELS)")
		},
	}
	rt.router.SetTargets = rt.monitor.SetTargets
	rt.router.ProbeNow = rt.monitor.ProbeNow
	rt.router.Reconcile = rt.sentinels.ReconcileNow
	rt.router.OnChange = func(prev, next *routing.Snapshot) map[string]int { return rt.applyRoutes(prev, next) }
	// The metrics exist even without a stats port: a reload may open one, and the router's hooks must be
	// set before it runs.
	rt.metrics = stats.NewMetrics()
	rt.router.OnSwitch = rt.metrics.ObserveSwitch
	rt.router.OnDualMaster = rt.metrics.ObserveDualMaster
	rt.router.OnFence = rt.metrics.ObserveFence
	// The settings NewRouter does not take (the configured Sentinels, the fence) arrive as the first
	// input, before any view or probe.
	rt.router.Submit(serveCtx, routerConfig(cfg, nil, nil))
	rt.applyRoutes(nil, rt.router.Snapshot())

	rt.spawn(func() { rt.router.Run(serveCtx) })
	rt.spawn(func() { rt.monitor.Run(serveCtx) })
	rt.spawn(func() { rt.sentinels.Run(serveCtx, cfg.Sentinel.Addrs) })
	addrs := map[string]string{}
	for _, g := range groups {
		rt.serve(g.master, g.masterLn)
		addrs[g.master.Name] = g.masterLn.Addr().String()
		if g.replica != nil {
			rt.serve(g.replica, g.replicaLn)
			addrs[g.replica.Name] = g.replicaLn.Addr().String()
		}
	}
	if statsLn != nil {
		rt.startStats(cfg, statsLn, opts)
		addrs["stats"] = statsLn.Addr().String()
	}
	if opts.Started != nil {
		opts.Started(addrs)
	}
	log.Info().Str("event", "proxy_started").Str("version", versionString()).Int("pid", os.Getpid()).
		Str("forwarder", handler.Name()).Strs("sentinels", cfg.Sentinel.Addrs).Msg("sentinel-proxy started")

	for {
		select {
		case <-opts.ReloadSignal:
			if opts.Reload != nil {
				_ = rt.reload(opts.Reload, "SIGHUP")
			}
			continue
		case <-ctx.Done():
			rt.shutdown(stopServing)
			return nil
		case err := <-rt.serveErrs:
			log.Error().Err(err).Msg("listener failed; shutting down")
			stopServing()
			rt.wait()
			return err
		}
	}
}

// routerConfig is the router's part of cfg.
func routerConfig(cfg *config.Config, dropSentinels []string, done chan struct{}) routing.ConfigInput {
	return routing.ConfigInput{Groups: groupNames(cfg), Rise: cfg.Check.Rise, Fall: cfg.Check.Fall,
		MaxReplicaLagSeconds: int(cfg.Check.MaxReplicaLag.Duration / time.Second), Sentinels: cfg.Sentinel.Addrs,
		Fence:         routing.FenceSettings{Enabled: cfg.Fence.Enabled, ReplicaTimeout: cfg.Fence.ReplicaTimeout.Duration},
		DropSentinels: dropSentinels, Done: done}
}

// dataPath chooses how sessions are served ([proxy].forwarder): on event loops (epoll, Linux; the
// default) or by two goroutines each (portable). The loops, when there are, must be closed after every
// listener has stopped.
func dataPath(cfg *config.Config) (proxy.Handler, *eventloop.Loops, error) {
	if cfg.Proxy.Forwarder == "portable" || (cfg.Proxy.Forwarder == "auto" && runtime.GOOS != "linux") {
		return pipe.Portable, nil, nil
	}
	loops, err := eventloop.New(eventloop.Options{Loops: cfg.Proxy.EventLoops,
		BatchScheduling: cfg.Proxy.EventLoopScheduling == "batch"})
	if err != nil {
		return nil, nil, cli.Exit(fmt.Sprintf("forwarder: %v", err), 1)
	}
	return pipe.NewEpoll(loops), loops, nil
}

func groupNames(cfg *config.Config) []string {
	names := make([]string, len(cfg.Masters))
	for i, m := range cfg.Masters {
		names[i] = m.Name
	}
	return names
}

func newProber(cfg *config.Config) *check.Prober {
	return &check.Prober{Username: cfg.Redis.Username, Password: cfg.Redis.Password, Timeout: cfg.Check.Timeout.Duration,
		DialContext: nodeDialer(cfg)}
}

// nodeDialer dials data nodes with [redis.tls], for the probes and the forwarded sessions alike; nil
// when TLS is off (plain TCP). The configuration was validated when it was loaded.
func nodeDialer(cfg *config.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	tc, err := cfg.Redis.TLS.ClientConfig("redis.tls")
	if err != nil || tc == nil {
		return nil
	}
	return (&tls.Dialer{NetDialer: &net.Dialer{KeepAlive: 30 * time.Second}, Config: tc}).DialContext
}

func sentinelTLS(cfg *config.Config) *tls.Config {
	tc, _ := cfg.Sentinel.TLS.ClientConfig("sentinel.tls")
	return tc
}

func (rt *proxyRuntime) sentinelOptions(cfg *config.Config) sentinel.Options {
	return sentinel.Options{
		Username: cfg.Sentinel.Username, Password: cfg.Sentinel.Password,
		Masters: groupNames(cfg), Interval: time.Second, Timeout: cfg.Check.Timeout.Duration,
		OnView:  func(v sentinel.View) { rt.router.Submit(rt.ctx, routing.ViewInput{View: v}) },
		OnEvent: func(e sentinel.Event) { rt.router.Submit(rt.ctx, routing.EventInput{Event: e}) },
		Log:     rt.log,
		TLS:     sentinelTLS(cfg),
	}
}

func (rt *proxyRuntime) spawn(f func()) {
	rt.wg.Add(1)
	go func() { defer rt.wg.Done(); f() }()
}

func (rt *proxyRuntime) serve(l *proxy.Listener, ln net.Listener) {
	rt.log.Info().Str("event", "listener_started").Str("listener", l.Name).Str("addr", ln.Addr().String()).Msg("listening")
	rt.spawn(func() {
		if err := l.Serve(rt.ctx, ln); err != nil {
			rt.serveErrs <- err
		}
	})
}

func (rt *proxyRuntime) newListener(cfg *config.Config, g *group, name string) *proxy.Listener {
	l := &proxy.Listener{Name: name, MaxConns: cfg.Proxy.MaxConns,
		ConnectTimeout: cfg.Proxy.ConnectTimeout.Duration, IdleTimeout: cfg.Proxy.IdleTimeout.Duration,
		HoldTimeout: cfg.Proxy.FailoverHold.Duration, Handler: rt.handler, Log: rt.log,
		OnBackendFailure: func(addr string) { rt.monitor.ProbeNow(addr) }, DialContext: nodeDialer(cfg)}
	if g.tls.Enabled() {
		l.TLS, _ = g.tls.ServerConfig(name) // validated when the configuration was loaded
	}
	if l.TLS != nil || l.DialContext != nil {
		// TLS runs in Go's crypto/tls, on net.Conns: event loops moves raw bytes between
		// descriptors and cannot carry it.
		l.Handler = pipe.Portable
	}
	l.SetRoute(proxy.Route{Refusal: "starting up: master not verified yet"})
	return l
}

// bindAll binds every address of cfg that current does not already listen on (all of them at start),
// and returns the groups of cfg with their listeners: current ones kept, new ones created. The stats
// listener is returned when cfg's stats address is new. Nothing is bound when any address fails: every
// failure is returned at once.
func (rt *proxyRuntime) bindAll(cfg *config.Config, current []*group, currentStats net.Listener) ([]*group, net.Listener, error) {
	byName := map[string]*group{}
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
	var out []*group
	for i, m := range cfg.Masters {
		old := byName[m.Name]
		g := &group{}
		if old != nil {
			*g = *old
		}
		g.name, g.masterAt, g.replicaAt = m.Name, m.MasterListen, m.ReplicaListen
		if old == nil {
			g.tls = m.TLS // a running listener keeps its TLS settings until a restart
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

func (rt *proxyRuntime) startStats(cfg *config.Config, ln net.Listener, opts runOptions) {
	if rt.statsSrv == nil {
		rt.statsSrv = &stats.Server{User: cfg.Stats.User, Password: cfg.Stats.Password,
			PasswordHash: cfg.Stats.PasswordHash, Admin: cfg.Stats.Admin,
			Control: stats.NewControl(rt.ctx, rt.router, rt.statsGroups), Snapshot: rt.router.Snapshot,
			History: rt.router.History, Metrics: rt.metrics, Groups: rt.statsGroups(), Version: versionString(),
			Log: rt.log, Started: time.Now()}
		if opts.Reload != nil {
			rt.statsSrv.Reload = func() error { return rt.reload(opts.Reload, "POST /-/reload") }
		}
	}
	srv := stats.NewHTTPServer(rt.statsSrv.Handler())
	rt.http, rt.statsLn = srv, ln
	rt.log.Info().Str("event", "listener_started").Str("listener", "stats").Str("addr", ln.Addr().String()).Msg("listening")
	rt.spawn(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			rt.serveErrs <- fmt.Errorf("stats: %w", err)
		}
	})
}

func (rt *proxyRuntime) statsGroups() []stats.Group {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := make([]stats.Group, len(rt.groups))
	for i, g := range rt.groups {
		out[i] = stats.Group{Name: g.name, Master: g.master, Replica: g.replica}
	}
	return out
}

// shutdown is the graceful stop: no new clients, established sessions get up to shutdown_timeout to
// end (the control plane keeps running, so a failover still closes sessions to a demoted master), then
// the rest are closed.
func (rt *proxyRuntime) shutdown(stopServing context.CancelFunc) {
	rt.stopping.Store(true)
	// Wait for a reload in progress; one asked for during the drain waits, then finds stopping set.
	rt.reloadMu.Lock()
	defer rt.reloadMu.Unlock()
	rt.mu.Lock()
	timeout := rt.cfg.Proxy.ShutdownTimeout.Duration
	var listeners []*proxy.Listener
	for _, g := range rt.groups { // as the last reload left them
		listeners = append(listeners, g.master)
		if g.replica != nil {
			listeners = append(listeners, g.replica)
		}
	}
	rt.mu.Unlock()
	open := func() int64 {
		var n int64
		for _, l := range listeners {
			n += l.Sessions()
		}
		return n
	}
	if rt.statsSrv != nil {
		rt.statsSrv.ShuttingDown()
	}
	for _, l := range listeners {
		l.StopAccepting()
	}
	start := time.Now()
	rt.log.Info().Str("event", "shutdown_started").Int64("sessions", open()).Dur("shutdown_timeout", timeout).
		Msg("stopped accepting; waiting for sessions to end")
	for open() > 0 && time.Since(start) < timeout {
		time.Sleep(20 * time.Millisecond)
	}
	remaining := open()
	for _, l := range listeners {
		l.Close()
	}
	stopServing()
	rt.wait() // closes the stats server too
	for _, l := range listeners {
		l.Wait()
	}
	rt.log.Info().Str("event", "proxy_stopped").Int64("sessions_closed", remaining).
		Float64("drain_ms", float64(time.Since(start).Microseconds())/1000).Msg("sentinel-proxy stopped")
}

func (rt *proxyRuntime) wait() {
	if rt.http != nil {
		rt.http.Close()
	}
	rt.wg.Wait()
}

// applyRoutes gives each listener its new route and closes the sessions of backends that left a pool:
// a client of the master port must never keep writing to a demoted master. It returns how many master
// sessions it closed per group. It runs on the router's goroutine.
func (rt *proxyRuntime) applyRoutes(prev, next *routing.Snapshot) map[string]int {
	rt.mu.Lock()
	groups := append([]*group(nil), rt.groups...)
	rt.mu.Unlock()
	closed := map[string]int{}
	for _, g := range groups {
		ng := next.Group(g.name)
		if ng == nil {
			continue
		}
		pg := prev.Group(g.name)
		route := proxy.Route{Refusal: fmt.Sprintf("no verified master for %q (%s)", g.name, ng.NoMasterReason)}
		if ng.Master != "" {
			route = proxy.Route{Backends: []string{ng.Master}}
		}
		g.master.SetRoute(route)
		if g.replica != nil {
			route := proxy.Route{Backends: ng.Replicas,
				Refusal: fmt.Sprintf("no healthy replica and no verified master for %q", g.name)}
			g.replica.SetRoute(route)
		}
		oldMaster, oldReplicas := routing.Departed(pg, ng)
		for _, addr := range oldMaster {
			closed[g.name] += g.master.RetireBackend(addr)
		}
		if g.replica != nil {
			for _, addr := range oldReplicas {
				if n := g.replica.RetireBackend(addr); n > 0 {
					rt.log.Info().Str("event", "sessions_closed").Str("group", g.name).Str("listener", g.replica.Name).
						Str("backend", addr).Int("sessions_closed", n).Msg("closed the sessions of a node that left the replica pool")
				}
			}
		}
	}
	return closed
}

// reload re-reads the configuration and applies it without dropping sessions that stay valid. A config
// that does not load, or whose new addresses cannot be bound, is rejected as a whole and the running one
// kept. It returns the rejection, if any.
func (rt *proxyRuntime) reload(load func() (*config.Config, error), trigger string) error {
	rt.reloadMu.Lock()
	defer rt.reloadMu.Unlock()
	reject := func(err error) error {
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
	if rt.stopping.Load() {
		return reject(errors.New("shutting down: reload refused"))
	}
	cfg, err := load()
	if err != nil {
		return reject(err)
	}
	old := rt.cfg
	rt.mu.Lock()
	current := append([]*group(nil), rt.groups...)
	rt.mu.Unlock()
	next, newStatsLn, err := rt.bindAll(cfg, current, rt.statsLn)
	if err != nil {
		return reject(err)
	}
	changes, restartNeeded := configChanges(old, cfg)

	// Data plane first: new listeners and moved addresses accept before anything else changes.
	keep := map[string]bool{}
	var moved []func()
	for _, g := range next {
		keep[g.name] = true
		if g.master == nil {
			g.master = rt.newListener(cfg, g, g.name+"/master")
		}
		var prev *group
		for _, c := range current {
			if c.name == g.name {
				prev = c
			}
		}
		if prev == nil || prev.masterLn != g.masterLn {
			if prev != nil {
				oldLn, l := prev.masterLn, g.master
				moved = append(moved, func() { l.Unbind(oldLn) })
			}
			rt.serve(g.master, g.masterLn)
		}
		switch {
		case g.replicaAt == "" && g.replica != nil:
			l := g.replica
			moved = append(moved, l.Close) // the replica port is gone: its sessions with it
			g.replica, g.replicaLn = nil, nil
		case g.replicaAt != "" && g.replica == nil:
			g.replica = rt.newListener(cfg, g, g.name+"/replica")
			rt.serve(g.replica, g.replicaLn)
		case g.replicaAt != "" && prev != nil && prev.replicaLn != g.replicaLn:
			oldLn, l := prev.replicaLn, g.replica
			moved = append(moved, func() { l.Unbind(oldLn) })
			rt.serve(g.replica, g.replicaLn)
		}
	}
	rt.mu.Lock()
	rt.groups = next
	rt.cfg = cfg
	rt.mu.Unlock()
	for _, f := range moved {
		f()
	}

	// Control plane: probes, Sentinels, then the router, which routes the new groups.
	rt.monitor.Reconfigure(newProber(cfg), cfg.Check.Interval.Duration)
	dropped := rt.sentinels.Reconfigure(rt.sentinelOptions(cfg), cfg.Sentinel.Addrs)
	done := make(chan struct{})
	rt.router.Submit(rt.ctx, routerConfig(cfg, dropped, done))
	select {
	case <-done:
	case <-rt.ctx.Done():
	}
	for _, g := range current {
		if !keep[g.name] {
			g.master.Close() // a removed group's sessions are no longer valid
			if g.replica != nil {
				g.replica.Close()
			}
		}
	}

	// Stats: new settings at once; a new address replaces the old server.
	if rt.statsSrv != nil {
		rt.statsSrv.Update(stats.Settings{User: cfg.Stats.User, Password: cfg.Stats.Password,
			PasswordHash: cfg.Stats.PasswordHash, Admin: cfg.Stats.Admin,
			Groups: rt.statsGroups()})
	}
	if old.Stats.Listen != cfg.Stats.Listen {
		oldHTTP := rt.http
		if newStatsLn != nil {
			rt.startStats(cfg, newStatsLn, runOptions{Reload: load})
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
	rt.log.Info().Str("event", "config_reloaded").Str("trigger", trigger).Strs("changed", changes).
		Strs("restart_needed", restartNeeded).Strs("sentinels_dropped", dropped).
		Msg("configuration reloaded; established sessions kept")
	return nil
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
	oldTLS := map[string]config.ListenTLS{}
	for _, m := range old.Masters {
		oldTLS[m.Name] = m.TLS
	}
	for i, m := range cfg.Masters {
		if t, ok := oldTLS[m.Name]; ok && t != m.TLS {
			restartNeeded = append(restartNeeded, fmt.Sprintf("masters[%d].tls", i))
		}
	}
	return changed, restartNeeded
}
