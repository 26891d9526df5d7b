package routing

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/check"
	"github.com/sentinel-proxy/sentinel-proxy/sentinel"
)

const (
	nodeA = "10.0.0.1:6379"
	nodeB = "10.0.0.2:6379"
	nodeC = "10.0.0.3:6379"
	s1    = "10.0.1.1:26379"
	s2    = "10.0.1.2:26379"
	s3    = "10.0.1.3:26379"
)

func view(sentinelAddr, master string, epoch int64, replicas ...string) Input {
	v := sentinel.View{Sentinel: sentinelAddr, MasterName: "g", At: time.Unix(1, 0), MasterAddr: master,
		ConfigEpoch: epoch, MasterFlags: "master"}
	for _, r := range replicas {
		flags := "slave"
		if a, f, ok := strings.Cut(r, "="); ok {
			r, flags = a, f
		}
		v.Replicas = append(v.Replicas, sentinel.Replica{Addr: r, Flags: flags, LinkStatus: "ok"})
	}
	return ViewInput{View: v}
}

func unreachable(sentinelAddr string) Input {
	return ViewInput{View: sentinel.View{Sentinel: sentinelAddr, MasterName: "g", At: time.Unix(1, 0), Err: errors.New("refused")}}
}

func probeMaster(addr string) Input {
	return ProbeInput{Result: check.Result{Addr: addr, Status: check.L7OK, Replication: check.Replication{Role: "master"}}}
}

func probeReplica(addr string, link string) Input {
	return ProbeInput{Result: check.Result{Addr: addr, Status: check.L7OK,
		Replication: check.Replication{Role: "slave", MasterLinkStatus: link}}}
}

func probeLocal(addr string) Input {
	return ProbeInput{Result: check.Result{Addr: addr, Status: check.SOCKERR, Err: errors.New("too many open files")}}
}

// probeStall is a probe that found the node alive but unable to answer: status is L7STS with reply (BUSY
// or LOADING), or L7TOUT / L4TOUT.
func probeStall(addr string, status check.Status, reply string) Input {
	err := errors.New("i/o timeout")
	if reply != "" {
		err = fmt.Errorf("PING: %w", check.RedisError(reply))
	}
	return ProbeInput{Result: check.Result{Addr: addr, Status: status, Err: err}}
}

func probeBusy(addr string) Input {
	return probeStall(addr, check.L7STS, "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.")
}

func probeTimeout(addr string) Input { return probeStall(addr, check.L7TOUT, "") }

func repeat(n int, in Input) []Input {
	out := make([]Input, n)
	for i := range out {
		out[i] = in
	}
	return out
}

func probeFail(addr string) Input {
	return ProbeInput{Result: check.Result{Addr: addr, Status: check.L4CON, Err: errors.New("refused")}}
}

func switchMaster(from, old, new string) Input {
	ev, err := sentinel.ParseEvent(from, "+switch-master", "g "+strings.Replace(old, ":", " ", 1)+" "+strings.Replace(new, ":", " ", 1), time.Unix(2, 0))
	if err != nil {
		panic(err)
	}
	return EventInput{Event: ev}
}

func event(from, channel, payload string) Input {
	ev, err := sentinel.ParseEvent(from, channel, payload, time.Unix(2, 0))
	if err != nil {
		panic(err)
	}
	return EventInput{Event: ev}
}

func admin(addr string, st AdminState) Input { return AdminInput{Node: addr, State: st} }

func healthy() []Input {
	return []Input{
		view(s1, nodeA, 1, nodeB, nodeC), view(s2, nodeA, 1, nodeB, nodeC), view(s3, nodeA, 1, nodeB, nodeC),
		probeMaster(nodeA), probeReplica(nodeB, "up"), probeReplica(nodeC, "up"),
	}
}

func with(base []Input, more ...Input) []Input { return append(append([]Input{}, base...), more...) }

