package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

// The command line in-process: exit codes, config errors before any port opens, the version. The proxy
// itself is tested end to end in test/e2e.

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

func TestConfigErrorsExitBeforeListening(t *testing.T) {
	dir := t.TempDir()
	listen := freeAddr(t)
	path := filepath.Join(dir, "bad.toml")
	doc := fmt.Sprintf(`
[sentinel]
addrs = ["nohostport"]
[check]
rise = 0
intervall = "1s"
[[masters]]
name = "m"
master_listen = %q
`, listen)
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := newApp(&stdout, &stderr).Run([]string{"sentinel-proxy", "run", "-c", path})
	if err == nil || exitCode(err) != 2 {
		t.Fatalf("want exit code 2, got %v", err)
	}
	for _, want := range []string{"sentinel.addrs[0]", "check.rise", "check.intervall: unknown key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	ln, lerr := net.Listen("tcp", listen)
	if lerr != nil {
		t.Fatalf("the port was opened despite the bad config: %v", lerr)
	}
	ln.Close()

	if err := newApp(&stdout, &stderr).Run([]string{"sentinel-proxy", "check", "--config-only", "-c", path}); err == nil || exitCode(err) != 2 {
		t.Errorf("check --config-only on a bad file: want exit 2, got %v", err)
	}
	stdout.Reset()
	if err := newApp(&stdout, &stderr).Run([]string{"sentinel-proxy", "check", "--config-only", "-c", "config.example.toml"}); err != nil ||
		!strings.Contains(stdout.String(), "configuration OK") {
		t.Errorf("check --config-only on the example: %q %v", stdout.String(), err)
	}
	t.Setenv("SENTINEL_PROXY_CONFIG", path)
	if err := newApp(&stdout, &stderr).Run([]string{"sentinel-proxy", "check"}); err == nil || exitCode(err) != 2 {
		t.Fatalf("SENTINEL_PROXY_CONFIG not used: %v", err)
	}
}

func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	if err := newApp(&out, &out).Run([]string{"sentinel-proxy", "version"}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "sentinel-proxy dev") || !strings.Contains(out.String(), "go1.") {
		t.Fatalf("version printed %q", out.String())
	}
}
