package e2e

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

// idleClients opens n connections through addr, each authenticated, on database 3, with a name of its
// own: what a connection pool holds.
func idleClients(t *testing.T, addr string, n int) []*redistest.Conn {
	t.Helper()
	conns := make([]*redistest.Conn, n)
	for i := range conns {
		c, err := redistest.Dial(addr, testPassword)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		for _, cmd := range [][]string{{"SELECT", "3"}, {"CLIENT", "SETNAME", fmt.Sprintf("pooled-%d", i)}} {
			if r, err := c.Do(cmd...); err != nil || r != "OK" {
				t.Fatalf("client %d: %v: %q %v", i, cmd, r, err)
			}
		}
		conns[i] = c
	}
	return conns
}

// checkIdleClients asks every idle client where it is: each must answer from master, on database 3,
// with its own name, without an error.
func checkIdleClients(t *testing.T, conns []*redistest.Conn, master string) {
	t.Helper()
	port := master[strings.LastIndexByte(master, ':')+1:]
	bad := 0
	for i, c := range conns {
		info, err := c.Do("CLIENT", "INFO")
		want := []string{fmt.Sprintf(" name=pooled-%d ", i), " db=3 ", "laddr=127.0.0.1:" + port + " "}
		ok := err == nil
		for _, w := range want {
			ok = ok && strings.Contains(info, w)
		}
		if !ok {
			if bad < 3 {
				t.Errorf("idle client %d after the failover: %q %v (want %q)", i, info, err, want)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d idle clients did not carry over", bad, len(conns))
	}
}

// subscriber listens to a channel through addr and counts the messages it receives.
type subscriber struct {
	conn     *redistest.Conn
	received atomic.Int64
	errs     chan error
}

func subscribe(t *testing.T, addr, channel string) *subscriber {
	t.Helper()
	c, err := redistest.Dial(addr, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if r, err := c.Do("SUBSCRIBE", channel); err != nil || !strings.HasPrefix(r, "subscribe\n") {
		t.Fatalf("SUBSCRIBE: %q %v", r, err)
	}
	s := &subscriber{conn: c, errs: make(chan error, 1)}
	go func() {
		for {
			msg, err := c.Receive(time.Minute)
			if err != nil {
				s.errs <- err
				return
			}
			if !strings.HasPrefix(msg, "message\n") {
				s.errs <- fmt.Errorf("the subscriber got %q", msg)
				return
			}
			s.received.Add(1)
		}
	}()
	return s
}

// casLoop increments a counter with WATCH/MULTI/EXEC through addr until ctx ends, retrying aborted
// transactions, and reports the increments acknowledged and any error.
func casLoop(ctx context.Context, addr, key string) (acked int64, err error) {
	c, err := redistest.Dial(addr, testPassword)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	for ctx.Err() == nil {
		if _, err := c.Do("WATCH", key); err != nil {
			return acked, fmt.Errorf("WATCH: %w", err)
		}
		v, err := c.Do("GET", key)
		if err != nil {
			return acked, fmt.Errorf("GET: %w", err)
		}
		n, _ := strconv.Atoi(v)
		if _, err := c.Do("MULTI"); err != nil {
			return acked, fmt.Errorf("MULTI: %w", err)
		}
		if r, err := c.Do("SET", key, strconv.Itoa(n+1)); err != nil || r != "QUEUED" {
			return acked, fmt.Errorf("SET in MULTI: %q %w", r, err)
		}
		r, err := c.Do("EXEC")
		if err != nil {
			return acked, fmt.Errorf("EXEC: %w", err)
		}
		if r != "" { // "" is the null reply: a watched key changed (or the failover said so): retry
			acked++
		}
	}
	return acked, nil
}

// TestRESPFailoverIsInvisible runs failovers under a resp-mode proxy with 200 idle pooled clients on
// database 3 with names, writers that do not retry, a subscriber and a WATCH/MULTI/EXEC loop: after each
// failover every idle client answers from the new master with its state, the writers lose no
// acknowledged write and see errors only for writes in flight, the subscriber keeps receiving, and the
// loop sees only aborted transactions, never an error or a lost increment.
func TestRESPFailoverIsInvisible(t *testing.T) {
	scenarios := []struct {
		name string
		act  func(t *testing.T, topo *redistest.Topology) string
	}{
		{"manual", func(t *testing.T, topo *redistest.Topology) string {
			m, err := topo.Failover(30 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}},
		{"kill", func(t *testing.T, topo *redistest.Topology) string {
			old, _ := topo.MasterAddr()
			topo.Node(old).Kill()
			return waitNewMaster(t, topo, old)
		}},
		{"pause", func(t *testing.T, topo *redistest.Topology) string {
			old, _ := topo.MasterAddr()
			n := topo.Node(old)
			if err := n.Pause(); err != nil {
				t.Fatal(err)
			}
			m := waitNewMaster(t, topo, old)
			if err := n.Resume(); err != nil {
				t.Fatal(err)
			}
			return m
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			topo := newTopology(t, 2)
			p := startProxy(t, inMode(testConfig(t, topo, topo.Name), "resp"))
			waitRoutedTo(t, p.master, topo.Nodes[0].Addr, 10*time.Second)
			idle := idleClients(t, p.master, 200)
			sub := subscribe(t, p.master, "news")

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			load := &redistest.WriteLoad{Addr: p.master, Password: testPassword, Writers: 4, Timeout: 10 * time.Second,
				Pause: 200 * time.Microsecond}
			results := make(chan *redistest.LoadResult, 1)
			go func() { results <- load.Run(ctx) }()
			type casResult struct {
				acked int64
				err   error
			}
			cas := make(chan casResult, 1)
			go func() { n, err := casLoop(ctx, p.master, "cas-counter"); cas <- casResult{n, err} }()
			var published atomic.Int64
			var pubWG sync.WaitGroup
			pubWG.Add(1)
			go func() {
				defer pubWG.Done()
				for ctx.Err() == nil {
					if _, err := redistest.Do(p.master, testPassword, "PUBLISH", "news", "tick"); err == nil {
						published.Add(1)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}()
			time.Sleep(500 * time.Millisecond)

			newMaster := sc.act(t, topo)
			final, err := topo.AgreedMaster(30 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			waitRoutedTo(t, p.master, final, 10*time.Second)
			before := sub.received.Load()
			time.Sleep(time.Second) // writes, publishes and transactions on the new master
			cancel()
			res := <-results
			pubWG.Wait()
			cr := <-cas
			t.Logf("new master %s (final %s): %d writes acknowledged, %d failed; %d CAS increments; %d messages of %d published",
				newMaster, final, len(res.Acks), res.Errors, cr.acked, sub.received.Load(), published.Load())

			checkIdleClients(t, idle, final)
			if sub.received.Load() <= before {
				t.Errorf("the subscriber received nothing after the failover (%d before)", before)
			}
			select {
			case err := <-sub.errs:
				t.Errorf("subscriber: %v", err)
			default:
			}
			if cr.err != nil {
				t.Errorf("the WATCH/MULTI/EXEC loop saw an error: %v", cr.err)
			}
			if v, err := redistest.Do(final, testPassword, "GET", "cas-counter"); err != nil || v != strconv.FormatInt(cr.acked, 10) {
				t.Errorf("cas-counter on the new master is %q (%v), the loop acknowledged %d increments", v, err, cr.acked)
			}
			lost, err := res.Lost(final, testPassword)
			if err != nil {
				t.Fatal(err)
			}
			// A manual failover loses nothing; a dead master may take with it what it acknowledged in its
			// last instant (asynchronous replication), never a write acknowledged after the switch.
			switched, _ := res.FirstAckBy(final, time.Time{})
			for _, l := range lost {
				if sc.name == "manual" || l.At.After(switched.At) {
					t.Errorf("%d acknowledged writes lost (first %s by %s at %s; switch at %s)", len(lost), l.Key, l.Node,
						l.At.Format("15:04:05.000"), switched.At.Format("15:04:05.000"))
					break
				}
			}
			// Writers do not retry: a write fails only if it was in flight at the cut (one per writer per
			// cut, at most; two cuts when the old master comes back).
			if res.Errors > 4*2 {
				t.Errorf("%d failed writes: more than the writes in flight at the cut", res.Errors)
			}
			if errors.Is(ctx.Err(), context.Canceled) && len(res.Acks) < 100 {
				t.Errorf("only %d writes acknowledged", len(res.Acks))
			}
		})
	}
}
