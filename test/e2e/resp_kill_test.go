package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

// TestRESPKillIsAKill: when Redis itself closes a client's backend connection while the node stays
// master, the client is disconnected, as a client connected directly would be, in resp mode with and
// without multiplex: CLIENT KILL TYPE pubsub, CLIENT KILL ID of a normal client, and a subscriber that
// does not read past client-output-buffer-limit. The proxy never subscribes it again behind its back:
// afterwards PUBLISH finds nobody, and the kills are counted.
func TestRESPKillIsAKill(t *testing.T) {
	for _, multiplex := range []bool{false, true} {
		name := "resp"
		if multiplex {
			name = "multiplex"
		}
		t.Run(name, func(t *testing.T) {
			topo := redistest.New(t, redistest.Options{Replicas: 1, Sentinels: 1, Password: testPassword})
			cfg := inMode(testConfig(t, topo, topo.Name), "resp")
			if multiplex {
				cfg = multiplexed(cfg)
			}
			p := startProxy(t, cfg)
			master := topo.Nodes[0].Addr
			waitRoutedTo(t, p.master, master, 10*time.Second)
			direct := func(args ...string) string {
				t.Helper()
				r, err := redistest.Do(master, testPassword, args...)
				if err != nil {
					t.Fatalf("%v: %v", args, err)
				}
				return r
			}
			closed := func(c *redistest.Conn, what string) {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for time.Now().Before(deadline) {
					if _, err := c.Receive(time.Until(deadline)); err != nil {
						return // the connection closed (after whatever was on its way)
					}
				}
				t.Errorf("%s: the client's connection stayed open", what)
			}

			// A subscriber killed by type.
			sub, err := redistest.Dial(p.master, testPassword)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if r, err := sub.Do("SUBSCRIBE", "k1"); err != nil || !strings.HasPrefix(r, "subscribe") {
				t.Fatalf("SUBSCRIBE: %q %v", r, err)
			}
			// Sentinel's hello subscription is killed with it.
			if n := direct("CLIENT", "KILL", "TYPE", "pubsub"); n == "0" {
				t.Fatalf("CLIENT KILL TYPE pubsub killed %s", n)
			}
			closed(sub, "CLIENT KILL TYPE pubsub")
			if n := direct("PUBLISH", "k1", "x"); n != "0" {
				t.Errorf("PUBLISH after the kill reached %s subscribers: the proxy subscribed again", n)
			}

			// A normal client killed by its id.
			c, err := redistest.Dial(p.master, testPassword)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			id, err := c.Do("CLIENT", "ID")
			if err != nil {
				t.Fatal(err)
			}
			if n := direct("CLIENT", "KILL", "ID", id); n != "1" {
				t.Fatalf("CLIENT KILL ID %s killed %s", id, n)
			}
			if r, err := c.DoWithin(5*time.Second, "PING"); err == nil {
				t.Errorf("after CLIENT KILL ID the client's PING answered %q", r)
			}

			// A subscriber that does not read, past its output-buffer limit.
			direct("CONFIG", "SET", "client-output-buffer-limit", "pubsub 256kb 0 0")
			slow, err := redistest.Dial(p.master, testPassword)
			if err != nil {
				t.Fatal(err)
			}
			defer slow.Close()
			if r, err := slow.Do("SUBSCRIBE", "k2"); err != nil || !strings.HasPrefix(r, "subscribe") {
				t.Fatalf("SUBSCRIBE: %q %v", r, err)
			}
			big := strings.Repeat("x", 64<<10)
			for range 200 { // 12.5 MB: more than the proxy buffers before it stops reading Redis
				if direct("PUBLISH", "k2", big) == "0" {
					break // killed
				}
			}
			closed(slow, "client-output-buffer-limit")
			if n := direct("PUBLISH", "k2", "x"); n != "0" {
				t.Errorf("PUBLISH after the output-buffer limit reached %s subscribers: the proxy subscribed again", n)
			}

			var killed uint64
			for _, g := range statsJSON(t, p).Groups {
				for _, l := range g.Listeners {
					killed += l.ClosedByBackend
				}
			}
			if killed != 3 {
				t.Errorf("sessions closed by the backend: %d, want 3", killed)
			}
		})
	}
}
