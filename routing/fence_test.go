package routing

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/check"
	"github.com/sentinel-proxy/sentinel-proxy/sentinel"
)

// fenceNow is when the fence tests decide; checks are dated relative to it.
var fenceNow = time.Unix(100, 0)

// masterLinks is a passed check of addr, age before fenceNow, listing the replicas it sees as
// "addr=state:lag" (state online unless given).
func masterLinks(addr string, age time.Duration, links ...string) Input {
	res := check.Result{Addr: addr, Status: check.L7OK, At: fenceNow.Add(-age), Replication: check.Replication{Role: "master"}}
	for _, l := range links {
		a, rest, _ := strings.Cut(l, "=")
		state, lag := "online", rest
		if st, lg, ok := strings.Cut(rest, ":"); ok {
			state, lag = st, lg
		}
		var n int
		for _, c := range lag {
			n = n*10 + int(c-'0')
		}
		res.Replication.Replicas = append(res.Replication.Replicas, check.ReplicaLink{Addr: a, State: state, Lag: n})
	}
	return ProbeInput{Result: res}
}

func tilted(sentinelAddr string) Input {
	return EventInput{Event: sentinel.Event{Sentinel: sentinelAddr, Channel: "+tilt", At: fenceNow}}
}

func TestFence(t *testing.T) {
	base := []Input{
		view(s1, nodeA, 1, nodeB, nodeC), view(s2, nodeA, 1, nodeB, nodeC), view(s3, nodeA, 1, nodeB, nodeC),
		probeReplica(nodeB, "up"), probeReplica(nodeC, "up"),
	}
	inContact := masterLinks(nodeA, 200*time.Millisecond, nodeB+"=0", nodeC+"=1")
	cutOff := masterLinks(nodeA, 200*time.Millisecond, nodeB+"=4", nodeC+"=5")
	minority := []Input{unreachable(s2), unreachable(s3)}
	tests := []struct {
		name      string
		inputs    []Input
		disabled  bool
		configure []string // configured Sentinels; default s1, s2, s3
		master    string
		reason    string // substring of NoMasterReason (fenced) or FenceReason (routed without a majority)
		majority  bool
		known     int
		answering int
	}{
		{name: "every Sentinel answers: no fence", inputs: with(base, cutOff), master: nodeA, majority: true, known: 3, answering: 3},
		{name: "two of three answer: still a majority", inputs: with(base, cutOff, unreachable(s3)), master: nodeA,
			majority: true, known: 3, answering: 2},
		{name: "one of three, the replicas still acknowledge: routed", inputs: with(with(base, minority...), inContact),
			master: nodeA, reason: "1 of 3 Sentinels answer; every replica that could be promoted (2) acknowledged", known: 3, answering: 1},
		{name: "one of three, the replicas stopped acknowledging: fenced", inputs: with(with(base, minority...), cutOff),
			reason: "fenced: 1 of 3 Sentinels answer; replica " + nodeB + " no longer acknowledges " + nodeA + " / 1 of 3 Sentinels answer; replica " + nodeB + " has not acknowledged " + nodeA + " for 4.2s", known: 3, answering: 1},
		{name: "one replica still follows, the other may be promoted: fenced",
			inputs: with(with(base, minority...), masterLinks(nodeA, 0, nodeB+"=0", nodeC+"=9")),
			reason: "replica " + nodeC + " has not acknowledged", known: 3, answering: 1},
		{name: "a replica the master no longer lists: fenced", inputs: with(with(base, minority...), masterLinks(nodeA, 0, nodeB+"=0")),
			reason: "replica " + nodeC + " is not connected to " + nodeA, known: 3, answering: 1},
		{name: "a replica syncing again is not in contact", inputs: with(with(base, minority...),
			masterLinks(nodeA, 0, nodeB+"=0", nodeC+"=wait_bgsave:0")), reason: "replica " + nodeC + " is not connected", known: 3, answering: 1},
		{name: "an old check proves no contact now", inputs: with(with(base, minority...), masterLinks(nodeA, 2500*time.Millisecond, nodeB+"=1", nodeC+"=0")),
			reason: "replica " + nodeB + " has not acknowledged " + nodeA + " for 3.5s", known: 3, answering: 1},
		{name: "no Sentinel answers, replicas in contact: routed",
			inputs: with(with(base, unreachable(s1), unreachable(s2), unreachable(s3)), inContact), master: nodeA,
			reason: "0 of 3 Sentinels answer", known: 3},
		{name: "no Sentinel answers, replicas cut off: fenced",
			inputs: with(with(base, unreachable(s1), unreachable(s2), unreachable(s3)), cutOff), reason: "fenced: 0 of 3", known: 3},
		{name: "the minority flags the majority's replicas down: they still count",
			inputs: with(with(base, minority...), view(s1, nodeA, 1, nodeB+"=s_down,slave", nodeC+"=s_down,slave"), cutOff),
			reason: "fenced", known: 3, answering: 1},
		{name: "replicas every Sentinel flags down cannot be promoted: routed",
			inputs: with([]Input{view(s1, nodeA, 1, nodeB+"=s_down,slave", nodeC+"=s_down,slave"),
				view(s2, nodeA, 1, nodeB+"=s_down,slave", nodeC+"=s_down,slave"), view(s3, nodeA, 1, nodeB+"=s_down,slave", nodeC+"=s_down,slave")},
				unreachable(s2), unreachable(s3), masterLinks(nodeA, 0)),
			master: nodeA, reason: "no replica the Sentinels could promote", known: 3, answering: 1},
		{name: "a replica with priority 0 is never promoted: it need not follow",
			inputs: []Input{priorityZero(s1, nodeB), priorityZero(s2, nodeB), priorityZero(s3, nodeB), unreachable(s2), unreachable(s3),
				masterLinks(nodeA, 0, nodeC+"=0")},
			master: nodeA, reason: "every replica that could be promoted (1)", known: 3, answering: 1},
		{name: "fence off: routed as before", disabled: true, inputs: with(with(base, minority...), cutOff), master: nodeA,
			known: 3, answering: 1},
		{name: "a configured Sentinel that never answered counts",
			inputs: []Input{view(s1, nodeA, 1, nodeB, nodeC), probeReplica(nodeB, "up"), probeReplica(nodeC, "up"), cutOff},
			reason: "fenced: 1 of 3", known: 3, answering: 1},
		{name: "Sentinels listed as peers count",
			inputs: with(base, peers(s1, "10.0.1.4:26379", "10.0.1.5:26379"), cutOff), configure: []string{s1, s2, s3},
			master: nodeA, majority: true, known: 5, answering: 3},
		{name: "two of five known answer: fenced",
			inputs: with(base, peers(s1, "10.0.1.4:26379", "10.0.1.5:26379"), unreachable(s3), cutOff),
			reason: "fenced: 2 of 5", known: 5, answering: 2},
		{name: "a Sentinel in TILT does not count", inputs: with(base, unreachable(s3), tilted(s2), cutOff),
			reason: "fenced: 1 of 3", known: 3, answering: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := NewState([]string{"g"}, 2, 3)
			st.Sentinels = []string{s1, s2, s3}
			if tt.configure != nil {
				st.Sentinels = tt.configure
			}
			st.Fence = FenceSettings{Enabled: !tt.disabled, ReplicaTimeout: 3 * time.Second}
			for _, in := range tt.inputs {
				st.Apply(in)
			}
			g := Decide(st, []string{"g"}, fenceNow).Group("g")
			if g.Master != tt.master {
				t.Fatalf("master = %q (%s), want %q", g.Master, g.NoMasterReason, tt.master)
			}
			if g.Fenced != (tt.master == "") {
				t.Errorf("fenced = %v", g.Fenced)
			}
			text := g.FenceReason
			if g.Master == "" {
				text = g.NoMasterReason + " / " + g.FenceReason
			}
			if !strings.Contains(text, tt.reason) {
				t.Errorf("reason = %q, want it to contain %q", text, tt.reason)
			}
			if g.Majority != tt.majority || g.SentinelsKnown != tt.known || g.SentinelsAnswering != tt.answering {
				t.Errorf("majority %v, %d of %d answer; want %v, %d of %d", g.Majority, g.SentinelsAnswering, g.SentinelsKnown,
					tt.majority, tt.answering, tt.known)
			}
			for _, n := range g.Nodes {
				if n.Addr == nodeA && g.Fenced && n.Verdict != "fenced" {
					t.Errorf("the fenced master's verdict is %q", n.Verdict)
				}
			}
		})
	}
}

