// Package redistest starts real redis-server and redis-sentinel processes on free loopback ports, in
// temporary directories, for integration tests and the demo. It kills, pauses and restarts them so
// failover can be tested for real. It is not used by the proxy itself.
package redistest

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// Options describe a topology. Zero values pick test-friendly defaults.
type Options struct {
	MasterName string        // default "mymaster"
	Replicas   int           // data nodes besides the master
	Sentinels  int           // default 3
	Quorum     int           // default majority of Sentinels
	DownAfter  time.Duration // Sentinel down-after-milliseconds; default 300ms
	// FailoverTimeout is Sentinel's failover-timeout; default 2s, so a stuck failover is retried quickly.
	FailoverTimeout time.Duration
	Password        string // requirepass/masterauth on data nodes; Sentinel uses it as auth-pass
	AppendOnly      bool   // persist data nodes with an AOF, so a restarted node comes back with its data
	Dir             string // parent of the per-process directories; default os.MkdirTemp
	// Ports, when set, fixes the ports: data nodes first, then Sentinels. Otherwise free ports are chosen.
	Ports []int
	// SentinelPassword sets requirepass on the Sentinels (and sentinel-pass, so they reach each other).
	SentinelPassword string
	// NodeConf and SentinelConf are extra configuration lines, e.g. ACL users ("user probe on >pw ...").
	NodeConf, SentinelConf []string
	// TLS, when set, makes every node and Sentinel speak only TLS, with client certificates required.
	TLS *PKI
	// NodeHosts and SentinelHosts place data nodes and Sentinels, by index, on other hosts (netlab's
	// network namespaces); the rest run on loopback. Ports still come from Ports or FreePort: give each
	// process its own (FreePort does), so the port a node reports (WriteLoad's CONFIG GET port) names it.
	NodeHosts, SentinelHosts []Host
}

// Host says where a process runs. The zero Host is this machine's loopback, as without it.
type Host struct {
	// IP is the address the process binds, is reached at, and is known by to the others (replicaof,
	// sentinel monitor, what Sentinel announces); default 127.0.0.1.
	IP string
	// Wrap prefixes the command line to start the process there, e.g. {"ip", "netns", "exec", "lab-h1"}.
	// It must exec the program in place, as ip netns exec does, so that Pause, Resume and Kill signal
	// the program itself.
	Wrap []string
}

func (h Host) ip() string {
	if h.IP == "" {
		return "127.0.0.1"
	}
	return h.IP
}

// hostAt is hosts[i], or loopback.
func hostAt(hosts []Host, i int) Host {
	if i < len(hosts) {
		return hosts[i]
	}
	return Host{}
}

// Topology is one master, its replicas and the Sentinels that watch them.
type Topology struct {
	Name      string
	Nodes     []*Process // Nodes[0] starts as master
	Sentinels []*Process
	Password  string
	// SentinelPassword is what the helpers AUTH with on Sentinels.
	SentinelPassword string
	// TLS is how the helpers reach a TLS topology; nil for plain TCP.
	TLS     *tls.Config
	pki     *PKI
	dir     string
	ownsDir bool
}

// Process is one running redis-server or redis-sentinel.
type Process struct {
	Addr   string
	Port   int
	Dir    string
	Config string // path of its config file
	Bin    string
	wrap   []string    // command prefix that puts it on its host; nil on loopback
	tls    *tls.Config // how to reach it; nil for plain TCP
	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
}

// Binaries reports whether redis-server and redis-sentinel are installed.
func Binaries() error {
	for _, b := range []string{"redis-server", "redis-sentinel"} {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Errorf("%s not found (apt-get install redis-server redis-sentinel): %w", b, err)
		}
	}
	return nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// FreePorts returns n different loopback TCP ports that were free a moment ago. They are held open
