package config

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/go-multierror"
)

// Validate checks every key and returns all problems at once, each naming its key path. It opens no
// socket: it only checks that addresses are well formed.
func (c *Config) Validate() error {
	var errs *multierror.Error
	add := func(format string, args ...any) { errs = multierror.Append(errs, fmt.Errorf(format, args...)) }

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		add("log.format: %q is not one of json, console", c.Log.Format)
	}

	if len(c.Sentinel.Addrs) == 0 {
		add("sentinel.addrs: at least one Sentinel address is required")
	}
	if c.Sentinel.Interval.Duration < 100*time.Millisecond {
		add("sentinel.interval: must be at least 100ms, got %s", c.Sentinel.Interval.Duration)
	}
	seenSentinel := map[string]bool{}
	for i, a := range c.Sentinel.Addrs {
		key := fmt.Sprintf("sentinel.addrs[%d]", i)
		if err := checkHostPort(a, false); err != nil {
			add("%s: %v", key, err)
		} else if seenSentinel[a] {
			add("%s: %q is listed twice", key, a)
		}
		seenSentinel[a] = true
	}
	if c.Sentinel.Username != "" && c.Sentinel.Password == "" && c.Sentinel.PasswordFile == "" && c.Sentinel.PasswordEnv == "" {
		add("sentinel.username: set without sentinel.password")
	}
	if c.Redis.Username != "" && c.Redis.Password == "" && c.Redis.PasswordFile == "" && c.Redis.PasswordEnv == "" {
		add("redis.username: set without redis.password")
	}

	if c.Check.Interval.Duration <= 0 {
		add("check.interval: must be positive, got %s", c.Check.Interval.Duration)
	}
	if c.Check.Timeout.Duration <= 0 {
		add("check.timeout: must be positive, got %s", c.Check.Timeout.Duration)
	}
	if c.Check.Rise < 1 {
		add("check.rise: must be at least 1, got %d", c.Check.Rise)
	}
	if c.Check.Fall < 1 {
		add("check.fall: must be at least 1, got %d", c.Check.Fall)
	}
	// Redis reports a replica's lag in whole seconds, and replicas acknowledge once a second: anything
	// under two seconds would fence a healthy master.
	if c.Fence.Enabled && c.Fence.ReplicaTimeout.Duration < 2*time.Second {
		add("fence.replica_timeout: must be at least 2s (replicas acknowledge once a second), got %s", c.Fence.ReplicaTimeout.Duration)
	}

	if c.Check.DemotionTimeout.Duration < 0 {
		add("check.demotion_timeout: must be 0 (none) or positive, got %s", c.Check.DemotionTimeout.Duration)
	}
	if c.Check.MaxReplicaLag.Duration < 0 {
		add("check.max_replica_lag: must be 0 (off) or positive, got %s", c.Check.MaxReplicaLag.Duration)
	}
	if c.Proxy.ShutdownTimeout.Duration < 0 {
		add("proxy.shutdown_timeout: must be 0 (close at once) or positive, got %s", c.Proxy.ShutdownTimeout.Duration)
	}
	if c.Proxy.FailoverHold.Duration < 0 {
		add("proxy.failover_hold: must be 0 (refuse at once) or positive, got %s", c.Proxy.FailoverHold.Duration)
	}
	switch c.Proxy.Forwarder {
	case "auto", "epoll", "portable":
	default:
		add("proxy.forwarder: %q is not one of auto, epoll, portable", c.Proxy.Forwarder)
	}
	switch c.Proxy.EventLoopScheduling {
	case "normal", "batch":
	default:
		add("proxy.event_loop_scheduling: %q is not one of normal, batch", c.Proxy.EventLoopScheduling)
	}
	if c.Proxy.EventLoops < 0 {
		add("proxy.event_loops: must be 0 (one per CPU) or positive, got %d", c.Proxy.EventLoops)
	}
	if c.Proxy.MaxConns < 1 {
		add("proxy.max_conns: must be at least 1, got %d", c.Proxy.MaxConns)
	}
	if c.Proxy.ConnectTimeout.Duration <= 0 {
		add("proxy.connect_timeout: must be positive, got %s", c.Proxy.ConnectTimeout.Duration)
	}
	if c.Proxy.IdleTimeout.Duration < 0 {
		add("proxy.idle_timeout: must be 0 (never) or positive, got %s", c.Proxy.IdleTimeout.Duration)
	}

	if len(c.Masters) == 0 {
		add("masters: at least one [[masters]] block is required")
	}
	listens := map[string]string{} // listen address -> key that claimed it
	claim := func(key, addr string) {
		if err := checkHostPort(addr, true); err != nil {
			add("%s: %v", key, err)
			return
		}
		if prev, ok := listens[addr]; ok {
			add("%s: %q is already used by %s", key, addr, prev)
			return
		}
		listens[addr] = key
	}
	names := map[string]int{}
	if _, err := c.Redis.TLS.ClientConfig("redis.tls"); err != nil {
		add("%v", err)
	}
	if _, err := c.Sentinel.TLS.ClientConfig("sentinel.tls"); err != nil {
		add("%v", err)
	}
	for i, m := range c.Masters {
		prefix := fmt.Sprintf("masters[%d]", i)
		if m.TLS.Enabled() {
			if _, err := m.TLS.ServerConfig(prefix + ".tls"); err != nil {
				add("%v", err)
			}
		}
		if m.Name == "" {
			add("%s.name: required", prefix)
		} else if j, ok := names[m.Name]; ok {
			add("%s.name: %q is already used by masters[%d]", prefix, m.Name, j)
		} else {
			names[m.Name] = i
		}
		if m.MasterListen == "" {
			add("%s.master_listen: required", prefix)
		} else {
			claim(prefix+".master_listen", m.MasterListen)
		}
		if m.ReplicaListen != "" {
			claim(prefix+".replica_listen", m.ReplicaListen)
		}
		switch m.Mode {
		case "", "tcp", "resp":
		default:
			add("%s.mode: %q is not one of tcp, resp", prefix, m.Mode)
		}
		if m.Multiplex {
			switch {
			case m.SessionMode() != "resp":
				add("%s.multiplex: needs mode = \"resp\" (a byte forwarder cannot share a connection)", prefix)
			case m.TLS.Enabled() || c.Redis.TLS.Enabled:
				add("%s.multiplex: not available with TLS (%s.tls or redis.tls): shared connections run on the event loops, which carry no TLS", prefix, prefix)
			case c.Proxy.Forwarder == "portable":
				add("%s.multiplex: needs the event loops (proxy.forwarder = \"epoll\" or \"auto\")", prefix)
			}
		}
		switch {
		case m.WaitReplicas < 0:
			add("%s.wait_replicas: must be 0 (off) or more, got %d", prefix, m.WaitReplicas)
		case m.WaitReplicas > 0 && m.SessionMode() != "resp":
			add("%s.wait_replicas: needs mode = \"resp\" (only a session that reads the replies can hold a write's until its replicas have it)", prefix)
		}
		if d := m.WaitTimeout.Duration; d != 0 && (d < time.Millisecond || d > time.Minute) {
			add("%s.wait_timeout: must be between 1ms and 1m, got %s", prefix, d)
		}
	}

	if c.Stats.Listen != "" {
		claim("stats.listen", c.Stats.Listen)
		noPassword := c.Stats.Password == "" && c.Stats.PasswordHash == "" && c.Stats.PasswordFile == "" && c.Stats.PasswordEnv == ""
		if c.Stats.User == "" || noPassword {
			add("stats.user, stats.password: both are required when stats.listen is set (the page is never served without auth; the password may be given as password_file, password_env or password_hash)")
		}
	}
	return errs.ErrorOrNil()
}

// checkHostPort accepts "host:port". A listen address may leave the host empty (":5000"); a remote one
// may not. Port 0 is refused for both: a listener on a random port cannot be found by clients.
func checkHostPort(addr string, listen bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if host == "" && !listen {
		return fmt.Errorf("%q has no host", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port must be 1-65535", addr)
	}
	return nil
}
