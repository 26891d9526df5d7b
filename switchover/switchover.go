// Package switchover moves a group's master on purpose (maintenance, upgrades) so that the clients of
// the proxy lose no acknowledged write: it holds the writes, waits until the chosen replica has every
// one of them, has Sentinel promote exactly that replica, and lets the writes go to it.
//
// It owns the orchestration only. Routing stays with the router: a switchover announces itself
// (routing.SwitchoverInput) and watches the snapshots, and the router cuts and routes as for any
// failover. Holding commands is the proxy's (Hold); the Redis and Sentinel commands go through the small
// interfaces below, which Clients implements with go-redis and unit tests fake. The decisions (which
// replica, whether Sentinel must be steered, whether the target caught up) are pure functions (plan.go).
//
// It must never leave writes paused, replica priorities lowered or a Sentinel setting changed: whatever
// ends a switchover (success, a failed step, the timeout, a panic), what it changed is put back before Run
// returns, and what could not be is reported.
package switchover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/check"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
)

// The steps of a switchover, in order, as progress lines, log fields and the step an abort reached name them.
const (
	StepChoose   = "choose"   // the target, the Sentinel to ask, the replicas to steer
	StepSteer    = "steer"    // replica-priority 0 on the replicas the Sentinel might pick instead
	StepHold     = "hold"     // writes held: in the proxy, or CLIENT PAUSE WRITE on the master
	StepCatchUp  = "catch-up" // the target applied every write the master acknowledged
	StepFailover = "failover" // SENTINEL FAILOVER, until the master port routes to the target
	StepRelease  = "release"  // the held writes go on, to the new master
	StepVerify   = "verify"   // the new master answers as master through the proxy's master port
	StepRejoin   = "rejoin"   // the old master replicates from the new one, as Sentinel would make it later
)

// ErrBusy is returned, before anything is done, when a switchover is already running in this proxy.
var ErrBusy = errors.New("a switchover is already running")

// ErrHoldUnsupported is what a Hold returns when the group's sessions cannot hold commands in the proxy;
// writes are then paused on the master instead (CLIENT PAUSE WRITE).
var ErrHoldUnsupported = errors.New("the proxy cannot hold this group's commands")

// Nodes reaches the data nodes with the proxy's [redis] credentials.
type Nodes interface {
	// Replication returns the node's INFO replication.
	Replication(ctx context.Context, addr string) (check.Replication, error)
	// RunID returns the node's run_id (INFO server).
	RunID(ctx context.Context, addr string) (string, error)
	ReplicaPriority(ctx context.Context, addr string) (int, error)
	SetReplicaPriority(ctx context.Context, addr string, priority int) error
	// PauseWrites runs CLIENT PAUSE <d> WRITE: Redis itself ends the pause after d if nobody does.
	PauseWrites(ctx context.Context, addr string, d time.Duration) error
	Unpause(ctx context.Context, addr string) error
	// ThroughPort asks, as a client of the proxy's master port at port, who answers: its run_id and role.
	ThroughPort(ctx context.Context, port string) (runID, role string, err error)
	// Follow makes the node a replica of master. As Sentinel converts an old master (convert): REPLICAOF,
	// CONFIG REWRITE and CLIENT KILL of its normal and pub/sub clients, in one transaction; otherwise a
	// bare REPLICAOF. Only a refused REPLICAOF is an error.
	Follow(ctx context.Context, addr, master string, convert bool) error
}

// Sentinels reaches the Sentinels with the proxy's [sentinel] credentials.
type Sentinels interface {
	Replicas(ctx context.Context, sentinel, group string) ([]SentinelReplica, error)
	// Failover runs SENTINEL FAILOVER: the Sentinel promotes the replica it selects, without asking the others.
	Failover(ctx context.Context, sentinel, group string) error
	// InfoPeriod and SetInfoPeriod read and set how often the Sentinel refreshes INFO from the nodes
	// (SENTINEL DEBUG info-period, Redis 7.0+); an error means it cannot be changed.
	InfoPeriod(ctx context.Context, sentinel string) (time.Duration, error)
	SetInfoPeriod(ctx context.Context, sentinel string, d time.Duration) error
}

