package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"github.com/sentinel-proxy/sentinel-proxy/redistest"
	"github.com/sentinel-proxy/sentinel-proxy/server"
	"github.com/sentinel-proxy/sentinel-proxy/stats"
)

// chromiumPath finds Debian's headless-capable chromium. CI installs it (.ci/run), so there a missing
// browser fails the test; elsewhere it is skipped with a note.
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium on PATH; .ci/run installs Debian's chromium package")
	}
	t.Skip("no chromium on PATH (apt-get install chromium); the browser test needs it")
	return ""
}

// pageWidth is the window the stats page must fit without sideways scrolling.
const pageWidth = 1440

// chartSampling samples the charts four times a second, so that a short test draws lines: their 360
// samples cover 90 s, the whole test.
const chartSampling = 250 * time.Millisecond

// browser starts headless chromium that answers the stats page's basic-auth challenge with user and
// password, as an operator typing them into the browser's login prompt.
func browser(t *testing.T, user, password string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // CI runs as root, where chromium's sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.WindowSize(pageWidth, 1000), // the page must fit this width (docs/stats.md)
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })

	// With the Fetch domain on, every request pauses: continue it, and answer the 401 challenge.
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	challenged := chromedp.Events(ctx, fetch.AuthRequired)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		for ev, err := range challenged {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID,
				AuthChallengeResponse: &fetch.AuthChallengeResponse{
					Response: fetch.AuthChallengeResponseResponseProvideCredentials, Username: user, Password: password}})
		}
	}()
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: new(true)}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// screenshot saves the page as docs/img/<name>.png when SCREENSHOTS is set (make screenshots).
func screenshot(t *testing.T, ctx context.Context, name string) {
	shoot(t, ctx, name, chromedp.FullScreenshot(100))
}

// shoot saves what take photographs as docs/img/<name>.png when SCREENSHOTS is set.
func shoot(t *testing.T, ctx context.Context, name string, take chromedp.Action[[]byte]) {
	dir := os.Getenv("SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, take)
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Error(err)
	}
}

func text[S chromedp.Selectable](t *testing.T, ctx context.Context, sel S) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("read %v: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func statsJSON(t *testing.T, p *runningProxy) stats.Page {
	t.Helper()
	var page stats.Page
	if err := json.Unmarshal([]byte(statsGet(t, p, "/stats.json")), &page); err != nil {
		t.Fatal(err)
	}
	return page
}

// browserTopology is a master and two replicas behind a proxy with admin actions on and fast chart
// sampling, once the master is routed.
func browserTopology(t *testing.T) (*redistest.Topology, *runningProxy) {
	t.Helper()
	topo := newTopology(t, 2)
	cfg := testConfig(t, topo, topo.Name)
	cfg.Stats.Admin = true
	p := startProxyWith(t, cfg, server.Options{ChartSampling: chartSampling})
	waitRoutedTo(t, p.master, topo.Nodes[0].Addr, 10*time.Second)
	return topo, p
}

