package routing

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/check"
)

// Router is the single owner of the routing State. Inputs arrive through Submit; after each one it
// decides, publishes a new Snapshot when something changed, and calls OnChange outside any lock.
type Router struct {
	groups []string
	state  *State
	inputs chan Input
	snap   atomic.Pointer[Snapshot]
	log    zerolog.Logger

	// OnChange is called on the Router's goroutine with the previous and the new snapshot, after the new
	// one is published, and returns how many sessions it closed per group (for the master_switched
	// line). It must not call Submit synchronously (the channel may be full).
	OnChange func(prev, next *Snapshot) (sessionsClosed map[string]int)
	// ProbeNow asks for an immediate probe of a node. Nil means no-op.
	ProbeNow func(addr string)
	// SetTargets tells the prober which nodes exist. Nil means no-op.
	SetTargets func(addrs []string)
	// Reconcile asks every Sentinel again at once. Nil means no-op.
	Reconcile func()
	// Now returns the time; nil means time.Now. Tests replace it.
	Now func() time.Time
	// OnSwitch and OnDualMaster, if set, are told of each master switch and each newly detected dual
	// master, on the Router's goroutine (for metrics). They must not block.
	OnSwitch     func(Switch)
	OnDualMaster func(group, claimant string)
	// OnFence, if set, is told each time a group's master is fenced (for metrics). It must not block.
	OnFence func(group string)

	historyMu sync.Mutex
	history   map[string][]Switch       // per group, oldest first, at most HistoryLen
	noMaster  map[string][]NoMasterSpan // per group, oldest first, at most HistoryLen

	// gaps remembers, per group, the master before a stretch without one, so the switch is logged as
	// one master_switched line from the old master to the new, with the gap's length and closed sessions.
	gaps map[string]*gap
	// fencedSince remembers when each fenced group's fence closed, for master_unfenced's fenced_ms.
	fencedSince map[string]time.Time
	// majorityLost holds the groups whose Sentinel majority was lost (logged), so that regaining it is
	// logged only after a loss, not when the first views arrive at start-up.
	majorityLost map[string]bool
	// applied is how long the last route change took to hand to the data plane (OnChange), and
	// appliedAt when that finished: a route change's log line says how late it reached the listeners.
	applied   time.Duration
	appliedAt time.Time
}

// HistoryLen is how many switches per group History keeps.
const HistoryLen = 50

// Switch is one change of a group's master from one node to another, as logged by master_switched.
type Switch struct {
	At             time.Time     `json:"at"`
	Group          string        `json:"group"`
	Old            string        `json:"old"`
	New            string        `json:"new"`
	Epoch          int64         `json:"epoch"`
	Trigger        string        `json:"trigger"`
	DetectedBy     string        `json:"detected_by,omitempty"`
	DetectToSwitch time.Duration `json:"detect_to_switch_ns"` // -1 when no sign of trouble was seen first
	NoMaster       time.Duration `json:"no_master_ns"`        // how long the master port had no master
	SessionsClosed int           `json:"sessions_closed"`
	Leader         string        `json:"failover_leader,omitempty"`
	// Switchover is set when the switch is the one a planned switchover asked for (sentinel-proxy
	// switchover), not a failure.
	Switchover bool `json:"switchover"`
	// Planned is set for a switch asked for: a switchover, or a SENTINEL FAILOVER (its first sign is
	// +try-failover, not +sdown or +odown), run from here or elsewhere. A switch whose first sign was
	// anything else is not (Detection.Asked). Alerts count the others (unplanned_failovers_total).
	Planned bool `json:"planned"`
}

// History returns the group's last switches, newest first.
func (r *Router) History(group string) []Switch {
	r.historyMu.Lock()
	defer r.historyMu.Unlock()
	return newestFirst(r.history[group])
}

