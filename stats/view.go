package stats

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
)

// Page is the data behind the page, /stats.json and /stats.csv. Its JSON form is documented in
// docs/stats.md; fields are only ever added.
type Page struct {
	Version string        `json:"version"`
	Now     time.Time     `json:"now"`
	Uptime  string        `json:"uptime"`
	Admin   bool          `json:"admin_enabled"`
	Groups  []GroupView   `json:"groups"`
	Actions []AdminAction `json:"admin_actions"` // newest first

	// For the HTML page only.
	CSRF       string `json:"-"`
	Refresh    int    `json:"-"` // seconds; 0 is off
	Notice     string `json:"-"`
	Switchover bool   `json:"-"` // the master rows get a switchover button

}

// GroupView is one master group.
type GroupView struct {
	Name            string   `json:"name"`
	Mode            string   `json:"mode"` // "tcp" or "resp"
	Master          string   `json:"master"`
	NoMasterReason  string   `json:"no_master_reason,omitempty"`
	Named           string   `json:"named_master"`
	Epoch           int64    `json:"config_epoch"`
	ReplicaFallback bool     `json:"replica_fallback"`
	DualMasters     []string `json:"dual_masters,omitempty"`
	// Demoting is the old master of a failover still saying role:master while Sentinel converts it.
	Demoting string `json:"demoting,omitempty"`
	// FenceRace says which Sentinel's down-after-milliseconds leaves the fence no time (routing's
	// GroupSnapshot.FenceRace); empty when none does.
	FenceRace string `json:"fence_race,omitempty"`
	// Multiplex is what the group's shared backend connections count (multiplex = true only).
	Multiplex *MultiplexView `json:"multiplex,omitempty"`
	// MasterStall is the routed master's stall ("busy", "loading", "unresponsive"), empty when it
	// answers; MasterStallSeconds how long it has lasted.
	MasterStall        string  `json:"master_stall,omitempty"`
	MasterStallSeconds float64 `json:"master_stall_seconds,omitempty"`
	// SentinelsKnown and SentinelsAnswering count the group's Sentinels; SentinelMajority is set while
	// more than half of the known ones answer. Without it the fence decides: Fenced while the master port
	// refuses the named master, FenceReason why, or what keeps the route open.
	SentinelsKnown     int            `json:"sentinels_known"`
	SentinelsAnswering int            `json:"sentinels_answering"`
	SentinelMajority   bool           `json:"sentinel_majority"`
	Fenced             bool           `json:"fenced"`
	FenceReason        string         `json:"fence_reason,omitempty"`
	Failover           *FailoverView  `json:"failover,omitempty"`
	Listeners          []ListenerView `json:"listeners"`
	Nodes              []NodeView     `json:"nodes"`
	Sentinels          []SentinelView `json:"sentinels"`
	History            []SwitchView   `json:"history"` // newest first, at most 50
	// Durability is the group's wait_replicas and what its sessions counted (resp mode; omitted in tcp
	// mode).
	Durability *DurabilityView `json:"durability,omitempty"`
	// HistorySeries is the recent past the page's charts draw; omitted from the metrics' view.
	HistorySeries *HistorySeries `json:"history_series,omitempty"`

	Charts []chartView `json:"-"` // for the HTML page only
}

// FailoverView is a failover in progress, as the leader Sentinel announced it.
type FailoverView struct {
	Leader    string    `json:"leader"`
	Stage     string    `json:"stage"`
	OldMaster string    `json:"old_master"`
	Promoting string    `json:"promoting,omitempty"`
	Since     time.Time `json:"since"`
}

// MultiplexView is a group's shared backend connections (multiplex = true): the process-wide
// sentinel_proxy_shared_backend_connections and _sessions_unshared_total, for the group's nodes.
type MultiplexView struct {
	// SharedConns is how many backend connections the group's sessions share now, to every node.
	SharedConns uint64 `json:"shared_backend_connections"`
	// Unshared counts the sessions that left a shared connection for one of their own (MULTI, blocking
	// commands, subscriptions, CLIENT ..., a long command or reply).
	Unshared uint64 `json:"sessions_unshared"`
}

