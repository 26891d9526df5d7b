package routing

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/check"
	"github.com/sentinel-proxy/sentinel-proxy/sentinel"
)

// Snapshot is an immutable routing decision with what it rests on, for the forwarder, the stats page
// and the logs. Nothing may modify a published Snapshot.
type Snapshot struct {
	At         time.Time
	Rise, Fall int             // the health thresholds, to show how far a node is on its way up or down
	Groups     []GroupSnapshot // in the order the groups were configured
}

// Group returns the named group's snapshot, or nil.
func (s *Snapshot) Group(name string) *GroupSnapshot {
	if s == nil {
		return nil
	}
	for i := range s.Groups {
		if s.Groups[i].Name == name {
			return &s.Groups[i]
		}
	}
	return nil
}

// GroupSnapshot is the decision for one master group.
type GroupSnapshot struct {
	Name string
	// Master is where the master port routes; empty when no master is verified.
	Master string
	// NoMasterReason says why Master is empty, for clients' error lines and logs.
	NoMasterReason string
	Named          string // the master the Sentinels name, verified or not
	NamedEpoch     int64
	// SentinelsAnswer is false when no usable Sentinel view exists and Named is the last one known.
	SentinelsAnswer bool
	// Replicas is the replica port's pool. When no replica qualifies it holds the master, and
	// ReplicaFallback is set.
	Replicas        []string
	ReplicaFallback bool
	// DualMasters are nodes that say role:master although the Sentinels name another one, other than
	// the old master of a failover being converted (Demoting).
	DualMasters []string
	// Demoting is the master the Sentinels named before this one while it still says role:master, for
	// up to State.DemotionTimeout after the change: Sentinel converts it to a replica (about 10 s
	// after a failover whose old master was alive), so it is no dual master yet.
	Demoting string
	// DrainMaster and DrainReplicas are nodes an operator put in DRAIN that would otherwise be in the
	// master or replica pool: they take no new sessions, but their established ones stay.
	DrainMaster   string
	DrainReplicas []string
	// KeptMaster and KeptReplicas are nodes out of their pool only because their probes fail, while the
	// Sentinels still list them in that role: they take no new sessions, but their established ones
	// stay. A probe alone never ends sessions; Sentinel decides that a node is dead (a failover moves the
	// route, and that closes them).
	KeptMaster   string
	KeptReplicas []string
	// SentinelsKnown counts the Sentinels the proxy knows for the group (configured, discovered, or
	// listed as a peer by one of them), SentinelsAnswering those whose latest answer is usable; Majority
	// is set when more than half of the known ones answer.
	SentinelsKnown, SentinelsAnswering int
	Majority                           bool
	// Fenced is set when the master port refuses the named master because the proxy hears no majority of
	// the Sentinels and the master cannot show that every replica that could be promoted still follows it.
	// FenceReason says why; while routing without a majority, it says what keeps the route open.
	Fenced      bool
	FenceReason string
	// Failover is the failover in progress, nil when none; Detected the first sign of the current trouble.
	Failover *Failover
	Detected Detection
	// FenceRace, when set, says why the fence may close after the majority's failover has promoted a
	// replica: a Sentinel's down-after-milliseconds is less than a second over [fence].replica_timeout.
	// A proxy cut off with the old master then routes to it until its fence closes, while proxies with
	// the majority route to the new one: two masters take writes through a fleet (bench/partitions,
	// split-fleet with down-after 2 s, docs/deploy.md).
	FenceRace string
	// Switchover is the planned switchover under way, nil when none is.
	Switchover *Switchover
	Nodes      []NodeSnapshot
	Sentinels  []SentinelSnapshot
}