// until all are chosen: ports asked for one at a time can come back twice, since the kernel may hand
// out a port again as soon as its listener closes.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Start starts a topology and waits until the replicas are synced and every Sentinel knows every
// replica and every other Sentinel, so that a failover can succeed at once.
func Start(o Options) (*Topology, error) {
	if err := Binaries(); err != nil {
		return nil, err
	}
	if o.MasterName == "" {
		o.MasterName = "mymaster"
	}
	if o.Sentinels == 0 {
		o.Sentinels = 3
	}
	if o.Quorum == 0 {
		o.Quorum = o.Sentinels/2 + 1
	}
	if o.DownAfter == 0 {
		o.DownAfter = 300 * time.Millisecond
	}
	if o.FailoverTimeout == 0 {
		o.FailoverTimeout = 2 * time.Second
	}
	t := &Topology{Name: o.MasterName, Password: o.Password, SentinelPassword: o.SentinelPassword, dir: o.Dir, pki: o.TLS}
	if o.TLS != nil {
		t.TLS = o.TLS.ClientConfig()
	}
	if t.dir == "" {
		d, err := os.MkdirTemp("", "redistest-")
		if err != nil {
			return nil, err
		}
		t.dir, t.ownsDir = d, true
	}
	taken := map[int]bool{}
	port := func(i int) (int, error) {
		if i < len(o.Ports) {
			taken[o.Ports[i]] = true
			return o.Ports[i], nil
		}
		// FreePort asks the kernel twice in a row; it may hand out the same port again once the first
		// listener is closed. Processes on other hosts would start anyway, and then share a port.
		for {
			p, err := FreePort()
			if err != nil || !taken[p] {
				taken[p] = true
				return p, err
			}
		}
	}
	ok := false
	defer func() {
		if !ok {
			t.Close()
		}
	}()
	// A master waits repl-diskless-sync-delay (5 s by default) for more replicas before a full sync: every
	// topology's start waited it (a fifth of make test). The first master does not while the topology
	// starts, and gets its own setting back once it has, so that the failovers a test runs see the delay
	// production has (a delay of 0 throughout was tried: the failover tests' outcomes changed with it).
	fastSync := !slices.ContainsFunc(o.NodeConf, func(l string) bool { return strings.HasPrefix(l, "repl-diskless-sync-delay") })
	var syncDelay string // the first master's own, restored once the topology has started
	for i := 0; i <= o.Replicas; i++ {
		p, err := port(i)
		if err != nil {
			return nil, err
		}
		conf := []string{"save \"\"", "appendonly no"}
		if o.AppendOnly {
			conf = []string{"save \"\"", "appendonly yes", "appendfsync everysec"}
		}
		if o.Password != "" {
			conf = append(conf, "requirepass "+o.Password, "masterauth "+o.Password)
		}
		if i > 0 {
			conf = append(conf, fmt.Sprintf("replicaof %s %d", hostAt(o.NodeHosts, 0).ip(), t.Nodes[0].Port))
		}
		conf = append(conf, o.NodeConf...)
		n, err := t.start("redis-server", fmt.Sprintf("node%d", i), hostAt(o.NodeHosts, i), p, conf)
		if err != nil {
			return nil, err
		}
		if i == 0 && fastSync {
			if syncDelay, err = t.swapSyncDelay(n.Addr, "0"); err != nil {
				return nil, err
			}
		}
		t.Nodes = append(t.Nodes, n)
	}
	// Each Sentinel starts knowing the others, as its rewritten configuration would after a first run:
	// found by hello messages (every 2 s), they took two of a topology's start's seconds.
	sentinelPorts := make([]int, o.Sentinels)
	sentinelIDs := make([]string, o.Sentinels)
	for i := range sentinelPorts {
		p, err := port(o.Replicas + 1 + i)
		if err != nil {
			return nil, err
		}
		id := make([]byte, 20)
		if _, err := rand.Read(id); err != nil {
			return nil, err
		}
		sentinelPorts[i], sentinelIDs[i] = p, hex.EncodeToString(id)
	}
	for i := 0; i < o.Sentinels; i++ {
		p := sentinelPorts[i]
		conf := []string{
			fmt.Sprintf("sentinel monitor %s %s %d %d", o.MasterName, hostAt(o.NodeHosts, 0).ip(), t.Nodes[0].Port, o.Quorum),
			"sentinel myid " + sentinelIDs[i],
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", o.MasterName, o.DownAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s %d", o.MasterName, o.FailoverTimeout.Milliseconds()),
			fmt.Sprintf("sentinel parallel-syncs %s 2", o.MasterName),
		}
		for j := range sentinelPorts {
			if j != i {
				conf = append(conf, fmt.Sprintf("sentinel known-sentinel %s %s %d %s", o.MasterName,
					hostAt(o.SentinelHosts, j).ip(), sentinelPorts[j], sentinelIDs[j]))
			}
		}
		if o.Password != "" {
			conf = append(conf, fmt.Sprintf("sentinel auth-pass %s %s", o.MasterName, o.Password))
		}
		if o.SentinelPassword != "" {
			conf = append(conf, "requirepass "+o.SentinelPassword, "sentinel sentinel-pass "+o.SentinelPassword)
		}
		conf = append(conf, o.SentinelConf...)
		s, err := t.start("redis-sentinel", fmt.Sprintf("sentinel%d", i), hostAt(o.SentinelHosts, i), p, conf)
		if err != nil {
			return nil, err
		}
		t.Sentinels = append(t.Sentinels, s)
	}
	if err := t.WaitSettled(o.Replicas, 30*time.Second); err != nil {
		return nil, err
	}
	if fastSync {
		if _, err := t.swapSyncDelay(t.Nodes[0].Addr, syncDelay); err != nil {
			return nil, err
		}
	}
	ok = true
	return t, nil
}