// NoMasterSpan is one stretch without a verified master on a group's master port: from its no_master
// line to the master_switched or master_verified line that ended it. A switch with a gap has one (its
// NoMaster is the span's length); a gap that ended on the same master again, or has not ended, has only
// this record. The start-up, before the first master is verified, is not one.
type NoMasterSpan struct {
	Group  string
	Old    string // the master before
	New    string // the master after; empty while it lasts
	Reason string // why there was none when it began
	Since  time.Time
	Until  time.Time // zero while it lasts
}

// NoMasterSpans returns the group's last stretches without a master, newest first; the first may still
// last (Until zero).
func (r *Router) NoMasterSpans(group string) []NoMasterSpan {
	r.historyMu.Lock()
	defer r.historyMu.Unlock()
	return newestFirst(r.noMaster[group])
}

// newestFirst is a copy of h, kept oldest first, in the other order.
func newestFirst[T any](h []T) []T {
	out := make([]T, len(h)) // never nil: an empty history is [] in JSON
	copy(out, h)
	slices.Reverse(out)
	return out
}

// openNoMaster records a stretch without a master beginning; closeNoMaster ends the group's open one.
func (r *Router) openNoMaster(sp NoMasterSpan) {
	r.historyMu.Lock()
	defer r.historyMu.Unlock()
	h := append(r.noMaster[sp.Group], sp)
	if len(h) > HistoryLen {
		h = append([]NoMasterSpan(nil), h[len(h)-HistoryLen:]...)
	}
	r.noMaster[sp.Group] = h
}

func (r *Router) closeNoMaster(group, master string, at time.Time) {
	r.historyMu.Lock()
	defer r.historyMu.Unlock()
	if h := r.noMaster[group]; len(h) > 0 && h[len(h)-1].Until.IsZero() {
		h[len(h)-1].Until, h[len(h)-1].New = at, master
	}
}

func (r *Router) record(sw Switch) {
	r.historyMu.Lock()
	h := append(r.history[sw.Group], sw)
	if len(h) > HistoryLen {
		h = append([]Switch(nil), h[len(h)-HistoryLen:]...)
	}
	r.history[sw.Group] = h
	r.historyMu.Unlock()
	if r.OnSwitch != nil {
		r.OnSwitch(sw)
	}
}

type gap struct {
	from           string // the last verified master; empty at start-up
	since          time.Time
	sessionsClosed int
}

// probeSoonDelay spaces the probes of a replica being promoted: Sentinel has sent REPLICAOF NO ONE, so
// it turns master within milliseconds, and the switch waits only for the probe that sees it.
const probeSoonDelay = 5 * time.Millisecond

// fenceProbeDelay spaces the checks of a master routed without a Sentinel majority: the fence closes on
// the first check that shows a replica cut off, so checks come several times a second meanwhile.
const fenceProbeDelay = 250 * time.Millisecond

// NewRouter creates a router for the named groups with HAProxy-style rise/fall. maxReplicaLag of zero
// is off.
func NewRouter(groups []string, rise, fall int, maxReplicaLag time.Duration, log zerolog.Logger) *Router {
	st := NewState(groups, rise, fall)
	st.MaxReplicaLagSeconds = int(maxReplicaLag / time.Second)
	r := &Router{
		gaps:         map[string]*gap{},
		fencedSince:  map[string]time.Time{},
		majorityLost: map[string]bool{},
		history:      map[string][]Switch{},
		noMaster:     map[string][]NoMasterSpan{},
		groups:       append([]string(nil), groups...),
		state:        st,
		inputs:       make(chan Input, 1024),
		log:          log,
	}
	r.snap.Store(Decide(r.state, r.groups, time.Now()))
	return r
}

// Snapshot returns the latest published decision. It never blocks.
func (r *Router) Snapshot() *Snapshot { return r.snap.Load() }

// Submit hands an input to the router. It blocks only while the router is backlogged by more than
// the channel's buffer, and gives up when ctx ends.
func (r *Router) Submit(ctx context.Context, in Input) {
	select {
	case r.inputs <- in:
	case <-ctx.Done():
	}
}

