package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/check"
	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
	"github.com/sentinel-proxy/sentinel-proxy/server"
)

// stallLength is how long the slow node stalls: several times what the test config's probes need to
// take a node DOWN (fall 3 × interval 200ms + timeout 500ms), as the 6 s script is for the
// default 1 s probes.
const stallLength = 6 * time.Second

// slowTopology is a topology whose Sentinels never fail a slow node over on their own (a production
// down-after-milliseconds is 5–30 s for exactly this), and whose nodes answer -BUSY after 1 s of a script.
func slowTopology(t *testing.T) *redistest.Topology {
	return redistest.New(t, redistest.Options{Replicas: 2, Sentinels: 3, Password: testPassword,
		DownAfter: 60 * time.Second, NodeConf: []string{"enable-debug-command yes", "busy-reply-threshold 1000"}})
}

// stall is one way to make Redis stop answering for stallLength, and what its own client gets.
type stall struct {
	name  string
	cmd   []string
	reply string
	// during is what Redis answers a client that sends PING in the middle of the stall: "BUSY" (an error)
	// for a script, PONG (late) for DEBUG SLEEP, which answers nothing until it ends.
	during string
	// seen is the stall the proxy's probes see most of the time.
	seen check.Stall
}

var stalls = []stall{
	{name: "script", cmd: []string{"EVAL", redistest.BusyScript(stallLength), "0"}, reply: "1", during: "BUSY", seen: check.StallBusy},
	{name: "debug-sleep", cmd: []string{"DEBUG", "SLEEP", fmt.Sprint(stallLength.Seconds())}, reply: "OK", during: "PONG",
		seen: check.StallUnresponsive},
}

// answer is a reply or the error's first word, which is what a client acts on.
func answer(r string, err error) string {
	if err != nil {
		return strings.Fields(err.Error() + " ?")[0]
	}
	return r
}

