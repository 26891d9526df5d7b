package routing

import (
	"fmt"
	"slices"
	"sort"
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
	// DualMasters are nodes that say role:master although the Sentinels name another one.
	DualMasters []string
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
	Failover  *Failover
	Detected  Detection
	Nodes     []NodeSnapshot
	Sentinels []SentinelSnapshot
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
	Events      uint64 // pub/sub messages received from it for this group
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

func decideGroup(s *State, g *Group, now time.Time) GroupSnapshot {
	gs := GroupSnapshot{Name: g.Name}
	named, epoch, answered := g.named()
	gs.SentinelsAnswer = answered
	if !answered {
		// No Sentinel can be asked: keep the last named master, still subject to its own probe
		// saying role:master and no other node claiming the role (checked below).
		named, epoch = g.LastNamed, g.LastNamedEpoch
	}
	gs.Named, gs.NamedEpoch = named, epoch

	views := g.usableViews()
	if !answered {
		views = g.lastKnownViews()
	}
	sentinelRole := map[string]string{}
	sentinelFlags := map[string]string{}
	replicaDown := map[string]bool{}
	if named != "" {
		sentinelRole[named] = "master"
	}
	for _, v := range views {
		if v.ConfigEpoch != epoch {
			continue // an older view's replica list may name the new master as a replica
		}
		for _, r := range v.Replicas {
			if r.Addr == named {
				continue
			}
			sentinelRole[r.Addr] = "replica"
			if r.Down() {
				replicaDown[r.Addr] = true
				sentinelFlags[r.Addr] = r.Flags
			} else if _, ok := sentinelFlags[r.Addr]; !ok {
				sentinelFlags[r.Addr] = r.Flags
			}
		}
		if v.MasterAddr == named {
			sentinelFlags[named] = v.MasterFlags
		}
	}

	// Every node worth showing: listed by a Sentinel, or probed (an old master stays probed until the
	// Sentinels forget it, which is how a dual master is caught).
	addrs := map[string]bool{}
	for a := range sentinelRole {
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
	sorted := make([]string, 0, len(addrs))
	for a := range addrs {
		sorted = append(sorted, a)
	}
	sort.Strings(sorted)

	// Claimants are judged on the latest probe only: a node that stopped answering claims nothing.
	var claimants []string
	for _, a := range sorted {
		if n := s.Nodes[a]; n != nil && n.Health.Up && n.Last.OK() && n.Last.Replication.IsMaster() {
			claimants = append(claimants, a)
		}
	}
	for _, a := range claimants {
		if g.Failover != nil && a == g.Failover.Promoting && g.Failover.Promoted {
			continue // the replica being promoted: its role:master is expected
		}
		if named != "" && a != named || named == "" && len(claimants) > 1 {
			gs.DualMasters = append(gs.DualMasters, a)
		}
	}

	gs.Detected = g.Detected
	if f := g.Failover; f != nil {
		cp := *f
		gs.Failover = &cp
	}
	switch masterNode := s.Nodes[named]; {
	case g.Failover != nil && g.Failover.Cut && g.Failover.OldMaster == named:
		// The leader has started promoting a replica: the old master gets no more writes, since they
		// would not reach the new master. The promoted replica takes them as soon as it says so itself.
		f := g.Failover
		if p := s.Nodes[f.Promoting]; f.Promoted && p != nil && p.Last.OK() && p.Last.Replication.IsMaster() {
			gs.Master = f.Promoting
		} else {
			gs.NoMasterReason = fmt.Sprintf("failover in progress: Sentinel %s is promoting %s", f.Leader, dash(f.Promoting))
		}
	case named == "" && answered:
		gs.NoMasterReason = "Sentinels disagree on the master"
	case named == "":
		gs.NoMasterReason = "no Sentinel reachable and no master known"
		if failed := g.sortedViews(func(v sentinel.View) bool { return v.Err != nil }); len(failed) > 0 {
			gs.NoMasterReason = "no Sentinel names a master; " + failed[0].Err.Error()
		}
	case masterNode == nil || !masterNode.Health.Known:
		// Its role was never verified, so nothing routes to it; sessions from before a reload stay.
		gs.KeptMaster = named
		gs.NoMasterReason = fmt.Sprintf("master %s not probed yet", named)
		if masterNode != nil && masterNode.Stall != "" {
			gs.NoMasterReason = fmt.Sprintf("master %s has not passed a probe yet: it is %s", named, StallText(masterNode.Stall))
		}
	case !masterNode.Health.Up && masterNode.Last.OK():
		gs.KeptMaster = named
		gs.NoMasterReason = fmt.Sprintf("master %s is DOWN, coming back: %d of %d checks passed", named,
			masterNode.Health.Streak(), s.Rise)
	case !masterNode.Health.Up:
		// New clients are held, then refused; established sessions stay until Sentinel moves the master.
		gs.KeptMaster = named
		gs.NoMasterReason = fmt.Sprintf("master %s is DOWN (%s)", named, masterNode.Last.Reason())
		if masterNode.Stall != "" {
			gs.NoMasterReason = fmt.Sprintf("master %s is DOWN, and now %s", named, StallText(masterNode.Stall))
		}
	case !masterNode.LastOK.Replication.IsMaster():
		gs.NoMasterReason = fmt.Sprintf("Sentinel names %s but it reports role:%s", named, masterNode.LastOK.Replication.Role)
	case !answered && len(claimants) > 1:
		gs.NoMasterReason = fmt.Sprintf("no Sentinel reachable and %d nodes claim role:master", len(claimants))
	default:
		gs.Master = named
	}
	s.fence(g, &gs, now)
	// An operator's DRAIN or MAINT outranks everything else: the master port then refuses or holds new
	// clients, as the page warns before the operator confirms.
	adminBlocked := ""
	if m := s.Nodes[gs.Master]; gs.Master != "" && m != nil && m.Admin != "" && m.Admin != AdminReady {
		adminBlocked = gs.Master
		gs.NoMasterReason = fmt.Sprintf("master %s is in %s (set by an operator)", gs.Master, m.Admin)
		if m.Admin == AdminDrain {
			gs.DrainMaster = gs.Master
		}
		gs.Master = ""
	}

	for _, a := range sorted {
		n := s.Nodes[a]
		ns := NodeSnapshot{Addr: a, SentinelRole: sentinelRole[a], SentinelFlags: sentinelFlags[a]}
		ns.Admin, ns.LagSeconds, ns.LagBytes = AdminReady, -1, -1
		if n != nil {
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
		if m := s.Nodes[gs.Master]; m != nil && m.LastOK.OK() && a != gs.Master {
			if link, ok := m.LastOK.Replication.Replica(a); ok {
				ns.LagSeconds = link.Lag
				ns.LagBytes = max(m.LastOK.Replication.MasterReplOffset-link.Offset, 0)
			}
		}
		ns.InMasterPool = a == gs.Master
		// A replica out of the pool because of its probes alone keeps its sessions, as the master does;
		// one that Sentinel flags down, or an operator put in MAINT, loses them.
		listedReplica := sentinelRole[a] == "replica" && !replicaDown[a] && ns.Admin != AdminMaint
		switch {
		case ns.InMasterPool:
			ns.Verdict = "master"
		case a == adminBlocked:
			ns.Verdict = strings.ToLower(string(ns.Admin))
		case gs.Fenced && a == named:
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
				gs.KeptReplicas = append(gs.KeptReplicas, a)
			}
		case n.LastOK.Replication.IsMaster() && a != named:
			ns.Verdict = "dual-master"
		case a == named:
			ns.Verdict = "not-verified"
		case sentinelRole[a] != "replica":
			ns.Verdict = "unknown-to-sentinel"
		case replicaDown[a]:
			ns.Verdict = "sentinel-down"
		case n.Stall != "":
			// It cannot answer new clients now, but its sessions wait for it as direct clients would.
			ns.Verdict = string(n.Stall)
			if listedReplica {
				gs.KeptReplicas = append(gs.KeptReplicas, a)
			}
		case !n.LastOK.Replication.IsSyncedReplica():
			ns.Verdict = "not-synced"
		case s.MaxReplicaLagSeconds > 0 && lagging(s, gs.Master, a, s.MaxReplicaLagSeconds):
			ns.Verdict = "lagging"
		case ns.Admin == AdminDrain:
			ns.Verdict = "drain"
			gs.DrainReplicas = append(gs.DrainReplicas, a)
		case ns.Admin == AdminMaint:
			ns.Verdict = "maint"
		default:
			ns.Verdict = "replica"
			ns.InReplicaPool = true
			gs.Replicas = append(gs.Replicas, a)
		}
		gs.Nodes = append(gs.Nodes, ns)
	}
	if len(gs.Replicas) == 0 && gs.Master != "" {
		gs.Replicas = []string{gs.Master}
		gs.ReplicaFallback = true
	}

	sentinels := make([]string, 0, len(g.Views))
	for a := range g.Views {
		sentinels = append(sentinels, a)
	}
	for a := range g.LastEvent {
		if _, ok := g.Views[a]; !ok {
			sentinels = append(sentinels, a)
		}
	}
	sort.Strings(sentinels)
	for _, a := range sentinels {
		v := g.Views[a]
		ss := SentinelSnapshot{Addr: a, Reachable: v.Err == nil && !v.At.IsZero(), Tilt: v.Tilt,
			MasterAddr: v.MasterAddr, ConfigEpoch: v.ConfigEpoch}
		if v.Err != nil {
			ss.Err = v.Err.Error()
		}
		ss.Events = g.EventsReceived[a]
		if ev, ok := g.LastEvent[a]; ok {
			ss.LastEvent, ss.LastEventAt = ev.Channel+" "+ev.Payload, ev.At
		}
		gs.Sentinels = append(gs.Sentinels, ss)
	}
	return gs
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
