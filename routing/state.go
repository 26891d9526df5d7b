// Package routing owns the one decision sentinel-proxy exists for: which node each listener may send
// clients to. It folds what Sentinels say (reconcile views and pub/sub events) and what the proxy's
// own probes see into a State, and derives an immutable Snapshot from it. State changes only through
// Apply, on one goroutine (Router); Decide is a pure function of the State, so the policy is
// table-tested without sockets. It never touches a socket itself.
package routing

import (
	"sort"
	"strings"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/check"
	"github.com/sentinel-proxy/sentinel-proxy/sentinel"
)

// Input is anything that can change the routing decision.
type Input interface{ input() }

// ViewInput is one reconcile round of one Sentinel for one master group.
type ViewInput struct{ View sentinel.View }

// EventInput is one message published by a Sentinel.
type EventInput struct{ Event sentinel.Event }

// ProbeInput is one probe of one node.
type ProbeInput struct{ Result check.Result }

// AdminInput is an operator's action on one node (from the stats page). Done, if not nil, is closed
// once the decision that follows has been published and acted on (sessions closed).
type AdminInput struct {
	Node  string
	State AdminState
	Done  chan struct{}
}

// ConfigInput applies a reloaded configuration: the groups (added ones start empty, removed ones are
// forgotten), the health thresholds, and the Sentinels no longer followed, whose last views must not
// keep counting. Done, if not nil, is closed once the decision that follows has been acted on.
type ConfigInput struct {
	Groups               []string
	Rise, Fall           int
	MaxReplicaLagSeconds int
	DemotionTimeout      time.Duration
	Sentinels            []string // the configured Sentinels
	Fence                FenceSettings
	DropSentinels        []string
	Done                 chan struct{}
}

// SwitchoverInput announces a planned switchover of a group's master to Target (Active set), or its
// end, whatever the outcome (Active unset). The router only records it: the switch it leads to is marked
// as a switchover in the history and the master_switched line; routing decides as for any failover.
// Done, if not nil, is closed once the input is applied.
type SwitchoverInput struct {
	Group  string
	Target string
	By     string    // who asked, e.g. "admin from 127.0.0.1:51234"
	At     time.Time // when it was asked
	Active bool
	Done   chan struct{}
}

func (ViewInput) input()       {}
func (EventInput) input()      {}
func (ProbeInput) input()      {}
func (AdminInput) input()      {}
func (ConfigInput) input()     {}
func (SwitchoverInput) input() {}

// AdminState is what an operator set on a node, as in HAProxy's `set server state`.
type AdminState string

const (
	// AdminReady is the default: the node takes traffic when the checks and the Sentinels allow.
	AdminReady AdminState = "READY"
	// AdminDrain takes no new sessions; established ones stay until they end or the node leaves its
	// pool for another reason.
	AdminDrain AdminState = "DRAIN"
	// AdminMaint takes no new sessions and its established ones are closed.
	AdminMaint AdminState = "MAINT"
)

// ParseAdminState accepts the three states, in any case.
func ParseAdminState(s string) (AdminState, bool) {
	switch st := AdminState(strings.ToUpper(s)); st {
	case AdminReady, AdminDrain, AdminMaint:
		return st, true
	}
	return "", false
}

// State is everything the decision depends on. It is owned by one goroutine.
type State struct {
	Rise, Fall int
	// MaxReplicaLagSeconds takes replicas whose master reports a longer lag out of the pool; 0 is off.
	MaxReplicaLagSeconds int
	// Sentinels are the configured Sentinels: known before any of them answers, they count toward the
	// majority the fence asks for.
	Sentinels []string
	Fence     FenceSettings
	// DemotionTimeout is how long the master Sentinel named before the current one may go on saying
	// role:master, as Sentinel converts it, before it counts as a dual master; 0: at once.
	DemotionTimeout time.Duration
	Groups          map[string]*Group
	Nodes           map[string]*Node
}

// Group is what is known of one master group.
type Group struct {
	Name  string
	Views map[string]sentinel.View // latest view per Sentinel address
	// LastNamed is the master the Sentinels last named; kept when no Sentinel answers.
	LastNamed      string
	LastNamedEpoch int64
	NamedSince     time.Time // when LastNamed last changed
	// Demoting is the master the Sentinels named before LastNamed: after a failover it says role:master
	// until a Sentinel converts it to a replica (about 10 s), which is expected.
	Demoting  string
	LastEvent map[string]sentinel.Event // latest event per Sentinel address
	// Failover is the failover a Sentinel announced it is running, nil when none is.
	Failover *Failover
	// Detected is the first sign of trouble with a master (+sdown, +odown, +try-failover ...), kept to
	// measure detect-to-switch time.
	Detected Detection
	// EventsReceived counts the pub/sub messages each Sentinel published for this group.
	EventsReceived map[string]uint64
	// Switchover is the planned switchover under way, nil when none is.
	Switchover *Switchover
}

