package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// WriteLoad runs clients that each write unique keys as fast as they are acknowledged, through addr (a
// proxy), and remember every acknowledged write and which node acknowledged it. It is how failover
// tests and bench/failover measure lost acknowledged writes and write gaps.
type WriteLoad struct {
	Addr     string
	Password string
	Writers  int           // default 4
	Timeout  time.Duration // per write; default 10s, longer than any pause in the scenarios
	Prefix   string        // key prefix; default "w"
	// Pause is slept between a writer's writes; zero writes flat out. Tests pace the writers so the
	// load itself does not starve Redis into extra failovers on a small machine.
	Pause time.Duration
	// NodeAddr names the node that acknowledged a write from the port it reports. Nil names it
	// 127.0.0.1:<port>, right on loopback; Topology.NodeAddrByPort is right wherever the nodes run.
	NodeAddr func(port string) string
}

// Ack is one acknowledged write.
type Ack struct {
	Key  string
	At   time.Time // when the acknowledgement arrived
	Node string    // the node that acknowledged it: 127.0.0.1:<port>, or as WriteLoad.NodeAddr names it
}

// LoadResult is what a WriteLoad saw.
type LoadResult struct {
	Acks   []Ack     // sorted by At
	Errors int       // failed writes (not acknowledged): connection closed, refused, timeouts, NOREPLICAS
	End    time.Time // when the writers stopped
	// Unconfirmed are the Errors that were NOREPLICAS: applied on the master, not confirmed by enough
	// replicas (durable acknowledgements).
	Unconfirmed int
	// ErrorTexts are the first few errors, each with when it came, for a test to say what failed.
	ErrorTexts []string
}

// maxErrorTexts bounds LoadResult.ErrorTexts per writer.
const maxErrorTexts = 5