func TestDecide(t *testing.T) {
	tests := []struct {
		name        string
		inputs      []Input
		master      string
		reason      string // substring of NoMasterReason when master is ""
		replicas    []string
		fallback    bool
		dualMasters []string
		verdicts    map[string]string
		maxLag      int
		// keptMaster and keptReplicas are the nodes out of their pool whose sessions stay.
		keptMaster   string
		keptReplicas []string
		stalls       map[string]check.Stall
	}{
		{name: "nothing known", inputs: nil, reason: "no Sentinel reachable"},
		{name: "healthy", inputs: healthy(), master: nodeA, replicas: []string{nodeB, nodeC},
			verdicts: map[string]string{nodeA: "master", nodeB: "replica", nodeC: "replica"}},
		{name: "named master not probed yet", inputs: healthy()[:3], reason: "not probed yet", keptMaster: nodeA},
		{name: "the proxy's own socket errors do not take the master DOWN",
			inputs: with(healthy(), probeLocal(nodeA), probeLocal(nodeA), probeLocal(nodeA), probeLocal(nodeA)),
			master: nodeA, replicas: []string{nodeB, nodeC}},
		{name: "a master coming back says how far",
			inputs: with(healthy(), probeFail(nodeA), probeFail(nodeA), probeFail(nodeA), probeMaster(nodeA)),
			reason: "master " + nodeA + " is DOWN, coming back: 1 of 2 checks passed", keptMaster: nodeA},
		{name: "a replica in MAINT leaves the pool", inputs: with(healthy(), admin(nodeB, AdminMaint)),
			master: nodeA, replicas: []string{nodeC}, verdicts: map[string]string{nodeB: "maint"}},
		{name: "a replica in DRAIN leaves the pool", inputs: with(healthy(), admin(nodeB, AdminDrain)),
			master: nodeA, replicas: []string{nodeC}, verdicts: map[string]string{nodeB: "drain"}},
		{name: "READY puts it back", inputs: with(healthy(), admin(nodeB, AdminMaint), admin(nodeB, AdminReady)),
			master: nodeA, replicas: []string{nodeB, nodeC}, verdicts: map[string]string{nodeB: "replica"}},
		{name: "the master in MAINT: the master port has none, and reads do not fall back to it",
			inputs: with(healthy(), admin(nodeA, AdminMaint)), reason: "master " + nodeA + " is in MAINT",
			replicas: []string{nodeB, nodeC}, verdicts: map[string]string{nodeA: "maint"}},
		{name: "the master in DRAIN", inputs: with(healthy(), admin(nodeA, AdminDrain), admin(nodeB, AdminMaint), admin(nodeC, AdminMaint)),
			reason: "is in DRAIN", verdicts: map[string]string{nodeA: "drain"}},
		{name: "MAINT on a node that is down changes nothing else", inputs: with(healthy(), probeFail(nodeC), probeFail(nodeC),
			probeFail(nodeC), admin(nodeC, AdminMaint)), master: nodeA, replicas: []string{nodeB}, verdicts: map[string]string{nodeC: "down"}},
		{name: "named master reports slave", inputs: with(healthy(), probeReplica(nodeA, "down")),
			reason: "reports role:slave", verdicts: map[string]string{nodeA: "not-verified"}},
		{name: "switch-master alone carries no epoch and moves nothing",
			inputs: with(healthy(), switchMaster(s2, nodeA, nodeB)), master: nodeA},
		{name: "the announcing Sentinel's view names the new master; its probe must confirm",
			inputs: with(healthy(), switchMaster(s2, nodeA, nodeB), view(s2, nodeB, 2, nodeA, nodeC)),
			reason: "reports role:slave", dualMasters: []string{nodeA}},
		{name: "switch-master, view, then verified",
			inputs: with(healthy(), switchMaster(s2, nodeA, nodeB), view(s2, nodeB, 2, nodeA, nodeC), probeMaster(nodeB)),
			master: nodeB, replicas: []string{nodeC},
			// A still reports master until Sentinel reconfigures it: it must get nothing.
			dualMasters: []string{nodeA}, verdicts: map[string]string{nodeA: "dual-master", nodeB: "master"}},
		{name: "a stale view of an older epoch loses",
			inputs: with(healthy(), view(s2, nodeB, 2, nodeA, nodeC), probeMaster(nodeB), view(s3, nodeA, 1, nodeB, nodeC)),
			master: nodeB, dualMasters: []string{nodeA}},
		{name: "selected-slave alone changes nothing",
			inputs: with(healthy(), event(s1, "+selected-slave", "slave "+nodeB+" 10.0.0.2 6379 @ g 10.0.0.1 6379")),
			master: nodeA},
		{name: "send-slaveof-noone cuts the old master",
			inputs:   with(healthy(), event(s1, "+failover-state-send-slaveof-noone", "slave "+nodeB+" 10.0.0.2 6379 @ g 10.0.0.1 6379")),
			reason:   "failover in progress: Sentinel " + s1 + " is promoting " + nodeB,
			verdicts: map[string]string{nodeA: "failing-over", nodeB: "promoting"}},
		{name: "wait-promotion alone does not route before the probe says master",
			inputs: with(healthy(), event(s1, "+failover-state-wait-promotion", "slave "+nodeB+" 10.0.0.2 6379 @ g 10.0.0.1 6379")),
			reason: "failover in progress"},
		{name: "wait-promotion and a master probe route to the promoted replica before +switch-master",
			inputs: with(healthy(), event(s1, "+failover-state-wait-promotion", "slave "+nodeB+" 10.0.0.2 6379 @ g 10.0.0.1 6379"),
				probeMaster(nodeB)),
			// A is still named, and being failed over: that it still says master is expected.
			master: nodeB, replicas: []string{nodeC}, verdicts: map[string]string{nodeA: "failing-over"}},
		{name: "a promotion ends as the named master",
			inputs: with(healthy(), event(s1, "+failover-state-wait-promotion", "slave "+nodeB+" 10.0.0.2 6379 @ g 10.0.0.1 6379"),
				probeMaster(nodeB), switchMaster(s1, nodeA, nodeB), view(s1, nodeB, 2, nodeA, nodeC), view(s2, nodeB, 2, nodeA, nodeC)),
			master: nodeB, replicas: []string{nodeC}, dualMasters: []string{nodeA}},
		{name: "another Sentinel's attempt on the old master after a promotion does not route it again",
			inputs: with(healthy(), event(s1, "+failover-state-wait-promotion", "slave "+nodeB+" 10.0.0.2 6379 @ g 10.0.0.1 6379"),
				probeMaster(nodeB), event(s2, "+try-failover", "master g 10.0.0.1 6379"),
				event(s2, "+elected-leader", "master g 10.0.0.1 6379")),
			master: nodeB, replicas: []string{nodeC}, verdicts: map[string]string{nodeA: "failing-over"}},
		{name: "another Sentinel that picks a replica of its own keeps the old master cut",
			inputs: with(healthy(), event(s1, "+failover-state-send-slaveof-noone", "slave "+nodeB+" 10.0.0.2 6379 @ g 10.0.0.1 6379"),
				event(s2, "+selected-slave", "slave "+nodeC+" 10.0.0.3 6379 @ g 10.0.0.1 6379")),
			reason: "failover in progress: Sentinel " + s2 + " is promoting " + nodeC},
		{name: "an abort before promotion gives the master back",
			inputs: with(healthy(), event(s1, "+failover-state-send-slaveof-noone", "slave "+nodeB+" 10.0.0.2 6379 @ g 10.0.0.1 6379"),
				event(s1, "-failover-abort-slave-timeout", "master g 10.0.0.1 6379")),
			master: nodeA},
		{name: "the leader's later view without failover_in_progress ends a missed abort",
			inputs: with(healthy(), event(s1, "+failover-state-send-slaveof-noone", "slave "+nodeB+" 10.0.0.2 6379 @ g 10.0.0.1 6379"),
				ViewInput{View: sentinel.View{Sentinel: s1, MasterName: "g", AskedAt: time.Unix(5, 0), At: time.Unix(5, 0),
					MasterAddr: nodeA, ConfigEpoch: 1, MasterFlags: "master",
					Replicas: []sentinel.Replica{{Addr: nodeB, Flags: "slave"}, {Addr: nodeC, Flags: "slave"}}}}),
			master: nodeA},
		{name: "a view taken before the failover began does not end it",
			inputs: with(healthy(), event(s1, "+failover-state-send-slaveof-noone", "slave "+nodeB+" 10.0.0.2 6379 @ g 10.0.0.1 6379"),
				view(s1, nodeA, 1, nodeB, nodeC)),
			reason: "failover in progress"},
		{name: "a failover seen only by reconcile cuts the old master",
			inputs: with(healthy(), ViewInput{View: sentinel.View{Sentinel: s1, MasterName: "g", AskedAt: time.Unix(5, 0), At: time.Unix(5, 0),
				MasterAddr: nodeA, ConfigEpoch: 1, MasterFlags: "master,failover_in_progress",
				Replicas: []sentinel.Replica{{Addr: nodeB, Flags: "slave"}, {Addr: nodeC, Flags: "slave"}}}}),
			reason: "failover in progress"},
		{name: "the leader's view late in a failover already names the promoted replica: no cut",
			inputs: with(healthy(), view(s2, nodeB, 1, nodeA, nodeC), view(s3, nodeB, 1, nodeA, nodeC), probeMaster(nodeB),
				ViewInput{View: sentinel.View{Sentinel: s1, MasterName: "g", AskedAt: time.Unix(5, 0), At: time.Unix(5, 0),
					MasterAddr: nodeB, ConfigEpoch: 1, MasterFlags: "master,failover_in_progress", FailedOver: true,
					Replicas: []sentinel.Replica{{Addr: nodeC, Flags: "slave"}}}}),
			master: nodeB, dualMasters: []string{nodeA}},
		{name: "failover steps from a Sentinel in TILT are ignored",
			inputs: with(healthy(), event(s1, "+tilt", "#tilt mode entered"),
				event(s1, "+failover-state-send-slaveof-noone", "slave "+nodeB+" 10.0.0.2 6379 @ g 10.0.0.1 6379")),
			master: nodeA},
		{name: "old views lose to a newer epoch",
			inputs: with(healthy(), view(s3, nodeB, 2, nodeA, nodeC), probeMaster(nodeB), probeReplica(nodeA, "up")),
			master: nodeB, replicas: []string{nodeA, nodeC}},
		{name: "same epoch without majority fails closed",
			inputs: with(healthy(), view(s1, nodeB, 1, nodeA, nodeC), unreachable(s3), probeMaster(nodeB)),
			reason: "disagree", dualMasters: []string{nodeA, nodeB}},
		{name: "majority of one epoch wins",
			inputs: with(healthy(), view(s1, nodeB, 1, nodeA, nodeC)), master: nodeA},
		{name: "TILT views are ignored",
			inputs: with(healthy(), view(s1, nodeB, 5, nodeA, nodeC), event(s1, "+tilt", "#tilt mode entered"), probeMaster(nodeB)),
			master: nodeA, dualMasters: []string{nodeB}},
		{name: "no Sentinel answers: last master kept while it probes master",
			inputs: with(healthy(), unreachable(s1), unreachable(s2), unreachable(s3)),
			master: nodeA, replicas: []string{nodeB, nodeC}},
		{name: "no Sentinel answers and two nodes claim master: fail closed",
			inputs: with(healthy(), unreachable(s1), unreachable(s2), unreachable(s3), probeMaster(nodeB)),
			reason: "2 nodes claim role:master", dualMasters: []string{nodeB}},
		{name: "one failed probe is within fall",
			inputs: with(healthy(), probeFail(nodeA)), master: nodeA},
		{name: "three failed probes keep the sessions of the master the Sentinels name",
			inputs: with(healthy(), repeat(3, probeFail(nodeA))...), reason: "is DOWN", keptMaster: nodeA},
		{name: "a busy master stays the master, however long",
			inputs: with(healthy(), repeat(10, probeBusy(nodeA))...), master: nodeA, replicas: []string{nodeB, nodeC},
			verdicts: map[string]string{nodeA: "master"}, stalls: map[string]check.Stall{nodeA: check.StallBusy}},
		{name: "a master not answering probes in time stays the master",
			inputs: with(healthy(), repeat(10, probeTimeout(nodeA))...), master: nodeA,
			stalls: map[string]check.Stall{nodeA: check.StallUnresponsive}},
		{name: "a connect timeout is a stall too",
			inputs: with(healthy(), repeat(10, probeStall(nodeA, check.L4TOUT, ""))...), master: nodeA,
			stalls: map[string]check.Stall{nodeA: check.StallUnresponsive}},
		{name: "a loading master stays the master",
			inputs: with(healthy(), repeat(10, probeStall(nodeA, check.L7STS, "LOADING Redis is loading the dataset in memory"))...),
			master: nodeA, stalls: map[string]check.Stall{nodeA: check.StallLoading}},
		{name: "a stall ends with the next passed probe",
			inputs: with(healthy(), probeBusy(nodeA), probeTimeout(nodeA), probeMaster(nodeA)), master: nodeA,
			stalls: map[string]check.Stall{nodeA: ""}},
		{name: "stalls neither count toward fall nor reset it",
			inputs: with(healthy(), probeFail(nodeA), probeBusy(nodeA), probeFail(nodeA), probeTimeout(nodeA), probeFail(nodeA)),
			reason: "is DOWN", keptMaster: nodeA},
		{name: "a stall does not bring a DOWN master back",
			inputs: with(healthy(), append(repeat(3, probeFail(nodeA)), repeat(5, probeBusy(nodeA))...)...),
			reason: "is DOWN, and now busy running a script", keptMaster: nodeA, stalls: map[string]check.Stall{nodeA: check.StallBusy}},
		{name: "a master busy from the start is not verified",
			inputs: with(healthy()[:3], probeBusy(nodeA)), reason: "has not passed a probe yet: it is busy", keptMaster: nodeA},
		{name: "a failover cuts a busy master: its sessions are closed",
			inputs: with(healthy(), probeBusy(nodeA), probeBusy(nodeA),
				event(s1, "+failover-state-send-slaveof-noone", "slave "+nodeB+" 10.0.0.2 6379 @ g 10.0.0.1 6379")),
			reason: "failover in progress", verdicts: map[string]string{nodeA: "failing-over"}},
		{name: "a busy replica leaves the pool and keeps its sessions",
			inputs: with(healthy(), probeBusy(nodeB)), master: nodeA, replicas: []string{nodeC}, keptReplicas: []string{nodeB},
			verdicts: map[string]string{nodeB: "busy"}, stalls: map[string]check.Stall{nodeB: check.StallBusy}},
		{name: "an unresponsive replica leaves the pool and keeps its sessions",
			inputs: with(healthy(), probeTimeout(nodeB)), master: nodeA, replicas: []string{nodeC}, keptReplicas: []string{nodeB},
			verdicts: map[string]string{nodeB: "unresponsive"}},
		{name: "a busy replica answering again is back in the pool",
			inputs: with(healthy(), probeBusy(nodeB), probeReplica(nodeB, "up")), master: nodeA, replicas: []string{nodeB, nodeC},
			verdicts: map[string]string{nodeB: "replica"}},
		{name: "a replica DOWN by its probes keeps its sessions",
			inputs: with(healthy(), repeat(3, probeFail(nodeB))...), master: nodeA, replicas: []string{nodeC},
			keptReplicas: []string{nodeB}, verdicts: map[string]string{nodeB: "down"}},
		{name: "a busy replica Sentinel flags down loses its sessions",
			inputs: with(healthy(), probeBusy(nodeB), event(s1, "+sdown", "slave "+nodeB+" 10.0.0.2 6379 @ g 10.0.0.1 6379")),
			master: nodeA, replicas: []string{nodeC}, verdicts: map[string]string{nodeB: "sentinel-down"}},
		{name: "a stalled replica a Sentinel flags disconnected keeps its sessions",
			// Sentinel re-opens its pub/sub link to a node that published nothing for 6 s: a 6 s stall.
			inputs: with(healthy(), probeTimeout(nodeB), view(s1, nodeA, 1, nodeB+"=slave,disconnected", nodeC)),
			master: nodeA, replicas: []string{nodeC}, keptReplicas: []string{nodeB},
			verdicts: map[string]string{nodeB: "sentinel-down"}},
		{name: "a replica a Sentinel flags disconnected takes no new sessions and keeps its own",
			inputs: with(healthy(), view(s2, nodeA, 1, nodeB, nodeC+"=slave,disconnected")),
			master: nodeA, replicas: []string{nodeB}, keptReplicas: []string{nodeC},
			verdicts: map[string]string{nodeC: "sentinel-down"}},
		{name: "a stalled replica a Sentinel flags s_down and disconnected loses its sessions",
			inputs: with(healthy(), probeTimeout(nodeB), view(s1, nodeA, 1, nodeB+"=s_down,slave,disconnected", nodeC)),
			master: nodeA, replicas: []string{nodeC}, verdicts: map[string]string{nodeB: "sentinel-down"}},
		{name: "a DOWN replica in MAINT loses its sessions",
			inputs: with(healthy(), append(repeat(3, probeFail(nodeB)), admin(nodeB, AdminMaint))...),
			master: nodeA, replicas: []string{nodeC}, verdicts: map[string]string{nodeB: "down"}},
		{name: "replica with link down leaves the pool",
			inputs: with(healthy(), probeReplica(nodeB, "down")), master: nodeA, replicas: []string{nodeC},
			verdicts: map[string]string{nodeB: "not-synced"}},
		{name: "replica sdown leaves the pool",
			inputs: with(healthy(), event(s1, "+sdown", "slave "+nodeC+" 10.0.0.3 6379 @ g 10.0.0.1 6379")),
			master: nodeA, replicas: []string{nodeB}, verdicts: map[string]string{nodeC: "sentinel-down"}},
		{name: "replica -sdown comes back",
			inputs: with(healthy(), event(s1, "+sdown", "slave "+nodeC+" 10.0.0.3 6379 @ g 10.0.0.1 6379"),
				event(s1, "-sdown", "slave "+nodeC+" 10.0.0.3 6379 @ g 10.0.0.1 6379")),
			master: nodeA, replicas: []string{nodeB, nodeC}},
		{name: "no healthy replica: reads go to the master",
			inputs: with(healthy(), probeReplica(nodeB, "down"), probeFail(nodeC), probeFail(nodeC), probeFail(nodeC)),
			master: nodeA, replicas: []string{nodeA}, fallback: true, keptReplicas: []string{nodeC}},
		{name: "a replica one Sentinel lists is used",
			inputs: with(healthy(), view(s1, nodeA, 1, nodeB, nodeC, "10.0.0.9:6379"), probeReplica("10.0.0.9:6379", "up")),
			master: nodeA, replicas: []string{nodeB, nodeC, "10.0.0.9:6379"}},
		{name: "max_replica_lag takes a lagging replica out",
			inputs: with(healthy(), ProbeInput{Result: check.Result{Addr: nodeA, Status: check.L7OK, Replication: check.Replication{
				Role: "master", Replicas: []check.ReplicaLink{{Addr: nodeB, State: "online", Lag: 7}, {Addr: nodeC, State: "online", Lag: 1}}}}}),
			maxLag: 5, master: nodeA, replicas: []string{nodeC}, verdicts: map[string]string{nodeB: "lagging"}},
		{name: "max_replica_lag off ignores lag",
			inputs: with(healthy(), ProbeInput{Result: check.Result{Addr: nodeA, Status: check.L7OK, Replication: check.Replication{
				Role: "master", Replicas: []check.ReplicaLink{{Addr: nodeB, State: "online", Lag: 7}}}}}),
			master: nodeA, replicas: []string{nodeB, nodeC}},
		{name: "a probed node no Sentinel lists gets nothing",
			inputs: with(healthy(), probeReplica("10.0.0.9:6379", "up"), probeMaster("10.0.0.8:6379")),
			master: nodeA, replicas: []string{nodeB, nodeC}},
		{name: "replica of an older epoch view is not used once a newer one drops it",
			inputs: with(healthy(), view(s1, nodeB, 2, nodeC), probeMaster(nodeB)),
			master: nodeB, replicas: []string{nodeC}, dualMasters: []string{nodeA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := NewState([]string{"g"}, 2, 3)
			st.MaxReplicaLagSeconds = tt.maxLag
			for _, in := range tt.inputs {
				st.Apply(in)
			}
			g := Decide(st, []string{"g"}, time.Unix(3, 0)).Group("g")
			if g.Master != tt.master {
				t.Fatalf("master = %q (%s), want %q", g.Master, g.NoMasterReason, tt.master)
			}
			if tt.master == "" && !strings.Contains(g.NoMasterReason, tt.reason) {
				t.Errorf("reason = %q, want it to contain %q", g.NoMasterReason, tt.reason)
			}
			if tt.master != "" && tt.replicas != nil && !reflect.DeepEqual(g.Replicas, tt.replicas) {
				t.Errorf("replicas = %v, want %v", g.Replicas, tt.replicas)
			}
			if g.ReplicaFallback != tt.fallback {
				t.Errorf("fallback = %v, want %v", g.ReplicaFallback, tt.fallback)
			}
			if !reflect.DeepEqual(g.DualMasters, tt.dualMasters) {
				t.Errorf("dual masters = %v, want %v", g.DualMasters, tt.dualMasters)
			}
			if g.KeptMaster != tt.keptMaster || !reflect.DeepEqual(g.KeptReplicas, tt.keptReplicas) {
				t.Errorf("kept = %q %v, want %q %v", g.KeptMaster, g.KeptReplicas, tt.keptMaster, tt.keptReplicas)
			}
			for addr, want := range tt.stalls {
				for _, n := range g.Nodes {
					if n.Addr == addr && n.Stall != want {
						t.Errorf("%s stall = %q, want %q", addr, n.Stall, want)
					}
				}
			}
			for addr, want := range tt.verdicts {
				found := false
				for _, n := range g.Nodes {
					if n.Addr == addr {
						found = true
						if n.Verdict != want {
							t.Errorf("%s verdict = %q, want %q", addr, n.Verdict, want)
						}
					}
				}
				if !found {
					t.Errorf("%s not in snapshot", addr)
				}
			}
		})
	}
}

