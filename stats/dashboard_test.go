package stats

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dashboard is what TestGrafanaDashboard reads of contrib/grafana/sentinel-proxy.json: the parts that
// make it importable and the queries.
type dashboard struct {
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	Requires []struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"__requires"`
	SchemaVersion int                             `json:"schemaVersion"`
	UID           string                          `json:"uid"`
	Title         string                          `json:"title"`
	ID            *int                            `json:"id"` // null: the importing Grafana gives it one
	Panels        []dashboardPanel                `json:"panels"`
	Annotations   struct{ List []dashboardQuery } `json:"annotations"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Datasource *dashboardDS    `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type dashboardPanel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource *dashboardDS             `json:"datasource"`
	Targets    []dashboardQuery         `json:"targets"`
	Panels     []dashboardPanel         `json:"panels"` // a row's, when collapsed
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
}

// dashboardQuery is a panel's target or an annotation query.
type dashboardQuery struct {
	Name       string       `json:"name"`
	BuiltIn    int          `json:"builtIn"`
	RefID      string       `json:"refId"`
	Expr       string       `json:"expr"`
	Datasource *dashboardDS `json:"datasource"`
}

type dashboardDS struct{ Type, UID string }

// TestGrafanaDashboard keeps contrib/grafana/sentinel-proxy.json importable (Grafana's current schema,
// its data source asked for on import, a datasource and a group variable) and in step with /metrics:
// every metric a panel or an annotation queries must be one a running proxy exports, so renaming a
// metric breaks this test instead of the dashboard.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "contrib", "grafana", "sentinel-proxy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("not valid JSON: %v", err)
	}
	if d.SchemaVersion < 36 || d.SchemaVersion > 41 || d.UID == "" || d.Title == "" || d.ID != nil {
		t.Errorf("schemaVersion %d (want Grafana 10-11's, about 39), uid %q, title %q, id %v (want null)",
			d.SchemaVersion, d.UID, d.Title, d.ID)
	}

	// Import asks for each ${DS_…} input; every one used must be declared, and the Prometheus one exist.
	declared := map[string]bool{}
	for _, in := range d.Inputs {
		declared[in.Name] = in.Type == "datasource" && in.PluginID == "prometheus"
	}
	for _, m := range regexp.MustCompile(`\$\{(DS_[A-Z_]+)\}`).FindAllStringSubmatch(string(raw), -1) {
		if !declared[m[1]] {
			t.Errorf("${%s} is used but __inputs does not declare it as a Prometheus data source", m[1])
		}
	}
	if len(declared) == 0 {
		t.Error("no __inputs: import would not ask for the Prometheus data source")
	}
	requires := map[string]bool{}
	for _, r := range d.Requires {
		requires[r.Type+"/"+r.ID] = true
	}
	for _, want := range []string{"grafana/grafana", "datasource/prometheus"} {
		if !requires[want] {
			t.Errorf("__requires lacks %s", want)
		}
	}

	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		switch v.Name {
		case "datasource":
			if v.Type != "datasource" || string(v.Query) != `"prometheus"` {
				t.Errorf("the datasource variable must be of type datasource, query prometheus: %s %s", v.Type, v.Query)
			}
		case "group":
			if v.Definition != "label_values(sentinel_proxy_master_verified, group)" ||
				!strings.Contains(string(v.Query), v.Definition) || v.Datasource == nil || v.Datasource.UID != "${datasource}" {
				t.Errorf("the group variable must list label_values(sentinel_proxy_master_verified, group) from ${datasource}: %+v", v)
			}
		}
	}
	if vars["datasource"] == "" || vars["group"] == "" {
		t.Fatalf("variables %v; want datasource and group", vars)
	}

	exported := exportedMetrics(t)
	metricRef := regexp.MustCompile(`\b(?:sentinel_proxy|go|process)_[a-z0-9_]+`)
	queried := map[string]bool{}
	checkQuery := func(where string, q dashboardQuery) {
		if strings.TrimSpace(q.Expr) == "" || q.Datasource == nil || q.Datasource.UID != "${datasource}" {
			t.Errorf("%s: a query needs an expr and the ${datasource} variable: %+v", where, q)
			return
		}
		if !strings.Contains(q.Expr, `group=~"$group"`) {
			t.Errorf("%s: %s does not follow the group variable", where, q.Expr)
		}
		names := metricRef.FindAllString(q.Expr, -1)
		if len(names) == 0 {
			t.Errorf("%s: %s queries no metric of the proxy", where, q.Expr)
		}
		for _, name := range names {
			queried[name] = true
			if !exported[name] {
				t.Errorf("%s queries %s, which /metrics does not export", where, name)
			}
		}
	}

	ids := map[int]bool{}
	types := map[string]bool{}
	var walk func(panels []dashboardPanel)
	walk = func(panels []dashboardPanel) {
		for _, p := range panels {
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("panel %q: id %d is missing or not unique", p.Title, p.ID)
			}
			ids[p.ID] = true
			if g := p.GridPos; g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("panel %q: gridPos %+v is off Grafana's 24 columns", p.Title, g)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			types[p.Type] = true
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
				t.Errorf("panel %q: needs the ${datasource} variable and queries", p.Title)
			}
			refs := map[string]bool{}
			for _, q := range p.Targets {
				if refs[q.RefID] || q.RefID == "" {
					t.Errorf("panel %q: refId %q missing or repeated", p.Title, q.RefID)
				}
				refs[q.RefID] = true
				checkQuery("panel "+p.Title, q)
			}
		}
	}
	walk(d.Panels)
	for typ := range types {
		if !requires["panel/"+typ] {
			t.Errorf("__requires lacks panel %s, which the dashboard uses", typ)
		}
	}
	annotations := 0
	for _, a := range d.Annotations.List {
		if a.BuiltIn == 1 {
			continue
		}
		annotations++
		checkQuery("annotation "+a.Name, a)
	}
	if annotations == 0 {
		t.Error("no annotation queries: failovers must show on every panel")
	}

	// What the issue asks the operator to see.
	for _, want := range []string{"listener_current_sessions", "listener_sessions_total", "listener_bytes_in_total",
		"listener_bytes_out_total", "listener_refused_total", "listener_held_sessions", "node_is_master",
		"failovers_total", "master_verified", "node_status", "node_check_duration_seconds",
		"node_replication_lag_seconds", "sentinel_reachable", "dual_master_detections_total", "master_fenced",
		"durable_wait_replicas", "durable_writes_waiting", "durable_writes_confirmed_total",
		"durable_writes_unconfirmed_total", "durable_wait_seconds_bucket", "durable_replicas_acked",
		"group_shared_backend_connections", "group_sessions_unshared_total", "demoting_old_masters", "unplanned_failovers_total"} {
		if !queried["sentinel_proxy_"+want] {
			t.Errorf("no panel shows sentinel_proxy_%s", want)
		}
	}
}

// exportedMetrics are the sample names a running proxy's /metrics has (the fixture's router fed a master,
// a replica and a node that is down; its group in resp mode with multiplex and wait_replicas on and writes
// behind it):
// each family, and a histogram's _bucket, _sum and _count.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	f := newFixture(t, true, withDurability(t), func(s *Server) {
		s.Groups[0].Multiplex = func([]string) (uint64, uint64) { return 1, 0 }
	})
	_, body := get(t, f.srv.URL+"/metrics", "haproxy", "password")
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE ([a-z0-9_:]+) ([a-z]+)$`).FindAllStringSubmatch(body, -1) {
		out[m[1]] = true
		if slices.Contains([]string{"histogram", "summary"}, m[2]) {
			out[m[1]+"_sum"], out[m[1]+"_count"] = true, true
		}
		if m[2] == "histogram" {
			out[m[1]+"_bucket"] = true
		}
	}
	if !out["sentinel_proxy_master_verified"] || !out["sentinel_proxy_detect_to_switch_seconds_bucket"] {
		t.Fatalf("the fixture's /metrics lacks the basics; the pattern no longer matches:\n%s", body)
	}
	return out
}