// Hold holds a group's writes in the proxy.
type Hold interface {
	// HoldWrites returns once the commands already sent to the group's master are answered; new ones
	// wait in the proxy until release, and then go to the master port's route in force. It returns
	// ErrHoldUnsupported when the group's sessions cannot do that.
	HoldWrites(ctx context.Context, group string) (release func(), err error)
}

// Routing is the router and the master port as a switchover sees them.
type Routing interface {
	Snapshot() *routing.Snapshot
	// Routed is the node the group's master port sends clients to now, as the forwarder applied it; ""
	// when none.
	Routed(group string) string
	// MasterPort is the address a client on this host reaches the group's master port at; ok is false
	// when a plain connection cannot (TLS on the port).
	MasterPort(group string) (addr string, ok bool)
	// Announce tells the router that a switchover of group to target begins; end tells it that it ended.
	Announce(ctx context.Context, group, target, by string) (end func(), err error)
}

// Request is one switchover an operator asked for.
type Request struct {
	Group   string
	To      string        // the replica to promote; empty lets the switchover choose
	Timeout time.Duration // for the whole switchover; past it, it aborts. If zero, DefaultTimeout
	By      string        // who asked, for the logs and the failover history
}

// DefaultTimeout bounds a switchover whose Request says nothing.
const DefaultTimeout = 5 * time.Second

// Step is one finished step, as a progress line shows it.
type Step struct {
	Name   string
	Took   time.Duration
	Detail string
}

func (s Step) String() string {
	return fmt.Sprintf("%-9s %9.1f ms  %s", s.Name, ms(s.Took), s.Detail)
}

// Result is how a switchover ended.
type Result struct {
	Group, Old, Target string
	Steps              []Step
	Took               time.Duration
	Held               time.Duration // how long writes were held (0 if they never were)
	// Err is why it aborted, nil when the new master takes writes through the proxy; Reached is the step
	// it aborted in.
	Err     error
	Reached string
	// Restored lists what was put back; NotRestored what could not be (the operator must see to it).
	Restored, NotRestored []string
}

// Summary is the last progress line: the outcome.
func (r Result) Summary() string {
	if r.Err == nil {
		s := fmt.Sprintf("switchover completed: %s master %s -> %s in %.1f ms, writes held %.1f ms",
			r.Group, r.Old, r.Target, ms(r.Took), ms(r.Held))
		if len(r.Restored) > 0 {
			s += "; put back: " + strings.Join(r.Restored, "; ")
		}
		if len(r.NotRestored) > 0 {
			s += "; NOT RESTORED: " + strings.Join(r.NotRestored, "; ")
		}
		return s
	}
	s := fmt.Sprintf("switchover aborted in step %s after %.1f ms: %v", r.Reached, ms(r.Took), r.Err)
	if len(r.Restored) > 0 {
		s += "; restored: " + strings.Join(r.Restored, "; ")
	}
	if len(r.NotRestored) > 0 {
		s += "; NOT RESTORED: " + strings.Join(r.NotRestored, "; ")
	}
	return s
}

// Runner runs switchovers, one at a time. Set Routing, Hold and Connect.
type Runner struct {
	Routing Routing
	Hold    Hold
	// Connect makes the connections one switchover uses, with the credentials in force; done closes them.
	Connect func() (nodes Nodes, sentinels Sentinels, done func())
	Log     zerolog.Logger
	// AfterStep, if set, is called on the switchover's goroutine after each step that succeeded, before
	// the next begins: tests break things between steps with it.
	AfterStep func(group, step string)

	running atomic.Bool
}

