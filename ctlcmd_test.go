package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestSwitchoverCommand runs the command against a stats port that answers as the proxy does: its exit
// status says whether the proxy's last line was a completed switchover.
func TestSwitchoverCommand(t *testing.T) {
	var answer func(w http.ResponseWriter, r *http.Request)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { answer(w, r) }))
	defer srv.Close()
	run := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		argv := append([]string{"sentinel-proxy", "switchover", "-c", "config.example.toml", "--url", srv.URL,
			"--user", "ops", "--password", "pw"}, args...)
		err := newApp(&stdout, &stderr).Run(argv)
		return stdout.String(), err
	}
	stream := func(lines ...string) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			for _, l := range lines {
				fmt.Fprintln(w, l)
				w.(http.Flusher).Flush()
			}
		}
	}

	answer = func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		if r.Method != "POST" || r.URL.Path != "/-/switchover" || user != "ops" || pass != "pw" ||
			r.FormValue("group") != "mymaster" || r.FormValue("to") != "10.0.0.12:6379" || r.FormValue("timeout") != "7s" {
			http.Error(w, fmt.Sprintf("unexpected %s %s %s:%s %v", r.Method, r.URL.Path, user, pass, r.Form), 400)
			return
		}
		stream("choose 0.1 ms target", "switchover completed: mymaster master a -> b")(w, r)
	}
	out, err := run("--group", "mymaster", "--to", "10.0.0.12:6379", "--timeout", "7s")
	if err != nil || !strings.Contains(out, "choose 0.1 ms target\nswitchover completed") {
		t.Fatalf("completed: %q %v", out, err)
	}

	answer = stream("choose 0.1 ms target", "switchover aborted in step failover after 3.0 ms: NOGOODSLAVE")
	if out, err := run(); err == nil || exitCode(err) != 1 || !strings.Contains(out, "NOGOODSLAVE") {
		t.Errorf("aborted: %q %v", out, err)
	}
	answer = stream("choose 0.1 ms target", "hold 0.2 ms") // the answer ends before the outcome
	if out, err := run(); err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "outcome is unknown") {
		t.Errorf("cut short: %q %v", out, err)
	}
	answer = func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "a switchover is already running", http.StatusConflict)
	}
	if _, err := run(); err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "409 Conflict: a switchover is already running") {
		t.Errorf("refused: %v", err)
	}
	if _, err := run("-c", "no-such-file.toml"); err == nil || exitCode(err) != 2 {
		t.Errorf("a config that does not load: want exit 2, got %v", err)
	}
}
