package check

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// Status is the outcome of one probe, named as HAProxy's check_status so its users read it at once.
type Status string

const (
	L4OK   Status = "L4OK"   // connected; no layer 7 check was asked for
	L4TOUT Status = "L4TOUT" // connect timed out
	L4CON  Status = "L4CON"  // connection refused, reset or unreachable
	L7OK   Status = "L7OK"   // AUTH, PING and INFO replication answered correctly
	L7TOUT Status = "L7TOUT" // connected, but an answer did not come in time
	L7RSP  Status = "L7RSP"  // an answer that is not valid RESP or not what was asked
	L7STS  Status = "L7STS"  // an error reply, e.g. WRONGPASS or NOAUTH
	// SOCKERR is HAProxy's "socket error": the proxy itself could not open a socket (out of file
	// descriptors or memory). It says nothing about the node, so it does not count against its health.
	SOCKERR Status = "SOCKERR"
)

// Local reports whether the probe failed for a reason on the proxy's side, not the node's.
func (r Result) Local() bool { return r.Status == SOCKERR }

// Result is one probe of one node.
type Result struct {
	Addr        string
	Status      Status
	Err         error // nil when Status is L7OK
	Duration    time.Duration
	At          time.Time
	Replication Replication // valid only when Status is L7OK
}

// OK reports whether the node answered the whole check.
func (r Result) OK() bool { return r.Status == L7OK }

// Reason says what happened in the words of HAProxy's server state change lines.
func (r Result) Reason() string {
	switch r.Status {
	case L7OK:
		return "Layer7 check passed"
	case L4OK:
		return "Layer4 check passed"
	case L4TOUT:
		return "Layer4 timeout"
	case L4CON:
		return "Layer4 connection problem"
	case L7TOUT:
		return "Layer7 timeout"
	case L7STS:
		return "Layer7 wrong status"
	case SOCKERR:
		return "Socket error (the proxy is out of file descriptors or memory)"
	default:
		return "Layer7 invalid response"
	}
}

// Prober runs tcp-check style probes: AUTH (when a password is set), PING, INFO replication. A zero
// Prober probes without AUTH and with DefaultTimeout.
type Prober struct {
	Username string // ACL user; empty means the default user
	Password string // empty means no AUTH
	// Timeout bounds the whole probe, connect included. If zero, DefaultTimeout is used.
	Timeout time.Duration
	// DialContext connects to a node. If nil, a net.Dialer is used. Tests replace it.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// DefaultTimeout is the probe timeout of a zero Prober, as the seed's `check inter 1s`.
const DefaultTimeout = time.Second

// Probe checks one node once. It never returns an error: every failure is a Result with its Status.
func (p *Prober) Probe(ctx context.Context, addr string) Result {
	start := time.Now()
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := Result{Addr: addr, At: start}
	res.Status, res.Replication, res.Err = p.probe(ctx, addr)
	res.Duration = time.Since(start)
	if res.Err != nil {
		res.Err = fmt.Errorf("probe %s: %w", addr, res.Err)
	}
	return res
}

func (p *Prober) probe(ctx context.Context, addr string) (Status, Replication, error) {
	dial := p.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) ||
			errors.Is(err, syscall.ENOMEM) {
			return SOCKERR, Replication{}, fmt.Errorf("connect: %w", err)
		}
		if isTimeout(err) || ctx.Err() != nil {
			return L4TOUT, Replication{}, fmt.Errorf("connect: %w", err)
		}
		return L4CON, Replication{}, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	// Closing the connection when ctx ends unblocks a read that a deadline alone would also end; it
	// matters when the caller cancels (shutdown) before the timeout.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	rd := bufio.NewReaderSize(conn, 4096)
	ask := func(step string, args ...string) (string, error) {
		if _, err := conn.Write(resp.AppendCommand(nil, args...)); err != nil {
			return "", fmt.Errorf("%s: send: %w", step, err)
		}
		reply, err := readReply(rd)
		if err != nil {
			return "", fmt.Errorf("%s: %w", step, err)
		}
		return reply, nil
	}
	if p.Password != "" {
		args := []string{"AUTH", p.Password}
		if p.Username != "" {
			args = []string{"AUTH", p.Username, p.Password}
		}
		// The step name, not the arguments, goes into errors: a password must never reach a log.
		reply, err := ask("AUTH", args...)
		if err != nil {
			return classify(ctx, err), Replication{}, err
		}
		if reply != "OK" {
			return L7RSP, Replication{}, fmt.Errorf("AUTH: unexpected reply %q", truncate(reply))
		}
	}
	reply, err := ask("PING", "PING")
	if err != nil {
		return classify(ctx, err), Replication{}, err
	}
	if reply != "PONG" {
		return L7RSP, Replication{}, fmt.Errorf("PING: unexpected reply %q", truncate(reply))
	}
	reply, err = ask("INFO", "INFO", "replication")
	if err != nil {
		return classify(ctx, err), Replication{}, err
	}
	repl, err := ParseReplication(reply)
	if err != nil {
		return L7RSP, Replication{}, err
	}
	return L7OK, repl, nil
}

// classify maps an error met after connecting to a layer 7 status. A timeout may surface as the
// deadline or as the connection closed by the context, whichever comes first.
func classify(ctx context.Context, err error) Status {
	var redisErr RedisError
	switch {
	case errors.As(err, &redisErr):
		return L7STS
	case isTimeout(err) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return L7TOUT
	default:
		return L7RSP
	}
}

func isTimeout(err error) bool {
	var netErr net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &netErr) && netErr.Timeout())
}

// truncate shortens a reply quoted in an error.
func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