// Run processes inputs until ctx ends.
func (r *Router) Run(ctx context.Context) {
	var targets []string
	for {
		var in Input
		select {
		case <-ctx.Done():
			return
		case in = <-r.inputs:
		}
		fx := r.state.Apply(in)
		if c, ok := in.(ConfigInput); ok {
			r.groups = append([]string(nil), c.Groups...)
		}
		now := time.Now()
		if r.Now != nil {
			now = r.Now()
		}
		prev := r.snap.Load()
		next := Decide(r.state, r.groups, now)
		r.logHealth(fx.HealthChanged)
		r.logStalls(fx.StallChanged)
		if t := nodeAddrs(next); !slices.Equal(t, targets) {
			targets = t
			if r.SetTargets != nil {
				r.SetTargets(t)
			}
		}
		if r.ProbeNow != nil {
			for _, a := range fx.ProbeNow {
				r.ProbeNow(a)
			}
			for _, a := range fx.ProbeSoon {
				time.AfterFunc(probeSoonDelay, func() { r.ProbeNow(a) })
			}
			r.probeFencing(prev, next, in)
		}
		if fx.Reconcile && r.Reconcile != nil {
			r.Reconcile()
		}
		// Every input refreshes what the page shows; only a route change concerns the forwarder.
		r.snap.Store(next)
		var closed map[string]int
		if r.OnChange != nil && !routesEqual(prev, next) {
			start := time.Now()
			closed = r.OnChange(prev, next)
			r.appliedAt = time.Now()
			r.applied = r.appliedAt.Sub(start)
		}
		r.logRouteChanges(prev, next, in, closed)
		r.logFence(prev, next, in, closed)
		r.logTilt(prev, next)
		r.logFenceRace(prev, next)
		switch in := in.(type) {
		case AdminInput:
			if in.Done != nil {
				close(in.Done)
			}
		case ConfigInput:
			if in.Done != nil {
				close(in.Done)
			}
		case SwitchoverInput:
			if in.Done != nil {
				close(in.Done)
			}
		}
	}
}

func (r *Router) logHealth(changed []string) {
	for _, addr := range changed {
		n := r.state.Nodes[addr]
		ev := r.log.Warn().Str("event", "server_down")
		msg := "node is DOWN"
		if n.Health.Up {
			ev = r.log.Info().Str("event", "server_up")
			msg = "node is UP"
		}
		ev.Str("node", addr).Str("check_status", string(n.Last.Status)).Str("reason", n.Last.Reason()).
			Float64("check_duration_ms", ms(n.Last.Duration))
		if n.Last.Err != nil {
			ev.Str("error", n.Last.Err.Error())
		}
		if n.Last.OK() {
			ev.Str("role", n.Last.Replication.Role)
		}
		ev.Msg(msg)
	}
}

// logStalls logs each stall that began or ended: the node is alive but cannot answer, so it stays as it
// was for routing, and the operator learns why its clients wait.
func (r *Router) logStalls(changes []StallChange) {
	for _, c := range changes {
		if c.Ended {
			ev := r.log.Info().Str("event", "node_stall_ended").Str("node", c.Node).Str("stall", string(c.Stall)).
				Float64("stall_ms", ms(c.Lasted)).Str("check_status", string(c.Result.Status))
			if c.Result.Err != nil {
				ev.Str("error", c.Result.Err.Error())
			}
			ev.Msg("node answers probes again")
			continue
		}
		ev := r.log.Warn().Str("event", "node_stalled").Str("node", c.Node).Str("stall", string(c.Stall)).
			Str("check_status", string(c.Result.Status)).Str("reason", StallText(c.Stall)).
			Float64("check_duration_ms", ms(c.Result.Duration))
		if c.Result.Err != nil {
			ev.Str("error", c.Result.Err.Error())
		}
		if n := r.state.Nodes[c.Node]; n != nil {
			ev.Str("health", healthWord(n.Health))
		}
		ev.Msg("node is alive but cannot answer probes now: its health and sessions stay as they were")
	}
}