// Timings of the waits. Writes are held during the catch-up and the failover, so those are polled often;
// the snapshot is an atomic load and the target's INFO a round trip on a local network.
const (
	catchUpPoll  = 2 * time.Millisecond
	routePoll    = 2 * time.Millisecond
	steerPoll    = 20 * time.Millisecond
	pauseMargin  = time.Second // CLIENT PAUSE outlives the timeout by this much, so only Redis's own end of it, not a race with it, can release writes early
	restoreLimit = 5 * time.Second
	// rejoinWait bounds how long the rejoin step waits to see the old master's link to the new one up:
	// a partial resynchronisation takes milliseconds; past it, the line says the link is not up yet.
	rejoinWait = time.Second
	// fastInfoPeriod is the Sentinel's INFO period while it must learn the steered priorities: every
	// 100 ms instead of every 10 s, for a second or so, on one Sentinel.
	fastInfoPeriod = 100 * time.Millisecond
	// afterTimeout is what the release and the check after a completed promotion get beyond the timeout:
	// the master has moved and cannot be moved back, so running out of time must not make it look failed.
	afterTimeout = 2 * time.Second
	// cutGrace bounds how long, after SENTINEL FAILOVER was accepted, an abort keeps the writes held
	// while the master port still routes to the old master: released earlier, they could be acknowledged
	// by a master the Sentinel is about to demote.
	cutGrace = 2 * time.Second
)

// Run performs one switchover and returns how it ended, reporting each step through progress (which
// may be nil) as it finishes. It returns ErrBusy at once when another switchover is running.
func (r *Runner) Run(ctx context.Context, req Request, progress func(Step)) (Result, error) {
	if !r.running.CompareAndSwap(false, true) {
		return Result{}, ErrBusy
	}
	defer r.running.Store(false)
	if req.Timeout <= 0 {
		req.Timeout = DefaultTimeout
	}
	nodes, sentinels, done := r.Connect()
	defer done()
	sw := &run{Runner: r, req: req, nodes: nodes, sentinels: sentinels, progress: progress,
		start: time.Now(), res: Result{Group: req.Group}}
	sw.deadline = sw.start.Add(req.Timeout)
	sw.perform(ctx)
	return sw.res, nil
}

// run is one switchover: what it found, and what it changed and must put back.
type run struct {
	*Runner
	req       Request
	nodes     Nodes
	sentinels Sentinels
	progress  func(Step)
	start     time.Time
	deadline  time.Time
	res       Result

	sentinel string // the Sentinel asked to fail over, and whose view of the priorities counts
	replicas []SentinelReplica

	// What must be put back, in the order it is put back.
	release        func() error  // the held writes; nil once released
	heldAt         time.Time     // when writes began to be held
	failoverSentAt time.Time     // when SENTINEL FAILOVER was accepted
	priorities     []priority    // replica priorities changed, with their values before
	infoPeriod     time.Duration // the Sentinel's INFO period before it was lowered; 0 if it was not
	endAnnounce    func()        // the router's mark
	stepTimes      map[string]time.Duration
}

type priority struct {
	addr   string
	before int
}

// perform runs the steps in order; the first that fails ends it. What was changed is put back whatever
// happens, a panic included (which then becomes the abort's reason).
func (sw *run) perform(ctx context.Context) {
	sw.stepTimes = map[string]time.Duration{}
	ctx, cancel := context.WithDeadline(ctx, sw.deadline)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			sw.res.Err = fmt.Errorf("internal error: %v", p)
		}
		sw.restore()
		sw.finish()
	}()
	steps := []struct {
		name string
		do   func(context.Context) (string, error)
	}{
		{StepChoose, sw.choose}, {StepSteer, sw.steer}, {StepHold, sw.hold}, {StepCatchUp, sw.catchUp},
		{StepFailover, sw.failover}, {StepRelease, sw.releaseWrites}, {StepVerify, sw.verify},
		{StepRejoin, sw.rejoin},
	}
	for _, st := range steps {
		sw.res.Reached = st.name
		stepCtx := ctx
		if afterPromotion(st.name) {
			var cancelLate context.CancelFunc
			stepCtx, cancelLate = context.WithDeadline(context.WithoutCancel(ctx), sw.deadline.Add(afterTimeout))
			defer cancelLate()
		}
		began := time.Now()
		detail, err := st.do(stepCtx)
		took := time.Since(began)
		sw.stepTimes[st.name] = took
		if err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && !afterPromotion(st.name) {
				err = fmt.Errorf("%w (past the timeout, %s)", err, sw.req.Timeout)
			}
			sw.res.Err = err
			return
		}
		step := Step{Name: st.name, Took: took, Detail: detail}
		sw.res.Steps = append(sw.res.Steps, step)
		if sw.progress != nil {
			sw.progress(step)
		}
		if st.name == StepChoose {
			sw.logStarted()
		}
		if sw.AfterStep != nil {
			sw.AfterStep(sw.req.Group, st.name)
		}
	}
	sw.res.Reached = ""
}

