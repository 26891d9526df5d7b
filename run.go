package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/sentinel-proxy/sentinel-proxy/check"
	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/proxy"
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

// group is one [[masters]] block at run time.
type group struct {
	name    string
	master  *proxy.Listener
	replica *proxy.Listener
}

// started reports the bound addresses to tests; nil in production.
type started func(addrs map[string]string)

// run wires every package together and blocks until ctx ends. All ports are bound before anything
// else starts, so a busy port fails the start instead of leaving a half-running proxy.
func run(ctx context.Context, cfg *config.Config, log zerolog.Logger, onStarted started) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	engine := proxy.Portable
	if cfg.Proxy.Forwarder != "portable" {
		fast, err := proxy.NewEngine(cfg.Proxy.EventLoops)
		if err != nil {
			return cli.Exit(fmt.Sprintf("forwarder: %v", err), 1)
		}
		if cfg.Proxy.Forwarder == "epoll" && fast.Name() != "epoll" {
			return cli.Exit("proxy.forwarder = \"epoll\" is not available on this system; use \"auto\" or \"portable\"", 1)
		}
		engine = fast
	}
	defer engine.Close() // after every listener has stopped (deferred first, runs last)

	var groups []*group
	var names []string
	bound := map[string]net.Listener{}
	closeBound := func() {
		for _, ln := range bound {
			ln.Close()
		}
	}
	var bindErrs *multierror.Error
	bind := func(key, addr string) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			bindErrs = multierror.Append(bindErrs, fmt.Errorf("%s: %w", key, err))
			return
		}
		bound[key] = ln
	}
	newListener := func(name string) *proxy.Listener {
		l := &proxy.Listener{Name: name, MaxConns: cfg.Proxy.MaxConns,
			ConnectTimeout: cfg.Proxy.ConnectTimeout.Duration, IdleTimeout: cfg.Proxy.IdleTimeout.Duration,
			HoldTimeout: cfg.Proxy.FailoverHold.Duration, Engine: engine, Log: log}
		l.SetRoute(proxy.Route{Refusal: "starting up: master not verified yet"})
		return l
	}
	for i, m := range cfg.Masters {
		g := &group{name: m.Name, master: newListener(m.Name + "/master")}
		bind(fmt.Sprintf("masters[%d].master_listen", i), m.MasterListen)
		if m.ReplicaListen != "" {
			g.replica = newListener(m.Name + "/replica")
			bind(fmt.Sprintf("masters[%d].replica_listen", i), m.ReplicaListen)
		}
		groups = append(groups, g)
		names = append(names, m.Name)
	}
	if cfg.Stats.Listen != "" {
		bind("stats.listen", cfg.Stats.Listen)
	}
	if err := bindErrs.ErrorOrNil(); err != nil {
		closeBound()
		return cli.Exit(fmt.Sprintf("cannot listen: %v", err), 1)
	}

	router := routing.NewRouter(names, cfg.Check.Rise, cfg.Check.Fall, cfg.Check.MaxReplicaLag.Duration, log)
	monitor := &check.Monitor{
		Prober: &check.Prober{Username: cfg.Redis.Username, Password: cfg.Redis.Password,
			Timeout: cfg.Check.Timeout.Duration},
		Interval: cfg.Check.Interval.Duration,
		Report:   func(r check.Result) { router.Submit(ctx, routing.ProbeInput{Result: r}) },
	}
	sentinels := &sentinel.Pool{
		Template: sentinel.Options{
			Username: cfg.Sentinel.Username, Password: cfg.Sentinel.Password,
			Masters: names, Interval: time.Second, Timeout: cfg.Check.Timeout.Duration,
			OnView:  func(v sentinel.View) { router.Submit(ctx, routing.ViewInput{View: v}) },
			OnEvent: func(e sentinel.Event) { router.Submit(ctx, routing.EventInput{Event: e}) },
			Log:     log,
		},
		OnDiscover: func(addr string) {
			log.Info().Str("event", "sentinel_discovered").Str("sentinel", addr).
				Msg("following a Sentinel the configured ones report (SENTINEL SENTINELS)")
		},
	}
	for _, g := range groups {
		g.master.OnBackendFailure = monitor.ProbeNow
		if g.replica != nil {
			g.replica.OnBackendFailure = monitor.ProbeNow
		}
	}
	router.SetTargets = monitor.SetTargets
	router.ProbeNow = monitor.ProbeNow
	router.Reconcile = sentinels.ReconcileNow
	router.OnChange = func(prev, next *routing.Snapshot) map[string]int { return applyRoutes(groups, prev, next, log) }
	applyRoutes(groups, nil, router.Snapshot(), log)

	var wg sync.WaitGroup
	spawn := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	spawn(func() { router.Run(ctx) })
	spawn(func() { monitor.Run(ctx) })
	spawn(func() { sentinels.Run(ctx, cfg.Sentinel.Addrs) })
	addrs := map[string]string{}
	serveErrs := make(chan error, 2*len(groups)+1)
	for i, g := range groups {
		for key, l := range map[string]*proxy.Listener{
			fmt.Sprintf("masters[%d].master_listen", i):  g.master,
			fmt.Sprintf("masters[%d].replica_listen", i): g.replica,
		} {
			if l == nil {
				continue
			}
			ln := bound[key]
			addrs[l.Name] = ln.Addr().String()
			log.Info().Str("event", "listener_started").Str("listener", l.Name).Str("addr", ln.Addr().String()).Msg("listening")
			spawn(func() {
				if err := l.Serve(ctx, ln); err != nil {
					serveErrs <- err
				}
			})
		}
	}
	if ln := bound["stats.listen"]; ln != nil {
		metrics := stats.NewMetrics()
		router.OnSwitch = metrics.ObserveSwitch
		router.OnDualMaster = metrics.ObserveDualMaster
		sg := statsGroups(groups)
		srv := &http.Server{
			Handler: (&stats.Server{User: cfg.Stats.User, Password: cfg.Stats.Password, Admin: cfg.Stats.Admin,
				Control: stats.NewControl(ctx, router, sg), Snapshot: router.Snapshot,
				History: router.History, Metrics: metrics, Groups: sg, Version: versionString(),
				Log: log, Started: time.Now()}).Handler(),
			ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
			IdleTimeout: 60 * time.Second,
		}
		addrs["stats"] = ln.Addr().String()
		log.Info().Str("event", "listener_started").Str("listener", "stats").Str("addr", ln.Addr().String()).Msg("listening")
		spawn(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErrs <- fmt.Errorf("stats: %w", err)
			}
		})
		context.AfterFunc(ctx, func() { srv.Close() })
	}
	if onStarted != nil {
		onStarted(addrs)
	}
	log.Info().Str("event", "proxy_started").Str("version", versionString()).Int("pid", os.Getpid()).
		Str("forwarder", engine.Name()).
		Strs("sentinels", cfg.Sentinel.Addrs).Msg("sentinel-proxy started")

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErrs:
		log.Error().Err(err).Msg("listener failed; shutting down")
	}
	cancel()
	wg.Wait()
	log.Info().Str("event", "proxy_stopped").Msg("sentinel-proxy stopped")
	return err
}

// applyRoutes gives each listener its new route and closes the sessions of backends that left a pool:
// a client of the master port must never keep writing to a demoted master. It returns how many master
// sessions it closed per group.
func applyRoutes(groups []*group, prev, next *routing.Snapshot, log zerolog.Logger) map[string]int {
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
			closed[g.name] += g.master.CloseSessionsTo(addr)
		}
		if g.replica != nil {
			for _, addr := range oldReplicas {
				if n := g.replica.CloseSessionsTo(addr); n > 0 {
					log.Info().Str("event", "sessions_closed").Str("group", g.name).Str("listener", g.replica.Name).
						Str("backend", addr).Int("sessions_closed", n).Msg("closed the sessions of a node that left the replica pool")
				}
			}
		}
	}
	return closed
}

func statsGroups(groups []*group) []stats.Group {
	out := make([]stats.Group, len(groups))
	for i, g := range groups {
		out[i] = stats.Group{Name: g.name, Master: g.master, Replica: g.replica}
	}
	return out
}