// Switchover is a planned switchover an operator asked for: sentinel-proxy holds the writes and has
// Sentinel promote Target.
type Switchover struct {
	Target string
	By     string
	Since  time.Time
}

// Failover is what the failover leader has announced of its progress.
type Failover struct {
	Leader    string    // the Sentinel running it
	Since     time.Time // its first step seen
	Stage     string    // the last step seen, e.g. "+failover-state-wait-promotion"
	OldMaster string
	Promoting string // the replica being promoted, once selected
	// Cut is set from +failover-state-send-slaveof-noone on: the old master may stop replicating to the
	// promoted replica at any moment, so writes to it could be lost and it gets none.
	Cut bool
	// Promoted is set once the replica accepted REPLICAOF NO ONE (+failover-state-wait-promotion): from
	// then on it may be routed to as soon as its own probe says role:master.
	Promoted bool
}

// Detection is the first sign that a master is failing.
type Detection struct {
	Master string
	At     time.Time
	Signal string // e.g. "+sdown from 127.0.0.1:26379"
	// Asked: the sign was +try-failover, a failover a Sentinel was asked for (SENTINEL FAILOVER: it is
	// the first thing that Sentinel publishes). A Sentinel judging the master down publishes +sdown and
	// +odown before its +try-failover. Any other first sign (+elected-leader, a failover step,
	// +switch-master: the earlier ones were missed) says nothing of why, and counts as not asked: a switch
	// is called planned only on evidence, since planned ones raise no alert. (CI: a new master failed over
	// again 2 s after its promotion, first seen as +elected-leader, and was logged planned.)
	Asked bool
}

// Node is what the probes know of one data node.
type Node struct {
	Addr       string
	Health     check.Health
	Last       check.Result // the latest probe
	LastOK     check.Result // the latest successful probe
	LastChange time.Time    // last UP/DOWN transition
	// MasterSince is when its probes began to say role:master without a break; zero while they say
	// otherwise.
	MasterSince time.Time
	Admin       AdminState // "" means READY
	// Counters for the stats page and metrics, as HAProxy's chkfail, chkdown and downtime.
	Checks, CheckFailures, Downs uint64
	LocalErrors                  uint64    // probes the proxy could not run (SOCKERR)
	DownSince                    time.Time // start of the current DOWN stretch, zero while UP
	DownTotal                    time.Duration
	// Stall is set while the latest probes find the node alive but unable to answer (busy, loading, not
	// answering in time); StallSince is when that began. A stalled probe counts neither way toward
	// rise/fall: Sentinel, not a probe, decides that a stalled node is dead.
	Stall         check.Stall
	StallSince    time.Time
	StalledChecks uint64 // probes that found the node stalled (counted in CheckFailures too)
	Stalls        uint64 // stalls begun
}

// NewState starts an empty state for the named groups.
func NewState(groups []string, rise, fall int) *State {
	s := &State{Rise: rise, Fall: fall, Groups: map[string]*Group{}, Nodes: map[string]*Node{}}
	for _, g := range groups {
		s.Groups[g] = newGroup(g)
	}
	return s
}

// newGroup starts an empty record of the named group.
func newGroup(name string) *Group {
	return &Group{Name: name, Views: map[string]sentinel.View{}, LastEvent: map[string]sentinel.Event{},
		EventsReceived: map[string]uint64{}}
}

// Effects are what the owner must do after an Apply besides publishing a new snapshot.
type Effects struct {
	ProbeNow  []string // nodes to probe at once
	ProbeSoon []string // nodes to probe again shortly (a replica being promoted that is not master yet)
	Reconcile bool     // ask every Sentinel again at once
	// HealthChanged lists nodes whose UP/DOWN state changed, for logging.
	HealthChanged []string
	// StallChanged lists stalls that began or ended, for logging.
	StallChanged []StallChange
}

// StallChange is a stall beginning (Stall set) or ending (Ended set, with how long it lasted).
type StallChange struct {
	Node   string
	Stall  check.Stall // the stall that began, or the one that ended
	Ended  bool
	Lasted time.Duration
	Result check.Result // the probe that began or ended it
}