func healthWord(h check.Health) string {
	switch {
	case !h.Known:
		return "UNCHECKED"
	case h.Up:
		return "UP"
	}
	return "DOWN"
}

func (r *Router) logRouteChanges(prev, next *Snapshot, cause Input, sessionsClosed map[string]int) {
	for i := range next.Groups {
		ng := &next.Groups[i]
		pg := prev.Group(ng.Name)
		if pg == nil {
			continue
		}
		if pg.Master != ng.Master {
			r.logMasterChange(pg, ng, cause, sessionsClosed[ng.Name], next.At)
		}
		if pg.ReplicaFallback != ng.ReplicaFallback && ng.Master != "" {
			if ng.ReplicaFallback {
				r.log.Warn().Str("event", "replica_fallback").Str("group", ng.Name).Str("master", ng.Master).
					Msg("no healthy replica: the replica port serves reads from the master")
			} else {
				r.log.Info().Str("event", "replica_restored").Str("group", ng.Name).Strs("replicas", ng.Replicas).
					Msg("healthy replicas back: the replica port leaves the master")
			}
		}
		r.logDemotion(pg, ng, next.At)
		if !slices.Equal(pg.DualMasters, ng.DualMasters) && len(ng.DualMasters) > 0 {
			for _, d := range ng.DualMasters {
				if r.OnDualMaster != nil && !slices.Contains(pg.DualMasters, d) {
					r.OnDualMaster(ng.Name, d)
				}
				// Replication ids and offsets tell the operator which node has which history: the claimant's
				// writes since the split are the ones Sentinel will discard when it converts it.
				ev := r.log.Error().Str("event", "dual_master_detected").Str("group", ng.Name).Str("named", ng.Named).
					Str("claimant", d)
				for _, n := range []struct{ prefix, addr string }{{"named", ng.Named}, {"claimant", d}} {
					if node := r.state.Nodes[n.addr]; node != nil && node.LastOK.OK() {
						rep := node.LastOK.Replication
						ev.Str(n.prefix+"_replid", rep.MasterReplID).Str(n.prefix+"_replid2", rep.MasterReplID2).
							Int64(n.prefix+"_offset", rep.MasterReplOffset)
					}
				}
				ev.Msg("a node reports role:master but Sentinel names another: it gets no traffic")
			}
		}
	}
}

// logDemotion logs the old master of a failover saying role:master while Sentinel converts it (warn,
// expected: every failover whose old master was alive does it for about 10 s), and its end: converted,
// or still a master past the bound, which dual_master_detected then reports as the error it is.
func (r *Router) logDemotion(pg, ng *GroupSnapshot, at time.Time) {
	if ng.Demoting != "" && pg.Demoting != ng.Demoting {
		r.log.Warn().Str("event", "old_master_demoting").Str("group", ng.Name).Str("named", ng.Named).
			Str("claimant", ng.Demoting).Dur("demotion_timeout", r.state.DemotionTimeout).
			Msg("the old master still says role:master while Sentinel converts it to a replica: expected after a failover; it gets no traffic")
	}
	if pg.Demoting != "" && pg.Demoting != ng.Demoting && !slices.Contains(ng.DualMasters, pg.Demoting) {
		g := r.state.Groups[ng.Name]
		ev := r.log.Info().Str("event", "old_master_demoted").Str("group", ng.Name).Str("node", pg.Demoting)
		if g != nil && !g.NamedSince.IsZero() {
			ev.Float64("after_ms", ms(at.Sub(g.NamedSince)))
		}
		ev.Msg("the old master no longer says role:master")
	}
}