func TestApplyEffects(t *testing.T) {
	st := NewState([]string{"g"}, 2, 3)
	fx := st.Apply(view(s1, nodeA, 1, nodeB))
	if !reflect.DeepEqual(fx.ProbeNow, []string{nodeA}) {
		t.Errorf("a newly named master is probed at once: %+v", fx)
	}
	fx = st.Apply(switchMaster(s1, nodeA, nodeB))
	if !fx.Reconcile || !reflect.DeepEqual(fx.ProbeNow, []string{nodeB, nodeA}) {
		t.Errorf("+switch-master probes both and reconciles: %+v", fx)
	}
	st.Apply(event(s1, "+failover-state-wait-promotion", "slave "+nodeC+" 10.0.0.3 6379 @ g 10.0.0.1 6379"))
	if fx := st.Apply(probeReplica(nodeC, "down")); !reflect.DeepEqual(fx.ProbeSoon, []string{nodeC}) {
		t.Errorf("a promoted replica that is not master yet is probed again soon: %+v", fx)
	}
	fx = st.Apply(probeMaster(nodeB))
	if !reflect.DeepEqual(fx.HealthChanged, []string{nodeB}) {
		t.Errorf("first probe result is a health change: %+v", fx)
	}
	fx = st.Apply(probeBusy(nodeB))
	if len(fx.StallChanged) != 1 || fx.StallChanged[0].Stall != check.StallBusy || fx.StallChanged[0].Ended || len(fx.HealthChanged) > 0 {
		t.Errorf("a busy probe begins a stall and changes no health: %+v", fx)
	}
	if fx := st.Apply(probeBusy(nodeB)); len(fx.StallChanged) > 0 {
		t.Errorf("a stall that goes on is no change: %+v", fx)
	}
	fx = st.Apply(probeTimeout(nodeB))
	if len(fx.StallChanged) != 2 || !fx.StallChanged[0].Ended || fx.StallChanged[0].Stall != check.StallBusy ||
		fx.StallChanged[1].Stall != check.StallUnresponsive {
		t.Errorf("another kind of stall ends the first and begins the second: %+v", fx)
	}
	fx = st.Apply(probeMaster(nodeB))
	if len(fx.StallChanged) != 1 || !fx.StallChanged[0].Ended || fx.StallChanged[0].Stall != check.StallUnresponsive {
		t.Errorf("a passed probe ends the stall: %+v", fx)
	}
	if fx := st.Apply(ViewInput{View: sentinel.View{MasterName: "other"}}); fx.Reconcile || len(fx.ProbeNow) > 0 {
		t.Errorf("unknown group must be ignored: %+v", fx)
	}
}

