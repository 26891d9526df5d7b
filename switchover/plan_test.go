package switchover

import (
	"slices"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel-proxy/check"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
)

const (
	master = "10.0.0.1:6379"
	repA   = "10.0.0.2:6379"
	repB   = "10.0.0.3:6379"
	repC   = "10.0.0.4:6379"
	sent1  = "10.0.1.1:26379"
	sent2  = "10.0.1.2:26379"
)

// replicaNode is a healthy, synced replica lagBytes behind the master, as the snapshot shows it.
func replicaNode(addr string, lagBytes int64) routing.NodeSnapshot {
	return routing.NodeSnapshot{Addr: addr, SentinelRole: "replica", Health: check.Health{Known: true, Up: true},
		LastOK: check.Result{Status: check.L7OK, Replication: check.Replication{Role: "slave", MasterLinkStatus: "up"}},
		Admin:  routing.AdminReady, LagBytes: lagBytes, LagSeconds: 0, Verdict: "replica", InReplicaPool: true}
}

// settled is a group with a verified master and the given replicas, which the Sentinels agree on.
func settled(replicas ...routing.NodeSnapshot) *routing.GroupSnapshot {
	g := &routing.GroupSnapshot{Name: "g", Master: master, Named: master, NamedEpoch: 3, SentinelsAnswer: true,
		SentinelsKnown: 2, SentinelsAnswering: 2, Majority: true,
		Sentinels: []routing.SentinelSnapshot{
			{Addr: sent1, Reachable: true, MasterAddr: master, ConfigEpoch: 3},
			{Addr: sent2, Reachable: true, MasterAddr: master, ConfigEpoch: 3},
		}}
	g.Nodes = append([]routing.NodeSnapshot{{Addr: master, SentinelRole: "master", Health: check.Health{Known: true, Up: true},
		Admin: routing.AdminReady, Verdict: "master", InMasterPool: true}}, replicas...)
	return g
}

func sentinelReplica(addr string, priority int) SentinelReplica {
	return SentinelReplica{Addr: addr, Flags: "slave", Priority: priority, LinkOK: true}
}

func TestChooseTarget(t *testing.T) {
	three := []SentinelReplica{sentinelReplica(repA, 100), sentinelReplica(repB, 100), sentinelReplica(repC, 100)}
	cases := []struct {
		name     string
		group    *routing.GroupSnapshot
		replicas []SentinelReplica
		to       string
		want     string
		err      string // part of the error; "" means none
	}{
		{name: "highest offset wins", group: settled(replicaNode(repA, 300), replicaNode(repB, 0), replicaNode(repC, 20)),
			replicas: three, want: repB},
		{name: "a known lag beats an unknown one", group: settled(replicaNode(repA, -1), replicaNode(repB, 5), replicaNode(repC, -1)),
			replicas: three, want: repB},
		{name: "equal offsets: the one Sentinel prefers, then the address",
			group:    settled(replicaNode(repA, 0), replicaNode(repB, 0), replicaNode(repC, 0)),
			replicas: []SentinelReplica{sentinelReplica(repA, 100), sentinelReplica(repB, 10), sentinelReplica(repC, 10)}, want: repB},
		{name: "never a replica with priority 0", group: settled(replicaNode(repA, 0), replicaNode(repB, 50)),
			replicas: []SentinelReplica{sentinelReplica(repA, 0), sentinelReplica(repB, 100)}, want: repB},
		{name: "never a replica the Sentinel flags down", group: settled(replicaNode(repA, 0), replicaNode(repB, 50)),
			replicas: []SentinelReplica{{Addr: repA, Flags: "s_down,slave", Priority: 100}, sentinelReplica(repB, 100)}, want: repB},
		{name: "never a replica whose link is down", group: settled(func() routing.NodeSnapshot {
			n := replicaNode(repA, 0)
			n.LastOK.Replication.MasterLinkStatus = "down"
			return n
		}(), replicaNode(repB, 50)), replicas: three[:2], want: repB},
		{name: "never a replica in MAINT", group: settled(func() routing.NodeSnapshot {
			n := replicaNode(repA, 0)
			n.Admin = routing.AdminMaint
			return n
		}(), replicaNode(repB, 50)), replicas: three[:2], want: repB},
		{name: "never a replica DOWN by the probes", group: settled(func() routing.NodeSnapshot {
			n := replicaNode(repA, 0)
			n.Health.Up = false
			return n
		}(), replicaNode(repB, 50)), replicas: three[:2], want: repB},
		{name: "none fit", group: settled(replicaNode(repA, 0)), replicas: []SentinelReplica{sentinelReplica(repA, 0)},
			err: "no replica can take over: " + repA + ": replica-priority is 0"},
		{name: "no replica at all", group: settled(), replicas: nil, err: "lists no replica"},
		{name: "--to is honoured over a higher offset", group: settled(replicaNode(repA, 0), replicaNode(repB, 500)),
			replicas: three[:2], to: repB, want: repB},
		{name: "--to a replica with priority 0 is refused", group: settled(replicaNode(repA, 0), replicaNode(repB, 0)),
			replicas: []SentinelReplica{sentinelReplica(repA, 100), sentinelReplica(repB, 0)}, to: repB,
			err: "replica-priority is 0: Sentinel never promotes it"},
		{name: "--to the master", group: settled(replicaNode(repA, 0)), replicas: three[:1], to: master, err: "is the master already"},
		{name: "--to a node the Sentinel does not list", group: settled(replicaNode(repA, 0)), replicas: three[:1], to: repC,
			err: "not a replica the Sentinel knows"},
		{name: "--to a node not probed", group: settled(replicaNode(repA, 0)), replicas: three[:2], to: repB, err: "not probed yet"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, why, err := chooseTarget(c.group, c.replicas, c.to)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %q, %v; want an error with %q", got, err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q (%s), %v; want %s", got, why, err, c.want)
			}
		})
	}
}

