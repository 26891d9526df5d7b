package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
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

// casAck is one increment the WATCH/MULTI/EXEC loop had acknowledged: the value its EXEC set.
type casAck struct {
	At    time.Time
	Value int
}

// casRun is what a WATCH/MULTI/EXEC loop saw: the increments acknowledged, the EXECs answered aborted
// (the value each would have set), the EXECs in flight at a cut, answered "may or may not have been
// applied" (unknown), and the error that ended it, if any.
type casRun struct {
	acked, aborted, unknown []casAck
	err                     error
}

// casLoop increments a counter with WATCH/MULTI/EXEC through addr until ctx ends, retrying aborted
// transactions.
func casLoop(ctx context.Context, addr, key string) (run casRun) {
	c, err := redistest.Dial(addr, testPassword)
	if err != nil {
		run.err = err
		return run
	}
	defer c.Close()
	run.acked, run.aborted, run.unknown, run.err = casIterations(ctx, c, key)
	return run
}

func casIterations(ctx context.Context, c *redistest.Conn, key string) (acked, aborted, unknown []casAck, err error) {
	for ctx.Err() == nil {
		if _, err := c.Do("WATCH", key); err != nil {
			return acked, aborted, unknown, fmt.Errorf("WATCH: %w", err)
		}
		v, err := c.Do("GET", key)
		if err != nil {
			return acked, aborted, unknown, fmt.Errorf("GET: %w", err)
		}
		n, _ := strconv.Atoi(v)
		if _, err := c.Do("MULTI"); err != nil {
			return acked, aborted, unknown, fmt.Errorf("MULTI: %w", err)
		}
		if r, err := c.Do("SET", key, strconv.Itoa(n+1)); err != nil || r != "QUEUED" {
			return acked, aborted, unknown, fmt.Errorf("SET in MULTI: %q %w", r, err)
		}
		r, err := c.Do("EXEC")
		if err != nil && strings.Contains(err.Error(), "may or may not have been applied") {
			// In flight at a cut: it may have run. The loop reads the counter again, as after an abort.
			unknown = append(unknown, casAck{At: time.Now(), Value: n + 1})
			continue
		}
		if err != nil {
			return acked, aborted, unknown, fmt.Errorf("EXEC: %w", err)
		}
		if r != "" { // "" is the null reply: a watched key changed (or the failover said so): retry
			acked = append(acked, casAck{At: time.Now(), Value: n + 1})
		} else {
			aborted = append(aborted, casAck{At: time.Now(), Value: n + 1})
		}
	}
	return acked, aborted, unknown, nil
}