// TestSlowNodeKeepsItsClients stalls a node with a slow script and with DEBUG SLEEP, through each port,
// and checks that every client gets what it would get connected directly: the client running it gets its
// reply, an idle client's next command is answered, a client that connects meanwhile gets Redis's own
// answer (on the master port) or a healthy replica (on the replica port, which the stalled node leaves for
// new clients), and a client that connects right after it ends is served at once.
func TestSlowNodeKeepsItsClients(t *testing.T) {
	topo := slowTopology(t)
	cfg := testConfig(t, topo, topo.Name)
	p := startProxy(t, cfg)
	master, target, other := topo.Nodes[0].Addr, topo.Nodes[1].Addr, topo.Nodes[2].Addr
	waitRoutedTo(t, p.master, master, 10*time.Second)
	if err := redistest.Eventually(10*time.Second, func() error {
		if v := nodeRow(t, p, target).Verdict; v != "replica" {
			return fmt.Errorf("%s verdict %q", target, v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// The two ports stall different nodes, so they run side by side.
	t.Run("master", func(t *testing.T) {
		t.Parallel()
		for _, st := range stalls {
			t.Run(st.name, func(t *testing.T) { stallThroughPort(t, p, cfg, p.master, master, "", st) })
		}
	})
	t.Run("replica", func(t *testing.T) {
		t.Parallel()
		for _, st := range stalls {
			t.Run(st.name, func(t *testing.T) { stallThroughPort(t, p, cfg, p.replica, target, other, st) })
		}
	})
	t.Cleanup(func() {
		logs := p.logs.String()
		for _, event := range []string{`"event":"no_master"`, `"event":"sessions_closed"`, `"event":"server_down"`} {
			if strings.Contains(logs, event) {
				t.Errorf("a stall made the proxy log %s:\n%s", event, grepLines(logs, event))
			}
		}
		for _, node := range []string{master, target} {
			if !strings.Contains(logs, `"event":"node_stalled","node":"`+node) ||
				!strings.Contains(logs, `"event":"node_stall_ended","node":"`+node) {
				t.Errorf("no node_stalled / node_stall_ended for %s", node)
			}
		}
	})
}

// stallThroughPort stalls node with st through port (whose clients it serves) and checks each client.
// other is where the replica port sends new clients meanwhile; "" for the master port, whose new clients
// go to the stalled master as direct clients would.
func stallThroughPort(t *testing.T, p *runningProxy, cfg *config.Config, port, node, other string, st stall) {
	sessions := sessionsOn(t, port, 2, node)[node]
	runner, idle := sessions[0], sessions[1]

	start := time.Now()
	ran := make(chan string, 1)
	go func() { ran <- answer(runner.DoWithin(stallLength+10*time.Second, st.cmd...)) }()

	// The master stays UP and routed; a replica stays UP too, but out of the pool (NOLB).
	status := "UP"
	if other != "" {
		status = "NOLB"
	}
	if err := redistest.Eventually(stallLength, func() error {
		select {
		case r := <-ran:
			return fmt.Errorf("%s ended early: %q", st.name, r)
		default:
		}
		if row := nodeRow(t, p, node); row.Stall != string(st.seen) || row.Status != status {
			return fmt.Errorf("%s: status %s, stall %q, want %s and %q", node, row.Status, row.Stall, status, st.seen)
		}
		return nil
	}); err != nil {
		t.Fatalf("the proxy never showed the stall: %v", err)
	}
	if row := nodeRow(t, p, node); other != "" && row.Verdict != string(st.seen) {
		t.Errorf("a stalled replica stays out of the pool: verdict %q, want %q", row.Verdict, st.seen)
	}

	// `sentinel-proxy check` tells the stall from a failure.
	var report strings.Builder
	_ = server.Check(context.Background(), cfg, &report)
	if want := strings.ToUpper(string(st.seen)); !strings.Contains(report.String(), want) || !strings.Contains(report.String(), "(alive)") {
		t.Errorf("check during the stall does not say %s (alive):\n%s", want, report.String())
	}

	// A client that connects now, through the proxy and directly.
	type reply struct{ via, answer string }
	during := make(chan reply, 2)
	for via, addr := range map[string]string{"proxy": port, "direct": node} {
		go func() {
			c, err := redistest.Dial(addr, "")
			if err != nil {
				during <- reply{via, answer("", err)}
				return
			}
			defer c.Close()
			// AUTH is answered even while a script runs; DEBUG SLEEP holds it too.
			if _, err := c.DoWithin(stallLength+5*time.Second, "AUTH", testPassword); err != nil {
				during <- reply{via, answer("", err)}
				return
			}
			if other != "" && via == "proxy" {
				info, err := c.DoWithin(2*time.Second, "INFO", "server")
				served, _ := nodeOf(info)
				during <- reply{via, answer(served, err)}
				return
			}
			during <- reply{via, answer(c.DoWithin(stallLength+5*time.Second, "PING"))}
		}()
	}
	got := map[string]string{}
	for range 2 {
		r := <-during
		got[r.via] = r.answer
	}
	if got["direct"] != st.during {
		t.Errorf("a direct client during the stall got %q, want %q (the test's assumption about Redis)", got["direct"], st.during)
	}
	if other == "" && got["proxy"] != got["direct"] {
		t.Errorf("a new client of the master port during the stall got %q, a direct one %q", got["proxy"], got["direct"])
	}
	if other != "" && got["proxy"] != other {
		t.Errorf("a new client of the replica port during the stall was served by %q, want the healthy replica %s", got["proxy"], other)
	}

	if r := <-ran; r != st.reply {
		t.Errorf("the client running %s got %q, want %q", st.name, r, st.reply)
	}
	if took := time.Since(start); took < stallLength-time.Second {
		t.Errorf("the stall took %s: it did not stall", took)
	}
	if r, err := idle.DoWithin(2*time.Second, "PING"); err != nil || r != "PONG" {
		t.Errorf("the idle client after the stall: %q %v", r, err)
	}
	if other == "" {
		after, err := redistest.Dial(port, testPassword)
		if err != nil {
			t.Fatalf("a client right after the stall: %v", err)
		}
		defer after.Close()
		if r, err := after.DoWithin(2*time.Second, "PING"); err != nil || r != "PONG" {
			t.Errorf("a client right after the stall: %q %v", r, err)
		}
	}
	if err := redistest.Eventually(5*time.Second, func() error {
		if row := nodeRow(t, p, node); row.Stall != "" || row.Status != "UP" {
			return fmt.Errorf("status %s, stall %q", row.Status, row.Stall)
		}
		return nil
	}); err != nil {
		t.Errorf("%s never answered its probes again: %v", node, err)
	}
}

// TestChaosSlowMasterThenFailover stalls the master with a slow script while writers go through the
// proxy, and fails it over the moment the script ends: the stall must not delay or disturb the failover,
// and no acknowledged write may be lost.
func TestChaosSlowMasterThenFailover(t *testing.T) {
	runChaos(t, chaos{downAfter: 60 * time.Second, zeroLoss: true,
		nodeConf: []string{"busy-reply-threshold 500"},
		act: func(t *testing.T, topo *redistest.Topology, _ *redistest.EventLog, _ func()) string {
			c, err := redistest.Dial(topo.Nodes[0].Addr, testPassword)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if r, err := c.DoWithin(15*time.Second, "EVAL", redistest.BusyScript(3*time.Second), "0"); err != nil || r != "1" {
				t.Fatalf("slow script: %q %v", r, err)
			}
			newMaster, err := topo.Failover(30 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			return newMaster
		}})
}