// NodeSnapshot describes one data node.
type NodeSnapshot struct {
	Addr          string
	SentinelRole  string // "master", "replica" or "" when no usable Sentinel lists it
	SentinelFlags string
	Health        check.Health
	Last          check.Result // the latest probe
	LastOK        check.Result // the latest successful probe: roles are read from it, as rise/fall allow
	LastChange    time.Time
	Admin         AdminState // READY, DRAIN or MAINT
	// Checks, CheckFailures and Downs count probes, failed probes and UP-to-DOWN transitions;
	// DownTotal is the time spent DOWN, the current stretch included.
	Checks, CheckFailures, Downs uint64
	DownTotal                    time.Duration
	// Stall is set while the node answers probes as a live node that cannot serve them now (busy,
	// loading, not answering in time), since StallSince. It does not make the node DOWN.
	Stall         check.Stall
	StallSince    time.Time
	StalledChecks uint64 // probes that found it stalled
	Stalls        uint64 // stalls begun
	// LagSeconds and LagBytes are a replica's lag as the routed master reports it (INFO replication);
	// -1 when unknown.
	LagSeconds    int
	LagBytes      int64
	InMasterPool  bool
	InReplicaPool bool
	// Verdict is one word for the operator: "master", "replica", "down", or why it takes no traffic.
	Verdict string
}

// ProbeRole is the role the latest successful probe reported, or "" when none succeeded yet.
func (n NodeSnapshot) ProbeRole() string { return n.LastOK.Replication.Role }

// SentinelSnapshot describes one Sentinel as far as one group is concerned.
type SentinelSnapshot struct {
	Addr        string
	Reachable   bool
	Tilt        bool
	Err         string
	MasterAddr  string
	ConfigEpoch int64
	LastEvent   string
	LastEventAt time.Time
	Events      uint64        // pub/sub messages received from it for this group
	DownAfter   time.Duration // its down-after-milliseconds for the group; zero when unknown
}

// Decide derives the routing decision from the state. It is pure: same state, same snapshot.
func Decide(s *State, order []string, now time.Time) *Snapshot {
	snap := &Snapshot{At: now, Rise: s.Rise, Fall: s.Fall}
	for _, name := range order {
		if g := s.Groups[name]; g != nil {
			snap.Groups = append(snap.Groups, decideGroup(s, g, now))
		}
	}
	return snap
}

// decideGroup decides one group: what the Sentinels say of each node, the master route (which the fence,
// then an operator's block, may take away), each node's verdict and the replica pool judged against that
// route, and the Sentinel rows.
func decideGroup(s *State, g *Group, now time.Time) GroupSnapshot {
	gs := GroupSnapshot{Name: g.Name, Detected: g.Detected}
	if f := g.Failover; f != nil {
		cp := *f
		gs.Failover = &cp
	}
	if sw := g.Switchover; sw != nil {
		cp := *sw
		gs.Switchover = &cp
	}
	named, epoch, answered := g.named()
	views := g.usableViews()
	if !answered {
		// No Sentinel can be asked: keep the last named master, still subject to its own probe
		// saying role:master and no other node claiming the role (see masterRoute).
		named, epoch = g.LastNamed, g.LastNamedEpoch
		views = g.lastKnownViews()
	}
	gs.Named, gs.NamedEpoch, gs.SentinelsAnswer = named, epoch, answered

	listed := listedBySentinels(views, named, epoch)
	addrs := nodesToShow(g, listed)
	claimants := s.masterClaimants(addrs)
	gs.DualMasters = dualMasters(g.Failover, named, claimants)
	if d := g.Demoting; d != "" && d != named && s.demoting(g, d, now) {
		if i := slices.Index(gs.DualMasters, d); i >= 0 {
			gs.DualMasters = slices.Delete(gs.DualMasters, i, i+1)
			gs.Demoting = d
		}
	}

	gs.Master, gs.KeptMaster, gs.NoMasterReason = s.masterRoute(g, named, answered, claimants)
	s.fence(g, &gs, now)
	adminBlocked := s.adminBlock(&gs)

	gs.Nodes, gs.Replicas, gs.KeptReplicas, gs.DrainReplicas = s.nodeVerdicts(g, &gs, adminBlocked, addrs, listed, now)
	if len(gs.Replicas) == 0 && gs.Master != "" {
		gs.Replicas = []string{gs.Master}
		gs.ReplicaFallback = true
	}

	gs.Sentinels = sentinelRows(g)
	gs.FenceRace = fenceRace(s.Fence, gs.Sentinels)
	return gs
}

