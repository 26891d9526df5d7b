package switchover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/check"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
)

// world fakes a master, its replicas, one Sentinel and the proxy around them, and records what the
// switchover did to them, in order. Its Sentinel selects a replica as sentinelSelectSlave does, from
// the priorities it last read: it reads them again only when asked for its replicas, and only once its
// INFO period is short or it has been asked a few times (a refresh).
type world struct {
	mu           sync.Mutex
	actions      []string
	priority     map[string]int // configured on each replica
	seen         map[string]int // as the Sentinel last read it
	asked        int
	infoPeriod   time.Duration
	noDebug      bool // the Sentinel has no SENTINEL DEBUG
	paused       bool
	held         bool
	proxyHold    bool // the proxy can hold the group's commands
	masterOffset int64
	offsets      map[string]int64 // each replica's applied offset
	catchUpAfter int              // Replication calls on a replica before it has caught up; -1 never
	failoverErr  error
	setErr       map[string]error // SetReplicaPriority fails on these
	announced    bool
	snap         atomic.Pointer[routing.Snapshot]
	routed       atomic.Value // string
	promoted     string
	panicIn      string            // a method that panics
	follows      map[string]string // the node each was told to replicate from (Follow)
	followErr    error
}

func newWorld() *world {
	w := &world{priority: map[string]int{repA: 100, repB: 100, repC: 100}, seen: map[string]int{repA: 100, repB: 100, repC: 100},
		infoPeriod: 10 * time.Second, masterOffset: 5000, offsets: map[string]int64{repA: 4990, repB: 4000, repC: 4900},
		setErr: map[string]error{}}
	g := settled(replicaNode(repA, 10), replicaNode(repB, 1000), replicaNode(repC, 100))
	w.snap.Store(&routing.Snapshot{Groups: []routing.GroupSnapshot{*g}})
	w.routed.Store(master)
	return w
}

func (w *world) do(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.actions = append(w.actions, fmt.Sprintf(format, args...))
}

func (w *world) did() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.actions...)
}

// index returns where action first appears in what was done, or -1.
func (w *world) index(action string) int { return slices.Index(w.did(), action) }

func (w *world) maybePanic(method string) {
	if w.panicIn == method {
		panic(method + " broke")
	}
}

func (w *world) Replication(_ context.Context, addr string) (check.Replication, error) {
	w.maybePanic("Replication")
	w.mu.Lock()
	defer w.mu.Unlock()
	to := w.follows[addr]
	if addr == master && to == "" {
		return check.Replication{Role: "master", MasterReplID: "h1", MasterReplOffset: w.masterOffset}, nil
	}
	if to == "" {
		to = master
	}
	host, port, _ := net.SplitHostPort(to)
	portNum, _ := strconv.Atoi(port)
	if w.catchUpAfter == 0 {
		w.offsets[addr] = w.masterOffset
	} else if w.catchUpAfter > 0 {
		w.catchUpAfter--
	}
	return check.Replication{Role: "slave", MasterHost: host, MasterPort: portNum, MasterLinkStatus: "up", MasterReplID: "h1",
		SlaveReplOffset: w.offsets[addr]}, nil
}

func (w *world) RunID(_ context.Context, addr string) (string, error) { return "id-" + addr, nil }

func (w *world) ReplicaPriority(_ context.Context, addr string) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.priority[addr], nil
}

func (w *world) SetReplicaPriority(_ context.Context, addr string, p int) error {
	w.mu.Lock()
	err := w.setErr[addr]
	if err == nil {
		w.priority[addr] = p
	}
	w.mu.Unlock()
	w.do("priority %s %d", addr, p)
	return err
}

func (w *world) PauseWrites(context.Context, string, time.Duration) error {
	w.mu.Lock()
	w.paused = true
	w.mu.Unlock()
	w.do("pause")
	return nil
}

func (w *world) Unpause(context.Context, string) error {
	w.mu.Lock()
	w.paused = false
	w.mu.Unlock()
	w.do("unpause")
	return nil
}

func (w *world) Follow(_ context.Context, addr, to string, convert bool) error {
	w.do("follow %s %s %v", addr, to, convert)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.followErr != nil && addr == master {
		return w.followErr
	}
	if w.follows == nil {
		w.follows = map[string]string{}
	}
	w.follows[addr] = to
	return nil
}

func (w *world) ThroughPort(context.Context, string) (string, string, error) {
	routed := w.Routed("g")
	return "id-" + routed, "master", nil
}