// afterPromotion reports whether step comes after the promotion: the master has moved, so running out of
// time must not make the switchover look failed, and the step gets afterTimeout beyond it.
func afterPromotion(step string) bool {
	return step == StepRelease || step == StepVerify || step == StepRejoin
}

// choose checks that the group can be switched over and picks the target and the Sentinel to ask.
func (sw *run) choose(ctx context.Context) (string, error) {
	g := sw.Routing.Snapshot().Group(sw.req.Group)
	if g == nil {
		return "", fmt.Errorf("unknown group %q", sw.req.Group)
	}
	if err := checkGroup(g); err != nil {
		return "", fmt.Errorf("group %s: %w", g.Name, err)
	}
	if g.Switchover != nil {
		return "", fmt.Errorf("group %s: a switchover to %s is already marked", g.Name, g.Switchover.Target)
	}
	sw.res.Old = g.Master
	var errs []string
	for _, s := range sentinelCandidates(g) {
		replicas, err := sw.sentinels.Replicas(ctx, s, g.Name)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		sw.sentinel, sw.replicas = s, replicas
		break
	}
	if sw.sentinel == "" {
		if len(errs) == 0 {
			return "", fmt.Errorf("no reachable Sentinel names %s in epoch %d", g.Master, g.NamedEpoch)
		}
		return "", fmt.Errorf("no Sentinel lists the replicas: %s", strings.Join(errs, "; "))
	}
	target, why, err := chooseTarget(g, sw.replicas, sw.req.To)
	if err != nil {
		return "", err
	}
	sw.res.Target = target
	end, err := sw.Routing.Announce(ctx, g.Name, target, sw.req.By)
	if err != nil {
		return "", fmt.Errorf("announce to the router: %w", err)
	}
	sw.endAnnounce = end
	return fmt.Sprintf("target %s (%s); master %s; Sentinel %s", target, why, g.Master, sw.sentinel), nil
}

