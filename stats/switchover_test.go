package stats

import (
	"bufio"
	"context"
	"encoding/json"
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
	next  chan struct{} // nil: every line at once
	err   error         // returned before any line when lines is empty
}

func (f *fakeSwitchover) Switchover(ctx context.Context, req SwitchoverRequest, progress func(string)) error {
	f.got <- req
	for _, l := range f.lines {
		progress(l)
		if f.next == nil {
			continue
		}
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

// withSwitchover gives a fixture's server the switchover runner f.
func withSwitchover(f Switchover) func(*Server) { return func(s *Server) { s.Switchover = f } }

// nodeRowOf is the page's table row of the node addr.
func nodeRowOf(t *testing.T, page, addr string) string {
	t.Helper()
	start := strings.Index(page, `<tr id="node-`+addr+`"`)
	if start < 0 {
		t.Fatalf("no row for %s on the page", addr)
	}
	end := strings.Index(page[start:], "</tr>")
	return page[start : start+end]
}

// TestSwitchoverButton: with admin actions on and a switchover runner, the routed master's row, and
// only it, has the button; without either, no row has it.
func TestSwitchoverButton(t *testing.T) {
	const button = `value="SWITCHOVER"`
	f := newFixture(t, true, withSwitchover(&fakeSwitchover{got: make(chan SwitchoverRequest, 1)}))
	_, page := get(t, f.srv.URL+"/stats", "haproxy", "password")
	if row := nodeRowOf(t, page, masterAddr); !strings.Contains(row, button) || !strings.Contains(row, `action="/admin"`) {
		t.Errorf("master row without the switchover button:\n%s", row)
	}
	for _, addr := range []string{replicaAddr, downAddr} {
		if row := nodeRowOf(t, page, addr); strings.Contains(row, button) {
			t.Errorf("replica %s has a switchover button:\n%s", addr, row)
		}
	}
	for name, f := range map[string]*fixture{
		"admin off":         newFixture(t, false, withSwitchover(&fakeSwitchover{})),
		"no runner (tests)": newFixture(t, true),
	} {
		if _, page := get(t, f.srv.URL+"/stats", "haproxy", "password"); strings.Contains(page, button) {
			t.Errorf("%s: the page has a switchover button", name)
		}
	}
}

// TestSwitchoverConfirmationPage: the button's POST answers with a page that offers the healthy
// replicas (not the master, not the one that is down) after "Sentinel's choice", the CLI's timeout and a
// form to /-/switchover carrying the CSRF token; nothing starts yet. Replicas and forged tokens are refused.
func TestSwitchoverConfirmationPage(t *testing.T) {
	fake := &fakeSwitchover{got: make(chan SwitchoverRequest, 1)}
	f := newFixture(t, true, withSwitchover(fake))
	token := csrfOf(t, f.srv.URL)
	resp, body := post(t, f.srv.URL, url.Values{"node": {masterAddr}, "action": {"SWITCHOVER"}, "csrf": {token}}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("confirmation page: %s\n%s", resp.Status, body)
	}
	for _, want := range []string{
		`<form method="post" action="/-/switchover">`,
		`name="csrf" value="` + token + `"`,
		`name="group" value="mymaster"`,
		`<option value="" selected>Sentinel's choice / highest offset</option>`,
		`<option value="` + replicaAddr + `">`,
		`name="timeout" id="timeout" value="5s"`,
		`id="confirm"`,
		`href="/stats"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("confirmation page without %s:\n%s", want, body)
		}
	}
	for _, not := range []string{`<option value="` + masterAddr + `"`, `<option value="` + downAddr + `"`, `name="confirm" value="yes"`} {
		if strings.Contains(body, not) {
			t.Errorf("confirmation page offers %s:\n%s", not, body)
		}
	}
	if len(fake.got) != 0 {
		t.Fatalf("the confirmation page started a switchover: %+v", <-fake.got)
	}
	if resp, body := post(t, f.srv.URL, url.Values{"node": {replicaAddr}, "action": {"SWITCHOVER"}, "csrf": {token}}, nil); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(body, "not the routed master") {
		t.Errorf("switchover of a replica: %s %q", resp.Status, body)
	}
	if resp, _ := post(t, f.srv.URL, url.Values{"node": {masterAddr}, "action": {"SWITCHOVER"}, "csrf": {strings.Repeat("0", 64)}}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("wrong CSRF token: %s", resp.Status)
	}
}

// TestSwitchoverFromPage: the confirmation page's form (csrf, group, to, timeout) reaches the runner as
// asked, by the user, and is answered with an HTML page: the steps escaped in order, the outcome, a link
// back; the switchover is listed among the admin actions. A wrong token starts nothing; one running
// already is a 409 page that says so.
func TestSwitchoverFromPage(t *testing.T) {
	fake := &fakeSwitchover{got: make(chan SwitchoverRequest, 1),
		lines: []string{"choose 0.1 ms target <b>", "switchover completed: mymaster master a -> b"}}
	f := newFixture(t, true, withSwitchover(fake))
	token := csrfOf(t, f.srv.URL)
	form := url.Values{"csrf": {token}, "group": {"mymaster"}, "to": {replicaAddr}, "timeout": {"7s"}}
	resp, body := do(t, switchoverRequest(t, f.srv.URL, form, true))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("%s %s\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	if req := <-fake.got; req.Group != "mymaster" || req.To != replicaAddr || req.Timeout != 7*time.Second || req.User != "haproxy" {
		t.Errorf("request %+v", req)
	}
	steps := "choose 0.1 ms target &lt;b&gt;\nswitchover completed: mymaster master a -&gt; b\n"
	for _, want := range []string{`<pre id="steps">` + steps + `</pre>`, `<p class="ok" id="result">Switchover completed`, `href="/stats" id="back"`} {
		if !strings.Contains(body, want) {
			t.Errorf("result page without %q:\n%s", want, body)
		}
	}
	if a := f.s.actions(); len(a) != 1 || a[0].Action != "SWITCHOVER" || a[0].User != "haproxy" || a[0].Node != masterAddr ||
		a[0].Group != "mymaster" || a[0].Error != "" {
		t.Errorf("admin actions: %+v", a)
	}

	form.Set("csrf", strings.Repeat("0", 64))
	if resp, _ := do(t, switchoverRequest(t, f.srv.URL, form, true)); resp.StatusCode != http.StatusForbidden || len(fake.got) != 0 {
		t.Errorf("wrong CSRF token: %s, started %d", resp.Status, len(fake.got))
	}

	aborted := &fakeSwitchover{got: make(chan SwitchoverRequest, 1),
		lines: []string{"switchover aborted in step catch-up after 7000.0 ms: timeout"}, err: errors.New("timeout")}
	f = newFixture(t, true, withSwitchover(aborted))
	resp, body = do(t, switchoverRequest(t, f.srv.URL, url.Values{"csrf": {csrfOf(t, f.srv.URL)}}, true))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<p class="failed" id="result">Switchover aborted`) {
		t.Errorf("aborted: %s\n%s", resp.Status, body)
	}
	if a := f.s.actions(); len(a) != 1 || a[0].Error != "timeout" || a[0].Group != "mymaster" {
		t.Errorf("admin actions after an abort: %+v", a)
	}

	f = newFixture(t, true, withSwitchover(&fakeSwitchover{got: make(chan SwitchoverRequest, 1), err: ErrSwitchoverRunning}))
	resp, body = do(t, switchoverRequest(t, f.srv.URL, url.Values{"csrf": {csrfOf(t, f.srv.URL)}}, true))
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "a switchover is already running") ||
		!strings.Contains(body, `href="/stats" id="back"`) || strings.Contains(body, "<pre") {
		t.Errorf("one running already: %s\n%s", resp.Status, body)
	}
	resp, body = do(t, switchoverRequest(t, f.srv.URL, url.Values{"csrf": {csrfOf(t, f.srv.URL)}, "timeout": {"soon"}}, true))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Not started: timeout &#34;soon&#34;") {
		t.Errorf("bad timeout: %s\n%s", resp.Status, body)
	}
}