// listing is what the Sentinels' views of the named master's config epoch say of each node.
type listing struct {
	role  map[string]string // "master" or "replica"
	flags map[string]string // as a view gives them; a view that flags a replica down wins
	down  map[string]bool   // replicas a view flags down or disconnected: out of the pool
	sdown map[string]bool   // replicas a view judges down (s_down, o_down): they lose their sessions
}

// listedBySentinels reads the role of each node from the views of the named master's config epoch.
func listedBySentinels(views []sentinel.View, named string, epoch int64) listing {
	l := listing{role: map[string]string{}, flags: map[string]string{}, down: map[string]bool{}, sdown: map[string]bool{}}
	if named != "" {
		l.role[named] = "master"
	}
	for _, v := range views {
		if v.ConfigEpoch != epoch {
			continue // an older view's replica list may name the new master as a replica
		}
		for _, r := range v.Replicas {
			if r.Addr == named {
				continue
			}
			l.role[r.Addr] = "replica"
			if r.Down() {
				l.down[r.Addr] = true
				l.sdown[r.Addr] = l.sdown[r.Addr] || r.SDown()
				l.flags[r.Addr] = r.Flags
			} else if _, ok := l.flags[r.Addr]; !ok {
				l.flags[r.Addr] = r.Flags
			}
		}
		if v.MasterAddr == named {
			l.flags[named] = v.MasterFlags
		}
	}
	return l
}

// nodesToShow returns every node worth showing, sorted: listed by a Sentinel, or probed (an old master
// stays probed until the Sentinels forget it, which is how a dual master is caught).
func nodesToShow(g *Group, listed listing) []string {
	addrs := map[string]bool{}
	for a := range listed.role {
		addrs[a] = true
	}
	for _, v := range g.Views {
		if v.MasterAddr != "" {
			addrs[v.MasterAddr] = true
		}
		for _, r := range v.Replicas {
			addrs[r.Addr] = true
		}
	}
	return slices.Sorted(maps.Keys(addrs))
}

// masterClaimants returns the nodes that are UP and say role:master. Claimants are judged on the latest
// probe only: a node that stopped answering claims nothing.
func (s *State) masterClaimants(addrs []string) []string {
	var claimants []string
	for _, a := range addrs {
		if n := s.Nodes[a]; n != nil && n.Health.Up && n.Last.OK() && n.Last.Replication.IsMaster() {
			claimants = append(claimants, a)
		}
	}
	return claimants
}

// dualMasters returns the claimants of role:master besides the named master; with none named, all of
// them when more than one claims.
func dualMasters(f *Failover, named string, claimants []string) []string {
	var dual []string
	for _, a := range claimants {
		if f != nil && a == f.Promoting && f.Promoted {
			continue // the replica being promoted: its role:master is expected
		}
		if named != "" && a != named || named == "" && len(claimants) > 1 {
			dual = append(dual, a)
		}
	}
	return dual
}

// demoting reports whether node d, the master the Sentinels named before the current one, has said
// role:master since the change for less than DemotionTimeout: Sentinel converts an old master that
// was alive about 10 s after the failover, and one that comes back later soon after it reappears.
func (s *State) demoting(g *Group, d string, now time.Time) bool {
	n := s.Nodes[d]
	if n == nil || n.MasterSince.IsZero() {
		return false
	}
	since := n.MasterSince
	if g.NamedSince.After(since) {
		since = g.NamedSince
	}
	return now.Sub(since) < s.DemotionTimeout
}

