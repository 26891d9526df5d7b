package respsession_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/eventloop"
	"github.com/sentinel-proxy/sentinel-proxy/proxy/respsession"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
	"github.com/sentinel-proxy/sentinel-proxy/resp"
)

// TestSwitchoverHoldWithRedis runs the proxy's side of a planned switchover against two real
// redis-servers, for each resp handler: clients pipeline writes through a listener to the first; the
// hold returns once the writes sent are answered, and while it lasts nothing reaches Redis, past the
// failover hold's time limit; the route moves to the second and the first is cut, as at a failover;
// the release sends what was held there. No client gets an error, and each client's writes are, in the
// order it sent them, on the first node and then on the second: none lost, none twice.
func TestSwitchoverHoldWithRedis(t *testing.T) {
	old := redistest.New(t, redistest.Options{Sentinels: 1}).Nodes[0]
	promoted := redistest.New(t, redistest.Options{Sentinels: 1}).Nodes[0]
	for _, h := range respHandlers(t, 2) {
		t.Run(h.Name(), func(t *testing.T) {
			for _, node := range []*redistest.Process{old, promoted} {
				if _, err := redistest.Do(node.Addr, "", "FLUSHALL"); err != nil {
					t.Fatal(err)
				}
				if _, err := redistest.Do(node.Addr, "", "CONFIG", "RESETSTAT"); err != nil {
					t.Fatal(err)
				}
			}
			switchoverHold(t, h, old.Addr, promoted.Addr)
		})
	}
}

