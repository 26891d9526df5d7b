package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

// TestBinarySignalsAndControlCommands runs the built binary as an operator would: `health` for the
// container HEALTHCHECK, SIGHUP and `reload` to re-read the file, SIGTERM to drain and stop with 0.
// buildBinary builds sentinel-proxy into dir, stamped with the VCS revision where there is one.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "sentinel-proxy")
	build := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// runningBinary is a started proxy process, killed at the end of the test, its log shown on failure.
type runningBinary struct {
	proc   *exec.Cmd
	logs   *redistest.SyncBuffer
	exited chan error
}

func startBinary(t *testing.T, proc *exec.Cmd) *runningBinary {
	t.Helper()
	b := &runningBinary{proc: proc, logs: &redistest.SyncBuffer{}, exited: make(chan error, 1)}
	proc.Stderr = b.logs
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.exited <- proc.Wait() }()
	t.Cleanup(func() {
		_ = proc.Process.Kill()
		if t.Failed() {
			t.Logf("proxy log:\n%s", b.logs.String())
		}
	})
	return b
}

func TestBinarySignalsAndControlCommands(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	var version bytes.Buffer
	cmd := exec.Command(bin, "version")
	cmd.Stdout = &version
	if err := cmd.Run(); err != nil || !strings.HasPrefix(version.String(), "sentinel-proxy dev") || !strings.Contains(version.String(), " go1.") {
		t.Errorf("version: %q %v", version.String(), err)
	}
	if _, err := os.Stat(filepath.Join(repoRoot(t), ".git")); err == nil {
		if _, err := exec.LookPath("git"); err == nil && !strings.Contains(version.String(), "(commit ") {
			t.Errorf("built in a git checkout, version must name the commit: %q", version.String())
		}
	}

	topo := newTopology(t, 1)
	path := filepath.Join(dir, "config.toml")
	doc := testConfigDoc(t, topo, topo.Name)
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	b := startBinary(t, exec.Command(bin, "run", "-c", path))
	proc, logs, exited := b.proc, b.logs, b.exited
	base := "http://" + cfg.Stats.Listen
	// The control commands run as an operator runs them: the same binary, its output and errors in out.
	ctl := func(args ...string) (string, error) {
		var out bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	if err := redistest.Eventually(10*time.Second, func() error {
		_, err := ctl("health", "-c", path, "--ready")
		return err
	}); err != nil {
		t.Fatalf("health --ready never passed: %v", err)
	}
	if out, err := ctl("health", "--url", base); err != nil || !strings.Contains(out, "200 OK") {
		t.Errorf("health --url: %q %v", out, err)
	}
	if _, err := ctl("health", "--url", "http://"+freeAddr(t)); err == nil || exitCode(err) != 1 {
		t.Errorf("health against nothing must exit 1, got %v", err)
	}
	conn, err := redistest.Dial(cfg.Masters[0].MasterListen, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// SIGHUP re-reads the file.
	if err := os.WriteFile(path, []byte(strings.Replace(doc, `interval = "200ms"`, `interval = "150ms"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := proc.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := redistest.Eventually(5*time.Second, func() error {
		if !strings.Contains(logs.String(), `"event":"config_reloaded","trigger":"SIGHUP"`) {
			return fmt.Errorf("no config_reloaded")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// reload through the stats port: a broken file exits 2 with every problem; a good one 0.
	if err := os.WriteFile(path, []byte(doc+"\n[bogus]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := ctl("reload", "-c", path); err == nil || exitCode(err) != 2 || !strings.Contains(err.Error()+out, "bogus") {
		t.Errorf("reload of a broken file: %q %v", out, err)
	}
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := ctl("reload", "-c", path); err != nil || out != "reloaded\n" {
		t.Errorf("reload: %q %v", out, err)
	}
	if r, err := conn.Do("PING"); err != nil || r != "PONG" {
		t.Errorf("a session across reloads: %q %v", r, err)
	}

	// SIGTERM drains: the open session still works, then the process exits 0 once it is closed.
	if err := proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := redistest.Eventually(5*time.Second, func() error {
		if !strings.Contains(logs.String(), `"event":"shutdown_started"`) {
			return fmt.Errorf("no shutdown_started")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if r, err := conn.Do("PING"); err != nil || r != "PONG" {
		t.Errorf("a session during the drain: %q %v", r, err)
	}
	conn.Close()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no exit after SIGTERM")
	}
}