// steer makes the target the only replica the Sentinel can pick, before any write is held, so that the
// hold lasts only as long as the catch-up and the promotion.
func (sw *run) steer(ctx context.Context) (string, error) {
	steer := toSteer(sw.replicas, sw.res.Target)
	if len(steer) == 0 {
		return "not needed: Sentinel can pick no other replica", nil
	}
	var changed []string
	for _, r := range steer {
		before, err := sw.nodes.ReplicaPriority(ctx, r.Addr)
		if err != nil {
			if r.Down() {
				continue // the Sentinel cannot pick it either
			}
			return "", fmt.Errorf("replica-priority of %s: %w", r.Addr, err)
		}
		if before == 0 {
			continue
		}
		// Recorded before it is set: a reply lost to a timeout may still have been applied.
		sw.priorities = append(sw.priorities, priority{addr: r.Addr, before: before})
		if err := sw.nodes.SetReplicaPriority(ctx, r.Addr, 0); err != nil {
			if r.Down() {
				continue
			}
			return "", fmt.Errorf("set replica-priority 0 on %s: %w", r.Addr, err)
		}
		changed = append(changed, fmt.Sprintf("%s (was %d)", r.Addr, before))
	}
	// The Sentinel reads priorities from each replica's INFO, every 10 s by default. Lowering the period
	// on the one Sentinel that will fail over makes it learn them in a few hundred milliseconds; without
	// SENTINEL DEBUG (before Redis 7.0, or not allowed) the switchover waits for the next refresh.
	how := "at the Sentinel's next INFO refresh"
	if period, err := sw.sentinels.InfoPeriod(ctx, sw.sentinel); err == nil && period > fastInfoPeriod {
		sw.infoPeriod = period
		if err := sw.sentinels.SetInfoPeriod(ctx, sw.sentinel, fastInfoPeriod); err != nil {
			return "", fmt.Errorf("sentinel %s: set info-period: %w", sw.sentinel, err)
		}
		how = fmt.Sprintf("with its INFO period lowered from %s to %s meanwhile", period, fastInfoPeriod)
	}
	for {
		replicas, err := sw.sentinels.Replicas(ctx, sw.sentinel, sw.req.Group)
		if err == nil {
			missing := notSeen(replicas, steer)
			if len(missing) == 0 {
				break
			}
			err = fmt.Errorf("it does not report replica-priority 0 for %s yet", strings.Join(missing, ", "))
		}
		if wait(ctx, steerPoll) != nil {
			return "", fmt.Errorf("sentinel %s: %w", sw.sentinel, err)
		}
	}
	if err := sw.restoreInfoPeriod(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("replica-priority 0 on %s; Sentinel %s sees it (%s)", strings.Join(changed, ", "), sw.sentinel, how), nil
}

// hold holds the writes to the old master: in the proxy when its sessions can, otherwise on the master
// with CLIENT PAUSE WRITE, which lets reads and replication go on. The pause ends by itself shortly after
// the timeout, should this process die before it releases it.
func (sw *run) hold(ctx context.Context) (string, error) {
	release, err := sw.Hold.HoldWrites(ctx, sw.req.Group)
	if err == nil {
		sw.heldAt = time.Now()
		sw.release = func() error { release(); return nil }
		return "writes held in the proxy; commands in flight answered", nil
	}
	if !errors.Is(err, ErrHoldUnsupported) {
		return "", fmt.Errorf("hold writes in the proxy: %w", err)
	}
	old := sw.res.Old
	limit := time.Until(sw.deadline) + pauseMargin
	// Recorded before it is sent: a pause whose reply was lost may still be in force.
	sw.heldAt = time.Now()
	sw.release = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), restoreLimit)
		defer cancel()
		return sw.nodes.Unpause(ctx, old)
	}
	if err := sw.nodes.PauseWrites(ctx, old, limit); err != nil {
		return "", fmt.Errorf("CLIENT PAUSE WRITE on %s: %w", old, err)
	}
	return fmt.Sprintf("CLIENT PAUSE WRITE on %s (ends by itself after %s)", old, limit.Round(time.Millisecond)), nil
}

// catchUp waits until the target has applied every write the master had acknowledged when the hold began.
// A target that does not answer in time is waited for, as a slow node is not a dead one, until the
// switchover's timeout; one that refuses the connection or answers wrong ends the switchover at once, so
// that the writes are not held for nothing.
func (sw *run) catchUp(ctx context.Context) (string, error) {
	master, err := sw.nodes.Replication(ctx, sw.res.Old)
	if err != nil {
		return "", fmt.Errorf("master %s: %w", sw.res.Old, err)
	}
	if !master.IsMaster() {
		return "", fmt.Errorf("master %s reports role:%s", sw.res.Old, master.Role)
	}
	var lagged int64 = -1
	for {
		target, err := sw.nodes.Replication(ctx, sw.res.Target)
		if err == nil {
			var ok bool
			if ok, err = caughtUp(master, target); ok {
				if lagged < 0 {
					lagged = master.MasterReplOffset - target.SlaveReplOffset
				}
				return fmt.Sprintf("%s applied offset %d, the master's (it was %d bytes behind)",
					sw.res.Target, master.MasterReplOffset, max(lagged, 0)), nil
			}
			if err == nil && lagged < 0 {
				lagged = master.MasterReplOffset - target.SlaveReplOffset
			}
		}
		if err != nil && !slow(err) {
			return "", fmt.Errorf("target %s: %w", sw.res.Target, err)
		}
		if werr := wait(ctx, catchUpPoll); werr != nil {
			why := fmt.Sprintf("still behind the master's offset %d", master.MasterReplOffset)
			if err != nil {
				why = "not answering: " + err.Error()
			}
			return "", fmt.Errorf("target %s %s: %w", sw.res.Target, why, werr)
		}
	}
}

