package sentinel

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

type collector struct {
	mu     sync.Mutex
	views  []View
	events []Event
}

func (c *collector) onView(v View) { c.mu.Lock(); c.views = append(c.views, v); c.mu.Unlock() }

func (c *collector) onEvent(e Event) { c.mu.Lock(); c.events = append(c.events, e); c.mu.Unlock() }

func (c *collector) lastView() (View, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.views) == 0 {
		return View{}, false
	}
	return c.views[len(c.views)-1], true
}

func (c *collector) event(channel string) (Event, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.events {
		if e.Channel == channel {
			return e, true
		}
	}
	return Event{}, false
}

func startWatcher(t *testing.T, addr string, masters []string, c *collector, log zerolog.Logger) *Watcher {
	w := NewWatcher(Options{Addr: addr, Masters: masters, Interval: 100 * time.Millisecond,
		Timeout: 300 * time.Millisecond, MaxBackoff: 400 * time.Millisecond, OnView: c.onView, OnEvent: c.onEvent, Log: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func TestWatcherViewsAndSwitchEvent(t *testing.T) {
	topo := redistest.New(t, redistest.Options{Replicas: 1, Sentinels: 3})
	c := &collector{}
	startWatcher(t, topo.Sentinels[0].Addr, []string{topo.Name}, c, zerolog.Nop())

	err := redistest.Eventually(5*time.Second, func() error {
		v, ok := c.lastView()
		if !ok || v.Err != nil {
			return fmt.Errorf("no good view yet: %+v", v)
		}
		if v.MasterAddr != topo.Nodes[0].Addr || len(v.Replicas) != 1 || v.Replicas[0].Addr != topo.Nodes[1].Addr || v.Tilt {
			return fmt.Errorf("view: %+v", v)
		}
		if v.DownAfter != 300*time.Millisecond { // redistest's default down-after-milliseconds
			return fmt.Errorf("view's down-after %s, want 300ms", v.DownAfter)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	newMaster, err := topo.Failover(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	err = redistest.Eventually(5*time.Second, func() error {
		ev, ok := c.event("+switch-master")
		if !ok {
			return fmt.Errorf("no +switch-master yet")
		}
		if ev.OldAddr != topo.Nodes[0].Addr || ev.NewAddr != newMaster || ev.Sentinel != topo.Sentinels[0].Addr {
			return fmt.Errorf("event: %+v", ev)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = redistest.Eventually(5*time.Second, func() error {
		v, _ := c.lastView()
		if v.MasterAddr != newMaster || v.ConfigEpoch < 1 {
			return fmt.Errorf("view after failover: %+v", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWatcherUnknownMasterAndUnreachableSentinel(t *testing.T) {
	topo := redistest.New(t, redistest.Options{Replicas: 0, Sentinels: 1})
	c := &collector{}
	startWatcher(t, topo.Sentinels[0].Addr, []string{"ghost"}, c, zerolog.Nop())
	err := redistest.Eventually(5*time.Second, func() error {
		v, ok := c.lastView()
		if !ok || v.Err == nil || !strings.Contains(v.Err.Error(), `does not monitor a master named "ghost"`) {
			return fmt.Errorf("view: %+v", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A Sentinel that is down is logged once and retried with backoff until it comes back.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := l.Addr().String()
	l.Close()
	logs := &redistest.SyncBuffer{}
	c2 := &collector{}
	startWatcher(t, deadAddr, []string{"m"}, c2, zerolog.New(logs))
	time.Sleep(1500 * time.Millisecond)
	c2.mu.Lock()
	attempts := len(c2.views)
	c2.mu.Unlock()
	// Interval 100ms capped at 400ms: about 5 attempts in 1.5s; without backoff it would be ~15.
	if attempts < 2 || attempts > 9 {
		t.Errorf("%d attempts in 1.5s; want backoff between 100ms and 400ms", attempts)
	}
	if n := strings.Count(logs.String(), `"event":"sentinel_lost"`); n != 1 {
		t.Errorf("sentinel_lost logged %d times, want once:\n%s", n, logs.String())
	}
	if v, _ := c2.lastView(); v.Err == nil {
		t.Errorf("view of a dead Sentinel has no error: %+v", v)
	}
}

// TestWatcherHostileSentinels: whatever a Sentinel sends, the watcher reports it as unusable, logs it,
// and does not allocate what a hostile header announces (go-redis alone would try to allocate an array
// of two billion elements for "*2000000000").
func TestWatcherHostileSentinels(t *testing.T) {
	for _, mode := range redistest.HostileModes {
		t.Run(mode, func(t *testing.T) {
			addr := redistest.Hostile(t, mode)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			logs := &redistest.SyncBuffer{}
			c := &collector{}
			startWatcher(t, addr, []string{"m"}, c, zerolog.New(logs))
			err := redistest.Eventually(5*time.Second, func() error {
				if v, ok := c.lastView(); !ok || v.Err == nil {
					return fmt.Errorf("no failed view yet")
				}
				if !strings.Contains(logs.String(), `"event":"sentinel_lost"`) {
					return fmt.Errorf("no sentinel_lost")
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
				t.Errorf("watching a hostile Sentinel allocated %d MB", grew>>20)
			}
		})
	}
}

func TestGuardConnScan(t *testing.T) {
	ok := [][]string{
		{"+OK\r\n"}, {"$5\r\nhel", "lo\r\n"}, {"*2\r\n$1\r\na\r\n:1\r\n"}, {"$-1\r\n", "*-1\r\n"},
		{"*3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n$", "3\r\nabc\r\n"}, {"$2\r\n\r\n\r\n"},
	}
	for _, chunks := range ok {
		g := &guardConn{}
		for _, c := range chunks {
			if err := g.scan([]byte(c)); err != nil {
				t.Errorf("%q: %v", chunks, err)
			}
		}
	}
	bad := []string{"*2000000000\r\n", "$2000000000\r\n", "?what\r\n", "+no-cr\n", "$abc\r\n", "$99999999999\r\n"}
	for _, b := range bad {
		if err := (&guardConn{}).scan([]byte(b)); err == nil {
			t.Errorf("%q passed the guard", b)
		}
	}
	if err := (&guardConn{}).scan(append([]byte("+"), make([]byte, maxLineLen+1)...)); err == nil {
		t.Errorf("an endless line passed the guard")
	}
}

// TestTornView: a view whose address and master record disagree is torn unless the Sentinel is running
// the failover that promoted the address (the leader late in a failover answers that way on purpose).
func TestTornView(t *testing.T) {
	for _, c := range []struct {
		name string
		v    View
		want bool
	}{
		{"consistent", View{MasterAddr: "a:1", MasterFlags: "master"}, false},
		{"leader late in its failover", View{MasterAddr: "b:1", FailedOver: true, MasterFlags: "master,failover_in_progress"}, false},
		{"old address, new record", View{MasterAddr: "a:1", FailedOver: true, ConfigEpoch: 1, MasterFlags: "master"}, true},
		{"old address, new record, down flags", View{MasterAddr: "a:1", FailedOver: true, MasterFlags: "s_down,master"}, true},
	} {
		if got := torn(c.v); got != c.want {
			t.Errorf("%s: torn = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestReplicaDown(t *testing.T) {
	for _, tt := range []struct {
		flags       string
		down, sdown bool
	}{
		{"slave", false, false},
		{"slave,disconnected", true, false}, // the Sentinel re-opens its link: unusable, not judged down
		{"s_down,slave", true, true},
		{"s_down,slave,disconnected", true, true},
		{"o_down,s_down,slave", true, true},
	} {
		r := Replica{Flags: tt.flags}
		if r.Down() != tt.down || r.SDown() != tt.sdown {
			t.Errorf("%q: Down %v SDown %v, want %v %v", tt.flags, r.Down(), r.SDown(), tt.down, tt.sdown)
		}
	}
}
