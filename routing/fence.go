package routing

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"
)

// FenceSettings configure the minority-side fence ([fence] in the configuration).
//
// Sentinel fails a master over when a majority of Sentinels agree it is unreachable. A proxy that hears
// only a minority of them may be on the master's side of a partition while the majority promotes a
// replica elsewhere: every write the old master then acknowledges is discarded when Sentinel turns it into
// a replica. Without a majority the proxy therefore keeps routing to the master only while every replica
// that could be promoted still acknowledges it: a replica that follows the master has not been promoted,
// and one the master cannot hear from may have been.
type FenceSettings struct {
	Enabled bool
	// ReplicaTimeout is how long a replica may go without acknowledging the master before it counts as
	// cut off from it: its INFO replication lag, plus the age of the check that read it.
	ReplicaTimeout time.Duration
}

// knownSentinels are every Sentinel the proxy knows for the group: configured, answering or not, and
// those any of them lists as a peer. A majority is counted over these, not over the ones that answer: a
// proxy on the minority side of a partition hears only the minority.
func (s *State) knownSentinels(g *Group) []string {
	known := map[string]bool{}
	for _, a := range s.Sentinels {
		known[a] = true
	}
	for a, v := range g.Views {
		known[a] = true
		for _, p := range v.Peers {
			known[p] = true
		}
	}
	return slices.Sorted(maps.Keys(known))
}

// replicaContact says whether the master shows, by its latest passed check, that every replica the
// Sentinels could promote still acknowledges it, and why or why not: why in detail for the page, and
// short, stable while nothing changes, for the clients' refusal.
func (s *State) replicaContact(g *Group, master string, epoch int64, now time.Time) (open bool, why, short string) {
	promotable := promotableReplicas(g, master, epoch)
	if len(promotable) == 0 {
		why = "no replica the Sentinels could promote: no failover can happen"
		return true, why, why
	}
	m := s.Nodes[master]
	if m == nil || !m.LastOK.OK() {
		why = fmt.Sprintf("no passed check of %s to read its replicas from", master)
		return false, why, why
	}
	age := max(now.Sub(m.LastOK.At), 0)
	for _, r := range promotable {
		link, ok := m.LastOK.Replication.Replica(r)
		if !ok || link.State != "online" {
			why = fmt.Sprintf("replica %s is not connected to %s", r, master)
			return false, why, why
		}
		silent := time.Duration(link.Lag)*time.Second + age
		if silent > s.Fence.ReplicaTimeout {
			return false, fmt.Sprintf("replica %s has not acknowledged %s for %s", r, master, silent.Round(10*time.Millisecond)),
				fmt.Sprintf("replica %s no longer acknowledges %s", r, master)
		}
	}
	why = fmt.Sprintf("every replica that could be promoted (%d) acknowledged %s within %s", len(promotable), master,
		s.Fence.ReplicaTimeout)
	return true, why, why
}

// promotableReplicas lists the replicas of the master's epoch that some Sentinel could promote: listed by
// any view, answering or not, without replica-priority 0, and not flagged down by every view that lists
// it. The flags of the Sentinels still heard are not enough: on the minority side they flag the replicas
// of the majority side down, which is exactly when those may be promoted.
func promotableReplicas(g *Group, master string, epoch int64) []string {
	listed := map[string]bool{} // replica -> some view lists it usable
	for _, v := range g.Views {
		if v.ConfigEpoch != epoch {
			continue
		}
		for _, r := range v.Replicas {
			if r.Addr == master || r.NeverPromoted {
				continue
			}
			listed[r.Addr] = listed[r.Addr] || !r.Down()
		}
	}
	var out []string
	for a, usable := range listed {
		if usable {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

// fence decides, for a group whose master port would route to the named master, whether the proxy hears
// a majority of the Sentinels, and if not, whether the master keeps its route.
func (s *State) fence(g *Group, gs *GroupSnapshot, now time.Time) {
	known := s.knownSentinels(g)
	gs.SentinelsKnown = len(known)
	for _, v := range g.usableViews() {
		if slices.Contains(known, v.Sentinel) {
			gs.SentinelsAnswering++
		}
	}
	gs.Majority = 2*gs.SentinelsAnswering > gs.SentinelsKnown
	if !s.Fence.Enabled || gs.Majority || gs.Master == "" || gs.Master != gs.Named {
		return
	}
	open, why, short := s.replicaContact(g, gs.Master, gs.NamedEpoch, now)
	gs.FenceReason = fmt.Sprintf("%d of %d Sentinels answer; %s", gs.SentinelsAnswering, gs.SentinelsKnown, why)
	if !open {
		gs.Fenced = true
		gs.NoMasterReason = fmt.Sprintf("fenced: %d of %d Sentinels answer; %s", gs.SentinelsAnswering, gs.SentinelsKnown, short)
		gs.Master = ""
	}
}