func (w *world) Replicas(context.Context, string, string) ([]SentinelReplica, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.asked++
	if w.infoPeriod <= fastInfoPeriod || w.asked%5 == 0 {
		for a, p := range w.priority {
			w.seen[a] = p
		}
	}
	var out []SentinelReplica
	for _, a := range []string{repA, repB, repC} {
		out = append(out, SentinelReplica{Addr: a, Flags: "slave", Priority: w.seen[a], Offset: w.offsets[a], RunID: "id-" + a, LinkOK: true})
	}
	return out, nil
}

// Failover selects as sentinelSelectSlave does (offsets are equal once caught up: then the run id) and
// has the proxy route to it shortly after, as the router would.
func (w *world) Failover(context.Context, string, string) error {
	w.do("failover")
	if w.failoverErr != nil {
		return w.failoverErr
	}
	w.mu.Lock()
	best := ""
	for _, a := range []string{repA, repB, repC} {
		p := w.seen[a]
		if p == 0 {
			continue
		}
		if best == "" || p < w.seen[best] || p == w.seen[best] && w.offsets[a] > w.offsets[best] {
			best = a
		}
	}
	w.promoted = best
	w.mu.Unlock()
	time.AfterFunc(5*time.Millisecond, func() {
		w.routed.Store("")
		time.AfterFunc(5*time.Millisecond, func() {
			g := w.snap.Load().Groups[0]
			g.Master, g.Named = best, best
			w.snap.Store(&routing.Snapshot{Groups: []routing.GroupSnapshot{g}})
			w.routed.Store(best)
		})
	})
	return nil
}

func (w *world) InfoPeriod(context.Context, string) (time.Duration, error) {
	if w.noDebug {
		return 0, errors.New("ERR unknown subcommand 'debug'")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.infoPeriod, nil
}

func (w *world) SetInfoPeriod(_ context.Context, _ string, d time.Duration) error {
	w.mu.Lock()
	w.infoPeriod = d
	w.mu.Unlock()
	w.do("info-period %s", d)
	return nil
}

func (w *world) HoldWrites(context.Context, string) (func(), error) {
	if !w.proxyHold {
		return nil, ErrHoldUnsupported
	}
	w.mu.Lock()
	w.held = true
	w.mu.Unlock()
	w.do("hold")
	return func() {
		w.mu.Lock()
		w.held = false
		w.mu.Unlock()
		w.do("release")
	}, nil
}

func (w *world) Snapshot() *routing.Snapshot { return w.snap.Load() }

func (w *world) Routed(string) string { return w.routed.Load().(string) }

func (w *world) MasterPort(string) (string, bool) { return "127.0.0.1:5000", true }

func (w *world) Announce(_ context.Context, group, target, by string) (func(), error) {
	w.mu.Lock()
	w.announced = true
	w.mu.Unlock()
	w.do("announce %s", target)
	return func() {
		w.mu.Lock()
		w.announced = false
		w.mu.Unlock()
		w.do("end")
	}, nil
}

func runner(w *world, logs *redistest.SyncBuffer) *Runner {
	return &Runner{Routing: w, Hold: w, Log: zerolog.New(logs),
		Connect: func() (Nodes, Sentinels, func()) { return w, w, func() {} }}
}

// untouched checks that the world is as before the switchover: nothing paused or held, every priority
// and the Sentinel's INFO period as they were, the router's mark gone.
func untouched(t *testing.T, w *world) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paused || w.held {
		t.Errorf("writes left paused=%v held=%v", w.paused, w.held)
	}
	for a, p := range w.priority {
		if p != 100 {
			t.Errorf("replica-priority of %s left at %d", a, p)
		}
	}
	if w.infoPeriod != 10*time.Second {
		t.Errorf("Sentinel INFO period left at %s", w.infoPeriod)
	}
	if w.announced {
		t.Errorf("the router's mark was not ended")
	}
}