// masterRoute decides where the master port routes, before the fence and an operator have their say:
// the named master once its own probe verifies it, or the promoted replica once a failover cut the old
// master off. With no master it says why, and names the master that keeps its established sessions.
func (s *State) masterRoute(g *Group, named string, answered bool, claimants []string) (master, kept, reason string) {
	switch masterNode := s.Nodes[named]; {
	case g.Failover != nil && g.Failover.Cut && g.Failover.OldMaster == named:
		// The leader has started promoting a replica: the old master gets no more writes, since they
		// would not reach the new master. The promoted replica takes them as soon as it says so itself.
		f := g.Failover
		if p := s.Nodes[f.Promoting]; f.Promoted && p != nil && p.Last.OK() && p.Last.Replication.IsMaster() {
			master = f.Promoting
		} else {
			reason = fmt.Sprintf("failover in progress: Sentinel %s is promoting %s", f.Leader, dash(f.Promoting))
		}
	case named == "" && answered:
		reason = "Sentinels disagree on the master"
	case named == "":
		reason = "no Sentinel reachable and no master known"
		if failed := g.sortedViews(func(v sentinel.View) bool { return v.Err != nil }); len(failed) > 0 {
			reason = "no Sentinel names a master; " + failed[0].Err.Error()
		}
	case masterNode == nil || !masterNode.Health.Known:
		// Its role was never verified, so nothing routes to it; sessions from before a reload stay.
		kept = named
		reason = fmt.Sprintf("master %s not probed yet", named)
		if masterNode != nil && masterNode.Stall != "" {
			reason = fmt.Sprintf("master %s has not passed a probe yet: it is %s", named, StallText(masterNode.Stall))
		}
	case !masterNode.Health.Up && masterNode.Last.OK():
		kept = named
		reason = fmt.Sprintf("master %s is DOWN, coming back: %d of %d checks passed", named,
			masterNode.Health.Streak(), s.Rise)
	case !masterNode.Health.Up:
		// New clients are held, then refused; established sessions stay until Sentinel moves the master.
		kept = named
		reason = fmt.Sprintf("master %s is DOWN (%s)", named, masterNode.Last.Reason())
		if masterNode.Stall != "" {
			reason = fmt.Sprintf("master %s is DOWN, and now %s", named, StallText(masterNode.Stall))
		}
	case !masterNode.LastOK.Replication.IsMaster():
		reason = fmt.Sprintf("Sentinel names %s but it reports role:%s", named, masterNode.LastOK.Replication.Role)
	case !answered && len(claimants) > 1:
		reason = fmt.Sprintf("no Sentinel reachable and %d nodes claim role:master", len(claimants))
	default:
		master = named
	}
	return master, kept, reason
}

// adminBlock takes the routed master off the route when an operator put it in DRAIN or MAINT, and
// returns it ("" when it did not).
func (s *State) adminBlock(gs *GroupSnapshot) (blocked string) {
	// An operator's DRAIN or MAINT outranks everything else: the master port then refuses or holds new
	// clients, as the page warns before the operator confirms.
	if m := s.Nodes[gs.Master]; gs.Master != "" && m != nil && m.Admin != "" && m.Admin != AdminReady {
		blocked = gs.Master
		gs.NoMasterReason = fmt.Sprintf("master %s is in %s (set by an operator)", gs.Master, m.Admin)
		if m.Admin == AdminDrain {
			gs.DrainMaster = gs.Master
		}
		gs.Master = ""
	}
	return blocked
}

