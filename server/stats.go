package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/stats"
)

// startStats serves the stats page on ln. The stats.Server is made once, on the first address, with the
// sampler of its charts, which runs until the proxy stops; a reload that moves the page serves the same
// one on the new address. reload, if not nil, is what POST /-/reload re-reads.
func (rt *proxyRuntime) startStats(cfg *config.Config, ln net.Listener, reload func() (*config.Config, error)) {
	if rt.statsSrv == nil {
		rt.statsSrv = &stats.Server{User: cfg.Stats.User, Password: cfg.Stats.Password,
			PasswordHash: cfg.Stats.PasswordHash, Admin: cfg.Stats.Admin,
			Control: newControl(rt.ctx, rt.router, rt.statsPorts), Snapshot: rt.router.Snapshot,
			History: rt.router.History, NoMasterSpans: rt.router.NoMasterSpans, Metrics: rt.metrics,
			Groups: rt.statsPorts(), Version: rt.version, Log: rt.log, Started: time.Now(), SampleEvery: rt.sampling,
			Switchover: rt.switchovers}
		if reload != nil {
			rt.statsSrv.Reload = func() error { return rt.reload(reload, "POST /-/reload") }
		}
		statsSrv := rt.statsSrv
		rt.spawn(func() { statsSrv.RecordHistory(rt.ctx) })
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

// statsPorts is what the stats page shows and acts on: the groups in force and their listeners.
func (rt *proxyRuntime) statsPorts() []stats.GroupPorts {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := make([]stats.GroupPorts, len(rt.ports))
	for i, g := range rt.ports {
		out[i] = stats.GroupPorts{Name: g.name, Mode: modeName(g.mode), Master: g.master, Replica: g.replica,
			Durability: g.dur}
		if mux, ok := rt.data.respMux.(interface {
			MuxCountsOf([]string) (uint64, uint64)
		}); ok && g.master != nil && g.master.Handler == rt.data.respMux { // TLS leaves the event loops
			out[i].Multiplex = mux.MuxCountsOf
		}
	}
	return out
}

// modeName is a group's session mode as users name it: tcp unless it says resp.
func modeName(mode string) string {
	if mode == "resp" {
		return "resp"
	}
	return "tcp"
}
