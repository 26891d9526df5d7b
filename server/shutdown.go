package server

import (
	"context"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
)

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
	listeners := rt.listeners() // as the last reload left them
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

// listeners are every group's master and replica listeners. The caller holds rt.mu.
func (rt *proxyRuntime) listeners() []*proxy.Listener {
	var out []*proxy.Listener
	for _, g := range rt.ports {
		out = append(out, g.master)
		if g.replica != nil {
			out = append(out, g.replica)
		}
	}
	return out
}