func TestSwitchoverToANamedReplicaSteersPausesAndRestores(t *testing.T) {
	w := newWorld()
	logs := &redistest.SyncBuffer{}
	var lines []string
	res, err := runner(w, logs).Run(context.Background(), Request{Group: "g", To: repB, By: "test"},
		func(s Step) { lines = append(lines, s.String()) })
	if err != nil || res.Err != nil {
		t.Fatalf("run: %v %v\n%s", err, res.Err, strings.Join(lines, "\n"))
	}
	if w.promoted != repB || res.Target != repB || res.Old != master {
		t.Fatalf("promoted %s, result %+v", w.promoted, res)
	}
	untouched(t, w)
	if len(lines) != 8 {
		t.Errorf("want a line per step, got:\n%s", strings.Join(lines, "\n"))
	}
	// Steering happens before the pause (which it must not lengthen); the Sentinel's INFO period is back
	// before the pause too; writes are released only once the proxy routes to the target; the old master
	// follows the new one once the writes go on there.
	order := []string{"priority " + repA + " 0", "priority " + repC + " 0", "info-period 100ms", "info-period 10s",
		"pause", "failover", "unpause", "follow " + master + " " + repB + " true", "follow " + repA + " " + repB + " false",
		"priority " + repA + " 100", "priority " + repC + " 100", "end"}
	last := -1
	for _, a := range order {
		i := w.index(a)
		if i <= last {
			t.Fatalf("%q out of order in %v", a, w.did())
		}
		last = i
	}
	if !strings.HasPrefix(res.Summary(), "switchover completed: g master "+master+" -> "+repB) {
		t.Errorf("summary: %s", res.Summary())
	}
	// The old master converted as Sentinel would, the other replicas pointed at the target, every link seen up.
	if w.index("follow "+repC+" "+repB+" false") < 0 {
		t.Errorf("replica %s not pointed at the target: %v", repC, w.did())
	}
	if rejoin := res.Steps[len(res.Steps)-1]; rejoin.Name != StepRejoin || !strings.Contains(rejoin.Detail, "links up after") {
		t.Errorf("last step: %+v", rejoin)
	}
	out := logs.String()
	for _, want := range []string{`"event":"switchover_started"`, `"event":"switchover_completed"`, `"catch_up_ms":`,
		`"held_ms":`, `"rejoin_ms":`, `"target":"` + repB + `"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s:\n%s", want, out)
		}
	}
}

// A refused REPLICAOF on the old master does not fail a switchover that has completed: Sentinel
// converts the old master itself later.
func TestSwitchoverCompletesWhenTheOldMasterCannotRejoin(t *testing.T) {
	w := newWorld()
	w.followErr = errors.New("NOPERM this user has no permissions to run the 'replicaof' command")
	res, _ := runner(w, &redistest.SyncBuffer{}).Run(context.Background(), Request{Group: "g", To: repA}, nil)
	if res.Err != nil || w.promoted != repA {
		t.Fatalf("promoted %s: %v", w.promoted, res.Err)
	}
	rejoin := res.Steps[len(res.Steps)-1]
	if rejoin.Name != StepRejoin || !strings.Contains(rejoin.Detail, "not done: "+master+" (Sentinel will convert it): NOPERM") ||
		!strings.Contains(rejoin.Detail, "links up after") {
		t.Errorf("last step: %+v", rejoin)
	}
	untouched(t, w)
}

func TestSwitchoverChoosesTheHighestOffsetAndNeedsNoSteeringWhenPrioritiesSayIt(t *testing.T) {
	w := newWorld()
	w.priority[repA], w.seen[repA] = 10, 10 // Sentinel prefers A over anyone: nothing to steer
	res, _ := runner(w, &redistest.SyncBuffer{}).Run(context.Background(), Request{Group: "g"}, nil)
	if res.Err != nil || w.promoted != repA {
		t.Fatalf("promoted %s: %v", w.promoted, res.Err)
	}
	for _, a := range w.did() {
		if strings.HasPrefix(a, "priority") || strings.HasPrefix(a, "info-period") {
			t.Errorf("steered although not needed: %v", w.did())
		}
	}
	if !strings.Contains(res.Steps[1].Detail, "not needed") {
		t.Errorf("steer step: %+v", res.Steps[1])
	}
}

func TestSwitchoverHoldsInTheProxyWhenItCan(t *testing.T) {
	w := newWorld()
	w.proxyHold = true
	res, _ := runner(w, &redistest.SyncBuffer{}).Run(context.Background(), Request{Group: "g", To: repC}, nil)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if w.index("pause") >= 0 || w.index("hold") < 0 || w.index("release") < w.index("failover") {
		t.Errorf("want a proxy hold released after the failover, no pause: %v", w.did())
	}
	untouched(t, w)
}

func TestSwitchoverWithoutSentinelDebugWaitsForTheRefresh(t *testing.T) {
	w := newWorld()
	w.noDebug = true
	res, _ := runner(w, &redistest.SyncBuffer{}).Run(context.Background(), Request{Group: "g", To: repB}, nil)
	if res.Err != nil || w.promoted != repB {
		t.Fatalf("promoted %s: %v", w.promoted, res.Err)
	}
	if !strings.Contains(res.Steps[1].Detail, "next INFO refresh") {
		t.Errorf("steer step: %+v", res.Steps[1])
	}
}

func TestSwitchoverAbortsWhenTheSentinelRefuses(t *testing.T) {
	w := newWorld()
	w.failoverErr = errors.New("NOGOODSLAVE No suitable replica to promote")
	logs := &redistest.SyncBuffer{}
	res, _ := runner(w, logs).Run(context.Background(), Request{Group: "g", To: repB}, nil)
	if res.Err == nil || res.Reached != StepFailover || !strings.Contains(res.Err.Error(), "NOGOODSLAVE") {
		t.Fatalf("want an abort in step failover with the Sentinel's reason, got %s: %v", res.Reached, res.Err)
	}
	untouched(t, w)
	if !strings.Contains(res.Summary(), "switchover aborted in step failover") || !strings.Contains(res.Summary(), "writes released") {
		t.Errorf("summary: %s", res.Summary())
	}
	if !strings.Contains(logs.String(), `"event":"switchover_aborted"`) || !strings.Contains(logs.String(), `"step":"failover"`) {
		t.Errorf("logs:\n%s", logs.String())
	}
}

func TestSwitchoverAbortsWhenTheTargetDoesNotCatchUpInTime(t *testing.T) {
	w := newWorld()
	w.catchUpAfter = -1
	start := time.Now()
	res, _ := runner(w, &redistest.SyncBuffer{}).Run(context.Background(), Request{Group: "g", To: repB, Timeout: 300 * time.Millisecond}, nil)
	if res.Err == nil || res.Reached != StepCatchUp || !strings.Contains(res.Err.Error(), "past the timeout") {
		t.Fatalf("want an abort in catch-up past the timeout, got %s: %v", res.Reached, res.Err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the abort took %s", took)
	}
	if w.index("failover") >= 0 {
		t.Errorf("failed over a replica that had not caught up: %v", w.did())
	}
	untouched(t, w)
}

func TestSwitchoverReportsWhatItCouldNotRestore(t *testing.T) {
	w := newWorld()
	w.failoverErr = errors.New("INPROG")
	r := runner(w, &redistest.SyncBuffer{})
	r.AfterStep = func(_, step string) {
		if step == StepSteer {
			w.mu.Lock()
			w.setErr[repA] = errors.New("connection refused")
			w.mu.Unlock()
		}
	}
	res, _ := r.Run(context.Background(), Request{Group: "g", To: repB}, nil)
	if len(res.NotRestored) != 1 || !strings.Contains(res.NotRestored[0], "replica-priority of "+repA+" is 0, was 100") {
		t.Fatalf("not restored: %v", res.NotRestored)
	}
	if !strings.Contains(res.Summary(), "NOT RESTORED") {
		t.Errorf("summary: %s", res.Summary())
	}
}

func TestSwitchoverTurnsAPanicIntoAnAbortAndRestores(t *testing.T) {
	w := newWorld()
	w.panicIn = "Replication"
	res, _ := runner(w, &redistest.SyncBuffer{}).Run(context.Background(), Request{Group: "g", To: repB}, nil)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "internal error: Replication broke") || res.Reached != StepCatchUp {
		t.Fatalf("got %s: %v", res.Reached, res.Err)
	}
	untouched(t, w)
}

func TestOneSwitchoverAtATime(t *testing.T) {
	w := newWorld()
	r := runner(w, &redistest.SyncBuffer{})
	var second error
	r.AfterStep = func(_, step string) {
		if step == StepHold {
			_, second = r.Run(context.Background(), Request{Group: "g"}, nil)
		}
	}
	res, err := r.Run(context.Background(), Request{Group: "g", To: repB}, nil)
	if err != nil || res.Err != nil {
		t.Fatalf("first: %v %v", err, res.Err)
	}
	if !errors.Is(second, ErrBusy) {
		t.Fatalf("second switchover while one runs: %v, want ErrBusy", second)
	}
	r.AfterStep = nil
	if _, err := r.Run(context.Background(), Request{Group: "g", To: master}, nil); errors.Is(err, ErrBusy) {
		t.Fatalf("still busy after the first ended")
	}
}

func TestSwitchoverRefusesAReplicaSentinelNeverPromotes(t *testing.T) {
	w := newWorld()
	w.priority[repB], w.seen[repB] = 0, 0
	res, _ := runner(w, &redistest.SyncBuffer{}).Run(context.Background(), Request{Group: "g", To: repB}, nil)
	if res.Err == nil || res.Reached != StepChoose || !strings.Contains(res.Err.Error(), "replica-priority is 0") {
		t.Fatalf("got %s: %v", res.Reached, res.Err)
	}
	if len(w.did()) != 0 {
		t.Errorf("changed things before refusing: %v", w.did())
	}
}