// TestStatsPageInBrowser logs in to the stats page with headless chromium, reads the master row, sees
// the charts drawn and the page fit a 1,440-pixel window, puts a replica in MAINT through the
// confirmation page and sees the new state on the page and in JSON; then fails the master over and
// finds the failover as a band on the charts, with the old and new master on hover.
func TestStatsPageInBrowser(t *testing.T) {
	topo, p := browserTopology(t)
	master, replica := topo.Nodes[0].Addr, topo.Nodes[1].Addr
	if err := redistest.Eventually(10*time.Second, func() error {
		if row := nodeRow(t, p, replica); row.Status != "UP" {
			return fmt.Errorf("%s is %s", replica, row.Status)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Some traffic, so the counters on the screenshots are not all zero.
	for i := 0; i < 20; i++ {
		_, _ = redistest.Do(p.master, testPassword, "SET", fmt.Sprint("k", i), "v")
		_, _ = redistest.Do(p.replica, testPassword, "GET", fmt.Sprint("k", i))
	}

	ctx := browser(t, "admin", "stats-pw")
	base := "http://" + p.stats
	statusCell := chromedp.CSS(`tr[id="node-` + replica + `"] td.status`)
	err := chromedp.Do(ctx, chromedp.Navigate(base+"/stats"), chromedp.WaitVisible(chromedp.ID("master-"+topo.Name)))
	if err != nil {
		t.Fatalf("log in: %v", err)
	}
	masterText := text(t, ctx, chromedp.ID("master-"+topo.Name))
	status := text(t, ctx, statusCell)
	if masterText != master || status != "UP" {
		t.Fatalf("page shows master %q and replica %s %q; want %s and UP", masterText, replica, status, master)
	}
	// The traffic above is in the charts once a sample after it was taken.
	waitForPage(t, ctx, base+"/stats", "a chart line per listener", `document.querySelectorAll('#chart-`+topo.Name+`-sessions path.line').length == 2`)
	checkFits(t, ctx, "the page")
	screenshot(t, ctx, "stats-normal")

	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`button[data-node="`+replica+`"][value="MAINT"]`)),
		chromedp.WaitVisible(chromedp.ID("confirm")),
	)
	if err != nil {
		t.Fatalf("MAINT through the page: %v", err)
	}
	consequence := text(t, ctx, chromedp.ID("consequence"))
	warning, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById("warning")||{textContent:""}).textContent`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("notice"))); err != nil {
		t.Fatalf("confirm MAINT: %v", err)
	}
	notice := text(t, ctx, chromedp.ID("notice"))
	status = text(t, ctx, statusCell)
	if warning != "" || !strings.Contains(consequence, "established sessions are closed") {
		t.Errorf("confirmation for a replica: warning %q, consequence %q", warning, consequence)
	}
	if status != "MAINT" || !strings.Contains(notice, "MAINT on "+replica+" by admin: done") {
		t.Errorf("after confirming: status %q, notice %q", status, notice)
	}
	if row := nodeRow(t, p, replica); row.Status != "MAINT" || row.Admin != "MAINT" {
		t.Errorf("/stats.json after MAINT: %+v", row)
	}
	screenshot(t, ctx, "stats-maint")

	// The master's MAINT button warns about the master port before anything happens.
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/stats"),
		chromedp.Click(chromedp.CSS(`button[data-node="`+master+`"][value="MAINT"]`)),
		chromedp.WaitVisible(chromedp.ID("warning")),
	)
	if err != nil {
		t.Fatalf("MAINT on the master: %v", err)
	}
	warning = text(t, ctx, chromedp.ID("warning"))
	if !strings.Contains(warning, "is the MASTER of "+topo.Name) || !strings.Contains(warning, p.master) {
		t.Errorf("master MAINT warning: %q", warning)
	}
	if page := statsJSON(t, p); page.Groups[0].Master != master {
		t.Fatalf("an unconfirmed MAINT changed the master: %+v", page.Groups[0].Master)
	}

	adminAction(t, p, replica, "READY") // or Sentinel may promote a node the proxy will not route to
	newMaster := failover(t, ctx, topo, p, master)

	// The failover is a band on every chart, and hovering it names both masters.
	hover := "failover " + master + " → " + newMaster
	js := fmt.Sprintf(`Array.from(document.querySelectorAll('#charts-%s figure')).filter(f =>
		Array.from(f.querySelectorAll('rect.band-failover title')).some(e => e.textContent.includes(%q))).length`, topo.Name, hover)
	charts, err := chromedp.Run(ctx, chromedp.Evaluate[int](js))
	if err != nil || charts != 4 {
		titles, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('rect.band title')).map(e => e.textContent)`))
		t.Errorf("want the failover as a band on each of the 4 charts with %q on hover; found it on %d (%v); bands: %q", hover, charts, err, titles)
	}
	checkFits(t, ctx, "the page after a failover")
	if hs := statsJSON(t, p).Groups[0].HistorySeries; hs == nil || len(hs.Bands) == 0 || len(hs.Listeners) != 2 || len(hs.Listeners[0].At) == 0 {
		t.Errorf("/stats.json history_series: %+v", hs)
	}
}

