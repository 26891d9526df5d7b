package stats

import (
	"runtime"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sentinel-proxy/sentinel-proxy/check"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
)

// Metrics is the Prometheus side of the stats: counters of things that happen (switches, dual
// masters, admin actions), fed by the router's hooks, and gauges and counters read from the routing
// snapshot, the listeners and each group's durable acknowledgements at scrape time. Names and labels are
// listed in docs/metrics.md.
type Metrics struct {
	registry       *prometheus.Registry
	failovers      *prometheus.CounterVec
	unplanned      *prometheus.CounterVec
	detectToSwitch *prometheus.HistogramVec
	closedOnSwitch *prometheus.CounterVec
	dualMasters    *prometheus.CounterVec
	fences         *prometheus.CounterVec
	adminActions   *prometheus.CounterVec
	// multiplex reads the shared backend connections' counts (SetMultiplex); nil: none
	multiplex atomic.Pointer[func() (conns, unshared uint64)]
}

// SetMultiplex gives the metrics where to read the counts of shared backend connections (multiplex =
// true): how many are open, and how many sessions moved from one to a connection of their own.
func (m *Metrics) SetMultiplex(counts func() (conns, unshared uint64)) { m.multiplex.Store(&counts) }

// multiplexCounts reads SetMultiplex's source; zeros without one.
func (m *Metrics) multiplexCounts() (conns, unshared uint64) {
	if f := m.multiplex.Load(); f != nil {
		return (*f)()
	}
	return 0, 0
}

const ns = "sentinel_proxy"

// NewMetrics creates the registry with the Go runtime and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "failovers_total",
			Help: "Master switches: the master port moved from one node to another."}, []string{"group"}),
		unplanned: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "unplanned_failovers_total",
			Help: "Master switches that something judged the old master down for first (+sdown, +odown): not a switchover or SENTINEL FAILOVER."}, []string{"group"}),
		detectToSwitch: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns,
			Name: "detect_to_switch_seconds",
			Help: "From the first sign of trouble with the old master (+sdown, +odown, +try-failover ...) to the master port routing to the new one.",
			// Sentinel's own detection takes down-after-milliseconds (seconds in production); the
			// proxy's part is milliseconds. The buckets cover both.
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"group"}),
		closedOnSwitch: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns,
			Name: "sessions_closed_on_switch_total",
			Help: "Master-port sessions closed because their node stopped being the master."}, []string{"group"}),
		dualMasters: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns,
			Name: "dual_master_detections_total",
			Help: "Nodes seen reporting role:master while the Sentinels name another (each detection once)."}, []string{"group"}),
		fences: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "fences_total",
			Help: "Times the master was fenced: no Sentinel majority, and a replica that could be promoted stopped following it."}, []string{"group"}),
		adminActions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "admin_actions_total",
			Help: "Admin actions taken from the stats page."}, []string{"action"}),
	}
	sharedConns := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "shared_backend_connections",
		Help: "Backend connections that multiplexed resp sessions share (multiplex = true), all nodes and event loops."},
		func() float64 { c, _ := m.multiplexCounts(); return float64(c) })
	unshared := prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "sessions_unshared_total",
		Help: "Multiplexed sessions that moved from a shared backend connection to one of their own (MULTI, blocking commands, subscriptions, CLIENT ..., a long command or reply)."},
		func() float64 { _, u := m.multiplexCounts(); return float64(u) })
	m.registry.MustRegister(collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.failovers, m.unplanned, m.detectToSwitch, m.closedOnSwitch, m.dualMasters, m.fences, m.adminActions,
		sharedConns, unshared)
	return m
}

// ObserveSwitch counts one master switch. It is the router's OnSwitch hook.
func (m *Metrics) ObserveSwitch(sw routing.Switch) {
	m.failovers.WithLabelValues(sw.Group).Inc()
	if !sw.Planned {
		m.unplanned.WithLabelValues(sw.Group).Inc()
	}
	m.closedOnSwitch.WithLabelValues(sw.Group).Add(float64(sw.SessionsClosed))
	if sw.DetectToSwitch >= 0 {
		m.detectToSwitch.WithLabelValues(sw.Group).Observe(sw.DetectToSwitch.Seconds())
	}
}

