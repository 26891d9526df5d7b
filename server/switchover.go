package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
	"github.com/sentinel-proxy/sentinel-proxy/sentinel"
	"github.com/sentinel-proxy/sentinel-proxy/stats"
	"github.com/sentinel-proxy/sentinel-proxy/switchover"
)

// switchovers wires planned switchovers to the router, the listeners and the configuration in force,
// and runs them for the stats port's POST /-/switchover.
type switchovers struct {
	rt     *proxyRuntime
	runner *switchover.Runner
}

var (
	_ stats.Switchover   = (*switchovers)(nil)
	_ switchover.Routing = (*switchovers)(nil)
	_ switchover.Hold    = (*switchovers)(nil)
)

// newSwitchovers makes the proxy's switchover runner; afterStep is Options.SwitchoverStep.
func (rt *proxyRuntime) newSwitchovers(afterStep func(group, step string)) *switchovers {
	s := &switchovers{rt: rt}
	s.runner = &switchover.Runner{Routing: s, Hold: s, Connect: s.connect, Log: rt.log, AfterStep: afterStep}
	return s
}

// Switchover runs one switchover for the stats port and writes its progress lines, the outcome last.
func (s *switchovers) Switchover(ctx context.Context, req stats.SwitchoverRequest, progress func(string)) error {
	group, err := s.groupName(req.Group)
	if err != nil {
		return err
	}
	by := req.User
	if req.Remote != "" {
		by += " from " + req.Remote
	}
	res, err := s.runner.Run(ctx, switchover.Request{Group: group, To: req.To, Timeout: req.Timeout, By: by},
		func(st switchover.Step) { progress(st.String()) })
	if errors.Is(err, switchover.ErrBusy) {
		return stats.ErrSwitchoverRunning
	}
	if err != nil {
		return err
	}
	progress(res.Summary())
	return res.Err
}

// groupName is the group a request names, or the only one when it names none.
func (s *switchovers) groupName(name string) (string, error) {
	var names []string
	for _, g := range s.rt.currentPorts() {
		if name == "" || g.name == name {
			names = append(names, g.name)
		}
	}
	switch {
	case len(names) == 1:
		return names[0], nil
	case name != "":
		return "", fmt.Errorf("unknown group %q", name)
	case len(names) == 0:
		return "", errors.New("no group configured")
	}
	return "", fmt.Errorf("several groups (%s): name one", strings.Join(names, ", "))
}

// connect makes one switchover's connections with the credentials and TLS settings in force.
func (s *switchovers) connect() (switchover.Nodes, switchover.Sentinels, func()) {
	s.rt.mu.Lock()
	cfg := s.rt.cfg
	s.rt.mu.Unlock()
	timeout := cfg.Check.Timeout.Duration
	c := &switchover.Clients{
		Node: switchover.Credentials{Username: cfg.Redis.Username, Password: cfg.Redis.Password, Dial: nodeDialer(cfg)},
		Sentinel: switchover.Credentials{Username: cfg.Sentinel.Username, Password: cfg.Sentinel.Password,
			Dial: sentinel.GuardedDialer(timeout, sentinelTLS(cfg))},
		Port:    switchover.Credentials{Username: cfg.Redis.Username, Password: cfg.Redis.Password},
		Timeout: timeout,
	}
	return c, c, c.Close
}

func (s *switchovers) Snapshot() *routing.Snapshot { return s.rt.router.Snapshot() }

// Routed is the backend the group's master listener sends new clients to.
func (s *switchovers) Routed(group string) string {
	g := s.rt.portsOf(group)
	if g == nil {
		return ""
	}
	if r := g.master.Route(); len(r.Backends) == 1 {
		return r.Backends[0]
	}
	return ""
}

// MasterPort is the master listener's address as a client on this host dials it: a wildcard address is
// reached on 127.0.0.1 (Go's wildcard listeners take IPv4 too, and a host may have no ::1). A TLS port is
// not dialled: the client certificate it may require is the clients'.
func (s *switchovers) MasterPort(group string) (string, bool) {
	g := s.rt.portsOf(group)
	if g == nil || g.masterLn == nil || g.tls.Enabled() {
		return "", false
	}
	addr, ok := g.masterLn.Addr().(*net.TCPAddr)
	if !ok {
		return "", false
	}
	ip := addr.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(addr.Port)), true
}

// Announce marks the group's switchover in the router, and returns what ends the mark.
func (s *switchovers) Announce(ctx context.Context, group, target, by string) (func(), error) {
	done := make(chan struct{})
	s.rt.router.Submit(ctx, routing.SwitchoverInput{Group: group, Target: target, By: by, At: time.Now(), Active: true, Done: done})
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return func() {
		ctx, cancel := context.WithTimeout(s.rt.ctx, 5*time.Second)
		defer cancel()
		s.rt.router.Submit(ctx, routing.SwitchoverInput{Group: group})
	}, nil
}

// HoldWrites holds the group's commands in its master listener when its sessions can (resp mode);
// otherwise the switchover pauses the master itself.
func (s *switchovers) HoldWrites(ctx context.Context, group string) (func(), error) {
	g := s.rt.portsOf(group)
	if g == nil {
		return nil, fmt.Errorf("unknown group %q", group)
	}
	if g.mode != "resp" {
		return nil, switchover.ErrHoldUnsupported
	}
	release, err := g.master.HoldCommands(ctx)
	if errors.Is(err, proxy.ErrHoldUnsupported) {
		return nil, switchover.ErrHoldUnsupported
	}
	return release, err
}

// currentPorts are the groups in force.
func (rt *proxyRuntime) currentPorts() []*ports {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]*ports(nil), rt.ports...)
}

// portsOf is the named group's ports, or nil.
func (rt *proxyRuntime) portsOf(group string) *ports {
	for _, g := range rt.currentPorts() {
		if g.name == group {
			return g
		}
	}
	return nil
}