// failover has the Sentinel promote the target and waits until the master port routes to it. The router
// does the cutting and the routing, as in any failover.
func (sw *run) failover(ctx context.Context) (string, error) {
	if err := sw.sentinels.Failover(ctx, sw.sentinel, sw.req.Group); err != nil {
		return "", fmt.Errorf("sentinel %s refused SENTINEL FAILOVER: %w", sw.sentinel, err)
	}
	sw.failoverSentAt = time.Now()
	for {
		g := sw.Routing.Snapshot().Group(sw.req.Group)
		if g == nil {
			return "", fmt.Errorf("group %s is no longer configured", sw.req.Group)
		}
		if g.Named != "" && g.Named != sw.res.Old && g.Named != sw.res.Target {
			return "", fmt.Errorf("the Sentinels named %s, not the target", g.Named)
		}
		if g.Master == sw.res.Target && sw.Routing.Routed(sw.req.Group) == sw.res.Target {
			return fmt.Sprintf("Sentinel %s promoted %s; the master port routes to it", sw.sentinel, sw.res.Target), nil
		}
		if err := wait(ctx, routePoll); err != nil {
			why := g.NoMasterReason
			if g.Master != "" {
				why = "the master port still routes to " + g.Master
			}
			return "", fmt.Errorf("not promoted in time (%s): %w", why, err)
		}
	}
}

func (sw *run) releaseWrites(context.Context) (string, error) {
	how := "held commands go on to " + sw.res.Target
	if sw.heldAt.IsZero() {
		how = "nothing was held"
	}
	if err := sw.releaseHold(); err != nil {
		// The master moved; only the old one, now a replica, stays paused, and not past the pause's limit.
		return "", fmt.Errorf("release the writes held on %s: %w", sw.res.Old, err)
	}
	return fmt.Sprintf("%s; writes were held %.1f ms", how, ms(sw.res.Held)), nil
}

// verify checks, as a client would, that the master port reaches the target and that it answers as a
// master. Reading INFO through the port, rather than writing a key, needs no more than the probes'
// permissions (+info) and leaves the dataset untouched; role:master on a node that was never paused is
// what takes writes.
func (sw *run) verify(ctx context.Context) (string, error) {
	if routed := sw.Routing.Routed(sw.req.Group); routed != sw.res.Target {
		return "", fmt.Errorf("the master port routes to %q, not %s", routed, sw.res.Target)
	}
	port, ok := sw.Routing.MasterPort(sw.req.Group)
	if !ok {
		return "the master port routes to " + sw.res.Target + " (TLS port: not dialled)", nil
	}
	want, err := sw.nodes.RunID(ctx, sw.res.Target)
	if err != nil {
		return "", fmt.Errorf("target %s: %w", sw.res.Target, err)
	}
	got, role, err := sw.nodes.ThroughPort(ctx, port)
	if err != nil {
		return "", fmt.Errorf("through the master port %s: %w", port, err)
	}
	if got != want {
		return "", fmt.Errorf("through the master port %s answers run_id %s, not the target's %s", port, got, want)
	}
	if role != "master" {
		return "", fmt.Errorf("through the master port %s the target answers role:%s", port, role)
	}
	return fmt.Sprintf("%s answers role:master through the master port %s", sw.res.Target, port), nil
}