// Apply folds one input into the state and says what to do next. It never blocks or does I/O.
func (s *State) Apply(in Input) Effects {
	var fx Effects
	switch in := in.(type) {
	case ViewInput:
		g := s.Groups[in.View.MasterName]
		if g == nil {
			return fx
		}
		v := in.View
		if v.Err != nil {
			// Keep what this Sentinel last said, marked unanswered: if every Sentinel goes quiet, the
			// last known replica list still lets the proxy keep serving (see decideGroup).
			prev := g.Views[v.Sentinel]
			v.MasterAddr, v.ConfigEpoch, v.MasterFlags, v.Replicas = prev.MasterAddr, prev.ConfigEpoch, prev.MasterFlags, prev.Replicas
		}
		g.Views[v.Sentinel] = v
		g.updateNamed(&fx, v.At)
		if v.Err == nil && !v.Tilt && v.FailoverInProgress() && !v.FailedOver && v.MasterAddr == g.LastNamed &&
			(g.Failover == nil || g.Failover.OldMaster != v.MasterAddr) {
			// A failover whose steps were not heard (subscription down): without knowing how far it
			// got, the old master may already have lost its replica, so it gets no more writes.
			g.Failover = &Failover{Leader: v.Sentinel, Since: v.AskedAt, Stage: "failover_in_progress (reconcile)",
				OldMaster: v.MasterAddr, Cut: true}
		}
		if f := g.Failover; f != nil && v.Sentinel == f.Leader && v.Err == nil && v.AskedAt.After(f.Since) &&
			!v.FailoverInProgress() && v.MasterAddr == f.OldMaster {
			g.Failover = nil // the leader is no longer failing over and kept the old master: aborted
		}
	case EventInput:
		fx = s.applyEvent(in.Event)
	case ConfigInput:
		s.reconfigure(in)
	case AdminInput:
		n := s.node(in.Node)
		n.Admin = in.State
		if in.State == AdminReady {
			n.Admin = ""
		}
	case ProbeInput:
		fx = s.observe(in.Result)
	case SwitchoverInput:
		if g := s.Groups[in.Group]; g != nil {
			g.Switchover = nil
			if in.Active {
				g.Switchover = &Switchover{Target: in.Target, By: in.By, Since: in.At}
			}
		}
	}
	return fx
}

// observe folds one probe result into its node: HAProxy's rise/fall for results that say the node is up
// or down, a stall for those that say it is alive but cannot answer now.
func (s *State) observe(res check.Result) Effects {
	var fx Effects
	n := s.node(res.Addr)
	if res.Local() {
		// The proxy could not even open a socket: the node is not to blame, and marking it DOWN
		// would turn the proxy's own trouble into a refused master. Health stays as it was.
		n.Checks++
		n.LocalErrors++
		return fx
	}
	n.Last = res
	n.Checks++
	if !res.OK() {
		n.CheckFailures++
	}
	if !res.OK() && res.Stall() == "" {
		n.MasterSince = time.Time{} // down: a claim after it starts anew
	}
	for _, g := range s.Groups {
		if f := g.Failover; f != nil && f.Promoted && f.Promoting == n.Addr && !res.Replication.IsMaster() {
			fx.ProbeSoon = append(fx.ProbeSoon, n.Addr) // not master yet: look again shortly
		}
	}
	stall := res.Stall()
	if n.Stall != "" && n.Stall != stall {
		fx.StallChanged = append(fx.StallChanged, StallChange{Node: n.Addr, Stall: n.Stall, Ended: true,
			Lasted: res.At.Sub(n.StallSince), Result: res})
		n.Stall, n.StallSince = "", time.Time{}
	}
	if stall != "" {
		// Alive, only slow: health stays as it was, and the route with it.
		n.StalledChecks++
		if n.Stall == "" {
			n.Stall, n.StallSince = stall, res.At
			n.Stalls++
			fx.StallChanged = append(fx.StallChanged, StallChange{Node: n.Addr, Stall: stall, Result: res})
		}
		return fx
	}
	var changed bool
	n.Health, changed = n.Health.Observe(res.OK(), s.Rise, s.Fall)
	if res.OK() {
		n.LastOK = res
		switch {
		case !res.Replication.IsMaster():
			n.MasterSince = time.Time{}
		case n.MasterSince.IsZero():
			n.MasterSince = res.At
		}
	}
	if changed {
		n.LastChange = res.At
		fx.HealthChanged = append(fx.HealthChanged, n.Addr)
		switch {
		case !n.Health.Up:
			n.Downs++
			n.DownSince = res.At
		case !n.DownSince.IsZero():
			n.DownTotal += res.At.Sub(n.DownSince)
			n.DownSince = time.Time{}
		}
	}
	return fx
}

