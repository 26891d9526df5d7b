package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
	"github.com/sentinel-proxy/sentinel-proxy/server"
)

// The minimal ACL rules docs/security.md gives: the probe user on data nodes, the proxy's user on Sentinels.
const (
	probeACL    = "user probe on >probe-secret-4b2e -@all +ping +info"
	sentinelACL = "user sproxy on >sproxy-secret-8d5f -@all +ping +info +sentinel|get-master-addr-by-name " +
		"+sentinel|master +sentinel|replicas +sentinel|sentinels +psubscribe +punsubscribe &*"
)

// TestACLUsersAndSecretsStayOut runs the proxy against nodes and Sentinels that require ACL users, with
// each password taken from a file or an environment variable, through traffic, a failover, every stats
// endpoint, `check`, and a rejected reload — then looks for every secret in everything it wrote.
func TestACLUsersAndSecretsStayOut(t *testing.T) {
	secrets := map[string]string{
		"node (default user)": "node-admin-secret-7f3a", "sentinel (default user)": "sentinel-admin-secret-9c1d",
		"probe user": "probe-secret-4b2e", "sentinel user": "sproxy-secret-8d5f", "stats": "stats-secret-2e6b",
	}
	topo := redistest.New(t, redistest.Options{Replicas: 1, Sentinels: 3, Password: secrets["node (default user)"],
		SentinelPassword: secrets["sentinel (default user)"], NodeConf: []string{probeACL}, SentinelConf: []string{sentinelACL}})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "probe.pw"), []byte(secrets["probe user"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stats.pw"), []byte(secrets["stats"]), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_SENTINEL_PASSWORD", secrets["sentinel user"])
	doc := fmt.Sprintf(`
[log]
level = "debug"
[sentinel]
addrs = [%s]
username = "sproxy"
password_env = "TEST_SENTINEL_PASSWORD"
[redis]
username = "probe"
password_file = %q
[check]
interval = "200ms"
timeout = "500ms"
[proxy]
shutdown_timeout = "1s"
[[masters]]
name = %q
master_listen = %q
replica_listen = %q
[stats]
listen = %q
user = "admin"
password_file = %q
admin = true
`, append(append([]any{quoteAll(topo.SentinelAddrs()), filepath.Join(dir, "probe.pw"), topo.Name}, freeAddrs(t, 3)...),
		filepath.Join(dir, "stats.pw"))...)
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxyWith(t, cfg, server.Options{Reload: func() (*config.Config, error) { return config.Load(path) }})
	master := topo.Nodes[0].Addr
	node := secrets["node (default user)"]
	if err := redistest.Eventually(10*time.Second, func() error {
		r, err := redistest.Do(p.master, node, "SET", "k", "v")
		if err != nil || r != "OK" {
			return fmt.Errorf("SET through the proxy: %q %v", r, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Events arrive through the ACL user's pattern subscription.
	if _, err := topo.Failover(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	newMaster, err := topo.WaitNewMaster(master, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := redistest.Eventually(10*time.Second, func() error {
		got, err := servedByAuth(p.master, node)
		if err != nil || got != newMaster {
			return fmt.Errorf("served by %s (%v), want %s", got, err, newMaster)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.logs.String(), `"trigger":"+failover-state-`) && !strings.Contains(p.logs.String(), `"trigger":"+switch-master`) &&
		!strings.Contains(p.logs.String(), `"trigger":"probe of`) {
		t.Errorf("no switch logged")
	}
	var everything bytes.Buffer
	for _, path := range []string{"/stats", "/stats.json", "/stats.csv", "/metrics"} {
		code, body := statsRequest(t, "GET", p.stats, path, "admin", secrets["stats"])
		if code != 200 {
			t.Errorf("%s: %d", path, code)
		}
		everything.WriteString(body)
	}
	if _, page := statsRequest(t, "GET", p.stats, "/stats.json", "admin", secrets["stats"]); !regexp.MustCompile(`"events_received": [1-9]`).MatchString(page) {
		t.Errorf("no Sentinel events counted through the ACL user")
	}
	// A wrong stats password and a rejected reload produce error text too.
	statsRequest(t, "GET", p.stats, "/stats", "admin", "not-"+secrets["stats"])
	if err := os.WriteFile(filepath.Join(dir, "probe.pw"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, body := statsRequest(t, "POST", p.stats, "/-/reload", "admin", secrets["stats"])
	everything.WriteString(body)
	if !strings.Contains(body, "redis.password_file") {
		t.Errorf("rejected reload must name the key: %s", body)
	}
	if err := os.WriteFile(filepath.Join(dir, "probe.pw"), []byte(secrets["probe user"]), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := topo.AgreedMaster(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	var check bytes.Buffer
	if err := redistest.Eventually(30*time.Second, func() error {
		check.Reset()
		return server.Check(context.Background(), cfg, &check)
	}); err != nil {
		t.Errorf("check with ACL users: %v\n%s", err, check.String())
	}
	everything.WriteString(check.String())
	everything.WriteString(p.logs.String())

	for what, secret := range secrets {
		if strings.Contains(everything.String(), secret) {
			i := strings.Index(everything.String(), secret)
			t.Errorf("the %s password appears in the output: ...%s...", what, everything.String()[max(0, i-200):i])
		}
	}
}

// TestACLUserMissingAPermission: a probe user without +info and a Sentinel user without
// sentinel|replicas get an error that names the missing command, in `check` and in the logs.
func TestACLUserMissingAPermission(t *testing.T) {
	topo := redistest.New(t, redistest.Options{Replicas: 1, Sentinels: 1, Password: "node-pw",
		NodeConf:     []string{"user noinfo on >noinfo-pw -@all +ping"},
		SentinelConf: []string{"user noreplicas on >noreplicas-pw -@all +ping +info +sentinel|get-master-addr-by-name +sentinel|master +psubscribe &*"}})
	cfg := testConfig(t, topo, topo.Name)
	cfg.Redis.Username, cfg.Redis.Password = "noinfo", "noinfo-pw"
	var out bytes.Buffer
	err := server.Check(context.Background(), cfg, &out)
	if err == nil || exitCode(err) != 1 {
		t.Fatalf("check must fail: %v\n%s", err, out.String())
	}
	for _, want := range []string{"L7STS", "NOPERM", "'info'"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, out.String())
		}
	}
	cfg.Redis.Username, cfg.Redis.Password = "", "node-pw"
	cfg.Sentinel.Username, cfg.Sentinel.Password = "noreplicas", "noreplicas-pw"
	err = server.Check(context.Background(), cfg, &out)
	if err == nil || exitCode(err) != 1 {
		t.Fatalf("check must fail: %v\n%s", err, out.String())
	}
	for _, want := range []string{"refuses the proxy's credentials or ACL user", "'sentinel|replicas'"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "noinfo-pw") || strings.Contains(out.String(), "noreplicas-pw") {
		t.Errorf("check output shows a password:\n%s", out.String())
	}
}
