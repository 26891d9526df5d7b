package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
	"github.com/sentinel-proxy/sentinel-proxy/server"
)

// durable returns cfg in resp mode (shared connections when multiplex) with wait_replicas = n.
func durable(cfg *config.Config, n int, multiplex bool) *config.Config {
	if multiplex {
		cfg = multiplexed(cfg)
	} else {
		cfg = inMode(cfg, "resp")
	}
	for i := range cfg.Masters {
		cfg.Masters[i].WaitReplicas = n
		cfg.Masters[i].WaitTimeout = config.Duration{Duration: 300 * time.Millisecond}
	}
	return cfg
}

// TestDurableAcknowledgements, on real processes (a master, two replicas, three Sentinels), through resp
// mode and multiplex side by side with wait_replicas = 2: with both replicas paused, a write gets
// NOREPLICAS within wait_timeout and a read its value; with wait_replicas = 1 and one replica paused,
// writes are confirmed; and a SIGKILL of the master under four writers each loses no acknowledged write
// (every write acknowledged was on both replicas, so on whichever Sentinel promotes).
func TestDurableAcknowledgements(t *testing.T) {
	topo := newTopology(t, 2)
	master := topo.Nodes[0].Addr
	type path struct {
		name string
		p    *runningProxy
	}
	var paths []path
	for _, mux := range []bool{false, true} {
		name := "resp"
		if mux {
			name = "multiplex"
		}
		p := startProxy(t, durable(testConfig(t, topo, topo.Name), 2, mux))
		waitRoutedTo(t, p.master, master, 10*time.Second)
		paths = append(paths, path{name, p})
	}
	if err := topo.WaitSettled(2, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, pa := range paths {
		if r, err := redistest.Do(pa.p.master, testPassword, "SET", "k", "v"); err != nil || r != "OK" {
			t.Fatalf("%s: SET with both replicas up: %q %v", pa.name, r, err)
		}
	}
	checkCfg := durable(testConfig(t, topo, topo.Name), 2, false)
	var out bytes.Buffer
	if err := server.Check(context.Background(), checkCfg, &out); err != nil ||
		!strings.Contains(out.String(), "durable acknowledgements: wait_replicas = 2 (wait_timeout 300ms): 2 replica(s) online and acknowledging") {
		t.Fatalf("check with both replicas up: %v\n%s", err, out.String())
	}

	t.Run("replicas-paused", func(t *testing.T) {
		for _, n := range topo.Nodes[1:] {
			if err := n.Pause(); err != nil {
				t.Fatal(err)
			}
		}
		defer func() {
			for _, n := range topo.Nodes[1:] {
				_ = n.Resume()
			}
		}()
		for _, pa := range paths {
			start := time.Now()
			_, err := redistest.Do(pa.p.master, testPassword, "SET", "k", "w")
			took := time.Since(start)
			if err == nil || !strings.HasPrefix(err.Error(), "NOREPLICAS ") || !strings.Contains(err.Error(), "applied on the master") {
				t.Errorf("%s: SET with both replicas paused: %v", pa.name, err)
			}
			if took < 300*time.Millisecond || took > 2*time.Second {
				t.Errorf("%s: NOREPLICAS after %s, want wait_timeout (300ms) and a little", pa.name, took)
			}
			start = time.Now()
			r, err := redistest.Do(pa.p.master, testPassword, "GET", "k")
			read := time.Since(start)
			if err != nil || r != "w" || read > 250*time.Millisecond {
				t.Errorf("%s: GET while writes go unconfirmed: %q %v after %s", pa.name, r, err, read)
			}
			t.Logf("%s: every replica paused: SET answered NOREPLICAS after %s (wait_timeout 300ms), GET after %s",
				pa.name, took.Round(time.Millisecond), read.Round(100*time.Microsecond))
		}
		// check says so once the master sees its replicas silent (INFO replication's lag, in seconds).
		if err := redistest.Eventually(10*time.Second, func() error {
			out.Reset()
			err := server.Check(context.Background(), checkCfg, &out)
			if err == nil || !strings.Contains(out.String(), "wait_replicas = 2 but 0 replica(s)") {
				return fmt.Errorf("check: %v\n%s", err, out.String())
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	})

	t.Run("one-of-two-down-n1", func(t *testing.T) {
		if err := topo.Nodes[2].Pause(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = topo.Nodes[2].Resume() }()
		for _, mux := range []bool{false, true} {
			p := startProxy(t, durable(testConfig(t, topo, topo.Name), 1, mux))
			waitRoutedTo(t, p.master, master, 10*time.Second)
			for i := 0; i < 20; i++ {
				if r, err := redistest.Do(p.master, testPassword, "INCR", "n1"); err != nil || r == "" {
					t.Fatalf("multiplex %v: INCR %d with one replica up and wait_replicas 1: %q %v", mux, i, r, err)
				}
			}
		}
	})

	t.Run("kill-under-load", func(t *testing.T) {
		if err := topo.WaitSettled(2, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		results := make([]chan *redistest.LoadResult, len(paths))
		for i, pa := range paths {
			load := &redistest.WriteLoad{Addr: pa.p.master, Password: testPassword, Writers: 4, Timeout: 10 * time.Second,
				Pause: 200 * time.Microsecond, Prefix: pa.name}
			results[i] = make(chan *redistest.LoadResult, 1)
			go func() { results[i] <- load.Run(ctx) }()
		}
		time.Sleep(time.Second)
		topo.Nodes[0].Kill()
		final, err := topo.WaitNewMaster(master, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, pa := range paths {
			waitRoutedTo(t, pa.p.master, final, 10*time.Second)
		}
		time.Sleep(500 * time.Millisecond) // writes on the new master: NOREPLICAS, it has one replica left
		cancel()
		for i, pa := range paths {
			res := <-results[i]
			lost, err := res.Lost(final, testPassword)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d writes acknowledged, %d failed (NOREPLICAS, or in flight at the kill); %d lost on %s",
				pa.name, len(res.Acks), res.Errors, len(lost), final)
			if len(res.Acks) == 0 {
				t.Errorf("%s: no write acknowledged", pa.name)
			}
			if len(lost) > 0 {
				t.Errorf("%s: %d acknowledged writes lost, the first %s acknowledged by %s at %s", pa.name, len(lost),
					lost[0].Key, lost[0].Node, lost[0].At.Format(time.RFC3339Nano))
			}
		}
	})
}
