package server

import (
	"context"
	"crypto/tls"
	"net"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/check"
	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
	"github.com/sentinel-proxy/sentinel-proxy/sentinel"
)

// This file turns the configuration into each package's own settings, at start and on every reload.

// masterNames lists the [[masters]] names, in the file's order.
func masterNames(cfg *config.Config) []string {
	names := make([]string, len(cfg.Masters))
	for i, m := range cfg.Masters {
		names[i] = m.Name
	}
	return names
}

// routerConfig is the router's part of cfg.
func routerConfig(cfg *config.Config, dropSentinels []string, done chan struct{}) routing.ConfigInput {
	return routing.ConfigInput{Groups: masterNames(cfg), Rise: cfg.Check.Rise, Fall: cfg.Check.Fall,
		MaxReplicaLagSeconds: int(cfg.Check.MaxReplicaLag.Duration / time.Second), Sentinels: cfg.Sentinel.Addrs,
		DemotionTimeout: cfg.Check.DemotionTimeout.Duration,
		Fence:           routing.FenceSettings{Enabled: cfg.Fence.Enabled, ReplicaTimeout: cfg.Fence.ReplicaTimeout.Duration},
		DropSentinels:   dropSentinels, Done: done}
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

// sentinelOptions is the Sentinel pool's part of cfg: what it follows, and where its views and events go.
func (rt *proxyRuntime) sentinelOptions(cfg *config.Config) sentinel.Options {
	return sentinel.Options{
		Username: cfg.Sentinel.Username, Password: cfg.Sentinel.Password,
		Masters: masterNames(cfg), Interval: cfg.Sentinel.Interval.Duration, Timeout: cfg.Check.Timeout.Duration,
		OnView:  func(v sentinel.View) { rt.router.Submit(rt.ctx, routing.ViewInput{View: v}) },
		OnEvent: func(e sentinel.Event) { rt.router.Submit(rt.ctx, routing.EventInput{Event: e}) },
		Log:     rt.log,
		TLS:     sentinelTLS(cfg),
	}
}
