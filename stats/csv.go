package stats

import (
	"encoding/csv"
	"io"
	"strconv"
	"time"
)

// csvHeader names the /stats.csv columns. Where a column means what HAProxy's `show stat` column of the
// same name means, it has that name (scur, smax, slim, stot, bin, bout, ereq, econ, status, chkfail,
// chkdown, lastchg, downtime, type, rate, rate_max, check_status, check_duration, qcur); the rest are
// sentinel-proxy's own and come after them. Columns are only ever added at the end.
var csvHeader = []string{"pxname", "svname", "scur", "smax", "slim", "stot", "bin", "bout", "ereq", "econ",
	"status", "chkfail", "chkdown", "lastchg", "downtime", "type", "rate", "rate_max", "check_status",
	"check_duration", "qcur", "addr", "admin_state", "verdict", "role_sentinel", "role_probe", "repl_offset",
	"lag_seconds", "lag_bytes", "health", "stall", "stall_seconds", "stalled_checks",
	"durable_wait_replicas", "durable_wait_timeout_ms", "durable_writes_waiting", "durable_writes_confirmed",
	"durable_writes_unconfirmed", "durable_replicas_acked"}

// durableColumns are the durable_* columns: filled on a resp-mode group's master port row (its sessions
// apply wait_replicas), empty on the others.
const durableColumns = 6

// writeCSV writes one row per listener (svname FRONTEND, type 0) and per node (svname its address,
// type 2, pxname its group), after a header line that starts with "# " as HAProxy's does. A resp-mode
// group's durable acknowledgements are on its master port's row.
func writeCSV(w io.Writer, p Page) {
	_, _ = io.WriteString(w, "# ")
	cw := csv.NewWriter(w)
	_ = cw.Write(csvHeader)
	u := func(n uint64) string { return strconv.FormatUint(n, 10) }
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	for _, g := range p.Groups {
		for _, l := range g.Listeners {
			limit := ""
			if l.Limit > 0 {
				limit = strconv.Itoa(l.Limit)
			}
			durable := make([]string, durableColumns)
			if d := g.Durability; d != nil && l.Role == "master" {
				durable = []string{strconv.Itoa(d.WaitReplicas), strconv.FormatFloat(d.WaitTimeoutMS, 'f', -1, 64),
					i(d.Waiting), u(d.Confirmed), u(d.Unconfirmed), i(d.ReplicasAcked)}
			}
			_ = cw.Write(append([]string{l.Name, "FRONTEND", i(l.Current), i(l.Max), limit, u(l.Total), u(l.BytesIn),
				u(l.BytesOut), u(l.Refused), u(l.ConnectErrors), "OPEN", "", "", "", "", "0", u(l.Rate), u(l.RateMax),
				"", "", i(l.Held), l.Addr, "", "", "", "", "", "", "", "", "", "", ""}, durable...))
		}
		for _, n := range g.Nodes {
			lastchg := ""
			if !n.LastChange.IsZero() {
				lastchg = i(int64(p.Now.Sub(n.LastChange) / time.Second))
			}
			_ = cw.Write(append([]string{g.Name, n.Addr, i(n.CurrentSessions), "", "", u(n.TotalSessions), u(n.BytesIn),
				u(n.BytesOut), "", "", n.Status, u(n.CheckFailures), u(n.Downs), lastchg,
				i(int64(n.DowntimeSeconds)), "2", "", "", n.CheckStatus,
				strconv.FormatFloat(n.CheckDurationMS, 'f', -1, 64), "", n.Addr, n.Admin, n.Verdict, n.SentinelRole,
				n.ProbeRole, i(n.Offset), strconv.Itoa(n.LagSeconds), i(n.LagBytes), n.Health, n.Stall,
				strconv.FormatFloat(n.StallSeconds, 'f', 1, 64), u(n.StalledChecks)}, make([]string, durableColumns)...))
		}
	}
	cw.Flush()
}
