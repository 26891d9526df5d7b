package check

import (
	"context"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

func TestProbeRealNodes(t *testing.T) {
	topo := redistest.New(t, redistest.Options{Replicas: 1, Sentinels: 1, Password: "s3cret-pw"})
	master, replica := topo.Nodes[0].Addr, topo.Nodes[1].Addr
	ctx := context.Background()
	p := &Prober{Password: "s3cret-pw", Timeout: time.Second}

	res := p.Probe(ctx, master)
	if !res.OK() || !res.Replication.IsMaster() {
		t.Fatalf("master probe: %+v", res)
	}
	res = p.Probe(ctx, replica)
	if !res.OK() || !res.Replication.IsSyncedReplica() || res.Replication.MasterPort != topo.Nodes[0].Port {
		t.Fatalf("replica probe: %+v", res)
	}

	wrong := &Prober{Password: "not-the-password", Timeout: time.Second}
	res = wrong.Probe(ctx, master)
	if res.Status != L7STS || res.OK() {
		t.Fatalf("wrong password: %+v", res)
	}
	if strings.Contains(res.Err.Error(), "not-the-password") {
		t.Fatalf("password leaked into the error: %v", res.Err)
	}

	noAuth := &Prober{Timeout: time.Second}
	if res := noAuth.Probe(ctx, master); res.Status != L7STS {
		t.Fatalf("missing AUTH should be an error reply (NOAUTH): %+v", res)
	}

	// A paused node accepts the TCP connection (the kernel does) but never answers.
	if err := topo.Nodes[1].Pause(); err != nil {
		t.Fatal(err)
	}
	short := &Prober{Password: "s3cret-pw", Timeout: 200 * time.Millisecond}
	res = short.Probe(ctx, replica)
	_ = topo.Nodes[1].Resume()
	if res.Status != L7TOUT || res.Reason() != "Layer7 timeout" {
		t.Fatalf("paused node: %+v", res)
	}

	topo.Nodes[1].Kill()
	if res := p.Probe(ctx, replica); res.Status != L4CON || res.Reason() != "Layer4 connection problem" {
		t.Fatalf("killed node: %+v", res)
	}
}

func TestProbeGarbageServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()
	res := (&Prober{}).Probe(context.Background(), l.Addr().String())
	if res.Status != L7RSP || res.OK() {
		t.Fatalf("garbage: %+v", res)
	}
}

func TestMonitorProbesTargetsAndProbeNow(t *testing.T) {
	topo := redistest.New(t, redistest.Options{Replicas: 0, Sentinels: 1})
	results := make(chan Result, 100)
	m := &Monitor{Prober: &Prober{}, Interval: time.Hour, Report: func(r Result) { results <- r }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	m.SetTargets([]string{topo.Nodes[0].Addr})
	wait := func(what string) Result {
		select {
		case r := <-results:
			return r
		case <-time.After(5 * time.Second):
			t.Fatalf("no result: %s", what)
		}
		return Result{}
	}
	if r := wait("first probe"); !r.OK() {
		t.Fatalf("first probe: %+v", r)
	}
	// The interval is an hour: only ProbeNow can produce a second result.
	m.ProbeNow(topo.Nodes[0].Addr)
	if r := wait("ProbeNow"); !r.OK() {
		t.Fatalf("ProbeNow: %+v", r)
	}
	m.SetTargets(nil)
	m.ProbeNow(topo.Nodes[0].Addr)
	select {
	case r := <-results:
		t.Fatalf("removed target still probed: %+v", r)
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	<-done
}

// TestProbeHostileServers: whatever a node sends, the probe fails within its timeout, with a status an
// operator can read, and without allocating what a hostile header announces.
func TestProbeHostileServers(t *testing.T) {
	want := map[string][]Status{
		redistest.Garbage: {L7RSP, L7STS}, redistest.HugeArray: {L7RSP}, redistest.HugeBulk: {L7RSP},
		redistest.EndlessLine: {L7RSP, L7TOUT}, redistest.Stall: {L7TOUT}, redistest.CloseMidReply: {L7RSP},
	}
	for _, mode := range redistest.HostileModes {
		t.Run(mode, func(t *testing.T) {
			addr := redistest.Hostile(t, mode)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			res := (&Prober{Timeout: 300 * time.Millisecond}).Probe(context.Background(), addr)
			runtime.ReadMemStats(&after)
			if res.OK() || !slices.Contains(want[mode], res.Status) || res.Err == nil {
				t.Errorf("status %s (%v), want one of %v", res.Status, res.Err, want[mode])
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("the probe took %v with a 300ms timeout", d)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
				t.Errorf("the probe allocated %d MB", grew>>20)
			}
		})
	}
}