// nodeVerdicts judges each node against the group's master route (route.Master, route.Named,
// route.Fenced, and the master adminBlocked took off it) and sorts the replicas into the replica port's
// lists: the pool, those out of it by their probes alone that keep their sessions, and those an operator
// drains.
func (s *State) nodeVerdicts(g *Group, route *GroupSnapshot, adminBlocked string, addrs []string, listed listing,
	now time.Time) (nodes []NodeSnapshot, pool, kept, drained []string) {
	for _, a := range addrs {
		n := s.Nodes[a]
		ns := s.nodeSnapshot(a, listed, route.Master, now)
		ns.InMasterPool = a == route.Master
		// A replica out of the pool because of its probes alone keeps its sessions, as the master does;
		// one that Sentinel judges down (s_down, o_down), or an operator put in MAINT, loses them. One a
		// Sentinel flags only "disconnected" takes no new sessions but keeps its own: that Sentinel is
		// re-opening its own link to it, as it does during any stall of 6 s (sentinel.Replica.SDown).
		listedReplica := listed.role[a] == "replica" && !listed.sdown[a] && ns.Admin != AdminMaint
		switch {
		case ns.InMasterPool:
			ns.Verdict = "master"
		case a == adminBlocked:
			ns.Verdict = strings.ToLower(string(ns.Admin))
		case route.Fenced && a == route.Named:
			ns.Verdict = "fenced"
		case g.Failover != nil && a == g.Failover.Promoting:
			ns.Verdict = "promoting"
		case g.Failover != nil && g.Failover.Cut && a == g.Failover.OldMaster:
			ns.Verdict = "failing-over"
		case n == nil || !n.Health.Known:
			ns.Verdict = "unchecked"
			if n != nil && n.Stall != "" {
				ns.Verdict = string(n.Stall) // alive, but no probe has passed yet to say what it is
			}
		case !n.Health.Up:
			ns.Verdict = "down"
			if listedReplica {
				kept = append(kept, a)
			}
		case n.LastOK.Replication.IsMaster() && a != route.Named && a == route.Demoting:
			ns.Verdict = "demoting"
		case n.LastOK.Replication.IsMaster() && a != route.Named:
			ns.Verdict = "dual-master"
		case a == route.Named:
			ns.Verdict = "not-verified"
		case listed.role[a] != "replica":
			ns.Verdict = "unknown-to-sentinel"
		case listed.down[a]:
			ns.Verdict = "sentinel-down"
			if listedReplica {
				kept = append(kept, a) // flagged disconnected, not judged down
			}
		case n.Stall != "":
			// It cannot answer new clients now, but its sessions wait for it as direct clients would.
			ns.Verdict = string(n.Stall)
			if listedReplica {
				kept = append(kept, a)
			}
		case !n.LastOK.Replication.IsSyncedReplica():
			ns.Verdict = "not-synced"
		case s.MaxReplicaLagSeconds > 0 && lagging(s, route.Master, a, s.MaxReplicaLagSeconds):
			ns.Verdict = "lagging"
		case ns.Admin == AdminDrain:
			ns.Verdict = "drain"
			drained = append(drained, a)
		case ns.Admin == AdminMaint:
			ns.Verdict = "maint"
		default:
			ns.Verdict = "replica"
			ns.InReplicaPool = true
			pool = append(pool, a)
		}
		nodes = append(nodes, ns)
	}
	return nodes, pool, kept, drained
}

// nodeSnapshot is what is known of a node before its verdict: how the Sentinels list it, its probes and
// counters, and its lag as the routed master reports it.
func (s *State) nodeSnapshot(a string, listed listing, master string, now time.Time) NodeSnapshot {
	ns := NodeSnapshot{Addr: a, SentinelRole: listed.role[a], SentinelFlags: listed.flags[a]}
	ns.Admin, ns.LagSeconds, ns.LagBytes = AdminReady, -1, -1
	if n := s.Nodes[a]; n != nil {
		ns.Health, ns.Last, ns.LastOK, ns.LastChange = n.Health, n.Last, n.LastOK, n.LastChange
		ns.Checks, ns.CheckFailures, ns.Downs, ns.DownTotal = n.Checks, n.CheckFailures, n.Downs, n.DownTotal
		ns.Stall, ns.StallSince, ns.StalledChecks, ns.Stalls = n.Stall, n.StallSince, n.StalledChecks, n.Stalls
		if !n.DownSince.IsZero() && now.After(n.DownSince) {
			ns.DownTotal += now.Sub(n.DownSince)
		}
		if n.Admin != "" {
			ns.Admin = n.Admin
		}
	}
	if m := s.Nodes[master]; m != nil && m.LastOK.OK() && a != master {
		if link, ok := m.LastOK.Replication.Replica(a); ok {
			ns.LagSeconds = link.Lag
			ns.LagBytes = max(m.LastOK.Replication.MasterReplOffset-link.Offset, 0)
		}
	}
	return ns
}

// sentinelRows describes each Sentinel that gave a view of the group or published an event for it, in
// address order.
func sentinelRows(g *Group) []SentinelSnapshot {
	addrs := map[string]bool{}
	for a := range g.Views {
		addrs[a] = true
	}
	for a := range g.LastEvent {
		addrs[a] = true
	}
	var rows []SentinelSnapshot
	for _, a := range slices.Sorted(maps.Keys(addrs)) {
		v := g.Views[a]
		ss := SentinelSnapshot{Addr: a, Reachable: v.Err == nil && !v.At.IsZero(), Tilt: v.Tilt,
			MasterAddr: v.MasterAddr, ConfigEpoch: v.ConfigEpoch, DownAfter: v.DownAfter}
		if v.Err != nil {
			ss.Err = v.Err.Error()
		}
		ss.Events = g.EventsReceived[a]
		if ev, ok := g.LastEvent[a]; ok {
			ss.LastEvent, ss.LastEventAt = ev.Channel+" "+ev.Payload, ev.At
		}
		rows = append(rows, ss)
	}
	return rows
}