// ListenerView is one port.
type ListenerView struct {
	Name          string `json:"name"`
	Role          string `json:"role"` // "master" or "replica"
	Addr          string `json:"addr"`
	Current       int64  `json:"current_sessions"`
	Max           int64  `json:"max_sessions"` // the most concurrent sessions seen
	Limit         int    `json:"limit"`        // max_conns; 0 is none
	Total         uint64 `json:"total_sessions"`
	Rate          uint64 `json:"session_rate"` // new sessions per second
	RateMax       uint64 `json:"session_rate_max"`
	Held          int64  `json:"held"` // clients waiting for a route now
	Refused       uint64 `json:"refused"`
	ConnectErrors uint64 `json:"connect_errors"`
	// HandshakeErrors counts clients whose TLS handshake failed (no or a wrong certificate, plain text).
	HandshakeErrors uint64 `json:"tls_handshake_errors"`
	// Moved counts sessions that left a backend and stayed open (resp mode: a failover moved them).
	Moved uint64 `json:"sessions_moved"`
	// ClosedByBackend counts sessions closed because Redis closed their backend connection while the
	// node stayed alive and routed (resp mode: CLIENT KILL, an output-buffer limit, timeout).
	ClosedByBackend uint64   `json:"sessions_closed_by_backend"`
	BytesIn         uint64   `json:"bytes_in"`
	BytesOut        uint64   `json:"bytes_out"`
	Backends        []string `json:"backends"`
	Refusal         string   `json:"refusal,omitempty"`
}

// NodeView is one data node.
type NodeView struct {
	Addr string `json:"addr"`
	// Status is UP (taking traffic), NOLB (healthy but not in a pool: see verdict), DOWN, MAINT, DRAIN
	// or UNCHECKED, as on HAProxy's page.
	Status          string  `json:"status"`
	Admin           string  `json:"admin_state"` // READY, DRAIN or MAINT
	Verdict         string  `json:"verdict"`
	IsMaster        bool    `json:"is_routed_master"`
	SentinelRole    string  `json:"sentinel_role"`
	SentinelFlags   string  `json:"sentinel_flags"`
	ProbeRole       string  `json:"probe_role"`
	LinkStatus      string  `json:"master_link_status,omitempty"`
	CheckStatus     string  `json:"check_status"`
	CheckReason     string  `json:"check_reason"`
	CheckError      string  `json:"check_error,omitempty"`
	CheckDurationMS float64 `json:"check_duration_ms"`
	// Health is HAProxy's rise/fall progress, e.g. "UP 1/3" (one failed check of the three that take
	// it DOWN) or "DOWN 1/2"; just the state when no check disagrees.
	Health          string    `json:"health"`
	Checks          uint64    `json:"checks"`
	CheckFailures   uint64    `json:"check_failures"`
	Downs           uint64    `json:"down_transitions"`
	LastChange      time.Time `json:"last_change"`
	InState         string    `json:"time_in_state"`
	Downtime        string    `json:"downtime"`
	DowntimeSeconds float64   `json:"downtime_seconds"`
	CurrentSessions int64     `json:"current_sessions"`
	TotalSessions   uint64    `json:"total_sessions"`
	BytesIn         uint64    `json:"bytes_in"`
	BytesOut        uint64    `json:"bytes_out"`
	Offset          int64     `json:"repl_offset"`
	LagSeconds      int       `json:"lag_seconds"` // -1 when unknown (not a replica of the routed master)
	LagBytes        int64     `json:"lag_bytes"`
	// Stall is "busy", "loading" or "unresponsive" while the node's probes find it alive but unable to
	// answer; it does not change Status (a stalled master stays UP and routed). Empty otherwise.
	Stall         string  `json:"stall,omitempty"`
	StallSeconds  float64 `json:"stall_seconds"` // how long the current stall has lasted; 0 without one
	StalledChecks uint64  `json:"stalled_checks"`
	Stalls        uint64  `json:"stalls"`
}

// SentinelView is one Sentinel.
type SentinelView struct {
	Addr        string    `json:"addr"`
	Reachable   bool      `json:"reachable"`
	Tilt        bool      `json:"tilt"`
	Error       string    `json:"error,omitempty"`
	Master      string    `json:"master"`
	Epoch       int64     `json:"config_epoch"`
	LastEvent   string    `json:"last_event,omitempty"`
	LastEventAt time.Time `json:"last_event_at,omitzero"`
	Events      uint64    `json:"events_received"`
}

// SwitchView is one master switch of the failover history.
type SwitchView struct {
	At               time.Time `json:"at"`
	Old              string    `json:"old"`
	New              string    `json:"new"`
	Epoch            int64     `json:"epoch"`
	Trigger          string    `json:"trigger"`
	DetectedBy       string    `json:"detected_by,omitempty"`
	DetectToSwitchMS float64   `json:"detect_to_switch_ms"` // -1 when nothing was detected first
	NoMasterMS       float64   `json:"no_master_ms"`
	SessionsClosed   int       `json:"sessions_closed"`
	Leader           string    `json:"failover_leader,omitempty"`
	Switchover       bool      `json:"switchover"` // a planned switchover, not a failure
}

