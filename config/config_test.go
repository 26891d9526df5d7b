package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

const minimal = `
[sentinel]
addrs = ["127.0.0.1:26379"]
[[masters]]
name = "mymaster"
master_listen = "127.0.0.1:5000"
`

func TestParseMinimalAppliesDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Check.Interval.Duration != time.Second || cfg.Check.Rise != 2 || cfg.Check.Fall != 3 {
		t.Errorf("check defaults not applied: %+v", cfg.Check)
	}
	if cfg.Proxy.MaxConns != 100000 || cfg.Proxy.ConnectTimeout.Duration != 4*time.Second || cfg.Proxy.IdleTimeout.Duration != 0 {
		t.Errorf("proxy defaults not applied: %+v", cfg.Proxy)
	}
	if cfg.Log.Level != "info" || cfg.Log.Format != "json" {
		t.Errorf("log defaults not applied: %+v", cfg.Log)
	}
	if !cfg.Fence.Enabled || cfg.Fence.ReplicaTimeout.Duration != 3*time.Second {
		t.Errorf("the fence is on by default: %+v", cfg.Fence)
	}
	if len(cfg.Masters) != 1 || cfg.Masters[0].ReplicaListen != "" {
		t.Errorf("masters: %+v", cfg.Masters)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "config.example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sentinel.Addrs) != 3 || cfg.Masters[0].MasterListen != "0.0.0.0:5000" || cfg.Masters[0].ReplicaListen != "0.0.0.0:5001" {
		t.Errorf("example does not express the seed's setup: %+v", cfg)
	}
	if cfg.Stats.Listen != "0.0.0.0:9000" || !cfg.Stats.Admin {
		t.Errorf("example stats: %+v", cfg.Stats)
	}
}

func TestEveryProblemReportedAtOnceWithKeyPath(t *testing.T) {
	doc := `
bogus_top = 1
[log]
level = "loud"
format = "xml"
[sentinel]
addrs = ["10.0.0.1", "10.0.0.2:26379", "10.0.0.2:26379", ":26379"]
username = "u"
[check]
interval = "soon"
timeout = "-1s"
rise = 0
fall = "three"
colour = "blue"
[fence]
replica_timeout = "1s"
[proxy]
max_conns = 0
idle_timeout = "-5s"
event_loop_scheduling = "realtime"
[[masters]]
name = "a"
master_listen = "0.0.0.0:5000"
replica_listen = "0.0.0.0:5000"
mode = "http"
multiplex = true
[[masters]]
name = "a"
master_listen = "0.0.0.0:99999"
[stats]
listen = "0.0.0.0:5000"
`
	_, err := Parse([]byte(doc))
	if err == nil {
		t.Fatal("want an error")
	}
	msg := err.Error()
	for _, want := range []string{
		"bogus_top: unknown key",
		"log.level:", "log.format:",
		"sentinel.addrs[0]:", `sentinel.addrs[2]: "10.0.0.2:26379" is listed twice`, "sentinel.addrs[3]:",
		"sentinel.username: set without sentinel.password",
		"check.interval:", "check.fall:", "check.colour: unknown key",
		"check.timeout: must be positive",
		"fence.replica_timeout: must be at least 2s",
		"proxy.max_conns:", "proxy.idle_timeout:",
		`proxy.event_loop_scheduling: "realtime" is not one of normal, batch`,
		`masters[0].replica_listen: "0.0.0.0:5000" is already used by masters[0].master_listen`,
		`masters[1].name: "a" is already used by masters[0]`,
		`masters[0].mode: "http" is not one of tcp, resp`,
		`masters[0].multiplex: needs mode = "resp"`,
		"masters[1].master_listen:",
		"stats.listen:", "stats.user, stats.password",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q\nfull error:\n%s", want, msg)
		}
	}
	// check.rise = 0 is decoded but fails validation; check.fall fails decoding. Both must show.
	if !strings.Contains(msg, "check.rise: must be at least 1") {
		t.Errorf("error lacks check.rise\n%s", msg)
	}
}

func TestSyntaxErrorIsReported(t *testing.T) {
	_, err := Parse([]byte("[sentinel\naddrs = 1"))
	if err == nil || !strings.Contains(err.Error(), "TOML syntax") {
		t.Fatalf("want a syntax error, got %v", err)
	}
}

func TestMissingRequiredSections(t *testing.T) {
	_, err := Parse([]byte(""))
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"sentinel.addrs: at least one", "masters: at least one"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("want not-exist error, got %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		next := u.Unwrap()
		if next == nil {
			return err
		}
		err = next
	}
}

// FuzzParse checks that no document, however malformed, panics the loader, and that whatever it
// accepts passes validation again.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("[[masters]]\nname = 1\n[check]\ninterval = \"1s\"\n"))
	f.Add([]byte("masters = 3\nsentinel = \"x\"\n"))
	if data, err := os.ReadFile(filepath.Join("..", "config.example.toml")); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config fails validation: %v", err)
		}
	})
}