// armed reports whether the group routes to its master without a Sentinel majority, on the fence's word.
func armed(g *GroupSnapshot) bool { return !g.Majority && g.FenceReason != "" && !g.Fenced }

// probeFencing checks a master routed without a Sentinel majority again shortly after each of its
// checks, and at once when the majority is lost, so that the fence closes soon after a replica is cut off.
func (r *Router) probeFencing(prev, next *Snapshot, in Input) {
	for i := range next.Groups {
		ng := &next.Groups[i]
		if !armed(ng) {
			continue
		}
		master := ng.Master
		if pg := prev.Group(ng.Name); pg == nil || !armed(pg) {
			r.ProbeNow(master)
			continue
		}
		if p, ok := in.(ProbeInput); ok && p.Result.Addr == master {
			time.AfterFunc(fenceProbeDelay, func() { r.ProbeNow(master) })
		}
	}
}

// logFence logs the Sentinel majority lost and regained, and the fence closing and opening.
func (r *Router) logFence(prev, next *Snapshot, cause Input, sessionsClosed map[string]int) {
	for i := range next.Groups {
		ng := &next.Groups[i]
		pg := prev.Group(ng.Name)
		if pg == nil {
			continue
		}
		if pg.Majority && !ng.Majority {
			r.majorityLost[ng.Name] = true
			ev := r.log.Warn().Str("event", "sentinel_majority_lost").Str("group", ng.Name).
				Int("sentinels_answering", ng.SentinelsAnswering).Int("sentinels_known", ng.SentinelsKnown)
			if ng.FenceReason != "" {
				ev.Str("fence", ng.FenceReason)
			}
			ev.Msg("a majority of the Sentinels no longer answers: the master keeps its route only while its replicas follow it")
		}
		if !pg.Majority && ng.Majority && r.majorityLost[ng.Name] {
			delete(r.majorityLost, ng.Name)
			r.log.Info().Str("event", "sentinel_majority_regained").Str("group", ng.Name).
				Int("sentinels_answering", ng.SentinelsAnswering).Int("sentinels_known", ng.SentinelsKnown).
				Msg("a majority of the Sentinels answers again")
		}
		switch {
		case ng.Fenced && !pg.Fenced:
			r.fencedSince[ng.Name] = next.At
			if r.OnFence != nil {
				r.OnFence(ng.Name)
			}
			r.log.Error().Str("event", "master_fenced").Str("group", ng.Name).Str("master", ng.Named).
				Str("reason", ng.FenceReason).Int("sentinels_answering", ng.SentinelsAnswering).
				Int("sentinels_known", ng.SentinelsKnown).Str("trigger", describe(cause)).
				Int("sessions_closed", sessionsClosed[ng.Name]).
				Msg("fenced: no Sentinel majority and a replica that could be promoted no longer follows the master; clients are held, then refused")
		case pg.Fenced && !ng.Fenced:
			reason := fmt.Sprintf("%d of %d Sentinels answer", ng.SentinelsAnswering, ng.SentinelsKnown)
			if !ng.Majority && ng.FenceReason != "" {
				reason = ng.FenceReason
			}
			ev := r.log.Info().Str("event", "master_unfenced").Str("group", ng.Name).Str("master", ng.Master).
				Str("named", ng.Named).Str("reason", reason).Str("trigger", describe(cause))
			if since, ok := r.fencedSince[ng.Name]; ok {
				ev.Float64("fenced_ms", ms(next.At.Sub(since)))
				delete(r.fencedSince, ng.Name)
			}
			ev.Msg("fence opened")
		}
	}
}