func TestDeparted(t *testing.T) {
	prev := &GroupSnapshot{Master: nodeA, Replicas: []string{nodeB, nodeC}}
	next := &GroupSnapshot{Master: nodeB, Replicas: []string{nodeC}}
	m, r := Departed(prev, next)
	if !reflect.DeepEqual(m, []string{nodeA}) || !reflect.DeepEqual(r, []string{nodeB}) {
		t.Errorf("departed = %v %v", m, r)
	}
	if m, r := Departed(next, next); m != nil || r != nil {
		t.Errorf("no change departs nothing: %v %v", m, r)
	}
	if m, r := Departed(nil, next); m != nil || r != nil {
		t.Errorf("nil prev departs nothing: %v %v", m, r)
	}
	// DRAIN keeps sessions; MAINT after DRAIN, or a demotion while draining, closes them.
	draining := &GroupSnapshot{DrainMaster: nodeA, Replicas: []string{nodeC}, DrainReplicas: []string{nodeB}}
	if m, r := Departed(prev, draining); m != nil || r != nil {
		t.Errorf("into DRAIN departs nothing: %v %v", m, r)
	}
	maint := &GroupSnapshot{Replicas: []string{nodeC}}
	if m, r := Departed(draining, maint); !reflect.DeepEqual(m, []string{nodeA}) || !reflect.DeepEqual(r, []string{nodeB}) {
		t.Errorf("DRAIN to MAINT departs both: %v %v", m, r)
	}
	// Probes alone keep sessions: a master DOWN by its probes, a replica DOWN or stalled.
	kept := &GroupSnapshot{KeptMaster: nodeA, Replicas: []string{nodeC}, KeptReplicas: []string{nodeB}}
	if m, r := Departed(prev, kept); m != nil || r != nil {
		t.Errorf("out of the pools by probes alone departs nothing: %v %v", m, r)
	}
	if m, r := Departed(kept, next); !reflect.DeepEqual(m, []string{nodeA}) || !reflect.DeepEqual(r, []string{nodeB}) {
		t.Errorf("a failover after the probes failed departs the old master, and the kept replica now the master: %v %v", m, r)
	}
}