// Departed lists the backends that left each pool from prev to next: their sessions must be closed.
// A master that is replaced leaves the master pool at once, so no session keeps writing to it. A node
// going into DRAIN keeps its sessions; one going from DRAIN to MAINT, or demoted while draining, loses
// them. A node whose probes fail (DOWN) or stall keeps them while the Sentinels still list it in its
// role (KeptMaster, KeptReplicas): probes alone never end sessions.
func Departed(prev, next *GroupSnapshot) (master, replicas []string) {
	if prev == nil {
		return nil, nil
	}
	master = leaving([]string{prev.Master, prev.DrainMaster, prev.KeptMaster},
		[]string{next.Master, next.DrainMaster, next.KeptMaster})
	replicas = leaving(slices.Concat(prev.Replicas, prev.DrainReplicas, prev.KeptReplicas),
		slices.Concat(next.Replicas, next.DrainReplicas, next.KeptReplicas))
	return master, replicas
}

// StallText says what a stall means, for reasons and log lines.
func StallText(st check.Stall) string {
	switch st {
	case check.StallBusy:
		return "busy running a script or function (-BUSY)"
	case check.StallLoading:
		return "loading its dataset (-LOADING)"
	case check.StallUnresponsive:
		return "not answering probes in time"
	}
	return string(st)
}

// leaving returns the non-empty entries of before that are not in after, once each.
func leaving(before, after []string) []string {
	keep := map[string]bool{"": true}
	for _, a := range after {
		keep[a] = true
	}
	var out []string
	for _, b := range before {
		if !keep[b] {
			out = append(out, b)
			keep[b] = true
		}
	}
	return out
}

// dash stands in for a name not known yet, in reasons.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// lagging reports whether the master's own view of the replica shows more lag than allowed, or does
// not list it at all (so its lag is unknown).
func lagging(s *State, master, replica string, maxSeconds int) bool {
	m := s.Nodes[master]
	if m == nil || !m.LastOK.OK() {
		return false // nothing to judge by; the replica's own checks still apply
	}
	link, ok := m.LastOK.Replication.Replica(replica)
	return !ok || link.State != "online" || link.Lag > maxSeconds
}

// fenceMargin is how much longer than the fence's replica_timeout a Sentinel's down-after-milliseconds
// must be for the fence to close before a replica is promoted: the fence closes up to replica_timeout
// after a cut (measured 1.9-3.0 s with 3 s), a promotion comes down-after plus an election (0.5 s and
// more) after it.
const fenceMargin = time.Second

// fenceRace says which Sentinel would fail the master over before the fence of a proxy cut off with it
// closes, or "" when none would (or the fence is off, or no Sentinel said its down-after).
func fenceRace(fence FenceSettings, sentinels []SentinelSnapshot) string {
	if !fence.Enabled || fence.ReplicaTimeout <= 0 {
		return ""
	}
	var fastest SentinelSnapshot
	for _, ss := range sentinels {
		if ss.DownAfter > 0 && (fastest.DownAfter == 0 || ss.DownAfter < fastest.DownAfter) {
			fastest = ss
		}
	}
	if fastest.DownAfter == 0 || fastest.DownAfter >= fence.ReplicaTimeout+fenceMargin {
		return ""
	}
	return fmt.Sprintf("Sentinel %s judges the master down after %s and the fence closes up to %s after a cut: "+
		"set down-after-milliseconds to %d or more ([fence].replica_timeout + 1 s)",
		fastest.Addr, fastest.DownAfter, fence.ReplicaTimeout, (fence.ReplicaTimeout + fenceMargin).Milliseconds())
}