// TestHistoryShowsSwitchovers: a switch the router marked as a planned switchover is labelled so in
// the history table and drawn as a switchover band; a failover is not.
func TestHistoryShowsSwitchovers(t *testing.T) {
	now := time.Now()
	f := newFixture(t, true, func(s *Server) {
		s.History = func(string) []routing.Switch {
			return []routing.Switch{
				{At: now, Old: masterAddr, New: replicaAddr, Trigger: "+switch-master from 127.0.0.1:26379", DetectToSwitch: -1, Switchover: true},
				{At: now.Add(-time.Second), Old: replicaAddr, New: masterAddr, Trigger: "probe of " + masterAddr, DetectToSwitch: -1},
			}
		}
	})
	_, page := get(t, f.srv.URL+"/stats", "haproxy", "password")
	if n := strings.Count(page, `<tr class="switchover-row">`); n != 1 || !strings.Contains(page, `<b class="switchover">planned switchover</b>`) {
		t.Errorf("want one history row marked as a switchover, found %d", n)
	}
	_, js := get(t, f.srv.URL+"/stats.json", "haproxy", "password")
	var p Page
	_ = json.Unmarshal([]byte(js), &p)
	var kinds []string
	for _, b := range p.Groups[0].HistorySeries.Bands {
		kinds = append(kinds, b.Kind)
	}
	if len(p.Groups[0].History) != 2 || !p.Groups[0].History[0].Switchover || strings.Join(kinds, " ") != "failover switchover" {
		t.Errorf("history %+v, bands %v", p.Groups[0].History, kinds)
	}
}