// swapSyncDelay sets a node's repl-diskless-sync-delay (seconds) and returns what it was.
func (t *Topology) swapSyncDelay(addr, seconds string) (was string, err error) {
	got, err := DoTLS(addr, t.Password, t.TLS, "CONFIG", "GET", "repl-diskless-sync-delay")
	if err != nil {
		return "", fmt.Errorf("%s: CONFIG GET repl-diskless-sync-delay: %w", addr, err)
	}
	was, ok := strings.CutPrefix(got, "repl-diskless-sync-delay\n")
	if !ok {
		return "", fmt.Errorf("%s: CONFIG GET repl-diskless-sync-delay answered %q", addr, got)
	}
	if _, err := DoTLS(addr, t.Password, t.TLS, "CONFIG", "SET", "repl-diskless-sync-delay", seconds); err != nil {
		return "", fmt.Errorf("%s: CONFIG SET repl-diskless-sync-delay %s: %w", addr, seconds, err)
	}
	return was, nil
}

func (t *Topology) start(bin, name string, host Host, port int, extra []string) (*Process, error) {
	dir := filepath.Join(t.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	portConf := []string{fmt.Sprintf("port %d", port)}
	if t.pki != nil {
		portConf = t.pki.RedisConf(port)
	}
	conf := append(append(portConf,
		"bind "+host.ip(),
		"protected-mode no",
		"dir "+dir,
		"logfile "+filepath.Join(dir, "log.txt"),
		"daemonize no",
	), extra...)
	path := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(path, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	p := &Process{Addr: net.JoinHostPort(host.ip(), strconv.Itoa(port)), Port: port, Dir: dir, Config: path, Bin: bin, wrap: host.Wrap}
	if err := p.Start(); err != nil {
		return nil, err
	}
	password := t.Password
	if bin == "redis-sentinel" {
		password = t.SentinelPassword
	}
	p.tls = t.TLS
	if err := p.WaitPing(password, 10*time.Second); err != nil {
		p.Kill()
		return nil, fmt.Errorf("%s on %s: %w (log: %s)", bin, p.Addr, err, p.LogTail())
	}
	return p, nil
}

// Start starts (or restarts) the process with its config file, keeping its data directory.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	argv := append(append(append([]string(nil), p.wrap...), p.Bin), p.Config)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Dir = p.Dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Bin, err)
	}
	p.cmd = cmd
	done := make(chan struct{})
	p.done = done
	go func() { _ = cmd.Wait(); close(done) }()
	return nil
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a paused process must not be left behind as a zombie holder
	_ = cmd.Process.Kill()
	<-done
	p.mu.Lock()
	if p.cmd == cmd {
		p.cmd = nil
	}
	p.mu.Unlock()
}

// Pause stops the process with SIGSTOP: it keeps its sockets but answers nothing.
func (p *Process) Pause() error { return p.signal(syscall.SIGSTOP) }

// Resume continues a paused process with SIGCONT.
func (p *Process) Resume() error { return p.signal(syscall.SIGCONT) }

// Pid returns the process id, or 0 when it has not been started.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *Process) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return errors.New("not started")
	}
	return p.cmd.Process.Signal(sig)
}