// waitForPage reloads url until the expression holds: a sample, or a switch, comes in its own time.
func waitForPage(t *testing.T, ctx context.Context, url, what, expr string) {
	t.Helper()
	err := redistest.Eventually(20*time.Second, func() error {
		err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("body")))
		ok := false
		if err == nil {
			ok, err = chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		}
		if err != nil || !ok {
			return fmt.Errorf("no %s on the page (%v)", what, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkFits fails the test when the page scrolls sideways in the pageWidth window, naming what sticks out.
func checkFits(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil {
		t.Fatal(err)
	}
	widest, _ := chromedp.Run(ctx, chromedp.Evaluate[float64](`Math.max(...Array.from(document.querySelectorAll('table')).map(e => e.getBoundingClientRect().right))`))
	t.Logf("%s: the widest table ends at %.0f pixels", what, widest)
	if width > pageWidth {
		wide, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('table, .charts')).
			filter(e => e.getBoundingClientRect().right > `+fmt.Sprint(pageWidth)+`).map(e => e.previousElementSibling ? e.previousElementSibling.textContent : e.id)`))
		t.Errorf("%s is %d pixels wide in a %d-pixel window; too wide after: %q", what, width, pageWidth, wide)
	}
}

// failover pauses the master and photographs the page while the proxy has no master, then once the new
// one is routed (the history row), and returns the new master.
func failover(t *testing.T, ctx context.Context, topo *redistest.Topology, p *runningProxy, master string) string {
	if err := topo.Node(master).Pause(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = topo.Node(master).Resume() }()
	if err := redistest.Eventually(20*time.Second, func() error {
		if g := statsJSON(t, p).Groups[0]; g.Master == "" || g.Failover != nil {
			return nil
		}
		return fmt.Errorf("still routed")
	}); err != nil {
		t.Fatal(err)
	}
	_ = chromedp.Do(ctx, chromedp.Navigate("http://"+p.stats+"/stats"), chromedp.WaitVisible(chromedp.CSS("body")))
	screenshot(t, ctx, "stats-failover")
	newMaster, err := topo.WaitNewMaster(master, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := redistest.Eventually(10*time.Second, func() error {
		if len(statsJSON(t, p).Groups[0].History) == 0 {
			return fmt.Errorf("no switch in the failover history yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_ = chromedp.Do(ctx, chromedp.Navigate("http://"+p.stats+"/stats"), chromedp.WaitVisible(chromedp.CSS("body")))
	screenshot(t, ctx, "stats-after-failover")
	shoot(t, ctx, "stats-charts", chromedp.Screenshot(chromedp.ID("charts-"+topo.Name)))
	return newMaster
}

// TestStatsPageInBrowserSwitchover clicks the master row's switchover button, picks a replica on the
// confirmation page and confirms; the answer lists the steps and reports completion, the chosen
// replica is the master, and the failover history shows the switch as a planned switchover. (Its
// name starts with TestStatsPageInBrowser so that make screenshots photographs it too.)
func TestStatsPageInBrowserSwitchover(t *testing.T) {
	topo, p := browserTopology(t)
	master, target := topo.Nodes[0].Addr, topo.Nodes[2].Addr
	if err := redistest.Eventually(20*time.Second, func() error {
		if row := nodeRow(t, p, target); row.Status != "UP" || row.LinkStatus != "up" {
			return fmt.Errorf("%s is %s, link %q", target, row.Status, row.LinkStatus)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	ctx := browser(t, "admin", "stats-pw")
	base := "http://" + p.stats
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/stats"),
		chromedp.Click(chromedp.CSS(`button[data-node="`+master+`"][value="SWITCHOVER"]`)),
		chromedp.WaitVisible(chromedp.ID("to")),
	)
	if err != nil {
		t.Fatalf("switchover button: %v", err)
	}
	options, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#to option')).map(o => o.value)`))
	if err != nil || len(options) != 3 || options[0] != "" || !slices.Contains(options, target) || slices.Contains(options, master) {
		t.Fatalf("targets offered: %q (%v); want Sentinel's choice and both replicas", options, err)
	}
	screenshot(t, ctx, "stats-switchover-confirm")
	// A long timeout: Sentinel may take a while on a loaded machine, and this test is about the page.
	err = chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("to"), target),
		chromedp.SetValue(chromedp.ID("timeout"), "40s"),
		chromedp.Click(chromedp.ID("confirm")),
		chromedp.WaitVisible(chromedp.ID("result")),
	)
	if err != nil {
		t.Fatalf("confirm the switchover: %v", err)
	}
	result, steps := text(t, ctx, chromedp.ID("result")), text(t, ctx, chromedp.ID("steps"))
	if !strings.HasPrefix(result, "Switchover completed") || !strings.Contains(steps, "switchover completed: "+topo.Name+" master "+master+" -> "+target) {
		t.Fatalf("result page: %q\nsteps:\n%s", result, steps)
	}
	screenshot(t, ctx, "stats-switchover-result")

	if err := redistest.Eventually(10*time.Second, func() error {
		g := statsJSON(t, p).Groups[0]
		if g.Master != target || len(g.History) == 0 || !g.History[0].Switchover || g.History[0].New != target {
			return fmt.Errorf("master %s, history %+v", g.Master, g.History)
		}
		return nil
	}); err != nil {
		t.Fatalf("after the switchover: %v", err)
	}
	// Sentinel ends its failover and converts the old master a moment later; the screenshot is calmer
	// then, but the test need not wait for it.
	_ = redistest.Eventually(15*time.Second, func() error {
		if g := statsJSON(t, p).Groups[0]; g.Failover != nil || len(g.DualMasters) > 0 {
			return fmt.Errorf("Sentinel's failover still in progress")
		}
		return nil
	})
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("back")), chromedp.WaitVisible(chromedp.ID("master-"+topo.Name))); err != nil {
		t.Fatalf("back to the page: %v", err)
	}
	row := text(t, ctx, chromedp.CSS(`#group-`+topo.Name+` tr.switchover-row`))
	if !strings.Contains(row, "planned switchover") || !strings.Contains(row, master+" → "+target) {
		t.Errorf("history row: %q", row)
	}
	if m := text(t, ctx, chromedp.ID("master-"+topo.Name)); m != target {
		t.Errorf("page shows master %q, want %s", m, target)
	}
	checkFits(t, ctx, "the page after a switchover")
	screenshot(t, ctx, "stats-after-switchover")
}