func switchoverHold(t *testing.T, h proxy.Handler, oldAddr, newAddr string) {
	// A short failover hold: the switchover's hold must outlast it.
	const failoverHold = 100 * time.Millisecond
	l := &proxy.Listener{Name: "g/master", Handler: h, HoldTimeout: failoverHold}
	l.SetRoute(proxy.Route{Backends: []string{oldAddr}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- l.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()

	const clients = 6
	stop := make(chan struct{})
	var wg sync.WaitGroup
	writers := make([]*pipelineWriter, clients)
	for i := range writers {
		w, err := dialWriter(ln.Addr().String(), fmt.Sprintf("list:%d", i))
		if err != nil {
			t.Fatal(err)
		}
		defer w.conn.Close()
		writers[i] = w
		wg.Add(1)
		go func() { defer wg.Done(); w.run(stop) }()
	}
	acked := func() (n int64) {
		for _, w := range writers {
			n += w.acked.Load()
		}
		return n
	}
	waitFor(t, "writes through the proxy", func() bool { return acked() > 500 })

	holdCtx, holdCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer holdCancel()
	release, err := l.HoldCommands(holdCtx)
	if err != nil {
		t.Fatalf("HoldCommands: %v", err)
	}
	defer release()
	atHold := rpushCalls(t, oldAddr)
	time.Sleep(3 * failoverHold) // past the failover hold: still held, and nothing reaches Redis
	if n := rpushCalls(t, oldAddr); n != atHold {
		t.Fatalf("during the hold %d writes reached the master", n-atHold)
	}
	// Every write the master got was answered before HoldCommands returned; the clients read them.
	waitFor(t, "the clients to read the replies", func() bool { return acked() == atHold })
	late, err := redistest.Dial(ln.Addr().String(), "") // accepted during the hold
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	lateDone := make(chan error, 1)
	go func() {
		r, err := late.Do("SET", "late", "1")
		if err == nil && r != "OK" {
			err = fmt.Errorf("SET answered %q", r)
		}
		lateDone <- err
	}()

	// The failover: the route moves, the old master is cut. The sessions move with their state. The
	// late client's session may still be connecting to the old master: the release moves it.
	l.SetRoute(proxy.Route{Backends: []string{newAddr}})
	if n := l.RetireBackend(oldAddr); n < clients {
		t.Fatalf("%d sessions cut, want at least %d", n, clients)
	}
	time.Sleep(3 * failoverHold)
	if n := rpushCalls(t, newAddr); n != 0 {
		t.Fatalf("before the release %d writes reached the new master", n)
	}
	select {
	case err := <-lateDone:
		t.Fatalf("the late client was answered during the hold: %v", err)
	default:
	}
	release()
	release() // idempotent
	if err := <-lateDone; err != nil {
		t.Fatalf("late client: %v", err)
	}
	afterRelease := acked()
	waitFor(t, "writes to the new master", func() bool { return acked() > afterRelease+500 })
	close(stop)
	wg.Wait()

	for _, w := range writers {
		if err := w.err; err != nil {
			t.Errorf("%s: %v", w.key, err)
		}
	}
	if t.Failed() {
		return
	}
	if n := rpushCalls(t, oldAddr); n != atHold {
		t.Errorf("the old master got %d writes after the hold", n-atHold)
	}
	if r, err := redistest.Do(newAddr, "", "GET", "late"); err != nil || r != "1" {
		t.Errorf("the late client's write on the new master: %q, %v", r, err)
	}
	for _, w := range writers {
		before := listOf(t, oldAddr, w.key)
		after := listOf(t, newAddr, w.key)
		all := append(before, after...)
		if int64(len(all)) != w.acked.Load() || len(after) == 0 {
			t.Errorf("%s: %d acknowledged, %d on the old master and %d on the new", w.key, w.acked.Load(), len(before), len(after))
			continue
		}
		for i, v := range all {
			if v != strconv.Itoa(i) {
				t.Errorf("%s: element %d is %q: writes lost, doubled or out of order", w.key, i, v)
				break
			}
		}
	}
}

// pipelineWriter appends 0, 1, 2... to its list, a batch of commands per write, reading the batch's
// replies before the next.
type pipelineWriter struct {
	conn  net.Conn
	rd    *bufio.Reader
	key   string
	acked atomic.Int64
	err   error // the first error reply or I/O error; read after run returned
}

func dialWriter(addr, key string) (*pipelineWriter, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &pipelineWriter{conn: conn, rd: bufio.NewReader(conn), key: key}, nil
}

func (w *pipelineWriter) run(stop <-chan struct{}) {
	const batch = 16
	var buf []byte
	for next := 0; ; {
		select {
		case <-stop:
			return
		default:
		}
		buf = buf[:0]
		for i := range batch {
			buf = resp.AppendCommand(buf, "RPUSH", w.key, strconv.Itoa(next+i))
		}
		_ = w.conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.conn.Write(buf); err != nil {
			w.err = err
			return
		}
		for range batch {
			v, err := resp.ReadValue(w.rd, resp.Limits{})
			if err == nil {
				err = v.Err()
			}
			if err != nil {
				w.err = fmt.Errorf("after %d writes acknowledged: %w", w.acked.Load(), err)
				return
			}
			w.acked.Add(1)
		}
		next += batch
	}
}

// rpushCalls is how many RPUSHes the node ran (INFO commandstats).
func rpushCalls(t *testing.T, addr string) int64 {
	t.Helper()
	info, err := redistest.Do(addr, "", "INFO", "commandstats")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_rpush:calls=")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	return 0
}

func listOf(t *testing.T, addr, key string) []string {
	t.Helper()
	r, err := redistest.Do(addr, "", "LRANGE", key, "0", "-1")
	if err != nil {
		t.Fatal(err)
	}
	if r == "" {
		return nil
	}
	return strings.Split(r, "\n")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := redistest.Eventually(10*time.Second, func() error {
		if cond() {
			return nil
		}
		return errors.New("not yet")
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// TestHoldBoundsWhatAClientSends: a client that pipelines writes into a hold is not read past a bound
// (its writes wait in its socket, as against a Redis that stopped reading), rather than growing the
// proxy's memory for as long as the hold lasts; released, every write lands, in order, none refused.
func TestHoldBoundsWhatAClientSends(t *testing.T) {
	node := redistest.New(t, redistest.Options{Sentinels: 1}).Nodes[0]
	for _, h := range respHandlers(t, 1) {
		t.Run(h.Name(), func(t *testing.T) {
			if _, err := redistest.Do(node.Addr, "", "FLUSHALL"); err != nil {
				t.Fatal(err)
			}
			l := &proxy.Listener{Name: "g/master", Handler: h, HoldTimeout: time.Second}
			l.SetRoute(proxy.Route{Backends: []string{node.Addr}})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- l.Serve(ctx, ln) }()
			defer func() { cancel(); <-served }()

			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rd := bufio.NewReader(c)
			if _, err := c.Write(resp.AppendCommand(nil, "PING")); err != nil {
				t.Fatal(err)
			}
			if line, err := rd.ReadString('\n'); err != nil || line != "+PONG\r\n" {
				t.Fatalf("PING: %q %v", line, err)
			}
			release, err := l.HoldCommands(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// 32 MiB of SETs: more than the socket buffers of both sides and the bound together.
			const writes, size = 32 << 10, 1 << 10
			value := strings.Repeat("v", size)
			var req []byte
			for i := range writes {
				req = resp.AppendCommand(req, "SET", "k:"+strconv.Itoa(i), value)
			}
			sent := make(chan error, 1)
			go func() { _, err := c.Write(req); sent <- err }()
			select {
			case err := <-sent:
				release()
				t.Fatalf("the proxy read all %d MiB of held writes (write returned %v): nothing bounds a held client", len(req)>>20, err)
			case <-time.After(1500 * time.Millisecond):
			}
			release()
			if err := <-sent; err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			for i := range writes {
				if line, err := rd.ReadString('\n'); err != nil || line != "+OK\r\n" {
					t.Fatalf("reply %d: %q %v", i, line, err)
				}
			}
			if n, err := redistest.Do(node.Addr, "", "DBSIZE"); err != nil || n != strconv.Itoa(writes) {
				t.Fatalf("DBSIZE %q %v, want %d", n, err, writes)
			}
		})
	}
}

// respHandlers are the resp handlers: on loops event loops closed when the test ends (with sessions of
// their own, and sharing backend connections), and on goroutines. Where there are no event loops (off
// Linux), only the goroutine one.
func respHandlers(t *testing.T, loops int) []proxy.Handler {
	t.Helper()
	engine, err := eventloop.New(eventloop.Options{Loops: loops})
	if err != nil {
		t.Logf("no event loops here (%v): the goroutine handler only", err)
		return []proxy.Handler{respsession.Portable}
	}
	t.Cleanup(func() { engine.Close() })
	return []proxy.Handler{respsession.NewEpoll(engine), respsession.NewEpollMux(engine), respsession.Portable}
}