func (s *State) reconfigure(in ConfigInput) {
	s.Rise, s.Fall, s.MaxReplicaLagSeconds, s.DemotionTimeout = in.Rise, in.Fall, in.MaxReplicaLagSeconds, in.DemotionTimeout
	s.Sentinels, s.Fence = append([]string(nil), in.Sentinels...), in.Fence
	keep := map[string]bool{}
	for _, name := range in.Groups {
		keep[name] = true
		if s.Groups[name] == nil {
			s.Groups[name] = newGroup(name)
		}
	}
	for name := range s.Groups {
		if !keep[name] {
			delete(s.Groups, name)
		}
	}
	for _, g := range s.Groups {
		for _, addr := range in.DropSentinels {
			delete(g.Views, addr)
			delete(g.LastEvent, addr)
			delete(g.EventsReceived, addr)
		}
	}
}

// node returns the record of addr, creating it on first mention.
func (s *State) node(addr string) *Node {
	n := s.Nodes[addr]
	if n == nil {
		n = &Node{Addr: addr}
		s.Nodes[addr] = n
	}
	return n
}

func (s *State) applyEvent(ev sentinel.Event) Effects {
	var fx Effects
	if ev.Channel == "+tilt" || ev.Channel == "-tilt" {
		// TILT is per Sentinel, not per group: mark every group's view from that Sentinel.
		for _, g := range s.Groups {
			if v, ok := g.Views[ev.Sentinel]; ok {
				v.Tilt = ev.Channel == "+tilt"
				g.Views[ev.Sentinel] = v
			}
			g.LastEvent[ev.Sentinel] = ev
			g.EventsReceived[ev.Sentinel]++
		}
		fx.Reconcile = true
		return fx
	}
	g := s.Groups[ev.MasterName]
	if g == nil {
		return fx
	}
	g.LastEvent[ev.Sentinel] = ev
	g.EventsReceived[ev.Sentinel]++
	fx.Reconcile = true
	if v, ok := g.Views[ev.Sentinel]; ok && v.Tilt {
		return fx // a Sentinel in TILT is not trusted
	}
	switch ev.Channel {
	case "+switch-master":
		// The announcement carries no config epoch, so it does not name the master by itself: the
		// Watcher asks its Sentinel at once, and the view that answers decides. Meanwhile the new
		// master is probed, so that it is verified when the view arrives.
		g.detect(ev.OldAddr, ev)
		fx.ProbeNow = append(fx.ProbeNow, ev.NewAddr, ev.OldAddr)
	case "+sdown", "-sdown", "+odown", "-odown":
		switch ev.InstanceType {
		case "slave":
			v := g.Views[ev.Sentinel]
			v.Replicas = withReplicaFlag(v.Replicas, ev.Addr, ev.Channel[0] == '+')
			g.Views[ev.Sentinel] = v
		case "master":
			if ev.Channel[0] == '+' {
				g.detect(ev.Addr, ev)
			} else if g.Failover == nil && g.Detected.Master == ev.Addr {
				g.Detected = Detection{} // it recovered without a failover
			}
		}
		fx.ProbeNow = append(fx.ProbeNow, ev.Addr)
	case "+try-failover", "+elected-leader", "+failover-state-select-slave":
		g.detect(ev.MasterAddr, ev)
		g.failoverStep(ev)
	case "+selected-slave", "+failover-state-send-slaveof-noone", "+failover-state-wait-promotion",
		"+promoted-slave", "+failover-state-reconf-slaves":
		g.detect(ev.MasterAddr, ev)
		f := g.failoverStep(ev)
		if ev.InstanceType == "slave" {
			f.Promoting = ev.Addr
		}
		if ev.Channel != "+selected-slave" {
			f.Cut = true
		}
		if ev.Channel == "+failover-state-wait-promotion" || ev.Channel == "+promoted-slave" ||
			ev.Channel == "+failover-state-reconf-slaves" {
			f.Promoted = true
			if f.Promoting != "" {
				fx.ProbeNow = append(fx.ProbeNow, f.Promoting)
			}
		}
	case "-failover-abort-not-elected", "-failover-abort-no-good-slave", "-failover-abort-slave-timeout":
		if g.Failover != nil && g.Failover.Leader == ev.Sentinel && !g.Failover.Promoted {
			g.Failover = nil
		}
	default:
		if ev.Addr != "" {
			fx.ProbeNow = append(fx.ProbeNow, ev.Addr)
		}
	}
	return fx
}