// logTilt logs a Sentinel entering or leaving TILT, learned from its +tilt/-tilt event or from a
// reconcile (INFO sentinel), once per Sentinel whatever the number of groups.
func (r *Router) logTilt(prev, next *Snapshot) {
	was, now := tiltedSentinels(prev), tiltedSentinels(next)
	for addr, tilt := range now {
		if tilt == was[addr] {
			continue
		}
		if tilt {
			r.log.Warn().Str("event", "sentinel_tilt").Str("sentinel", addr).Bool("tilt", true).
				Msg("Sentinel entered TILT mode: its word is ignored until it leaves")
		} else {
			r.log.Info().Str("event", "sentinel_tilt").Str("sentinel", addr).Bool("tilt", false).
				Msg("Sentinel left TILT mode: its word counts again")
		}
	}
}

// logFenceRace logs a group's fence starting or ceasing to race the failover (GroupSnapshot.FenceRace):
// a warning when a Sentinel's down-after-milliseconds leaves the fence no time, once, and when it is
// mended.
func (r *Router) logFenceRace(prev, next *Snapshot) {
	for _, ng := range next.Groups {
		was := ""
		if pg := prev.Group(ng.Name); pg != nil {
			was = pg.FenceRace
		}
		switch {
		case ng.FenceRace != "" && was == "":
			r.log.Warn().Str("event", "fence_races_failover").Str("group", ng.Name).Bool("races", true).
				Str("reason", ng.FenceRace).
				Msg("a proxy cut off with the master may fence after the majority promoted a replica: two masters could take writes through a fleet")
		case ng.FenceRace == "" && was != "":
			r.log.Info().Str("event", "fence_races_failover").Str("group", ng.Name).Bool("races", false).
				Msg("the fence closes before a failover again")
		}
	}
}

// tiltedSentinels maps each Sentinel of the snapshot to whether any group's row shows it in TILT.
func tiltedSentinels(s *Snapshot) map[string]bool {
	tilt := map[string]bool{}
	for _, g := range s.Groups {
		for _, sn := range g.Sentinels {
			tilt[sn.Addr] = tilt[sn.Addr] || sn.Tilt
		}
	}
	return tilt
}

// logMasterChange logs a change of the master route. A switch usually passes through a moment with
// no verified master (the new master is named before its probe confirms role:master): that moment is
// logged as no_master, and the end of it as master_switched (another master) or master_verified (the
// same one again, or the first at start-up).
func (r *Router) logMasterChange(pg, ng *GroupSnapshot, cause Input, closed int, now time.Time) {
	switch {
	case ng.Master == "":
		r.gaps[ng.Name] = &gap{from: pg.Master, since: now, sessionsClosed: closed}
		r.openNoMaster(NoMasterSpan{Group: ng.Name, Old: pg.Master, Reason: ng.NoMasterReason, Since: now})
		r.log.Error().Str("event", "no_master").Str("group", ng.Name).Str("old", pg.Master).
			Str("named", ng.Named).Str("reason", ng.NoMasterReason).Str("trigger", describe(cause)).
			Int("sessions_closed", closed).Func(r.latency(cause)).Msg("no verified master: the master port refuses new clients")
	case pg.Master != "":
		r.switched(pg.Master, ng, cause, closed, 0, now)
	default:
		g := r.gaps[ng.Name]
		delete(r.gaps, ng.Name)
		if g != nil {
			r.closeNoMaster(ng.Name, ng.Master, now)
		}
		if g != nil && g.from != "" && g.from != ng.Master {
			r.switched(g.from, ng, cause, g.sessionsClosed+closed, now.Sub(g.since), now)
			return
		}
		ev := r.log.Info().Str("event", "master_verified").Str("group", ng.Name).Str("master", ng.Master).
			Int64("epoch", ng.NamedEpoch).Str("trigger", describe(cause))
		if g != nil {
			ev.Float64("no_master_ms", ms(now.Sub(g.since)))
		}
		ev.Msg("master verified: Sentinel names it and it reports role:master")
	}
}

