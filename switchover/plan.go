package switchover

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/sentinel-proxy/sentinel-proxy/check"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
)

// This file holds the decisions of a switchover, as pure functions of what the routing snapshot and a
// Sentinel say: table-tested without sockets.

// SentinelReplica is one replica as a Sentinel lists it in SENTINEL REPLICAS: what its choice of the
// replica to promote rests on (sentinelSelectSlave in Redis's sentinel.c).
type SentinelReplica struct {
	Addr  string
	Flags string // e.g. "slave", "s_down,slave", "slave,disconnected"
	// Priority is replica-priority as the Sentinel last read it from the replica's INFO ("slave-priority");
	// 0 means never promoted.
	Priority int
	Offset   int64  // the replication offset the Sentinel last read ("slave-repl-offset")
	RunID    string // "run-id"
	LinkOK   bool   // "master-link-status" is ok
}

// Down reports whether the Sentinel would pass the replica over: sentinelSelectSlave skips replicas that
// are subjectively or objectively down, or whose link to the Sentinel is disconnected.
func (r SentinelReplica) Down() bool {
	return strings.Contains(r.Flags, "s_down") || strings.Contains(r.Flags, "o_down") ||
		strings.Contains(r.Flags, "disconnected")
}

// checkGroup says why the group's master cannot be moved on purpose now, or nil. A switchover starts only
// from a settled group: a verified master that the Sentinels name, no failover under way, and a majority
// of the Sentinels answering (SENTINEL FAILOVER is obeyed by one Sentinel; the majority is what makes the
// new epoch stick).
func checkGroup(g *routing.GroupSnapshot) error {
	switch {
	case g.Master == "":
		return fmt.Errorf("no verified master (%s)", g.NoMasterReason)
	case g.Master != g.Named:
		return fmt.Errorf("the master port routes to %s but the Sentinels name %s", g.Master, g.Named)
	case g.Failover != nil:
		return fmt.Errorf("a failover is already under way (Sentinel %s, %s)", g.Failover.Leader, g.Failover.Stage)
	case !g.Majority:
		return fmt.Errorf("only %d of %d Sentinels answer: no majority to agree on a new master",
			g.SentinelsAnswering, g.SentinelsKnown)
	case len(g.DualMasters) > 0:
		return fmt.Errorf("another node claims role:master: %s", strings.Join(g.DualMasters, ", "))
	}
	return nil
}

// sentinelCandidates lists the Sentinels that may be asked to fail the group over, in the snapshot's
// order: reachable, not in TILT, and naming the verified master in its newest epoch.
func sentinelCandidates(g *routing.GroupSnapshot) []string {
	var out []string
	for _, s := range g.Sentinels {
		if s.Reachable && !s.Tilt && s.MasterAddr == g.Master && s.ConfigEpoch == g.NamedEpoch {
			out = append(out, s.Addr)
		}
	}
	return out
}

// chooseTarget picks the replica to promote: to when it is set and fit, otherwise the fit replica with
// the highest replication offset. Offsets are compared as the master last reported them (one INFO
// replication, so taken at one moment), not as each replica's own probe did at different moments. It
// returns the target and why it was chosen, or why none can be.
func chooseTarget(g *routing.GroupSnapshot, replicas []SentinelReplica, to string) (target, why string, err error) {
	if to != "" {
		if to == g.Master {
			return "", "", fmt.Errorf("--to %s is the master already", to)
		}
		if err := fit(g, replicas, to); err != nil {
			return "", "", fmt.Errorf("--to %s: %w", to, err)
		}
		return to, "named by --to", nil
	}
	type candidate struct {
		addr     string
		lag      int64 // bytes behind the master, as the master reports it; -1 unknown
		priority int
	}
	var fitting []candidate
	var unfit []string
	for _, r := range replicas {
		if r.Addr == g.Master {
			continue
		}
		if err := fit(g, replicas, r.Addr); err != nil {
			unfit = append(unfit, fmt.Sprintf("%s: %v", r.Addr, err))
			continue
		}
		n := node(g, r.Addr)
		fitting = append(fitting, candidate{addr: r.Addr, lag: n.LagBytes, priority: r.Priority})
	}
	if len(fitting) == 0 {
		if len(unfit) == 0 {
			return "", "", fmt.Errorf("the Sentinel lists no replica")
		}
		return "", "", fmt.Errorf("no replica can take over: %s", strings.Join(unfit, "; "))
	}
	// Highest offset first (a known lag before an unknown one); among equals the one Sentinel prefers
	// anyway (lower priority), so that steering is less often needed; then by address, to be stable.
	slices.SortFunc(fitting, func(a, b candidate) int {
		if (a.lag < 0) != (b.lag < 0) {
			if a.lag < 0 {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.lag, b.lag), cmp.Compare(a.priority, b.priority), strings.Compare(a.addr, b.addr))
	})
	best := fitting[0]
	why = "the healthy replica with the highest offset"
	if best.lag >= 0 {
		why += fmt.Sprintf(" (%d bytes behind)", best.lag)
	}
	return best.addr, why, nil
}