// TestRESPFailoverIsInvisible runs failovers under a resp-mode proxy with 200 idle pooled clients on
// database 3 with names, writers that do not retry, a subscriber and a WATCH/MULTI/EXEC loop: after each
// failover every idle client answers from the new master with its state, the writers lose no
// acknowledged write and see errors only for writes in flight, the subscriber keeps receiving, and the
// loop sees only aborted transactions (and, for an EXEC in flight at the cut, the "may or may not have been
// applied" error), never another error, a lost increment or one applied twice.
func TestRESPFailoverIsInvisible(t *testing.T) {
	scenarios := []struct {
		name       string
		appendOnly bool
		// downAfter overrides the topology's 300ms (see chaos.downAfter).
		downAfter time.Duration
		act       func(t *testing.T, topo *redistest.Topology) string
		multiplex bool
	}{
		{name: "manual", act: func(t *testing.T, topo *redistest.Topology) string {
			m, err := topo.Failover(30 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}},
		// Down-after 1 s: at 300 ms, on this 2-core machine under the test's writers, a Sentinel flagged
		// the promoted replica +sdown within a second in about one run of three (the old code too) and the
		// Sentinels failed over back and forth, up to 8 route changes.
		{name: "kill", downAfter: time.Second, act: func(t *testing.T, topo *redistest.Topology) string {
			old, _ := topo.MasterAddr()
			topo.Node(old).Kill()
			return waitNewMaster(t, topo, old)
		}},
		{name: "pause", act: func(t *testing.T, topo *redistest.Topology) string {
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
		// The old master comes back from its AOF saying role:master, with its data, until Sentinel
		// converts it: the sessions must stay on the new master the whole time.
		{name: "restart", appendOnly: true, downAfter: time.Second, act: func(t *testing.T, topo *redistest.Topology) string {
			old, _ := topo.MasterAddr()
			n := topo.Node(old)
			n.Kill()
			m := waitNewMaster(t, topo, old)
			if err := n.Start(); err != nil {
				t.Fatal(err)
			}
			if err := topo.WaitRole(old, "slave", 20*time.Second); err != nil {
				t.Fatal(err)
			}
			return m
		}},
		// Sessions moved once move again: the state replayed on the second master is the client's, not
		// what the first replay left.
		{name: "twice", act: failoverTwice},
	}
	// The same with shared backend connections (multiplex = true), for a planned and an unplanned
	// failover: the named idle clients have connections of their own, the shared ones share.
	for _, name := range []string{"manual", "kill"} {
		for _, sc := range scenarios {
			if sc.name == name {
				sc.name, sc.multiplex = name+"-multiplex", true
				scenarios = append(scenarios, sc)
			}
		}
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			if long := sc.name != "manual" && sc.name != "kill" && sc.name != "manual-multiplex"; long && os.Getenv("SENTINEL_PROXY_LONG") == "" {
				t.Skip("a longer scenario: make test-long runs it (SENTINEL_PROXY_LONG=1)")
			}
			topo := redistest.New(t, redistest.Options{Replicas: 2, Sentinels: 3, Password: testPassword,
				AppendOnly: sc.appendOnly, DownAfter: sc.downAfter})
			cfg := inMode(testConfig(t, topo, topo.Name), "resp")
			if sc.multiplex {
				cfg = multiplexed(cfg)
			}
			p := startProxy(t, cfg)
			waitRoutedTo(t, p.master, topo.Nodes[0].Addr, 10*time.Second)
			idle := idleClients(t, p.master, 200)
			var shared []*redistest.Conn
			if sc.multiplex {
				shared = sharedIdleClients(t, p.master, 200)
			}
			sub := subscribe(t, p.master, "news")

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			events, err := redistest.RecordEvents(ctx, topo.SentinelAddrs())
			if err != nil {
				t.Fatal(err)
			}
			load := &redistest.WriteLoad{Addr: p.master, Password: testPassword, Writers: 4, Timeout: 10 * time.Second,
				Pause: 200 * time.Microsecond}
			results := make(chan *redistest.LoadResult, 1)
			go func() { results <- load.Run(ctx) }()
			cas := make(chan casRun, 1)
			go func() { cas <- casLoop(ctx, p.master, "cas-counter") }()
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
			logFrom := len(p.logs.String())
			start := time.Now()

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
			cuts := routeCuts(p.logs.String()[logFrom:])
			t.Logf("new master %s (final %s, %d route changes): %d writes acknowledged, %d failed; %d CAS increments, %d EXECs answered aborted, %d in flight at a cut; %d messages of %d published",
				newMaster, final, cuts, len(res.Acks), res.Errors, len(cr.acked), len(cr.aborted), len(cr.unknown), sub.received.Load(), published.Load())

			checkIdleClients(t, idle, final)
			checkSharedIdleClients(t, shared, final)
			checkMovesLogged(t, p, cuts)
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
			lost, err := res.Lost(final, testPassword)
			if err != nil {
				t.Fatal(err)
			}
			// The switch that counts is the last failover's: from the moment its leader began promoting,
			// only the final master may acknowledge writes.
			cut := start
			for _, e := range events.Events() {
				if e.Channel == "+failover-state-send-slaveof-noone" && e.At.After(cut) {
					cut = e.At
				}
			}
			switched, ok := res.FirstAckBy(final, cut)
			if !ok {
				t.Fatalf("no write acknowledged by the new master %s", final)
			}
			// After the switch only the new master acknowledges, but for the replies a drain read from a
			// live old master and gave once the new master was known to have their writes (docs/failover.md,
			// "The drain"): those are on the final master, never lost.
			lostKeys := map[string]bool{}
			for _, l := range lost {
				lostKeys[l.Key] = true
			}
			for _, a := range res.Acks {
				if a.At.After(switched.At) && a.Node != final && lostKeys[a.Key] {
					t.Errorf("write %s acknowledged by %s at %s, after the new master %s took writes at %s, and lost",
						a.Key, a.Node, a.At.Format("15:04:05.000"), final, switched.At.Format("15:04:05.000"))
					break
				}
			}
			// A manual failover loses nothing; a dead master may take with it what it acknowledged in its
			// last instant (asynchronous replication), never a write acknowledged after the switch.
			zeroLoss := sc.name == "manual" || sc.name == "twice"
			v, err := redistest.Do(final, testPassword, "GET", "cas-counter")
			if err != nil {
				t.Fatal(err)
			}
			counter, _ := strconv.Atoi(v)
			checkCAS(t, "cas-counter", cr, counter, switched.At, zeroLoss)
			for _, l := range lost {
				if zeroLoss || l.At.After(switched.At) {
					t.Errorf("%d acknowledged writes lost (first %s by %s at %s; switch at %s)", len(lost), l.Key, l.Node,
						l.At.Format("15:04:05.000"), switched.At.Format("15:04:05.000"))
					break
				}
			}
			// Writers do not retry: a write fails only if it was in flight at a cut, one per writer per
			// cut at most. A cut is the route leaving a master (to none or to another); a loaded machine
			// with a short down-after may make Sentinel fail over more than once.
			if res.Errors > load.Writers*max(cuts, 1) {
				t.Errorf("%d failed writes: more than the writes in flight at %d cuts", res.Errors, cuts)
			}
			if errors.Is(ctx.Err(), context.Canceled) && len(res.Acks) < 100 {
				t.Errorf("only %d writes acknowledged", len(res.Acks))
			}
		})
	}
}

// checkMovesLogged checks that every session move is in a sessions_moved line of the master port (a
// kill's too, where the sessions leave before the route does), and that each session moved at most
// once per route change.
func checkMovesLogged(t *testing.T, p *runningProxy, cuts int) {
	t.Helper()
	var moved, logged, sessions uint64
	err := redistest.Eventually(2*time.Second, func() error {
		moved, logged, sessions = 0, 0, 0
		for _, l := range statsJSON(t, p).Groups[0].Listeners {
			if l.Role == "master" {
				moved, sessions = l.Moved, l.Total
			}
		}
		for _, line := range strings.Split(p.logs.String(), "\n") {
			var ev struct {
				Event    string `json:"event"`
				Listener string `json:"listener"`
				Moved    uint64 `json:"sessions_moved"`
			}
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Event == "sessions_moved" && strings.HasSuffix(ev.Listener, "/master") {
				logged += ev.Moved
			}
		}
		if logged != moved {
			return fmt.Errorf("sessions_moved lines add up to %d moves, the master port counted %d", logged, moved)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if moved == 0 || moved > sessions*uint64(max(cuts, 1)) {
		t.Errorf("%d moves for %d sessions and %d route changes: want each session moved once per change at most", moved, sessions, cuts)
	}
}

// routeCuts counts the times the master route changed in a proxy log: each one retires the sessions of
// the master it leaves, and a write in flight then may fail.
func routeCuts(log string) int {
	return strings.Count(log, `"event":"master_switched"`) + strings.Count(log, `"event":"no_master"`)
}

// checkCAS checks the increments the WATCH/MULTI/EXEC loop had acknowledged against the counter on the
// final master. Each acknowledged EXEC set the counter one above what the loop had read, so the values
// climb by one. A failover that loses increments (asynchronous replication) makes the loop read an older
// value again; one back to a master with more history makes it read a newer one. An EXEC answered
// "aborted" that was applied makes it climb by two, with that EXEC in between: the client retries an
// increment that happened, and it happens twice. That is never allowed; the others only before the switch
// (a kill, a pause, and Sentinel failing over again on a loaded machine), and not at all when zeroLoss.
func checkCAS(t *testing.T, key string, run casRun, counter int, switched time.Time, zeroLoss bool) {
	t.Helper()
	acks := run.acked
	if len(acks) == 0 {
		t.Errorf("%s: the WATCH/MULTI/EXEC loop acknowledged nothing", key)
		return
	}
	// abortedTo names the EXECs answered aborted, between two times, that would have set v.
	abortedTo := func(v int, from, to time.Time) string {
		var at []string
		for _, a := range run.aborted {
			if a.Value == v && !a.At.Before(from) && !a.At.After(to) {
				at = append(at, a.At.Format("15:04:05.000000"))
			}
		}
		return strings.Join(at, ", ")
	}
	lost := 0
	for i := 1; i < len(acks); i++ {
		prev, cur := acks[i-1], acks[i]
		if cur.Value == prev.Value+1 {
			continue
		}
		if cur.Value == prev.Value+2 && fateUnknown(run, prev.Value+1, prev.At, cur.At) {
			continue // the EXEC in flight at a cut ran: the loop was told it may have
		}
		if cur.Value > prev.Value+1 {
			phantom := ""
			if cur.Value == prev.Value+2 {
				phantom = abortedTo(prev.Value+1, prev.At, cur.At)
			}
			what := fmt.Sprintf("%s read %d after the loop had set %d (acknowledged at %s and %s)", key, cur.Value-1,
				prev.Value, prev.At.Format("15:04:05.000000"), cur.At.Format("15:04:05.000000"))
			switch {
			case phantom != "":
				t.Errorf("%s: the EXEC answered aborted at %s was applied", what, phantom)
			case zeroLoss || cur.At.After(switched):
				t.Errorf("%s: its session went to a node with another history", what)
			default:
				t.Logf("%s: its session went to a node with another history before the switch", what)
			}
			continue
		}
		// Increments acks[j] with Value >= cur.Value, j < i, were lost.
		for j := i - 1; j >= 0 && acks[j].Value >= cur.Value; j-- {
			lost++
			if zeroLoss || acks[j].At.After(switched) {
				t.Errorf("%s: increment to %d acknowledged at %s was lost (switch at %s)", key, acks[j].Value,
					acks[j].At.Format("15:04:05.000"), switched.Format("15:04:05.000"))
				return
			}
		}
	}
	last := acks[len(acks)-1]
	switch {
	case counter < last.Value:
		t.Errorf("%s on the final master is %d, the last acknowledged increment set %d at %s", key, counter,
			last.Value, last.At.Format("15:04:05.000"))
	case counter == last.Value+1 && fateUnknown(run, counter, last.At, time.Now()):
	case counter > last.Value:
		t.Errorf("%s on the final master is %d, above the last acknowledged increment's %d: the EXEC answered "+
			"aborted at %s was applied", key, counter, last.Value, abortedTo(last.Value+1, last.At, time.Now()))
	}
	if lost > 0 {
		t.Logf("%s: %d increments acknowledged before the switch were lost with the master that acknowledged them", key, lost)
	}
}

// fateUnknown reports whether the loop was told, between from and to, that an EXEC setting v was in
// flight at a cut and may or may not have been applied.
func fateUnknown(run casRun, v int, from, to time.Time) bool {
	for _, a := range run.unknown {
		if a.Value == v && !a.At.Before(from) && !a.At.After(to) {
			return true
		}
	}
	return false
}

// TestRESPWatchedExecInFlight runs 16 WATCH/MULTI/EXEC increment loops, each on its own key, through
// two manual failovers in a row, so that some EXEC is in flight at a cut. A manual failover loses no
// acknowledged write, so on the final master each key must hold exactly what its loop was told: no
// increment lost, and none applied that the loop was told was aborted (it would retry it, and the
// increment would happen twice).
func TestRESPWatchedExecInFlight(t *testing.T) {
	topo := redistest.New(t, redistest.Options{Replicas: 2, Sentinels: 3, Password: testPassword, DownAfter: 2 * time.Second})
	p := startProxy(t, inMode(testConfig(t, topo, topo.Name), "resp"))
	waitRoutedTo(t, p.master, topo.Nodes[0].Addr, 10*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const loops = 16
	runs := make([]chan casRun, loops)
	for i := range runs {
		runs[i] = make(chan casRun, 1)
		go func() { runs[i] <- casLoop(ctx, p.master, fmt.Sprintf("cas:%d", i)) }()
	}
	time.Sleep(300 * time.Millisecond)
	for k := 0; k < 2; k++ {
		if k > 0 {
			if err := topo.WaitSettled(2, 30*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		m, err := topo.Failover(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		waitRoutedTo(t, p.master, m, 10*time.Second)
		time.Sleep(200 * time.Millisecond) // transactions on the new master
	}
	final, err := topo.AgreedMaster(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	waitRoutedTo(t, p.master, final, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	cancel()
	acked, aborted, unknown := 0, 0, 0
	for i, ch := range runs {
		r := <-ch
		key := fmt.Sprintf("cas:%d", i)
		if r.err != nil {
			t.Errorf("%s: the loop saw an error: %v", key, r.err)
		}
		v, err := redistest.Do(final, testPassword, "GET", key)
		if err != nil {
			t.Fatal(err)
		}
		counter, _ := strconv.Atoi(v)
		checkCAS(t, key, r, counter, time.Time{}, true)
		acked += len(r.acked)
		aborted += len(r.aborted)
		unknown += len(r.unknown)
	}
	t.Logf("%d increments acknowledged, %d EXECs answered aborted, %d in flight at a cut", acked, aborted, unknown)
}
