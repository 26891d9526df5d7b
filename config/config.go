// Package config owns sentinel-proxy's configuration file: the TOML structure, its defaults and its
// validation. It reports every mistake at once, with the key path, and never opens a socket or reads
// anything but the file it is given.
package config

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-multierror"
)

// Config is the whole configuration file. The TOML keys are a contract with users: add keys, never
// rename them.
type Config struct {
	Log      Log      `toml:"log"`
	Sentinel Sentinel `toml:"sentinel"`
	Redis    Redis    `toml:"redis"`
	Check    Check    `toml:"check"`
	Fence    Fence    `toml:"fence"`
	Proxy    Proxy    `toml:"proxy"`
	Masters  []Master `toml:"masters"`
	Stats    Stats    `toml:"stats"`
}

// Log selects the log level and encoding.
type Log struct {
	Level  string `toml:"level"`  // debug | info | warn | error; empty means info
	Format string `toml:"format"` // json | console; empty means json
}

// Sentinel lists the Sentinels to follow and the credentials to reach them.
type Sentinel struct {
	Addrs    []string `toml:"addrs"`
	Username string   `toml:"username"` // ACL user (Redis 6.2+); empty means none
	Password string   `toml:"password"` // empty means no AUTH
	// PasswordFile and PasswordEnv are the other places the password may come from (one of the three):
	// a file whose content is the password (one trailing newline ignored), or an environment variable.
	PasswordFile string `toml:"password_file"`
	PasswordEnv  string `toml:"password_env"`
	// TLS towards the Sentinels.
	TLS DialTLS `toml:"tls"`
	// Interval is how often each Sentinel is asked for each group's view (SENTINEL MASTER, REPLICAS,
	// SENTINELS) besides following its events: the fallback when an event is lost, and most of what a
	// fleet of idle proxies costs a Sentinel (docs/deploy.md, "A fleet of proxies").
	Interval Duration `toml:"interval"`
}

// Redis holds the credentials the proxy's own probes use on data nodes. Client traffic carries its own
// AUTH; the proxy never injects these into forwarded sessions.
type Redis struct {
	Username     string `toml:"username"`
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
	PasswordEnv  string `toml:"password_env"`
	// TLS towards the data nodes: the probes and every forwarded session.
	TLS DialTLS `toml:"tls"`
}

// DefaultDemotionTimeout is check.demotion_timeout's default: a little over the 10 s in which Sentinel
// converts an old master that was alive at the failover (its INFO period for replicas).
const DefaultDemotionTimeout = 15 * time.Second

// Check configures the tcp-check style probes, as HAProxy's `check inter 1s rise 2 fall 3`.
type Check struct {
	Interval Duration `toml:"interval"`
	Timeout  Duration `toml:"timeout"`
	Rise     int      `toml:"rise"`
	Fall     int      `toml:"fall"`
	// MaxReplicaLag takes a replica out of the replica pool when its master reports a longer lag for it.
	// Redis reports lag in whole seconds. Zero means off.
	MaxReplicaLag Duration `toml:"max_replica_lag"`
	// DemotionTimeout is how long the old master of a failover may go on saying role:master while
	// Sentinel converts it to a replica (about 10 s when it was alive) before it is a dual master: logged
	// at error and counted. Until then it is logged at warn as expected. Zero: a dual master at once.
	DemotionTimeout Duration `toml:"demotion_timeout"`
}

// Fence configures the minority-side fence: when the proxy cannot hear a majority of the Sentinels it
// knows, it keeps routing to the master only while every replica that could be promoted still
// acknowledges it (INFO replication), since otherwise the master may be on the losing side of a failover.
type Fence struct {
	Enabled bool `toml:"enabled"`
	// ReplicaTimeout is how long a replica may go without acknowledging the master (its INFO replication
	// lag, plus the age of the check that read it) before it counts as cut off.
	ReplicaTimeout Duration `toml:"replica_timeout"`
}

// Proxy configures the listeners' limits and timeouts.
type Proxy struct {
	MaxConns       int      `toml:"max_conns"`       // per listener
	ConnectTimeout Duration `toml:"connect_timeout"` // dialling a backend
	IdleTimeout    Duration `toml:"idle_timeout"`    // 0 means never, as HAProxy's `timeout tunnel 365d`
	// FailoverHold is how long a new client of a master port waits, accepted, for a verified master
	// when there is none (a failover in progress) before it is refused. 0 means refuse at once.
	FailoverHold Duration `toml:"failover_hold"`
	// Forwarder selects the data path: "epoll" (Linux event loops), "portable" (two goroutines per
	// session, any system) or "auto" (epoll where available). Empty means auto.
	Forwarder string `toml:"forwarder"`
	// EventLoops is the number of epoll event loops; 0 means GOMAXPROCS (the most it uses).
	EventLoops int `toml:"event_loops"`
	// EventLoopScheduling is the kernel scheduling policy of the event loops' threads: "normal" or
	// "batch" (SCHED_BATCH: a loop woken by traffic does not preempt the task running on that CPU, it
	// runs when that task blocks or its slice ends). See docs/benchmarks.md for what it changes.
	EventLoopScheduling string `toml:"event_loop_scheduling"`
	// ShutdownTimeout is how long SIGTERM/SIGINT lets established sessions finish, with no new client
	// accepted, before the rest are closed. 0 means close them at once.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
}