// TestToSteer follows sentinelSelectSlave's order: lower priority first, then (equal offsets once the
// writes are held) run ids nobody chose. Only replicas that could win must be taken out.
func TestToSteer(t *testing.T) {
	cases := []struct {
		name     string
		replicas []SentinelReplica
		target   string
		want     []string
	}{
		{name: "equal priorities: every other replica", target: repA,
			replicas: []SentinelReplica{sentinelReplica(repA, 100), sentinelReplica(repB, 100), sentinelReplica(repC, 100)},
			want:     []string{repB, repC}},
		{name: "the target alone has the lowest priority: not needed", target: repA,
			replicas: []SentinelReplica{sentinelReplica(repA, 10), sentinelReplica(repB, 100), sentinelReplica(repC, 50)}},
		{name: "a lower priority elsewhere must go; a higher one may stay", target: repB,
			replicas: []SentinelReplica{sentinelReplica(repA, 10), sentinelReplica(repB, 50), sentinelReplica(repC, 100)},
			want:     []string{repA}},
		{name: "priority 0 replicas are out already", target: repA,
			replicas: []SentinelReplica{sentinelReplica(repA, 100), sentinelReplica(repB, 0)}},
		{name: "the only replica", target: repA, replicas: []SentinelReplica{sentinelReplica(repA, 100)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, r := range toSteer(c.replicas, c.target) {
				got = append(got, r.Addr)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestNotSeen(t *testing.T) {
	want := []SentinelReplica{sentinelReplica(repB, 100), sentinelReplica(repC, 100)}
	now := []SentinelReplica{sentinelReplica(repA, 100), sentinelReplica(repB, 0), sentinelReplica(repC, 100)}
	if got := notSeen(now, want); !slices.Equal(got, []string{repC}) {
		t.Errorf("got %v, want [%s]", got, repC)
	}
	now[2].Flags = "s_down,slave" // the Sentinel cannot read it, and would not pick it
	if got := notSeen(now, want); len(got) != 0 {
		t.Errorf("got %v, want none", got)
	}
	if got := notSeen(now[:1], want[:1]); !slices.Equal(got, []string{repB}) {
		t.Errorf("a replica the Sentinel no longer lists is not seen: got %v", got)
	}
}

func TestCaughtUp(t *testing.T) {
	m := check.Replication{Role: "master", MasterReplID: "abc", MasterReplOffset: 1000}
	replica := func(offset int64) check.Replication {
		return check.Replication{Role: "slave", MasterLinkStatus: "up", MasterReplID: "abc", SlaveReplOffset: offset}
	}
	if ok, err := caughtUp(m, replica(999)); ok || err != nil {
		t.Errorf("behind: %v %v", ok, err)
	}
	if ok, err := caughtUp(m, replica(1000)); !ok || err != nil {
		t.Errorf("equal: %v %v", ok, err)
	}
	other := replica(2000)
	other.MasterReplID = "xyz"
	if _, err := caughtUp(m, other); err == nil {
		t.Errorf("another history must not count as caught up")
	}
	down := replica(1000)
	down.MasterLinkStatus = "down"
	if _, err := caughtUp(m, down); err == nil {
		t.Errorf("a link down must not count as caught up")
	}
}

func TestCheckGroup(t *testing.T) {
	ok := settled(replicaNode(repA, 0))
	if err := checkGroup(ok); err != nil {
		t.Fatalf("settled group: %v", err)
	}
	cases := map[string]func(g *routing.GroupSnapshot){
		"no verified master":  func(g *routing.GroupSnapshot) { g.Master, g.NoMasterReason = "", "x" },
		"the Sentinels name":  func(g *routing.GroupSnapshot) { g.Named = repA },
		"already under way":   func(g *routing.GroupSnapshot) { g.Failover = &routing.Failover{Leader: sent1} },
		"no majority":         func(g *routing.GroupSnapshot) { g.Majority = false },
		"claims role:master:": func(g *routing.GroupSnapshot) { g.DualMasters = []string{repA} },
	}
	for want, breakIt := range cases {
		g := settled(replicaNode(repA, 0))
		breakIt(g)
		if err := checkGroup(g); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
}

func TestSentinelCandidates(t *testing.T) {
	g := settled()
	g.Sentinels = append(g.Sentinels,
		routing.SentinelSnapshot{Addr: "10.0.1.3:26379", Reachable: true, Tilt: true, MasterAddr: master, ConfigEpoch: 3},
		routing.SentinelSnapshot{Addr: "10.0.1.4:26379", Reachable: false, MasterAddr: master, ConfigEpoch: 3},
		routing.SentinelSnapshot{Addr: "10.0.1.5:26379", Reachable: true, MasterAddr: repA, ConfigEpoch: 2})
	if got := sentinelCandidates(g); !slices.Equal(got, []string{sent1, sent2}) {
		t.Errorf("got %v", got)
	}
}