// AdminAction is one action taken from the page.
type AdminAction struct {
	At             time.Time `json:"at"`
	User           string    `json:"user"`
	Remote         string    `json:"remote"`
	Group          string    `json:"group"`
	Node           string    `json:"node"`
	Action         string    `json:"action"`
	SessionsClosed int       `json:"sessions_closed"`
	Error          string    `json:"error,omitempty"`
}

// nodeStatus is HAProxy's status column: what an operator set comes first, then health, then whether
// the node takes traffic at all.
func nodeStatus(n routing.NodeSnapshot) string {
	switch {
	case n.Admin == routing.AdminMaint:
		return "MAINT"
	case n.Admin == routing.AdminDrain:
		return "DRAIN"
	case !n.Health.Known:
		return "UNCHECKED"
	case !n.Health.Up:
		return "DOWN"
	case n.InMasterPool || n.InReplicaPool:
		return "UP"
	}
	return "NOLB"
}

func (s *Server) build(r *http.Request) Page {
	snap := s.Snapshot()
	now := time.Now()
	p := Page{Version: s.Version, Now: now, Uptime: now.Sub(s.Started).Round(time.Second).String(),
		Admin: s.cur().Admin && s.Control != nil, Actions: s.actions()}
	if r != nil {
		if p.Admin {
			p.CSRF = s.csrfToken(userOf(r))
			p.Switchover = s.Switchover != nil
		}
		if n, err := strconv.Atoi(r.URL.Query().Get("refresh")); err == nil && n > 0 {
			p.Refresh = min(max(n, 1), 3600)
		}
		p.Notice = r.URL.Query().Get("notice")
	}
	for _, g := range s.cur().Groups {
		gs := snap.Group(g.Name)
		if gs == nil {
			continue
		}
		gv := s.buildGroup(g, gs, snap.Rise, snap.Fall, now)
		if r != nil { // a request, not a scrape: /metrics has no use for the series
			gv.HistorySeries = s.historySeries(g, gs.Failover, now)
		}
		p.Groups = append(p.Groups, gv)
	}
	return p
}

