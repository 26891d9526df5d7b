package switchover

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sentinel-proxy/sentinel-proxy/check"
)

// Credentials say how to reach one kind of peer.
type Credentials struct {
	Username, Password string
	// Dial connects to the peer. If nil, plain TCP is used; a TLS dialer makes the connection TLS.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Clients implements Nodes and Sentinels with go-redis, one small client per address made on first use.
// It is made for one switchover and closed after it.
type Clients struct {
	Node     Credentials // the data nodes ([redis])
	Sentinel Credentials // the Sentinels ([sentinel])
	// Port is how a client of the proxy's own master port connects: [redis]'s user and password, without
	// [redis.tls] (that is the proxy's leg to the nodes, not the clients').
	Port Credentials
	// Timeout bounds each command, connecting included. If zero, one second.
	Timeout time.Duration

	mu      sync.Mutex
	clients map[string]*redis.Client // by kind and address
}

var (
	_ Nodes     = (*Clients)(nil)
	_ Sentinels = (*Clients)(nil)
)

// Close closes every connection made.
func (c *Clients) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.clients {
		_ = cl.Close()
	}
	c.clients = nil
}

func (c *Clients) client(kind string, creds Credentials, addr string) *redis.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := kind + " " + addr
	if cl := c.clients[key]; cl != nil {
		return cl
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	cl := redis.NewClient(&redis.Options{
		Addr: addr, Username: creds.Username, Password: creds.Password, Dialer: creds.Dial,
		DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout,
		// A switchover decides itself whether to try again: a command repeated behind its back (CLIENT
		// PAUSE, SENTINEL FAILOVER) must not be.
		MaxRetries: -1, PoolSize: 2, Protocol: 2, DisableIdentity: true,
	})
	if c.clients == nil {
		c.clients = map[string]*redis.Client{}
	}
	c.clients[key] = cl
	return cl
}

func (c *Clients) node(addr string) *redis.Client { return c.client("node", c.Node, addr) }

func (c *Clients) sentinel(addr string) *redis.Client { return c.client("sentinel", c.Sentinel, addr) }

// Replication returns the node's INFO replication.
func (c *Clients) Replication(ctx context.Context, addr string) (check.Replication, error) {
	return replication(ctx, c.node(addr), addr)
}

func replication(ctx context.Context, cl *redis.Client, addr string) (check.Replication, error) {
	text, err := cl.Info(ctx, "replication").Result()
	if err != nil {
		return check.Replication{}, fmt.Errorf("%s: INFO replication: %w", addr, err)
	}
	r, err := check.ParseReplication(text)
	if err != nil {
		return r, fmt.Errorf("%s: %w", addr, err)
	}
	return r, nil
}

// RunID returns the node's run_id.
func (c *Clients) RunID(ctx context.Context, addr string) (string, error) {
	return runID(ctx, c.node(addr), addr)
}

func runID(ctx context.Context, cl *redis.Client, addr string) (string, error) {
	text, err := cl.Info(ctx, "server").Result()
	if err != nil {
		return "", fmt.Errorf("%s: INFO server: %w", addr, err)
	}
	for _, line := range strings.Split(text, "\n") {
		if id, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return id, nil
		}
	}
	return "", fmt.Errorf("%s: INFO server has no run_id", addr)
}

// ReplicaPriority returns the node's replica-priority as it is configured now.
func (c *Clients) ReplicaPriority(ctx context.Context, addr string) (int, error) {
	m, err := c.node(addr).ConfigGet(ctx, "replica-priority").Result()
	if err != nil {
		return 0, fmt.Errorf("%s: CONFIG GET replica-priority: %w", addr, err)
	}
	v, ok := m["replica-priority"]
	if !ok {
		return 0, fmt.Errorf("%s: CONFIG GET replica-priority: no such parameter", addr)
	}
	p, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s: replica-priority %q: %w", addr, v, err)
	}
	return p, nil
}

// SetReplicaPriority sets the node's replica-priority (in memory: CONFIG REWRITE is not run, so a restart
// of the node brings its file's value back).
func (c *Clients) SetReplicaPriority(ctx context.Context, addr string, priority int) error {
	if err := c.node(addr).ConfigSet(ctx, "replica-priority", strconv.Itoa(priority)).Err(); err != nil {
		return fmt.Errorf("%s: CONFIG SET replica-priority %d: %w", addr, priority, err)
	}
	return nil
}

// PauseWrites runs CLIENT PAUSE <d> WRITE (Redis 6.2+).
func (c *Clients) PauseWrites(ctx context.Context, addr string, d time.Duration) error {
	if err := c.node(addr).Do(ctx, "CLIENT", "PAUSE", d.Milliseconds(), "WRITE").Err(); err != nil {
		return fmt.Errorf("%s: CLIENT PAUSE WRITE: %w", addr, err)
	}
	return nil
}

// Unpause runs CLIENT UNPAUSE.
func (c *Clients) Unpause(ctx context.Context, addr string) error {
	if err := c.node(addr).Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		return fmt.Errorf("%s: CLIENT UNPAUSE: %w", addr, err)
	}
	return nil
}

// ThroughPort asks who answers on the proxy's master port at port: INFO server and INFO replication, as
// a client sends them.
func (c *Clients) ThroughPort(ctx context.Context, port string) (id, role string, err error) {
	cl := c.client("port", c.Port, port)
	if id, err = runID(ctx, cl, port); err != nil {
		return "", "", err
	}
	r, err := replication(ctx, cl, port)
	if err != nil {
		return "", "", err
	}
	return id, r.Role, nil
}