// Master is one Sentinel master group and the ports that front it.
type Master struct {
	Name          string `toml:"name"`
	MasterListen  string `toml:"master_listen"`
	ReplicaListen string `toml:"replica_listen"` // optional; empty means no replica port
	// Mode is how both ports serve clients: "tcp" forwards bytes (a failover closes the sessions of the
	// old master); "resp" reads commands and replies and moves sessions to the new master. Empty means
	// DefaultMode (SessionMode).
	Mode string `toml:"mode"`
	// Multiplex (resp mode only): the commands of many clients share a few pipelined backend
	// connections, one per node, event loop and connection state (user, database, protocol); a
	// client whose connection needs state of its own (MULTI, blocking commands, subscriptions,
	// CLIENT ...) moves to a private one. Needs the event loops and no TLS.
	Multiplex bool `toml:"multiplex"`
	// WaitReplicas (resp mode only): a write's reply reaches its client only once Redis's WAIT on the
	// same backend connection says at least this many replicas have it; not confirmed within
	// WaitTimeout, the client gets a NOREPLICAS error instead. 0 (the default) is off: replies pass at
	// once, as Redis gives them. A reload applies a change to the commands that follow.
	WaitReplicas int `toml:"wait_replicas"`
	// WaitTimeout bounds each WAIT (wait_replicas > 0). 200ms if unset (WaitFor).
	WaitTimeout Duration `toml:"wait_timeout"`
	// TLS, when set, terminates TLS from clients on both ports.
	TLS ListenTLS `toml:"tls"`
}

// DefaultWaitTimeout is wait_timeout when the file leaves it out.
const DefaultWaitTimeout = 200 * time.Millisecond

// DefaultMode is the mode of a group whose block does not say: resp, whose failovers clients do not
// notice (docs/failover.md, "tcp or resp mode"). It was tcp until version 0.25.
const DefaultMode = "resp"

// SessionMode is the group's mode: Mode, or DefaultMode when the block does not say.
func (m Master) SessionMode() string {
	if m.Mode == "" {
		return DefaultMode
	}
	return m.Mode
}

// WaitFor is how long a WAIT may take: wait_timeout, or its default.
func (m Master) WaitFor() time.Duration {
	if m.WaitTimeout.Duration == 0 {
		return DefaultWaitTimeout
	}
	return m.WaitTimeout.Duration
}

// Stats configures the stats web page.
type Stats struct {
	Listen       string `toml:"listen"` // empty disables the stats server
	User         string `toml:"user"`
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
	PasswordEnv  string `toml:"password_env"`
	// PasswordHash is a bcrypt hash of the password (htpasswd -nbB, or sentinel-proxy hash-password),
	// instead of the password itself.
	PasswordHash string `toml:"password_hash"`
	Admin        bool   `toml:"admin"`
}

// Duration is a time.Duration written as a Go duration string ("1s", "250ms") in TOML.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("not a duration (want e.g. \"1s\", \"250ms\"): %q", text)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration back in Go's notation.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// Defaults returns the values a key takes when the file leaves it out.
func Defaults() Config {
	return Config{
		Log:      Log{Level: "info", Format: "json"},
		Sentinel: Sentinel{Interval: Duration{time.Second}},
		Check: Check{Interval: Duration{time.Second}, Timeout: Duration{time.Second}, Rise: 2, Fall: 3,
			DemotionTimeout: Duration{DefaultDemotionTimeout}},
		Fence: Fence{Enabled: true, ReplicaTimeout: Duration{3 * time.Second}},
		Proxy: Proxy{MaxConns: 100000, ConnectTimeout: Duration{4 * time.Second}, FailoverHold: Duration{3 * time.Second}, Forwarder: "auto", EventLoopScheduling: "normal",
			ShutdownTimeout: Duration{30 * time.Second}},
	}
}

// Load reads, decodes and validates the file at path. The error lists every problem found.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes and validates a configuration document. The error lists every problem found: unknown
// keys, type mistakes and invalid values alike.
func Parse(data []byte) (*Config, error) {
	cfg := Defaults()
	decodeErr := decode(data, &cfg)
	if errors.Is(decodeErr, errSyntax) {
		return nil, decodeErr
	}
	// A key that failed to decode keeps its default, so validating the rest still finds every other
	// problem in the same run.
	secretErr := cfg.resolveSecrets(os.ReadFile, os.LookupEnv)
	if err := multierror.Append(decodeErr, secretErr, cfg.Validate()).ErrorOrNil(); err != nil {
		return nil, err
	}
	return &cfg, nil
}