func (s *Server) buildGroup(g GroupPorts, gs *routing.GroupSnapshot, rise, fall int, now time.Time) GroupView {
	mode := g.Mode
	if mode == "" {
		mode = "tcp"
	}
	gv := GroupView{Name: g.Name, Mode: mode, Master: gs.Master, NoMasterReason: gs.NoMasterReason, Named: gs.Named,
		Epoch: gs.NamedEpoch, ReplicaFallback: gs.ReplicaFallback, DualMasters: gs.DualMasters, Demoting: gs.Demoting, FenceRace: gs.FenceRace,
		SentinelsKnown: gs.SentinelsKnown, SentinelsAnswering: gs.SentinelsAnswering, SentinelMajority: gs.Majority,
		Fenced: gs.Fenced, FenceReason: gs.FenceReason}
	if f := gs.Failover; f != nil {
		gv.Failover = &FailoverView{Leader: f.Leader, Stage: f.Stage, OldMaster: f.OldMaster, Promoting: f.Promoting, Since: f.Since}
	}
	if g.Multiplex != nil {
		conns, unshared := multiplexCounts(g, gs)
		gv.Multiplex = &MultiplexView{SharedConns: conns, Unshared: unshared}
	}
	if g.Durability != nil {
		c, run := s.unconfirmed.observe(g.Durability, now)
		gv.Durability = durabilityView(c, run, now)
	}
	per := map[string]proxy.BackendStats{}
	for _, l := range []struct {
		role string
		l    *proxy.Listener
	}{{"master", g.Master}, {"replica", g.Replica}} {
		if l.l == nil {
			continue
		}
		st := l.l.Stats()
		gv.Listeners = append(gv.Listeners, ListenerView{Name: st.Name, Role: l.role, Addr: st.Addr,
			Current: st.Current, Max: st.Peak, Limit: st.Max, Total: st.Total, Rate: st.Rate, RateMax: st.RateMax,
			Held: st.Held, Refused: st.Refused, ConnectErrors: st.ConnectErrors, HandshakeErrors: st.HandshakeErrors, Moved: st.Moved, ClosedByBackend: st.ClosedByBackend, BytesIn: st.BytesIn,
			BytesOut: st.BytesOut, Backends: st.Route.Backends, Refusal: st.Route.Refusal})
		for addr, b := range st.PerBackend {
			sum := per[addr]
			sum.Current += b.Current
			sum.Total += b.Total
			sum.BytesIn += b.BytesIn
			sum.BytesOut += b.BytesOut
			per[addr] = sum
		}
	}
	for _, n := range gs.Nodes {
		nv := NodeView{Addr: n.Addr, Status: nodeStatus(n), Admin: string(n.Admin), Verdict: n.Verdict,
			IsMaster: n.InMasterPool, SentinelRole: n.SentinelRole, SentinelFlags: n.SentinelFlags,
			ProbeRole: n.ProbeRole(), LinkStatus: n.LastOK.Replication.MasterLinkStatus,
			CheckStatus: string(n.Last.Status), CheckReason: n.Last.Reason(),
			CheckDurationMS: float64(n.Last.Duration.Microseconds()) / 1000,
			Health:          healthProgress(n, rise, fall), Checks: n.Checks, CheckFailures: n.CheckFailures,
			Downs: n.Downs, LastChange: n.LastChange, Downtime: roundDuration(n.DownTotal),
			DowntimeSeconds: n.DownTotal.Seconds(), CurrentSessions: per[n.Addr].Current,
			TotalSessions: per[n.Addr].Total, BytesIn: per[n.Addr].BytesIn, BytesOut: per[n.Addr].BytesOut,
			Offset: n.LastOK.Replication.MasterReplOffset, LagSeconds: n.LagSeconds, LagBytes: n.LagBytes}
		if !n.LastChange.IsZero() {
			nv.InState = roundDuration(now.Sub(n.LastChange))
		}
		nv.StalledChecks, nv.Stalls = n.StalledChecks, n.Stalls
		if n.Stall != "" {
			nv.Stall, nv.StallSeconds = string(n.Stall), max(now.Sub(n.StallSince), 0).Seconds()
			if n.InMasterPool {
				gv.MasterStall, gv.MasterStallSeconds = nv.Stall, nv.StallSeconds
			}
		}
		if n.Last.Status == "" {
			nv.CheckReason = ""
		}
		if n.Last.Err != nil {
			nv.CheckError = n.Last.Err.Error()
		}
		gv.Nodes = append(gv.Nodes, nv)
	}
	sort.Slice(gv.Nodes, func(i, j int) bool { return gv.Nodes[i].Addr < gv.Nodes[j].Addr })
	for _, sn := range gs.Sentinels {
		gv.Sentinels = append(gv.Sentinels, SentinelView{Addr: sn.Addr, Reachable: sn.Reachable, Tilt: sn.Tilt,
			Error: sn.Err, Master: sn.MasterAddr, Epoch: sn.ConfigEpoch, LastEvent: sn.LastEvent,
			LastEventAt: sn.LastEventAt, Events: sn.Events})
	}
	gv.History = []SwitchView{}
	if s.History != nil {
		for _, sw := range s.History(g.Name) {
			sv := SwitchView{At: sw.At, Old: sw.Old, New: sw.New, Epoch: sw.Epoch, Trigger: sw.Trigger,
				DetectedBy: sw.DetectedBy, DetectToSwitchMS: -1, NoMasterMS: msOf(sw.NoMaster),
				SessionsClosed: sw.SessionsClosed, Leader: sw.Leader, Switchover: sw.Switchover}
			if sw.DetectToSwitch >= 0 {
				sv.DetectToSwitchMS = msOf(sw.DetectToSwitch)
			}
			gv.History = append(gv.History, sv)
		}
	}
	return gv
}

// multiplexCounts are the group's shared backend connections and unshared sessions, over the nodes gs
// has for it: the group row and the charts count the same nodes. g.Multiplex must be set.
func multiplexCounts(g GroupPorts, gs *routing.GroupSnapshot) (conns, unshared uint64) {
	nodes := make([]string, len(gs.Nodes))
	for i, n := range gs.Nodes {
		nodes[i] = n.Addr
	}
	return g.Multiplex(nodes)
}

func healthProgress(n routing.NodeSnapshot, rise, fall int) string {
	switch {
	case !n.Health.Known:
		return "-"
	case n.Health.Up && n.Health.Streak() > 0:
		return fmt.Sprintf("UP %d/%d", n.Health.Streak(), fall)
	case n.Health.Up:
		return "UP"
	case n.Health.Streak() > 0:
		return fmt.Sprintf("DOWN %d/%d", n.Health.Streak(), rise)
	}
	return "DOWN"
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// groupOf finds the group and node row of addr in p.
func (p Page) groupOf(addr string) (*GroupView, *NodeView) {
	for i := range p.Groups {
		for j := range p.Groups[i].Nodes {
			if p.Groups[i].Nodes[j].Addr == addr {
				return &p.Groups[i], &p.Groups[i].Nodes[j]
			}
		}
	}
	return nil, nil
}