// priorityZero is a view of the healthy topology in which replica has replica-priority 0.
func priorityZero(sentinelAddr, replica string) Input {
	in := view(sentinelAddr, nodeA, 1, nodeB, nodeC).(ViewInput)
	for i := range in.View.Replicas {
		in.View.Replicas[i].NeverPromoted = in.View.Replicas[i].Addr == replica
	}
	return in
}

func peers(sentinelAddr string, more ...string) Input {
	in := view(sentinelAddr, nodeA, 1, nodeB, nodeC).(ViewInput)
	in.View.Peers = more
	return in
}

// TestFenceClosesTheSessions: a fence is not a probe failure; the master's sessions must end, or they
// would keep writing to the losing side.
func TestFenceClosesTheSessions(t *testing.T) {
	st := NewState([]string{"g"}, 2, 3)
	st.Sentinels = []string{s1, s2, s3}
	st.Fence = FenceSettings{Enabled: true, ReplicaTimeout: 3 * time.Second}
	for _, in := range []Input{view(s1, nodeA, 1, nodeB), view(s2, nodeA, 1, nodeB), view(s3, nodeA, 1, nodeB),
		probeReplica(nodeB, "up"), masterLinks(nodeA, 0, nodeB+"=0")} {
		st.Apply(in)
	}
	prev := Decide(st, []string{"g"}, fenceNow).Group("g")
	for _, in := range []Input{unreachable(s2), unreachable(s3), masterLinks(nodeA, 0, nodeB+"=5")} {
		st.Apply(in)
	}
	next := Decide(st, []string{"g"}, fenceNow).Group("g")
	if !next.Fenced || next.KeptMaster != "" {
		t.Fatalf("fenced %v, kept %q", next.Fenced, next.KeptMaster)
	}
	if m, _ := Departed(prev, next); !reflect.DeepEqual(m, []string{nodeA}) {
		t.Errorf("departed %v, want the fenced master", m)
	}
}
