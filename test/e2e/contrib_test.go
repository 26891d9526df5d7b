package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t *testing.T, path string) ruleFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rf
}

// balanced reports whether (), [] and {} nest properly outside quoted strings.
func balanced(s string) bool {
	var stack []rune
	inQuote := false
	for i, r := range s {
		if r == '"' && (i == 0 || s[i-1] != '\\') {
			inQuote = !inQuote
		}
		if inQuote {
			continue
		}
		switch r {
		case '(', '[', '{':
			stack = append(stack, r)
		case ')', ']', '}':
			open := map[rune]rune{')': '(', ']': '[', '}': '{'}[r]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0 && !inQuote
}

// TestAlertRules checks contrib/alerts: the Prometheus rules with promtool (syntax, and the unit tests
// of prometheus.rules.test.yml, which fire each alert on sample series) and against docs/metrics.md;
// the LogQL rules against docs/logging.md. Both files must cover the same situations.
func TestAlertRules(t *testing.T) {
	root := repoRoot(t)
	metricsDoc, _ := os.ReadFile(filepath.Join(root, "docs", "metrics.md"))
	loggingDoc, _ := os.ReadFile(filepath.Join(root, "docs", "logging.md"))
	prom := loadRules(t, filepath.Join(root, "contrib", "alerts", "prometheus.rules.yml"))
	loki := loadRules(t, filepath.Join(root, "contrib", "alerts", "loki.rules.yml"))

	metricRef := regexp.MustCompile(`sentinel_proxy_([a-z_]+)`)
	eventRef := regexp.MustCompile(`event=~?"([a-z_|]+)"`)
	names := func(rf ruleFile) map[string]bool {
		out := map[string]bool{}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				out[r.Alert] = true
				if r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" || !balanced(r.Expr) {
					t.Errorf("rule %s: needs expr (balanced), severity and summary: %+v", r.Alert, r)
				}
			}
		}
		return out
	}
	promAlerts, lokiAlerts := names(prom), names(loki)
	for _, a := range []string{"SentinelProxyFailover", "SentinelProxyNoVerifiedMaster", "SentinelProxyDualMaster",
		"SentinelProxySentinelUnreachable", "SentinelProxyNodeDown"} {
		if !promAlerts[a] || !lokiAlerts[a] {
			t.Errorf("alert %s must be in both rule files (prometheus %v, loki %v)", a, promAlerts[a], lokiAlerts[a])
		}
	}
	for _, g := range prom.Groups {
		for _, r := range g.Rules {
			for _, m := range metricRef.FindAllStringSubmatch(r.Expr, -1) {
				name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m[1], "_bucket"), "_sum"), "_count")
				if !strings.Contains(string(metricsDoc), "`"+name+"`") {
					t.Errorf("rule %s uses sentinel_proxy_%s, which docs/metrics.md does not list", r.Alert, name)
				}
			}
		}
	}
	for _, g := range loki.Groups {
		for _, r := range g.Rules {
			refs := eventRef.FindAllStringSubmatch(r.Expr, -1)
			if len(refs) == 0 || !strings.Contains(r.Expr, "| json") {
				t.Errorf("LogQL rule %s must parse the JSON line and match an event: %s", r.Alert, r.Expr)
			}
			for _, m := range refs {
				for _, ev := range strings.Split(m[1], "|") {
					if !strings.Contains(string(loggingDoc), "| `"+ev+"` |") {
						t.Errorf("LogQL rule %s matches event %q, which docs/logging.md does not list", r.Alert, ev)
					}
				}
			}
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool missing; .ci/run installs Debian's prometheus package for it")
		}
		t.Skip("promtool not installed (apt-get install prometheus): syntax and rule unit tests skipped")
	}
	dir := filepath.Join(root, "contrib", "alerts")
	for _, args := range [][]string{{"check", "rules", "prometheus.rules.yml"}, {"test", "rules", "prometheus.rules.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestDeployManifestsParse keeps contrib/k8s valid YAML with the probes the docs promise.
func TestDeployManifestsParse(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "contrib", "k8s", "sentinel-proxy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	kinds := map[string]bool{}
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("contrib/k8s/sentinel-proxy.yaml: %v", err)
		}
		if k, ok := doc["kind"].(string); ok {
			kinds[k] = true
		}
	}
	for _, k := range []string{"ConfigMap", "Secret", "StatefulSet", "Service"} {
		if !kinds[k] {
			t.Errorf("manifest lacks a %s", k)
		}
	}
	for _, want := range []string{"path: /healthz", "path: /readyz", "terminationGracePeriodSeconds", "preStop"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("manifest lacks %q", want)
		}
	}
}

// TestGrafanaDashboardQueriesParse checks every PromQL query of contrib/grafana/sentinel-proxy.json
// (panels and annotations) with promtool, Grafana's variables replaced by values of their kind. Which
// metrics they name is checked against a running /metrics by stats' TestGrafanaDashboard.
func TestGrafanaDashboardQueriesParse(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "contrib", "grafana", "sentinel-proxy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("contrib/grafana/sentinel-proxy.json: %v", err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	if len(exprs) < 20 {
		t.Fatalf("found only %d queries", len(exprs))
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool missing; .ci/run installs Debian's prometheus package for it")
		}
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	grafanaVars := strings.NewReplacer("$__rate_interval", "1m", "$__interval", "30s", "$__range_s", "3600",
		"$__range", "1h", "$group", ".*", "$instance", ".*")
	var sb strings.Builder
	sb.WriteString("groups:\n- name: dashboard\n  rules:\n")
	for i, e := range exprs {
		q, _ := json.Marshal(grafanaVars.Replace(e)) // a JSON string is a YAML string
		fmt.Fprintf(&sb, "  - record: dashboard_query_%d\n    expr: %s\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the dashboard's queries: %v\n%s\n%s", err, out, sb.String())
	}
}