// fit says why addr cannot be promoted, or nil: the Sentinel must list it as a replica it could pick
// (not down, replica-priority not 0), the proxy's probes must see it UP with its link to the master up,
// and an operator must not have taken it out (DRAIN or MAINT: the master port would refuse it).
func fit(g *routing.GroupSnapshot, replicas []SentinelReplica, addr string) error {
	i := slices.IndexFunc(replicas, func(r SentinelReplica) bool { return r.Addr == addr })
	if i < 0 {
		return fmt.Errorf("not a replica the Sentinel knows for %s", g.Name)
	}
	r := replicas[i]
	switch {
	case r.Priority == 0:
		return fmt.Errorf("replica-priority is 0: Sentinel never promotes it")
	case r.Down():
		return fmt.Errorf("the Sentinel flags it %s", r.Flags)
	}
	n := node(g, addr)
	switch {
	case n == nil || !n.Health.Known:
		return fmt.Errorf("not probed yet")
	case !n.Health.Up:
		return fmt.Errorf("DOWN by the proxy's checks")
	case n.Stall != "":
		return fmt.Errorf("%s", routing.StallText(n.Stall))
	case !n.LastOK.Replication.IsSyncedReplica():
		return fmt.Errorf("not a synced replica (%s)", linkText(n.LastOK.Replication))
	case n.Admin != routing.AdminReady:
		return fmt.Errorf("in %s (set by an operator): the master port would not route to it", n.Admin)
	}
	return nil
}

func linkText(r check.Replication) string {
	switch {
	case r.Role != "slave":
		return "role:" + r.Role
	case r.MasterSyncInProgress:
		return "full sync in progress"
	}
	return "master_link_status:" + r.MasterLinkStatus
}

// node returns the group's snapshot of addr, or nil.
func node(g *routing.GroupSnapshot, addr string) *routing.NodeSnapshot {
	for i := range g.Nodes {
		if g.Nodes[i].Addr == addr {
			return &g.Nodes[i]
		}
	}
	return nil
}

// toSteer lists the replicas whose replica-priority must be set to 0 so that the Sentinel can pick no
// one but target. sentinelSelectSlave sorts the replicas it may pick by lower priority, then higher
// processed offset, then smaller run id; a replica with a higher priority number than the target's
// never wins, whatever its offset. Every other one could: offsets are equal once the writes are held and
// the target caught up, and the Sentinel's copies of them are up to one INFO period old anyway, so the
// order among equals is the run ids', which the operator did not choose.
func toSteer(replicas []SentinelReplica, target string) []SentinelReplica {
	tp := 0
	for _, r := range replicas {
		if r.Addr == target {
			tp = r.Priority
		}
	}
	var out []SentinelReplica
	for _, r := range replicas {
		if r.Addr != target && r.Priority != 0 && r.Priority <= tp {
			out = append(out, r)
		}
	}
	return out
}

// notSeen lists the replicas of want whose priority the Sentinel does not report as 0 yet. Replicas it
// flags down are left out: it cannot read their INFO, and it would not pick them either.
func notSeen(replicas []SentinelReplica, want []SentinelReplica) []string {
	var out []string
	for _, w := range want {
		i := slices.IndexFunc(replicas, func(r SentinelReplica) bool { return r.Addr == w.Addr })
		if i >= 0 && replicas[i].Down() {
			continue
		}
		if i < 0 || replicas[i].Priority != 0 {
			out = append(out, w.Addr)
		}
	}
	return out
}

// caughtUp reports whether the target has applied everything the master had written when its offset was
// read: the target's own slave_repl_offset, which it advances as it applies the stream, at or past the
// master's master_repl_offset read after the writes were held. The master's view of the replica (slaveN
// offset=) would do as well but lags by up to a second (replicas acknowledge once a second), and the
// Sentinel's by up to its INFO period. Both must share the replication history (replid), or the offsets
// are not comparable.
func caughtUp(master, target check.Replication) (bool, error) {
	switch {
	case target.Role != "slave":
		return false, fmt.Errorf("target reports role:%s", target.Role)
	case target.MasterLinkStatus != "up":
		return false, fmt.Errorf("target's link to the master is %s", target.MasterLinkStatus)
	case target.MasterReplID != master.MasterReplID:
		return false, fmt.Errorf("target replicates history %s, the master writes %s", target.MasterReplID, master.MasterReplID)
	}
	return target.SlaveReplOffset >= master.MasterReplOffset, nil
}
