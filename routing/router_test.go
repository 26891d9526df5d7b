package routing

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

func TestRouterLogsOneSwitchAcrossTheGap(t *testing.T) {
	logs := &redistest.SyncBuffer{}
	r := NewRouter([]string{"g"}, 2, 3, 0, zerolog.New(logs))
	var mu sync.Mutex
	var probed []string
	var changes int
	r.ProbeNow = func(a string) { mu.Lock(); probed = append(probed, a); mu.Unlock() }
	r.OnChange = func(prev, next *Snapshot) map[string]int {
		mu.Lock()
		changes++
		mu.Unlock()
		return map[string]int{"g": 2}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	for _, in := range with(healthy(), switchMaster(s1, nodeA, nodeB), view(s1, nodeB, 2, nodeA, nodeC), probeMaster(nodeB)) {
		r.Submit(ctx, in)
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.Snapshot().Group("g").Master != nodeB {
		if time.Now().After(deadline) {
			t.Fatalf("never switched: %+v", r.Snapshot().Group("g"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	out := logs.String()
	if strings.Count(out, `"event":"master_switched"`) != 1 ||
		!strings.Contains(out, `"old":"`+nodeA+`","new":"`+nodeB+`"`) ||
		!strings.Contains(out, `"trigger":"probe of `+nodeB+`"`) ||
		!strings.Contains(out, `"sessions_closed":4`) {
		t.Errorf("want one master_switched A->B with both closures counted; logs:\n%s", out)
	}
	if !strings.Contains(out, `"event":"dual_master_detected"`) || !strings.Contains(out, `"claimant_replid"`) {
		t.Errorf("the old master still says master after the switch: want dual_master_detected with replication ids:\n%s", out)
	}
	if strings.Count(out, `"event":"master_verified"`) != 1 || strings.Count(out, `"event":"no_master"`) != 1 {
		t.Errorf("want one master_verified (start) and one no_master (gap):\n%s", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if changes < 2 {
		t.Errorf("OnChange called %d times", changes)
	}
	found := false
	for _, a := range probed {
		found = found || a == nodeB
	}
	if !found {
		t.Errorf("the announced master was not probed at once: %v", probed)
	}
}

func TestRouterLogsTiltOncePerSentinel(t *testing.T) {
	logs := &redistest.SyncBuffer{}
	r := NewRouter([]string{"g"}, 2, 3, 0, zerolog.New(logs))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for _, in := range with(healthy(), event(s1, "+tilt", "#tilt mode entered")) {
		r.Submit(ctx, in)
	}
	waitLog := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(logs.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s in:\n%s", want, logs.String())
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	waitLog(`"event":"sentinel_tilt","sentinel":"` + s1 + `","tilt":true`)
	r.Submit(ctx, event(s1, "-tilt", "#tilt mode exited"))
	waitLog(`"event":"sentinel_tilt","sentinel":"` + s1 + `","tilt":false`)
	if n := strings.Count(logs.String(), `"event":"sentinel_tilt"`); n != 2 {
		t.Errorf("want 2 sentinel_tilt lines, got %d", n)
	}
}
