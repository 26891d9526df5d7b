package stats

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/routing"
)

// fakeSwitchover answers as the proxy's own does: the lines it is given, one at a time, each only once
// the test asks for the next, so the test sees that they are streamed.
type fakeSwitchover struct {
	got   chan SwitchoverRequest
	lines []string
	next  chan struct{}
	err   error // returned before any line when lines is empty
}

func (f *fakeSwitchover) Switchover(ctx context.Context, req SwitchoverRequest, progress func(string)) error {
	f.got <- req
	for _, l := range f.lines {
		progress(l)
		select {
		case <-f.next:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return f.err
}

func switchoverServer(t *testing.T, f *fakeSwitchover) string {
	t.Helper()
	s := &Server{User: "haproxy", Password: "password", Snapshot: func() *routing.Snapshot { return &routing.Snapshot{} },
		Switchover: f, Log: zerolog.Nop(), Started: time.Now()}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func switchoverRequest(t *testing.T, base string, form url.Values, auth bool) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/-/switchover", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth {
		req.SetBasicAuth("haproxy", "password")
	}
	return req
}

func TestSwitchoverStreamsEachStep(t *testing.T) {
	f := &fakeSwitchover{got: make(chan SwitchoverRequest, 1), next: make(chan struct{}),
		lines: []string{"choose 1.0 ms target x", "switchover completed: g master a -> x"}}
	base := switchoverServer(t, f)
	resp, err := http.DefaultClient.Do(switchoverRequest(t, base, url.Values{"group": {"g"}, "to": {"10.0.0.2:6379"},
		"timeout": {"7s"}}, true))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	req := <-f.got
	if req.Group != "g" || req.To != "10.0.0.2:6379" || req.Timeout != 7*time.Second || req.User != "haproxy" || req.Remote == "" {
		t.Errorf("request %+v", req)
	}
	rd := bufio.NewReader(resp.Body)
	for i, want := range f.lines {
		// The second line is written only after the first was read: the first must arrive on its own.
		line, err := rd.ReadString('\n')
		if err != nil || strings.TrimSpace(line) != want {
			t.Fatalf("line %d: %q %v, want %q", i, line, err, want)
		}
		f.next <- struct{}{}
	}
}

func TestSwitchoverRefusals(t *testing.T) {
	busy := &fakeSwitchover{got: make(chan SwitchoverRequest, 10), err: ErrSwitchoverRunning}
	base := switchoverServer(t, busy)
	cases := []struct {
		name   string
		req    *http.Request
		status int
		body   string
	}{
		{"no credentials", switchoverRequest(t, base, url.Values{}, false), http.StatusUnauthorized, "authentication required"},
		{"one runs already", switchoverRequest(t, base, url.Values{}, true), http.StatusConflict, "already running"},
		{"bad timeout", switchoverRequest(t, base, url.Values{"timeout": {"soon"}}, true), http.StatusBadRequest, "timeout"},
		{"timeout too long", switchoverRequest(t, base, url.Values{"timeout": {"1h"}}, true), http.StatusBadRequest, "at most 2m0s"},
		{"cross-site", func() *http.Request {
			r := switchoverRequest(t, base, url.Values{}, true)
			r.Header.Set("Sec-Fetch-Site", "cross-site")
			return r
		}(), http.StatusForbidden, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := do(t, c.req)
			if resp.StatusCode != c.status || !strings.Contains(body, c.body) {
				t.Errorf("got %s %q, want %d with %q", resp.Status, body, c.status, c.body)
			}
		})
	}
	unknown := &fakeSwitchover{got: make(chan SwitchoverRequest, 1), err: errors.New(`unknown group "nope"`)}
	resp, body := do(t, switchoverRequest(t, switchoverServer(t, unknown), url.Values{"group": {"nope"}}, true))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "unknown group") {
		t.Errorf("unknown group: %s %q", resp.Status, body)
	}
}