// Run writes until ctx ends.
func (w *WriteLoad) Run(ctx context.Context) *LoadResult {
	writers, timeout, prefix := w.Writers, w.Timeout, w.Prefix
	if writers <= 0 {
		writers = 4
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if prefix == "" {
		prefix = "w"
	}
	var mu sync.Mutex
	res := &LoadResult{}
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acks, errs, unconfirmed, texts := w.writer(ctx, fmt.Sprintf("%s%d", prefix, i), timeout)
			mu.Lock()
			res.Acks = append(res.Acks, acks...)
			res.Errors += errs
			res.ErrorTexts = append(res.ErrorTexts, texts...)
			res.Unconfirmed += unconfirmed
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.End = time.Now()
	sort.Slice(res.Acks, func(i, j int) bool { return res.Acks[i].At.Before(res.Acks[j].At) })
	return res
}

func (w *WriteLoad) writer(ctx context.Context, name string, timeout time.Duration) (acks []Ack, errs, unconfirmed int, texts []string) {
	failed := func(what string, err error) {
		errs++
		if len(texts) < maxErrorTexts {
			texts = append(texts, fmt.Sprintf("%s %s %s: %v", time.Now().Format("15:04:05.000"), name, what, err))
		}
	}
	var conn net.Conn
	var rd *bufio.Reader
	var stop func() bool
	var req []byte
	closeConn := func() {
		if conn != nil {
			stop()
			conn.Close()
			conn = nil
		}
	}
	defer closeConn()
	for seq := 0; ctx.Err() == nil; seq++ {
		if conn == nil {
			c, err := net.DialTimeout("tcp", w.Addr, time.Second)
			if err != nil {
				failed("dial", err)
				sleepCtx(ctx, 5*time.Millisecond)
				continue
			}
			conn, rd = c, bufio.NewReader(c)
			stop = context.AfterFunc(ctx, func() { c.Close() })
			if w.Password != "" {
				_ = conn.SetDeadline(time.Now().Add(timeout))
				if _, err := roundTrip(conn, rd, "AUTH", w.Password); err != nil {
					failed("AUTH", err)
					closeConn()
					sleepCtx(ctx, 5*time.Millisecond)
					continue
				}
			}
		}
		key := fmt.Sprintf("%s:%d", name, seq)
		_ = conn.SetDeadline(time.Now().Add(timeout))
		// SET and CONFIG GET port in one round trip: the node that answers the second acknowledged the first.
		req = resp.AppendCommand(req[:0], "SET", key, "1")
		req = resp.AppendCommand(req, "CONFIG", "GET", "port")
		if _, err := conn.Write(req); err != nil {
			failed("write "+key, err)
			closeConn()
			continue
		}
		ok, err := readFlat(rd)
		if err == nil && ok != "OK" {
			err = fmt.Errorf("SET answered %q", ok)
		}
		var port string
		if err == nil {
			port, err = readFlat(rd)
		}
		if err != nil {
			if ctx.Err() == nil {
				failed("SET "+key, err)
				if strings.HasPrefix(err.Error(), "NOREPLICAS ") {
					unconfirmed++
				}
			}
			closeConn()
			sleepCtx(ctx, time.Millisecond)
			continue
		}
		node := w.nodeAddr(strings.TrimPrefix(port, "port\n"))
		acks = append(acks, Ack{Key: key, At: time.Now(), Node: node})
		if w.Pause > 0 {
			sleepCtx(ctx, w.Pause)
		}
	}
	return acks, errs, unconfirmed, texts
}

func (w *WriteLoad) nodeAddr(port string) string {
	if w.NodeAddr != nil {
		return w.NodeAddr(port)
	}
	return "127.0.0.1:" + port
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Lost returns the acknowledged keys that master does not have.
func (r *LoadResult) Lost(master, password string) ([]Ack, error) {
	var lost []Ack
	for start := 0; start < len(r.Acks); start += 500 {
		end := min(start+500, len(r.Acks))
		args := []string{"MGET"}
		for _, a := range r.Acks[start:end] {
			args = append(args, a.Key)
		}
		vals, err := doLines(master, password, args...)
		if err != nil {
			return nil, fmt.Errorf("MGET on %s: %w", master, err)
		}
		if len(vals) != end-start {
			return nil, fmt.Errorf("MGET on %s: %d values for %d keys", master, len(vals), end-start)
		}
		for i, v := range vals {
			if v != "1" {
				lost = append(lost, r.Acks[start+i])
			}
		}
	}
	return lost, nil
}

// LongestGap is the longest time between two consecutive acknowledgements (or from the last one to the
// end of the load), and when it started.
func (r *LoadResult) LongestGap() (gap time.Duration, from time.Time) {
	for i := 1; i < len(r.Acks); i++ {
		if d := r.Acks[i].At.Sub(r.Acks[i-1].At); d > gap {
			gap, from = d, r.Acks[i-1].At
		}
	}
	// Writes that never resumed (every write refused after a failover) are a gap too, to the end.
	if n := len(r.Acks); n > 0 && !r.End.IsZero() {
		if d := r.End.Sub(r.Acks[n-1].At); d > gap {
			gap, from = d, r.Acks[n-1].At
		}
	}
	return gap, from
}

// FirstAckBy returns the first acknowledgement by node at or after t.
func (r *LoadResult) FirstAckBy(node string, t time.Time) (Ack, bool) {
	for _, a := range r.Acks {
		if a.Node == node && !a.At.Before(t) {
			return a, true
		}
	}
	return Ack{}, false
}

// doLines sends one command and returns an array reply's elements (nil bulk strings as "").
func doLines(addr, password string, args ...string) ([]string, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	rd := bufio.NewReader(conn)
	if password != "" {
		if _, err := roundTrip(conn, rd, "AUTH", password); err != nil {
			return nil, err
		}
	}
	if err := send(conn, args...); err != nil {
		return nil, err
	}
	v, err := readReply(rd)
	if err != nil {
		return nil, err
	}
	if v.Kind != '*' {
		return nil, fmt.Errorf("not an array: %q", v.Text())
	}
	out := make([]string, len(v.Elems))
	for i, e := range v.Elems {
		out[i] = e.Text()
	}
	return out, nil
}