// rejoin points the old master and the other replicas at the new master now, rather than when
// Sentinel does. Sentinel converts the old master only once it has reported role:master for 8 s after
// the failover (four hello periods), on a replica's 10 s INFO period: measured, 11-12 s in which the
// group has one replica fewer (with wait_replicas = every replica, no write is confirmed) and a second
// node answers role:master. It reconfigures the other replicas once it sees the promotion in the new
// master's INFO, about a second after it. The old master gets what Sentinel sends it, the others a bare
// REPLICAOF (Sentinel's own, with its CLIENT KILL, still comes and finds them attached: Redis answers
// it "Already connected"), all to the address Sentinel knows the new master by. The step cannot fail
// the switchover, which has completed: its line says what was not done, which Sentinel then does.
func (sw *run) rejoin(ctx context.Context) (string, error) {
	old, target := sw.res.Old, sw.res.Target
	var notDone, sent []string
	if err := sw.nodes.Follow(ctx, old, target, true); err != nil {
		notDone = append(notDone, fmt.Sprintf("%s (Sentinel will convert it): %v", old, err))
	} else {
		sent = append(sent, old)
	}
	for _, r := range sw.replicas {
		if r.Addr == target || r.Addr == old || r.Down() {
			continue
		}
		if err := sw.nodes.Follow(ctx, r.Addr, target, false); err != nil {
			notDone = append(notDone, fmt.Sprintf("%s (Sentinel will reconfigure it): %v", r.Addr, err))
		} else {
			sent = append(sent, r.Addr)
		}
	}
	began := time.Now()
	up := sw.waitLinks(ctx, sent, target)
	var b strings.Builder
	if len(sent) > 0 {
		fmt.Fprintf(&b, "REPLICAOF %s on %s (the old master with CONFIG REWRITE and its clients disconnected, "+
			"as Sentinel would)", target, strings.Join(sent, ", "))
		if len(up) == len(sent) {
			fmt.Fprintf(&b, "; links up after %.1f ms", ms(time.Since(began)))
		} else {
			fmt.Fprintf(&b, "; links up: %s of %d after %s", strings.Join(up, ", "), len(sent), rejoinWait)
		}
	}
	if len(notDone) > 0 {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString("not done: " + strings.Join(notDone, "; "))
	}
	return b.String(), nil
}

// waitLinks waits, up to rejoinWait, until every node of addrs replicates from master with its link up,
// and returns those that do.
func (sw *run) waitLinks(ctx context.Context, addrs []string, master string) (up []string) {
	limit, cancel := context.WithTimeout(ctx, rejoinWait)
	defer cancel()
	for {
		up = up[:0]
		for _, addr := range addrs {
			r, err := sw.nodes.Replication(limit, addr)
			if err == nil && r.Role == "slave" && r.MasterLinkStatus == "up" && !r.MasterSyncInProgress &&
				net.JoinHostPort(r.MasterHost, strconv.Itoa(r.MasterPort)) == master {
				up = append(up, addr)
			}
		}
		if len(up) == len(addrs) || wait(limit, catchUpPoll) != nil {
			return up
		}
	}
}

// releaseHold lets the held writes go, once. Held is measured up to here.
func (sw *run) releaseHold() error {
	if sw.release == nil {
		return nil
	}
	release := sw.release
	sw.release = nil
	sw.res.Held = time.Since(sw.heldAt)
	return release()
}

// restore puts back what the switchover changed, in reverse order of harm: the held writes first, then
// the priorities and the Sentinel's INFO period, then the router's mark. It runs after success too (the
// steered priorities are put back then).
func (sw *run) restore() {
	if sw.release != nil {
		sw.waitForCut()
		what := "writes released"
		if err := sw.releaseHold(); err != nil {
			sw.res.NotRestored = append(sw.res.NotRestored, fmt.Sprintf("writes on %s still paused until the pause ends by itself: %v", sw.res.Old, err))
		} else {
			sw.res.Restored = append(sw.res.Restored, what)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), restoreLimit)
	defer cancel()
	for _, p := range sw.priorities {
		err := retry(ctx, func() error { return sw.nodes.SetReplicaPriority(ctx, p.addr, p.before) })
		if err != nil {
			sw.res.NotRestored = append(sw.res.NotRestored, fmt.Sprintf("replica-priority of %s is 0, was %d: %v", p.addr, p.before, err))
		} else {
			sw.res.Restored = append(sw.res.Restored, fmt.Sprintf("replica-priority %d on %s", p.before, p.addr))
		}
	}
	if sw.infoPeriod > 0 {
		if err := sw.restoreInfoPeriod(ctx); err != nil {
			sw.res.NotRestored = append(sw.res.NotRestored, err.Error())
		} else {
			sw.res.Restored = append(sw.res.Restored, "Sentinel "+sw.sentinel+" INFO period")
		}
	}
	if sw.endAnnounce != nil {
		sw.endAnnounce()
	}
}