// Follow runs REPLICAOF <master>; to convert an old master, in one transaction as Sentinel does, with
// CONFIG REWRITE (so that a restart keeps it a replica; refused when the node runs without a config
// file, which is not an error here) and CLIENT KILL TYPE normal and pubsub (clients connected to the
// node directly then ask Sentinel for the master again; this connection is spared).
func (c *Clients) Follow(ctx context.Context, addr, master string, convert bool) error {
	host, port, err := net.SplitHostPort(master)
	if err != nil {
		return fmt.Errorf("%s: REPLICAOF %s: %w", addr, master, err)
	}
	if !convert {
		if err := c.node(addr).Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
			return fmt.Errorf("%s: REPLICAOF %s: %w", addr, master, err)
		}
		return nil
	}
	var replicaOf *redis.Cmd
	cmds, err := c.node(addr).TxPipelined(ctx, func(p redis.Pipeliner) error {
		replicaOf = p.Do(ctx, "REPLICAOF", host, port)
		p.Do(ctx, "CONFIG", "REWRITE")
		p.Do(ctx, "CLIENT", "KILL", "TYPE", "normal")
		p.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub")
		return nil
	})
	// What follows REPLICAOF may fail (CONFIG REWRITE without a file) once it took effect: only its own
	// reply counts. A transaction refused as a whole (a command refused as it was queued: NOPERM, a
	// renamed command) marks every command EXECABORT: the first other error says why. The [redis] user
	// needs +replicaof +config|rewrite +client|kill +multi +exec.
	if replicaOf != nil && replicaOf.Err() == nil {
		return nil
	}
	for _, cmd := range cmds {
		if e := cmd.Err(); e != nil && !strings.HasPrefix(e.Error(), "EXECABORT") {
			err = e
			break
		}
	}
	if err == nil && replicaOf != nil {
		err = replicaOf.Err()
	}
	return fmt.Errorf("%s: REPLICAOF %s: %w", addr, master, err)
}

// Replicas returns SENTINEL REPLICAS <group> as the Sentinel answers it.
func (c *Clients) Replicas(ctx context.Context, sentinel, group string) ([]SentinelReplica, error) {
	v, err := c.sentinel(sentinel).Do(ctx, "SENTINEL", "REPLICAS", group).Result()
	if err != nil {
		return nil, fmt.Errorf("sentinel %s: SENTINEL REPLICAS %s: %w", sentinel, group, err)
	}
	rows, ok := v.([]interface{})
	if !ok {
		return nil, fmt.Errorf("sentinel %s: SENTINEL REPLICAS %s: not an array: %T", sentinel, group, v)
	}
	out := make([]SentinelReplica, 0, len(rows))
	for _, row := range rows {
		m := pairs(row)
		if m["ip"] == "" || m["port"] == "" {
			continue
		}
		r := SentinelReplica{Addr: net.JoinHostPort(m["ip"], m["port"]), Flags: m["flags"], RunID: m["run-id"],
			LinkOK: m["master-link-status"] == "ok"}
		// Sentinel has named the field slave-priority in every version so far.
		p := m["slave-priority"]
		if p == "" {
			p = m["replica-priority"]
		}
		if r.Priority, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("sentinel %s: replica %s: priority %q: %w", sentinel, r.Addr, p, err)
		}
		r.Offset, _ = strconv.ParseInt(m["slave-repl-offset"], 10, 64)
		out = append(out, r)
	}
	return out, nil
}

// Failover runs SENTINEL FAILOVER <group>.
func (c *Clients) Failover(ctx context.Context, sentinel, group string) error {
	if err := c.sentinel(sentinel).Do(ctx, "SENTINEL", "FAILOVER", group).Err(); err != nil {
		return fmt.Errorf("SENTINEL FAILOVER %s: %w", group, err)
	}
	return nil
}

// InfoPeriod reads the Sentinel's INFO period from SENTINEL DEBUG (Redis 7.0+).
func (c *Clients) InfoPeriod(ctx context.Context, sentinel string) (time.Duration, error) {
	v, err := c.sentinel(sentinel).Do(ctx, "SENTINEL", "DEBUG").Result()
	if err != nil {
		return 0, fmt.Errorf("sentinel %s: SENTINEL DEBUG: %w", sentinel, err)
	}
	m := pairs(v)
	period, err := strconv.ParseInt(m["INFO-PERIOD"], 10, 64)
	if err != nil || period <= 0 {
		return 0, fmt.Errorf("sentinel %s: SENTINEL DEBUG: INFO-PERIOD %q", sentinel, m["INFO-PERIOD"])
	}
	return time.Duration(period) * time.Millisecond, nil
}

// SetInfoPeriod runs SENTINEL DEBUG INFO-PERIOD <ms>.
func (c *Clients) SetInfoPeriod(ctx context.Context, sentinel string, d time.Duration) error {
	if err := c.sentinel(sentinel).Do(ctx, "SENTINEL", "DEBUG", "INFO-PERIOD", d.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("sentinel %s: SENTINEL DEBUG INFO-PERIOD %d: %w", sentinel, d.Milliseconds(), err)
	}
	return nil
}

// pairs reads a RESP2 flat array of field, value, field, value... (or a RESP3 map) as a map of strings.
func pairs(v interface{}) map[string]string {
	m := map[string]string{}
	switch v := v.(type) {
	case []interface{}:
		for i := 0; i+1 < len(v); i += 2 {
			m[fmt.Sprint(v[i])] = fmt.Sprint(v[i+1])
		}
	case map[interface{}]interface{}:
		for k, val := range v {
			m[fmt.Sprint(k)] = fmt.Sprint(val)
		}
	}
	return m
}
