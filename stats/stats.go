// Package stats serves the operator's view: an HTML page in the spirit of HAProxy's stats page, the same
// data as JSON, and /healthz. It reads snapshots and counters; it never changes routing state.
package stats

import (
	"crypto/subtle"
	"embed"
	"encoding/json"
	"html/template"
	"net/http"
	"sort"
	"time"

	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
)

//go:embed templates/page.html
var templates embed.FS

// Group ties a master group's name to its listeners. Replica may be nil.
type Group struct {
	Name    string
	Master  *proxy.Listener
	Replica *proxy.Listener
}

// Server renders the stats. Zero values are not usable: set every field.
type Server struct {
	User, Password string
	Snapshot       func() *routing.Snapshot
	Groups         []Group
	Version        string
	Log            zerolog.Logger
	Started        time.Time
}

// Handler returns the HTTP routes: /healthz without auth, everything else behind basic auth.
func (s *Server) Handler() http.Handler {
	page := template.Must(template.New("page.html").Funcs(template.FuncMap{
		"bytes": humanBytes, "ago": ago, "ms": func(d time.Duration) string { return d.Round(100 * time.Microsecond).String() },
	}).ParseFS(templates, "templates/page.html"))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /stats", s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if err := page.Execute(w, s.build()); err != nil {
			s.Log.Error().Err(err).Msg("render stats page")
		}
	})))
	mux.Handle("GET /stats.json", s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.build())
	})))
	mux.Handle("GET /{$}", http.RedirectHandler("/stats", http.StatusFound))
	return mux
}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		userOK := subtle.ConstantTimeCompare([]byte(user), []byte(s.User)) == 1
		passOK := subtle.ConstantTimeCompare([]byte(pass), []byte(s.Password)) == 1
		if !ok || !userOK || !passOK {
			w.Header().Set("WWW-Authenticate", `Basic realm="sentinel-proxy statistics"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Page is the data behind the page and /stats.json.
type Page struct {
	Version string      `json:"version"`
	Now     time.Time   `json:"now"`
	Uptime  string      `json:"uptime"`
	Groups  []GroupView `json:"groups"`
}

// GroupView is one master group.
type GroupView struct {
	Name            string         `json:"name"`
	Master          string         `json:"master"`
	NoMasterReason  string         `json:"no_master_reason,omitempty"`
	Named           string         `json:"named_master"`
	Epoch           int64          `json:"config_epoch"`
	ReplicaFallback bool           `json:"replica_fallback"`
	DualMasters     []string       `json:"dual_masters,omitempty"`
	Listeners       []ListenerView `json:"listeners"`
	Nodes           []NodeView     `json:"nodes"`
	Sentinels       []SentinelView `json:"sentinels"`
}

// ListenerView is one port.
type ListenerView struct {
	Name          string   `json:"name"`
	Addr          string   `json:"addr"`
	Current       int64    `json:"current_sessions"`
	Limit         int      `json:"limit"`
	Total         uint64   `json:"total_sessions"`
	Refused       uint64   `json:"refused"`
	ConnectErrors uint64   `json:"connect_errors"`
	BytesIn       uint64   `json:"bytes_in"`
	BytesOut      uint64   `json:"bytes_out"`
	Backends      []string `json:"backends"`
	Refusal       string   `json:"refusal,omitempty"`
}

// NodeView is one data node.
type NodeView struct {
	Addr            string    `json:"addr"`
	Status          string    `json:"status"` // UP or DOWN, as HAProxy
	Verdict         string    `json:"verdict"`
	SentinelRole    string    `json:"sentinel_role"`
	SentinelFlags   string    `json:"sentinel_flags"`
	ProbeRole       string    `json:"probe_role"`
	LinkStatus      string    `json:"master_link_status,omitempty"`
	CheckStatus     string    `json:"check_status"`
	CheckReason     string    `json:"check_reason"`
	CheckError      string    `json:"check_error,omitempty"`
	CheckDuration   string    `json:"check_duration"`
	LastChange      time.Time `json:"last_change"`
	CurrentSessions int64     `json:"current_sessions"`
	TotalSessions   uint64    `json:"total_sessions"`
	BytesIn         uint64    `json:"bytes_in"`
	BytesOut        uint64    `json:"bytes_out"`
	Offset          int64     `json:"repl_offset"`
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
	LastEventAt time.Time `json:"last_event_at,omitempty"`
}

func (s *Server) build() Page {
	snap := s.Snapshot()
	now := time.Now()
	p := Page{Version: s.Version, Now: now, Uptime: now.Sub(s.Started).Round(time.Second).String()}
	for _, g := range s.Groups {
		gs := snap.Group(g.Name)
		if gs == nil {
			continue
		}
		gv := GroupView{Name: g.Name, Master: gs.Master, NoMasterReason: gs.NoMasterReason, Named: gs.Named,
			Epoch: gs.NamedEpoch, ReplicaFallback: gs.ReplicaFallback, DualMasters: gs.DualMasters}
		per := map[string]proxy.BackendStats{}
		for _, l := range []*proxy.Listener{g.Master, g.Replica} {
			if l == nil {
				continue
			}
			st := l.Stats()
			gv.Listeners = append(gv.Listeners, ListenerView{Name: st.Name, Addr: st.Addr, Current: st.Current,
				Limit: st.Max, Total: st.Total, Refused: st.Refused, ConnectErrors: st.ConnectErrors,
				BytesIn: st.BytesIn, BytesOut: st.BytesOut, Backends: st.Route.Backends, Refusal: st.Route.Refusal})
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
			status := "DOWN"
			if n.Health.Up {
				status = "UP"
			}
			if !n.Health.Known {
				status = "UNCHECKED"
			}
			nv := NodeView{Addr: n.Addr, Status: status, Verdict: n.Verdict, SentinelRole: n.SentinelRole,
				SentinelFlags: n.SentinelFlags, ProbeRole: n.ProbeRole(), LinkStatus: n.LastOK.Replication.MasterLinkStatus,
				CheckStatus: string(n.Last.Status), CheckReason: n.Last.Reason(), CheckDuration: n.Last.Duration.String(),
				LastChange: n.LastChange, CurrentSessions: per[n.Addr].Current, TotalSessions: per[n.Addr].Total,
				BytesIn: per[n.Addr].BytesIn, BytesOut: per[n.Addr].BytesOut, Offset: n.LastOK.Replication.MasterReplOffset}
			if n.Last.Status == "" {
				nv.CheckReason = ""
			}
			if n.Last.Err != nil {
				nv.CheckError = n.Last.Err.Error()
			}
			gv.Nodes = append(gv.Nodes, nv)
		}
		for _, sn := range gs.Sentinels {
			gv.Sentinels = append(gv.Sentinels, SentinelView{Addr: sn.Addr, Reachable: sn.Reachable, Tilt: sn.Tilt,
				Error: sn.Err, Master: sn.MasterAddr, Epoch: sn.ConfigEpoch, LastEvent: sn.LastEvent, LastEventAt: sn.LastEventAt})
		}
		sort.Slice(gv.Nodes, func(i, j int) bool { return gv.Nodes[i].Addr < gv.Nodes[j].Addr })
		p.Groups = append(p.Groups, gv)
	}
	return p
}