// latency adds to a route change's log line how long the data plane took to get it (routes_applied_ms)
// and, for a Sentinel event, how long after its arrival that was done (event_age_ms): the time in which
// clients could still reach the old route.
func (r *Router) latency(cause Input) func(*zerolog.Event) {
	return func(ev *zerolog.Event) {
		ev.Float64("routes_applied_ms", ms(r.applied))
		if in, ok := cause.(EventInput); ok && !in.Event.At.IsZero() && !r.appliedAt.IsZero() {
			ev.Float64("event_age_ms", ms(r.appliedAt.Sub(in.Event.At)))
		}
	}
}

// switched logs the one master_switched line of a switch.
func (r *Router) switched(old string, ng *GroupSnapshot, cause Input, closed int, gap time.Duration, now time.Time) {
	sw := Switch{At: now, Group: ng.Name, Old: old, New: ng.Master, Epoch: ng.NamedEpoch, Trigger: describe(cause),
		DetectToSwitch: -1, NoMaster: gap, SessionsClosed: closed}
	ev := r.log.Warn().Str("event", "master_switched").Str("group", ng.Name).Str("old", old).
		Str("new", ng.Master).Int64("epoch", ng.NamedEpoch).Str("trigger", sw.Trigger).
		Float64("no_master_ms", ms(gap)).Int("sessions_closed", closed).Func(r.latency(cause))
	asked := false
	if d := ng.Detected; d.Master == old && !d.At.IsZero() {
		sw.DetectToSwitch, sw.DetectedBy, asked = now.Sub(d.At), d.Signal, d.Asked
		ev.Float64("detect_to_switch_ms", ms(sw.DetectToSwitch)).Str("detected_by", d.Signal)
	}
	if f := ng.Failover; f != nil && f.Promoting == ng.Master {
		sw.Leader = f.Leader
		ev.Str("failover_leader", f.Leader).Str("failover_stage", f.Stage)
	}
	if p := ng.Switchover; p != nil && p.Target == ng.Master {
		// The history's trigger says it first: the stats page's charts tell a switchover from a failover
		// by its trigger. The log line keeps the cause as trigger and says it with its own fields.
		sw.Switchover = true
		sw.Trigger = "switchover by " + p.By + "; " + sw.Trigger
		ev.Bool("switchover", true).Str("switchover_by", p.By)
	}
	sw.Planned = sw.Switchover || asked
	ev.Bool("planned", sw.Planned)
	ev.Msg("master switched")
	r.record(sw)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// describe names what caused a change, for the trigger field of log lines.
func describe(in Input) string {
	switch in := in.(type) {
	case EventInput:
		return in.Event.Channel + " from " + in.Event.Sentinel
	case ViewInput:
		return "reconcile from " + in.View.Sentinel
	case ProbeInput:
		return "probe of " + in.Result.Addr
	}
	return "unknown"
}

func nodeAddrs(s *Snapshot) []string {
	var out []string
	seen := map[string]bool{}
	for _, g := range s.Groups {
		for _, n := range g.Nodes {
			if !seen[n.Addr] {
				seen[n.Addr] = true
				out = append(out, n.Addr)
			}
		}
		if g.Named != "" && !seen[g.Named] {
			seen[g.Named] = true
			out = append(out, g.Named)
		}
	}
	return out
}

// routesEqual compares only what the forwarder acts on, the refusal reason clients read included.
func routesEqual(a, b *Snapshot) bool {
	if len(a.Groups) != len(b.Groups) {
		return false
	}
	for i := range a.Groups {
		ag, bg := &a.Groups[i], &b.Groups[i]
		if ag.Master != bg.Master || ag.NoMasterReason != bg.NoMasterReason || !slices.Equal(ag.Replicas, bg.Replicas) ||
			ag.DrainMaster != bg.DrainMaster || !slices.Equal(ag.DrainReplicas, bg.DrainReplicas) ||
			ag.KeptMaster != bg.KeptMaster || !slices.Equal(ag.KeptReplicas, bg.KeptReplicas) {
			return false
		}
	}
	return true
}