// ObserveDualMaster counts one newly detected dual master. It is the router's OnDualMaster hook.
func (m *Metrics) ObserveDualMaster(group, _ string) { m.dualMasters.WithLabelValues(group).Inc() }

// ObserveFence counts one fencing of a group's master. It is the router's OnFence hook.
func (m *Metrics) ObserveFence(group string) { m.fences.WithLabelValues(group).Inc() }

// register adds the scrape-time collectors for s and makes every per-group series exist from the
// start, so that alerts on increase() see the first failover.
func (m *Metrics) register(s *Server) {
	m.initGroups(s.cur().Groups)
	for _, a := range []string{actionReady, actionDrain, actionMaint, actionKill} {
		m.adminActions.WithLabelValues(a)
	}
	m.registry.MustRegister(&snapshotCollector{s: s}, &durabilityCollector{s: s})
}

func (m *Metrics) initGroups(groups []GroupPorts) {
	for _, g := range groups {
		m.failovers.WithLabelValues(g.Name)
		m.unplanned.WithLabelValues(g.Name)
		m.closedOnSwitch.WithLabelValues(g.Name)
		m.dualMasters.WithLabelValues(g.Name)
		m.fences.WithLabelValues(g.Name)
		m.detectToSwitch.WithLabelValues(g.Name)
	}
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(ns+"_"+name, help, labels, nil)
}

var (
	nodeLabels     = []string{"group", "node"}
	listenerLabels = []string{"group", "listener", "role"}
	sentinelLabels = []string{"group", "sentinel"}
)

// nodeStates are the values of the state label of node_status, as haproxy_server_status has one series
// per state.
var nodeStates = []string{"UP", "NOLB", "DOWN", "MAINT", "DRAIN", "UNCHECKED"}

// stallKinds are the values of the stall label of node_stalled.
var stallKinds = []string{string(check.StallBusy), string(check.StallLoading), string(check.StallUnresponsive)}

// snapshotCollector reads the routing snapshot and the listeners' counters at each scrape.
type snapshotCollector struct{ s *Server }

