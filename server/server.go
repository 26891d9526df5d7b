// Package server assembles and runs sentinel-proxy from a validated configuration: it binds the ports,
// builds the listeners, the router, the probes, the Sentinel pool and the stats page, wires them
// together (routes into the listeners, admin actions into the router), and applies reloads and the
// graceful shutdown. It also runs the one-shot `check` report.
//
// It owns the wiring only. Deciding stays in routing, forwarding in proxy, probing in check, following
// Sentinels in sentinel and rendering in stats. It must not parse flags, read the environment, pick exit
// codes or exit the process: that is the command line's job (package main), which hands over a
// config.Config, a logger and Options.
package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/check"
	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/eventloop"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/pipe"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/respsession"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
	"github.com/sentinel-proxy/sentinel-proxy/sentinel"
	"github.com/sentinel-proxy/sentinel-proxy/stats"
)

// Options are what the command line (or a test) adds to the configuration.
type Options struct {
	// Version names this build in the proxy_started line and on the stats page.
	Version string
	// Reload re-reads the configuration (SIGHUP, POST /-/reload). Nil means reload is not possible.
	Reload func() (*config.Config, error)
	// ReloadSignal delivers SIGHUP; nil in tests, which reload through the stats port.
	ReloadSignal <-chan os.Signal
	// Started reports the bound addresses to tests.
	Started func(addrs map[string]string)
	// ChartSampling is how often the stats page's charts sample the listeners; zero is 10 s. Tests
	// shorten it (the charts keep 360 samples, so their window shortens with it).
	ChartSampling time.Duration
	// SwitchoverStep, if set, is called after each step of a planned switchover that succeeded, before
	// the next begins: tests break things between steps with it.
	SwitchoverStep func(group, step string)
}

// proxyRuntime is a running proxy: the data plane (listeners, handler, sessions), which outlives a
// reload, and the control plane (router, probes, Sentinel watchers, stats), which a reload reconfigures.
type proxyRuntime struct {
	log       zerolog.Logger
	version   string
	sampling  time.Duration   // Options.ChartSampling
	data      dataPaths       // serve the admitted clients: the byte forwarder or RESP sessions
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

	reloadMu    sync.Mutex // one reload at a time
	cfg         *config.Config
	switchovers *switchovers

	mu    sync.Mutex // guards ports and cfg: read by the router goroutine (applyRoutes) and switchovers, changed by reload
	ports []*ports
}