// Restart kills the process and starts it again with the same config and data directory.
func (p *Process) Restart() error {
	p.Kill()
	return p.Start()
}

// LogTail returns the last lines of the process's log file.
func (p *Process) LogTail() string {
	data, _ := os.ReadFile(filepath.Join(p.Dir, "log.txt"))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// Close kills every process and removes the directory it created.
func (t *Topology) Close() {
	for _, p := range append(append([]*Process{}, t.Sentinels...), t.Nodes...) {
		p.Kill()
	}
	if t.ownsDir {
		os.RemoveAll(t.dir)
	}
}

// Do sends one command to addr (with AUTH first when password is set) and returns the reply, flattened
// to text: arrays become one element per line. It is a test helper, not a client.
func Do(addr, password string, args ...string) (string, error) {
	return DoTLS(addr, password, nil, args...)
}

// DoTLS is Do over TLS when tc is set.
func DoTLS(addr, password string, tc *tls.Config, args ...string) (string, error) {
	c, err := DialTLS(addr, password, tc)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.Do(args...)
}

// Conn is one lasting client connection, for tests that watch what happens to an established session.
type Conn struct {
	conn net.Conn
	rd   *bufio.Reader
}

// Dial connects to addr and authenticates when password is set.
func Dial(addr, password string) (*Conn, error) { return DialTLS(addr, password, nil) }

// DialTLS is Dial over TLS when tc is set.
func DialTLS(addr, password string, tc *tls.Config) (*Conn, error) {
	var conn net.Conn
	var err error
	if tc != nil {
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, tc)
	} else {
		conn, err = net.DialTimeout("tcp", addr, 2*time.Second)
	}
	if err != nil {
		return nil, err
	}
	c := &Conn{conn: conn, rd: bufio.NewReader(conn)}
	if password != "" {
		if _, err := c.Do("AUTH", password); err != nil {
			conn.Close()
			return nil, fmt.Errorf("AUTH: %w", err)
		}
	}
	return c, nil
}

// Do sends one command and reads its reply (flattened as by the package's Do), within 5 seconds.
func (c *Conn) Do(args ...string) (string, error) {
	_ = c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	return roundTrip(c.conn, c.rd, args...)
}

// Close closes the connection.
func (c *Conn) Close() error { return c.conn.Close() }

func roundTrip(conn net.Conn, rd *bufio.Reader, args ...string) (string, error) {
	if err := send(conn, args...); err != nil {
		return "", err
	}
	return readFlat(rd)
}

// send writes args as one RESP command.
func send(conn net.Conn, args ...string) error {
	_, err := conn.Write(resp.AppendCommand(nil, args...))
	return err
}

// readFlat reads one reply and flattens it as the package's Do returns it (resp.Value.Text): strings
// and numbers as themselves, a null as "", an array one element per line. An error reply, also one
// inside an array, comes back as an error with its text.
func readFlat(rd *bufio.Reader) (string, error) {
	v, err := readReply(rd)
	if err != nil {
		return "", err
	}
	return v.Text(), nil
}

// readReply reads one whole reply, within resp's default limits, and returns the first error reply in
// it as an error.
func readReply(rd *bufio.Reader) (resp.Value, error) {
	v, err := resp.ReadValue(rd, resp.Limits{})
	if err != nil {
		return resp.Value{}, err
	}
	if err := firstError(v); err != nil {
		return resp.Value{}, err
	}
	return v, nil
}

// firstError returns the first error reply in v, depth first: a reply is an error if any part of it is.
func firstError(v resp.Value) error {
	if err := v.Err(); err != nil {
		return err
	}
	for _, e := range v.Elems {
		if err := firstError(e); err != nil {
			return err
		}
	}
	return nil
}

// WaitPing waits until the process answers PING.
func (p *Process) WaitPing(password string, timeout time.Duration) error {
	return Eventually(timeout, func() error {
		r, err := DoTLS(p.Addr, password, p.tls, "PING")
		if err != nil {
			return err
		}
		if r != "PONG" {
			return fmt.Errorf("PING answered %q", r)
		}
		return nil
	})
}

// Eventually polls cond every 20ms until it returns nil or timeout passes, and returns the last error.
func Eventually(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