var (
	dBuild            = desc("build_info", "Always 1; the labels say which build runs.", "version", "goversion")
	dGroupMode        = desc("group_mode", "1 for the mode the group's ports serve clients in (tcp forwards bytes; resp reads commands and moves sessions across a failover).", "group", "mode")
	dMasterVerified   = desc("master_verified", "1 when the group's master port routes to a verified master, else 0.", "group")
	dFailoverProgress = desc("failover_in_progress", "1 while a Sentinel announces a failover of the group's master.", "group")
	dDualMastersNow   = desc("dual_masters", "Nodes reporting role:master now that the Sentinels do not name.", "group")
	dGroupShared      = desc("group_shared_backend_connections", "Backend connections the group's multiplexed sessions share now (multiplex = true), to all its nodes.", "group")
	dGroupUnshared    = desc("group_sessions_unshared_total", "The group's multiplexed sessions that moved from a shared backend connection to one of their own.", "group")
	dDemotingNow      = desc("demoting_old_masters", "Old masters of a failover still reporting role:master while Sentinel converts them (expected for up to check.demotion_timeout).", "group")
	dMasterFenced     = desc("master_fenced", "1 while the master port refuses the named master: no Sentinel majority, and a replica that could be promoted no longer follows it.", "group")
	dMajority         = desc("sentinel_majority", "1 while more than half of the Sentinels the proxy knows for the group answer.", "group")
	dSenKnown         = desc("sentinels_known", "Sentinels the proxy knows for the group: configured, discovered, or listed by another.", "group")
	dSenAnswering     = desc("sentinels_answering", "Known Sentinels whose latest answer is usable (reachable, not in TILT).", "group")
	dNodeStatus       = desc("node_status", "1 for the node's current state (UP, NOLB, DOWN, MAINT, DRAIN, UNCHECKED), 0 for the others.", "group", "node", "state")
	dNodeMaster       = desc("node_is_master", "1 for the node the master port routes to.", nodeLabels...)
	dNodeCur          = desc("node_current_sessions", "Established sessions to the node, both ports.", nodeLabels...)
	dNodeTotal        = desc("node_sessions_total", "Sessions forwarded to the node, both ports.", nodeLabels...)
	dNodeBytesIn      = desc("node_bytes_in_total", "Bytes from clients to the node.", nodeLabels...)
	dNodeBytesOut     = desc("node_bytes_out_total", "Bytes from the node to clients.", nodeLabels...)
	dNodeChecks       = desc("node_checks_total", "Health checks (AUTH, PING, INFO replication) run against the node.", nodeLabels...)
	dNodeCheckFail    = desc("node_check_failures_total", "Failed health checks (HAProxy's chkfail).", nodeLabels...)
	dNodeDowns        = desc("node_down_transitions_total", "UP to DOWN transitions (HAProxy's chkdown).", nodeLabels...)
	dNodeCheckDur     = desc("node_check_duration_seconds", "Duration of the last health check.", nodeLabels...)
	dNodeDowntime     = desc("node_downtime_seconds_total", "Time the node spent DOWN.", nodeLabels...)
	dNodeLastChange   = desc("node_last_change_seconds", "Seconds since the node's last UP/DOWN transition.", nodeLabels...)
	dNodeLag          = desc("node_replication_lag_seconds", "Replica lag as the master reports it (INFO replication lag).", nodeLabels...)
	dNodeLagBytes     = desc("node_replication_lag_bytes", "Master offset minus the replica's acknowledged offset.", nodeLabels...)
	dNodeStalled      = desc("node_stalled", "1 for the kind of stall the node is in (busy, loading, unresponsive), 0 for the others: alive, but its probes get -BUSY, -LOADING or no answer in time. It does not make the node DOWN.", "group", "node", "stall")
	dNodeStallSecs    = desc("node_stall_seconds", "How long the node's current stall has lasted; 0 when it answers.", nodeLabels...)
	dNodeStalledChk   = desc("node_stalled_checks_total", "Health checks that found the node stalled (counted in node_check_failures_total too).", nodeLabels...)
	dNodeStalls       = desc("node_stalls_total", "Stalls begun: the node went from answering its checks to busy, loading or unresponsive.", nodeLabels...)
	dLisCur           = desc("listener_current_sessions", "Established sessions.", listenerLabels...)
	dLisMax           = desc("listener_max_sessions", "The most concurrent sessions seen.", listenerLabels...)
	dLisLimit         = desc("listener_limit_sessions", "max_conns; 0 is none.", listenerLabels...)
	dLisTotal         = desc("listener_sessions_total", "Clients accepted.", listenerLabels...)
	dLisHeld          = desc("listener_held_sessions", "Clients waiting for a route (during a failover).", listenerLabels...)
	dLisRefused       = desc("listener_refused_total", "Clients refused: no route when the hold ran out, or max_conns.", listenerLabels...)
	dLisConnErr       = desc("listener_connect_errors_total", "Failed connections to a backend.", listenerLabels...)
	dLisTLSErr        = desc("listener_tls_handshake_errors_total", "Clients whose TLS handshake failed.", listenerLabels...)
	dLisMoved         = desc("listener_sessions_moved_total", "Sessions that left a backend and stayed open (resp mode: moved by a failover).", listenerLabels...)
	dLisKilled        = desc("listener_sessions_closed_by_backend_total", "Sessions closed because Redis closed their backend connection while the node stayed alive and routed (resp mode: CLIENT KILL, output-buffer limit, timeout).", listenerLabels...)
	dLisBytesIn       = desc("listener_bytes_in_total", "Bytes from clients.", listenerLabels...)
	dLisBytesOut      = desc("listener_bytes_out_total", "Bytes to clients.", listenerLabels...)
	dSenReachable     = desc("sentinel_reachable", "1 when the Sentinel answered its last reconcile.", sentinelLabels...)
	dSenTilt          = desc("sentinel_tilt", "1 while the Sentinel is in TILT mode (its word is ignored).", sentinelLabels...)
	dSenEvents        = desc("sentinel_events_received_total", "Pub/sub messages received from the Sentinel for the group.", sentinelLabels...)
	dSenEpoch         = desc("sentinel_config_epoch", "The config epoch the Sentinel reports for the group's master.", sentinelLabels...)
)

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(dBuild, 1, c.s.Version, runtime.Version())
	p := c.s.build(nil)
	for _, g := range p.Groups {
		for _, m := range []string{"tcp", "resp"} {
			gauge(dGroupMode, b2f(g.Mode == m), g.Name, m)
		}
		gauge(dMasterVerified, b2f(g.Master != ""), g.Name)
		gauge(dFailoverProgress, b2f(g.Failover != nil), g.Name)
		gauge(dDualMastersNow, float64(len(g.DualMasters)), g.Name)
		demoting := 0.0
		if g.Demoting != "" {
			demoting = 1
		}
		gauge(dDemotingNow, demoting, g.Name)
		if m := g.Multiplex; m != nil {
			gauge(dGroupShared, float64(m.SharedConns), g.Name)
			counter(dGroupUnshared, float64(m.Unshared), g.Name)
		}
		gauge(dMasterFenced, b2f(g.Fenced), g.Name)
		gauge(dMajority, b2f(g.SentinelMajority), g.Name)
		gauge(dSenKnown, float64(g.SentinelsKnown), g.Name)
		gauge(dSenAnswering, float64(g.SentinelsAnswering), g.Name)
		for _, n := range g.Nodes {
			l := []string{g.Name, n.Addr}
			for _, st := range nodeStates {
				gauge(dNodeStatus, b2f(n.Status == st), g.Name, n.Addr, st)
			}
			for _, st := range stallKinds {
				gauge(dNodeStalled, b2f(n.Stall == st), g.Name, n.Addr, st)
			}
			gauge(dNodeStallSecs, n.StallSeconds, l...)
			counter(dNodeStalledChk, float64(n.StalledChecks), l...)
			counter(dNodeStalls, float64(n.Stalls), l...)
			gauge(dNodeMaster, b2f(n.IsMaster), l...)
			gauge(dNodeCur, float64(n.CurrentSessions), l...)
			counter(dNodeTotal, float64(n.TotalSessions), l...)
			counter(dNodeBytesIn, float64(n.BytesIn), l...)
			counter(dNodeBytesOut, float64(n.BytesOut), l...)
			counter(dNodeChecks, float64(n.Checks), l...)
			counter(dNodeCheckFail, float64(n.CheckFailures), l...)
			counter(dNodeDowns, float64(n.Downs), l...)
			counter(dNodeDowntime, n.DowntimeSeconds, l...)
			gauge(dNodeCheckDur, n.CheckDurationMS/1000, l...)
			if !n.LastChange.IsZero() {
				gauge(dNodeLastChange, p.Now.Sub(n.LastChange).Seconds(), l...)
			}
			if n.LagSeconds >= 0 {
				gauge(dNodeLag, float64(n.LagSeconds), l...)
				gauge(dNodeLagBytes, float64(n.LagBytes), l...)
			}
		}
		for _, li := range g.Listeners {
			l := []string{g.Name, li.Name, li.Role}
			gauge(dLisCur, float64(li.Current), l...)
			gauge(dLisMax, float64(li.Max), l...)
			gauge(dLisLimit, float64(li.Limit), l...)
			counter(dLisTotal, float64(li.Total), l...)
			gauge(dLisHeld, float64(li.Held), l...)
			counter(dLisRefused, float64(li.Refused), l...)
			counter(dLisConnErr, float64(li.ConnectErrors), l...)
			counter(dLisTLSErr, float64(li.HandshakeErrors), l...)
			counter(dLisMoved, float64(li.Moved), l...)
			counter(dLisKilled, float64(li.ClosedByBackend), l...)
			counter(dLisBytesIn, float64(li.BytesIn), l...)
			counter(dLisBytesOut, float64(li.BytesOut), l...)
		}
		for _, sn := range g.Sentinels {
			l := []string{g.Name, sn.Addr}
			gauge(dSenReachable, b2f(sn.Reachable), l...)
			gauge(dSenTilt, b2f(sn.Tilt), l...)
			counter(dSenEvents, float64(sn.Events), l...)
			gauge(dSenEpoch, float64(sn.Epoch), l...)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