// waitForCut keeps the writes held, after SENTINEL FAILOVER was accepted, until the master port no
// longer routes to the old master (the router cut it when the Sentinel began promoting), for at most
// cutGrace. A failover cannot be called back: writes released to the old master meanwhile could be
// acknowledged and then discarded when the Sentinel turns it into a replica.
func (sw *run) waitForCut() {
	if sw.failoverSentAt.IsZero() {
		return
	}
	limit := time.Now().Add(cutGrace)
	for sw.Routing.Routed(sw.req.Group) == sw.res.Old && time.Now().Before(limit) {
		time.Sleep(routePoll)
	}
}

func (sw *run) restoreInfoPeriod(ctx context.Context) error {
	if sw.infoPeriod == 0 {
		return nil
	}
	err := retry(ctx, func() error { return sw.sentinels.SetInfoPeriod(ctx, sw.sentinel, sw.infoPeriod) })
	if err != nil {
		return fmt.Errorf("sentinel %s: INFO period is %s, was %s: %w", sw.sentinel, fastInfoPeriod, sw.infoPeriod, err)
	}
	sw.infoPeriod = 0
	return nil
}

// finish records the outcome and logs it.
func (sw *run) finish() {
	sw.res.Took = time.Since(sw.start)
	if sw.res.Err == nil {
		ev := sw.Log.Info().Str("event", "switchover_completed")
		sw.fields(ev).Msg("switchover completed: the new master takes writes through the proxy")
		return
	}
	ev := sw.Log.Error().Str("event", "switchover_aborted")
	sw.fields(ev).Str("step", sw.res.Reached).Str("error", sw.res.Err.Error()).
		Bool("restored", len(sw.res.NotRestored) == 0).Strs("not_restored", sw.res.NotRestored).
		Msg("switchover aborted; what it changed was put back")
}

func (sw *run) logStarted() {
	sw.Log.Info().Str("event", "switchover_started").Str("group", sw.req.Group).Str("target", sw.res.Target).
		Str("old_master", sw.res.Old).Str("sentinel", sw.sentinel).Str("by", sw.req.By).
		Float64("timeout_ms", ms(sw.req.Timeout)).Msg("switchover started")
}

// fields adds what completed and aborted lines share: who, what, and how long each step took.
func (sw *run) fields(ev *zerolog.Event) *zerolog.Event {
	ev.Str("group", sw.req.Group).Str("target", sw.res.Target).Str("old_master", sw.res.Old).
		Str("by", sw.req.By).Float64("total_ms", ms(sw.res.Took)).Float64("held_ms", ms(sw.res.Held))
	for _, name := range []string{StepChoose, StepSteer, StepHold, StepCatchUp, StepFailover, StepRelease, StepVerify, StepRejoin} {
		if d, ok := sw.stepTimes[name]; ok {
			ev.Float64(strings.ReplaceAll(name, "-", "_")+"_ms", ms(d))
		}
	}
	return ev
}

// slow reports whether err is a node not answering in time, rather than refusing or failing.
func slow(err error) bool {
	var netErr net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &netErr) && netErr.Timeout())
}

// retry calls f until it succeeds, three times at most while ctx lasts.
func retry(ctx context.Context, f func() error) error {
	var err error
	for i := 0; i < 3; i++ {
		if err = f(); err == nil {
			return nil
		}
		if wait(ctx, 100*time.Millisecond) != nil {
			break
		}
	}
	return err
}

// wait sleeps d, or less when ctx ends first, and returns ctx's error then.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