func TestNodeCounters(t *testing.T) {
	st := NewState([]string{"g"}, 1, 1)
	for _, in := range with(healthy(), probeFail(nodeB), probeReplica(nodeB, "up"), probeFail(nodeB)) {
		st.Apply(in)
	}
	n := st.Nodes[nodeB]
	if n.Checks != 4 || n.CheckFailures != 2 || n.Downs != 2 || n.Health.Up {
		t.Errorf("counters: checks %d failures %d downs %d down since %v", n.Checks, n.CheckFailures, n.Downs, n.DownSince)
	}
	for _, in := range []Input{probeBusy(nodeC), probeBusy(nodeC), probeReplica(nodeC, "up"), probeTimeout(nodeC)} {
		st.Apply(in)
	}
	if c := st.Nodes[nodeC]; c.Checks != 5 || c.CheckFailures != 3 || c.StalledChecks != 3 || c.Stalls != 2 || c.Downs != 0 {
		t.Errorf("stall counters: checks %d failures %d stalled %d stalls %d downs %d", c.Checks, c.CheckFailures,
			c.StalledChecks, c.Stalls, c.Downs)
	}
	st.Apply(event(s1, "+sdown", "slave "+nodeB+" 10.0.0.2 6379 @ g 10.0.0.1 6379"))
	snap := Decide(st, []string{"g"}, time.Now())
	if got := snap.Group("g").Sentinels[0].Events; got != 1 {
		t.Errorf("events received from %s = %d, want 1", s1, got)
	}
}

