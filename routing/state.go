// Package routing owns the one decision sentinel-proxy exists for: which node each listener may send
// clients to. It folds what Sentinels say (reconcile views and pub/sub events) and what the proxy's
// own probes see into a State, and derives an immutable Snapshot from it. State changes only through
// Apply, on one goroutine (Router); Decide is a pure function of the State, so the policy is
// table-tested without sockets. It never touches a socket itself.
package routing

import (
	"sort"
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

func (ViewInput) input()  {}
func (EventInput) input() {}
func (ProbeInput) input() {}

// State is everything the decision depends on. It is owned by one goroutine.
type State struct {
	Rise, Fall int
	Groups     map[string]*Group
	Nodes      map[string]*Node
}

// Group is what is known of one master group.
type Group struct {
	Name  string
	Views map[string]sentinel.View // latest view per Sentinel address
	// LastNamed is the master the Sentinels last named; kept when no Sentinel answers.
	LastNamed      string
	LastNamedEpoch int64
	LastEvent      map[string]sentinel.Event // latest event per Sentinel address
}

// Node is what the probes know of one data node.
type Node struct {
	Addr       string
	Health     check.Health
	Last       check.Result // the latest probe
	LastOK     check.Result // the latest successful probe
	LastChange time.Time    // last UP/DOWN transition
}

// NewState starts an empty state for the named groups.
func NewState(groups []string, rise, fall int) *State {
	s := &State{Rise: rise, Fall: fall, Groups: map[string]*Group{}, Nodes: map[string]*Node{}}
	for _, g := range groups {
		s.Groups[g] = &Group{Name: g, Views: map[string]sentinel.View{}, LastEvent: map[string]sentinel.Event{}}
	}
	return s
}

// Effects are what the owner must do after an Apply besides publishing a new snapshot.
type Effects struct {
	ProbeNow  []string // nodes to probe at once
	Reconcile bool     // ask every Sentinel again at once
	// HealthChanged lists nodes whose UP/DOWN state changed, for logging.
	HealthChanged []string
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
		if named, epoch, ok := g.named(); ok && named != "" {
			if named != g.LastNamed {
				fx.ProbeNow = append(fx.ProbeNow, named)
			}
			g.LastNamed, g.LastNamedEpoch = named, epoch
		}
	case EventInput:
		fx = s.applyEvent(in.Event)
	case ProbeInput:
		n := s.Nodes[in.Result.Addr]
		if n == nil {
			n = &Node{Addr: in.Result.Addr}
			s.Nodes[n.Addr] = n
		}
		var changed bool
		n.Health, changed = n.Health.Observe(in.Result.OK(), s.Rise, s.Fall)
		n.Last = in.Result
		if in.Result.OK() {
			n.LastOK = in.Result
		}
		if changed {
			n.LastChange = in.Result.At
			fx.HealthChanged = append(fx.HealthChanged, n.Addr)
		}
	}
	return fx
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
		}
		fx.Reconcile = true
		return fx
	}
	g := s.Groups[ev.MasterName]
	if g == nil {
		return fx
	}
	g.LastEvent[ev.Sentinel] = ev
	fx.Reconcile = true
	switch ev.Channel {
	case "+switch-master":
		// Act on the announcement at once; the next reconcile replaces this provisional view with the
		// Sentinel's real one. A switch always bumps the epoch, so the announced master outranks every
		// view taken before it.
		v := g.Views[ev.Sentinel]
		if v.Tilt {
			return fx
		}
		epoch := g.maxEpoch() + 1
		g.Views[ev.Sentinel] = sentinel.View{
			Sentinel: ev.Sentinel, MasterName: g.Name, At: ev.At,
			MasterAddr: ev.NewAddr, ConfigEpoch: epoch, MasterFlags: "master",
			Replicas: replicasWithout(v.Replicas, ev.NewAddr),
		}
		if named, e, ok := g.named(); ok && named != "" {
			g.LastNamed, g.LastNamedEpoch = named, e
		}
		fx.ProbeNow = append(fx.ProbeNow, ev.NewAddr, ev.OldAddr)
	case "+sdown", "-sdown", "+odown", "-odown":
		if ev.InstanceType == "slave" {
			v := g.Views[ev.Sentinel]
			v.Replicas = withReplicaFlag(v.Replicas, ev.Addr, ev.Channel[0] == '+')
			g.Views[ev.Sentinel] = v
		}
		fx.ProbeNow = append(fx.ProbeNow, ev.Addr)
	default:
		if ev.Addr != "" {
			fx.ProbeNow = append(fx.ProbeNow, ev.Addr)
		}
	}
	return fx
}

// usableViews are the views a decision may rest on: answered, and not from a Sentinel in TILT.
func (g *Group) usableViews() []sentinel.View {
	var out []sentinel.View
	for _, v := range g.Views {
		if v.Err == nil && !v.Tilt && v.MasterAddr != "" {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Sentinel < out[j].Sentinel })
	return out
}

// lastKnownViews are the views to fall back on when no Sentinel answers: the last thing each said.
func (g *Group) lastKnownViews() []sentinel.View {
	var out []sentinel.View
	for _, v := range g.Views {
		if !v.Tilt && v.MasterAddr != "" {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Sentinel < out[j].Sentinel })
	return out
}

func (g *Group) maxEpoch() int64 {
	e := g.LastNamedEpoch
	for _, v := range g.Views {
		if v.ConfigEpoch > e {
			e = v.ConfigEpoch
		}
	}
	return e
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

func replicasWithout(rs []sentinel.Replica, addr string) []sentinel.Replica {
	var out []sentinel.Replica
	for _, r := range rs {
		if r.Addr != addr {
			out = append(out, r)
		}
	}
	return out
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