// failoverStep records a step of the failover a Sentinel runs, starting the record at its first step.
//
// Once a leader has cut the old master off (it sent REPLICAOF NO ONE to a replica, which may take
// writes from then on), another Sentinel's attempt on the same old master does not give it back: its
// first steps (+try-failover, +elected-leader, +failover-state-select-slave) leave the record as it is,
// and when it goes on to promote a replica of its own, the old master stays cut. (CI: a second
// Sentinel's +try-failover 450 ms after a promotion routed the old master again for 10 ms, and writes
// it acknowledged were lost.)
func (g *Group) failoverStep(ev sentinel.Event) *Failover {
	f := g.Failover
	if f == nil || f.Leader != ev.Sentinel || f.OldMaster != ev.MasterAddr {
		cut := f != nil && f.Cut && f.OldMaster == ev.MasterAddr
		if cut && earlyStep(ev.Channel) {
			return f
		}
		f = &Failover{Leader: ev.Sentinel, Since: ev.At, OldMaster: ev.MasterAddr, Cut: cut}
		g.Failover = f
	}
	f.Stage = ev.Channel
	return f
}

// earlyStep reports a failover step that comes before the leader picks a replica: a Sentinel that
// takes it may yet abort (not elected, no good replica).
func earlyStep(channel string) bool {
	return channel == "+try-failover" || channel == "+elected-leader" || channel == "+failover-state-select-slave"
}

// detect notes the first sign of trouble with master, unless one was noted since it became master.
func (g *Group) detect(master string, ev sentinel.Event) {
	if master == "" {
		return
	}
	if g.Detected.Master != master || g.Detected.At.Before(g.NamedSince) {
		g.Detected = Detection{Master: master, At: ev.At, Signal: ev.Channel + " from " + ev.Sentinel,
			Asked: ev.Channel == "+try-failover"}
	}
}

// updateNamed follows the Sentinels' named master: a new one is probed at once, and a finished
// failover (the old master is no longer named) is forgotten.
func (g *Group) updateNamed(fx *Effects, at time.Time) {
	named, epoch, ok := g.named()
	if !ok || named == "" {
		return
	}
	if named != g.LastNamed {
		fx.ProbeNow = append(fx.ProbeNow, named)
		g.NamedSince = at
		g.Demoting = g.LastNamed
	}
	g.LastNamed, g.LastNamedEpoch = named, epoch
	if g.Failover != nil && named != g.Failover.OldMaster {
		g.Failover = nil
	}
}

// usableViews are the views a decision may rest on: answered, and not from a Sentinel in TILT.
func (g *Group) usableViews() []sentinel.View {
	return g.sortedViews(func(v sentinel.View) bool { return v.Err == nil && !v.Tilt && v.MasterAddr != "" })
}

// lastKnownViews are the views to fall back on when no Sentinel answers: the last thing each said.
func (g *Group) lastKnownViews() []sentinel.View {
	return g.sortedViews(func(v sentinel.View) bool { return !v.Tilt && v.MasterAddr != "" })
}

// sortedViews returns the views keep accepts, in the order of their Sentinels' addresses.
func (g *Group) sortedViews(keep func(sentinel.View) bool) []sentinel.View {
	var out []sentinel.View
	for _, v := range g.Views {
		if keep(v) {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Sentinel < out[j].Sentinel })
	return out
}

// named returns the master the Sentinels name: the address of the newest config epoch among the usable
// views, and among views of that epoch the one most of them give. ok is false when no usable view
// exists; named is "" when views of the newest epoch disagree without a majority.
func (g *Group) named() (named string, epoch int64, ok bool) {
	views := g.usableViews()
	if len(views) == 0 {
		return "", 0, false
	}
	epoch = views[0].ConfigEpoch
	for _, v := range views {
		if v.ConfigEpoch > epoch {
			epoch = v.ConfigEpoch
		}
	}
	votes := map[string]int{}
	total := 0
	for _, v := range views {
		if v.ConfigEpoch == epoch {
			votes[v.MasterAddr]++
			total++
		}
	}
	for addr, n := range votes {
		if 2*n > total {
			return addr, epoch, true
		}
	}
	return "", epoch, true
}

func withReplicaFlag(rs []sentinel.Replica, addr string, down bool) []sentinel.Replica {
	out := make([]sentinel.Replica, len(rs))
	copy(out, rs)
	for i := range out {
		if out[i].Addr != addr {
			continue
		}
		if down {
			if !out[i].Down() {
				out[i].Flags = "s_down," + out[i].Flags
			}
		} else {
			out[i].Flags = "slave"
		}
	}
	return out
}