func TestPasswordsFromFileEnvAndHash(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "redis.pw")
	if err := os.WriteFile(pwFile, []byte("from-file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_SENTINEL_PW", "from-env-secret")
	hash, _ := bcrypt.GenerateFromPassword([]byte("stats-secret"), bcrypt.MinCost)
	doc := fmt.Sprintf(`
[sentinel]
addrs = ["127.0.0.1:26379"]
username = "sproxy"
password_env = "TEST_SENTINEL_PW"
[redis]
password_file = %q
[[masters]]
name = "m"
master_listen = "127.0.0.1:5000"
[stats]
listen = "127.0.0.1:9000"
user = "ops"
password_hash = %q
`, pwFile, hash)
	cfg, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Redis.Password != "from-file-secret" || cfg.Sentinel.Password != "from-env-secret" || cfg.Stats.PasswordHash != string(hash) {
		t.Errorf("passwords not resolved: redis %q sentinel %q", cfg.Redis.Password, cfg.Sentinel.Password)
	}

	bad := fmt.Sprintf(`
[sentinel]
addrs = ["127.0.0.1:26379"]
password = "inline-secret"
password_env = "TEST_SENTINEL_PW"
[redis]
password_file = %q
[[masters]]
name = "m"
master_listen = "127.0.0.1:5000"
[stats]
listen = "127.0.0.1:9000"
user = "ops"
password_env = "TEST_UNSET_VARIABLE_XYZ"
`, filepath.Join(dir, "missing.pw"))
	_, err = Parse([]byte(bad))
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"sentinel: set only one of password, password_file and password_env",
		"redis.password_file:", "stats.password_env: environment variable TEST_UNSET_VARIABLE_XYZ is not set"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "inline-secret") || strings.Contains(err.Error(), "from-env-secret") {
		t.Errorf("an error shows a secret: %v", err)
	}
	_, err = Parse([]byte(strings.Replace(doc, string(hash), "not-a-hash", 1)))
	if err == nil || !strings.Contains(err.Error(), "stats.password_hash: not a bcrypt hash") {
		t.Errorf("bad hash: %v", err)
	}
}

// TestMultiplexNeedsLoopsAndNoTLS: shared connections run on the event loops, which carry no TLS.
func TestMultiplexNeedsLoopsAndNoTLS(t *testing.T) {
	base := `
[sentinel]
addrs = ["127.0.0.1:26379"]
%s
[[masters]]
name = "m"
master_listen = "127.0.0.1:5000"
mode = "resp"
multiplex = true
`
	for _, tc := range []struct{ extra, want string }{
		{"", ""},
		{"[proxy]\nforwarder = \"portable\"", `masters[0].multiplex: needs the event loops`},
		{"[redis.tls]\nenabled = true", `masters[0].multiplex: not available with TLS`},
	} {
		_, err := Parse([]byte(strings.Replace(base, "%s", tc.extra, 1)))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.extra, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: got %v, want %q", tc.extra, err, tc.want)
		}
	}
}

// TestWaitReplicasNeedsRESPMode: only a session that reads the replies can hold a write's; every problem
// of the two keys is named with its key, the default timeout applies when it is left out.
func TestWaitReplicasNeedsRESPMode(t *testing.T) {
	base := `
[sentinel]
addrs = ["127.0.0.1:26379"]
[[masters]]
name = "m"
master_listen = "127.0.0.1:5000"
%s
`
	for _, tc := range []struct{ keys, want string }{
		{"mode = \"resp\"\nwait_replicas = 2", ""},
		{"mode = \"resp\"\nwait_replicas = 1\nwait_timeout = \"50ms\"", ""},
		{"wait_replicas = 1", ""}, // resp is the default mode
		{"mode = \"tcp\"\nwait_replicas = 1", `masters[0].wait_replicas: needs mode = "resp"`},
		{"mode = \"resp\"\nwait_replicas = -1", `masters[0].wait_replicas: must be 0 (off) or more`},
		{"mode = \"resp\"\nwait_replicas = 1\nwait_timeout = \"2m\"", `masters[0].wait_timeout: must be between 1ms and 1m`},
		{"mode = \"resp\"\nwait_replicas = 1\nwait_timeout = \"100us\"", `masters[0].wait_timeout: must be between 1ms and 1m`},
	} {
		cfg, err := Parse([]byte(strings.Replace(base, "%s", tc.keys, 1)))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.keys, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: got %v, want %q", tc.keys, err, tc.want)
		case tc.want == "" && tc.keys == "mode = \"resp\"\nwait_replicas = 2" && cfg.Masters[0].WaitFor() != 200*time.Millisecond:
			t.Errorf("default wait_timeout %s", cfg.Masters[0].WaitFor())
		}
	}
}

// TestDefaultModeIsResp: a group that names no mode is served in resp mode (its failovers go unnoticed
// by clients, docs/failover.md); tcp is there for who asks for it, and multiplex needs no mode line.
func TestDefaultModeIsResp(t *testing.T) {
	doc := `
[sentinel]
addrs = ["127.0.0.1:26379"]
[[masters]]
name = "a"
master_listen = "127.0.0.1:5000"
multiplex = true
[[masters]]
name = "b"
master_listen = "127.0.0.1:5002"
mode = "tcp"
`
	cfg, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := cfg.Masters[0].SessionMode(), cfg.Masters[1].SessionMode(); a != "resp" || b != "tcp" {
		t.Errorf("modes %q and %q, want resp (the default) and tcp", a, b)
	}
	_, err = Parse([]byte(strings.Replace(doc, "multiplex = true", "multiplex = true\nmode = \"tcp\"", 1)))
	if err == nil || !strings.Contains(err.Error(), `masters[0].multiplex: needs mode = "resp"`) {
		t.Errorf("multiplex in tcp mode: %v", err)
	}
}