// Run wires every package together and blocks until ctx ends and the sessions have drained. All
// ports are bound before anything else starts, so a busy port fails the start instead of leaving a
// half-running proxy.
func Run(ctx context.Context, cfg *config.Config, log zerolog.Logger, opts Options) error {
	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()

	data, err := newDataPaths(cfg)
	if err != nil {
		return err
	}
	if data.loops != nil {
		defer data.loops.Close() // after every listener has stopped (deferred first, runs last)
	}

	rt := &proxyRuntime{log: log, version: opts.Version, sampling: opts.ChartSampling, data: data, ctx: serveCtx, cfg: cfg,
		serveErrs: make(chan error, 16)}
	all, statsLn, err := rt.bindAll(cfg, nil, nil)
	if err != nil {
		return fmt.Errorf("cannot listen: %w", err)
	}
	for _, g := range all {
		g.master = rt.newListener(cfg, g, g.name+"/master")
		if g.replicaAt != "" {
			g.replica = rt.newListener(cfg, g, g.name+"/replica")
		}
	}
	applyDurability(cfg, all)
	rt.ports = all
	rt.buildControlPlane(cfg)
	rt.switchovers = rt.newSwitchovers(opts.SwitchoverStep)

	rt.spawn(func() { rt.router.Run(serveCtx) })
	rt.spawn(func() { rt.monitor.Run(serveCtx) })
	rt.spawn(func() { rt.sentinels.Run(serveCtx, cfg.Sentinel.Addrs) })
	addrs := map[string]string{}
	for _, g := range all {
		rt.serve(g.master, g.masterLn)
		addrs[g.master.Name] = g.masterLn.Addr().String()
		if g.replica != nil {
			rt.serve(g.replica, g.replicaLn)
			addrs[g.replica.Name] = g.replicaLn.Addr().String()
		}
	}
	if statsLn != nil {
		rt.startStats(cfg, statsLn, opts.Reload)
		addrs["stats"] = statsLn.Addr().String()
	}
	if opts.Started != nil {
		opts.Started(addrs)
	}
	log.Info().Str("event", "proxy_started").Str("version", opts.Version).Int("pid", os.Getpid()).
		Str("forwarder", data.pipe.Name()).Strs("sentinels", cfg.Sentinel.Addrs).Msg("sentinel-proxy started")

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

// dataPaths are the handlers that serve admitted clients: the byte forwarder (tcp mode) and RESP
// sessions (resp mode), on event loops (epoll, Linux; the default) or on goroutines (portable, and any
// listener with TLS on either side). The loops, when there are, are closed after every listener has
// stopped.
type dataPaths struct {
	pipe, resp proxy.Handler // on loops when there are
	respMux    proxy.Handler // resp mode with multiplex = true: on loops only
	loops      *eventloop.Loops
}

func newDataPaths(cfg *config.Config) (dataPaths, error) {
	if cfg.Proxy.Forwarder == "portable" || (cfg.Proxy.Forwarder == "auto" && runtime.GOOS != "linux") {
		return dataPaths{pipe: pipe.Portable, resp: respsession.Portable, respMux: respsession.Portable}, nil
	}
	loops, err := eventloop.New(eventloop.Options{Loops: cfg.Proxy.EventLoops,
		BatchScheduling: cfg.Proxy.EventLoopScheduling == "batch"})
	if err != nil {
		return dataPaths{}, fmt.Errorf("forwarder: %w", err)
	}
	return dataPaths{pipe: pipe.NewEpoll(loops), resp: respsession.NewEpoll(loops),
		respMux: respsession.NewEpollMux(loops), loops: loops}, nil
}

// handler is the data path of a listener in mode ("tcp" or "resp"); goroutines when it needs net.Conns
// (TLS on either side). Multiplexing is refused with TLS and without loops when the configuration is
// loaded; where a platform has no loops ("auto" elsewhere than Linux), sessions keep their own
// connections.
func (d dataPaths) handler(mode string, multiplex, goroutines bool) proxy.Handler {
	switch {
	case mode == "resp" && goroutines:
		return respsession.Portable
	case mode == "resp" && multiplex:
		return d.respMux
	case mode == "resp":
		return d.resp
	case goroutines:
		return pipe.Portable
	}
	return d.pipe
}

// buildControlPlane makes the router, the probes and the Sentinel pool, and hooks them to each other,
// to the listeners (applyRoutes) and to the metrics. Nothing runs yet.
func (rt *proxyRuntime) buildControlPlane(cfg *config.Config) {
	rt.router = routing.NewRouter(masterNames(cfg), cfg.Check.Rise, cfg.Check.Fall, cfg.Check.MaxReplicaLag.Duration, rt.log)
	rt.monitor = &check.Monitor{Prober: newProber(cfg), Interval: cfg.Check.Interval.Duration,
		Report: func(r check.Result) { rt.router.Submit(rt.ctx, routing.ProbeInput{Result: r}) }}
	rt.sentinels = &sentinel.Pool{
		Template: rt.sentinelOptions(cfg),
		OnDiscover: func(addr string) {
			rt.log.Info().Str("event", "sentinel_discovered").Str("sentinel", addr).
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
	if mux, ok := rt.data.respMux.(interface{ MuxCounts() (uint64, uint64) }); ok {
		rt.metrics.SetMultiplex(mux.MuxCounts)
	}
	// The settings NewRouter does not take (the configured Sentinels, the fence) arrive as the first
	// input, before any view or probe.
	rt.router.Submit(rt.ctx, routerConfig(cfg, nil, nil))
	rt.applyRoutes(nil, rt.router.Snapshot())
}

func (rt *proxyRuntime) spawn(f func()) {
	rt.wg.Add(1)
	go func() { defer rt.wg.Done(); f() }()
}

// wait closes the stats server and waits for every goroutine spawn started.
func (rt *proxyRuntime) wait() {
	if rt.http != nil {
		rt.http.Close()
	}
	rt.wg.Wait()
}