// TestDemotingOldMaster: the old master of a failover says role:master until Sentinel converts it
// (about 10 s): expected, not a dual master, for DemotionTimeout from the change or from its return;
// past it, or for any other node (a replica promoted by hand), a dual master.
func TestDemotingOldMaster(t *testing.T) {
	at := func(s int64, in Input) Input {
		p := in.(ProbeInput)
		p.Result.At = time.Unix(s, 0)
		return p
	}
	failedOver := func() *State {
		st := NewState([]string{"g"}, 2, 3)
		st.DemotionTimeout = 15 * time.Second
		for _, in := range []Input{view(s1, nodeA, 1, nodeB, nodeC), view(s2, nodeA, 1, nodeB, nodeC),
			at(1, probeMaster(nodeA)), at(1, probeReplica(nodeB, "up")), at(1, probeReplica(nodeC, "up")),
			view(s1, nodeB, 2, nodeA, nodeC), view(s2, nodeB, 2, nodeA, nodeC), at(1, probeMaster(nodeB)),
			at(2, probeMaster(nodeA))} {
			st.Apply(in)
		}
		return st
	}
	verdict := func(g *GroupSnapshot, addr string) string {
		for _, n := range g.Nodes {
			if n.Addr == addr {
				return n.Verdict
			}
		}
		return ""
	}

	st := failedOver()
	g := Decide(st, []string{"g"}, time.Unix(11, 0)).Group("g")
	if g.Master != nodeB || g.Demoting != nodeA || len(g.DualMasters) != 0 || verdict(g, nodeA) != "demoting" {
		t.Fatalf("10 s after the failover: master %q demoting %q dual %v verdict %q; want %s, %s, none, demoting",
			g.Master, g.Demoting, g.DualMasters, verdict(g, nodeA), nodeB, nodeA)
	}
	g = Decide(st, []string{"g"}, time.Unix(17, 0)).Group("g")
	if g.Demoting != "" || !reflect.DeepEqual(g.DualMasters, []string{nodeA}) || verdict(g, nodeA) != "dual-master" {
		t.Fatalf("past the bound: demoting %q dual %v verdict %q; want a dual master", g.Demoting, g.DualMasters, verdict(g, nodeA))
	}

	// Killed at the failover, back a minute later as a master: Sentinel converts it soon after.
	st = failedOver()
	st.Apply(at(3, probeFail(nodeA)))
	st.Apply(at(60, probeMaster(nodeA)))
	if g = Decide(st, []string{"g"}, time.Unix(65, 0)).Group("g"); g.Demoting != nodeA || len(g.DualMasters) != 0 {
		t.Fatalf("back after a kill: demoting %q dual %v; want it demoting", g.Demoting, g.DualMasters)
	}

	// A replica promoted by hand is a dual master at once; so is everything with no bound.
	st = failedOver()
	st.Apply(at(5, probeMaster(nodeC)))
	if g = Decide(st, []string{"g"}, time.Unix(6, 0)).Group("g"); !reflect.DeepEqual(g.DualMasters, []string{nodeC}) || g.Demoting != nodeA {
		t.Fatalf("a replica promoted by hand: dual %v demoting %q; want %s dual, %s demoting", g.DualMasters, g.Demoting, nodeC, nodeA)
	}
	st.DemotionTimeout = 0
	if g = Decide(st, []string{"g"}, time.Unix(6, 0)).Group("g"); !reflect.DeepEqual(g.DualMasters, []string{nodeA, nodeC}) {
		t.Fatalf("demotion_timeout 0: dual %v; want both", g.DualMasters)
	}
}
