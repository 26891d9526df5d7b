package e2e

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

// What a client library sees of a failover whose old master stays alive (SENTINEL FAILOVER, and the
// proxy's own switchover), through resp mode: go-redis v9 at its defaults, as an application uses it.
// Each client runs 4 writers (unique keys), a MULTI/INCR/EXEC loop, a subscriber with a publisher, a
// BLPOP consumer with a producer, and a pool of 20 idle connections; every error any of them sees is
// counted, and afterwards every acknowledged write, increment, published message and pushed item is
// looked for.

// clientLoad is one client library's workload and what it saw.
type clientLoad struct {
	errs   atomic.Int64
	mu     sync.Mutex
	first  []string // the first errors, for the log
	writes []string // keys whose SET was acknowledged
	incrs  []int64  // the values acknowledged INCRs returned
	pubs   []int    // messages whose PUBLISH was acknowledged
	heard  []int    // messages the subscriber received
	pushed []int    // items whose RPUSH was acknowledged
	popped []int    // items BLPOP returned
}

func (l *clientLoad) fail(what string, err error) {
	if n := l.errs.Add(1); n <= 5 {
		l.mu.Lock()
		l.first = append(l.first, fmt.Sprintf("%s: %v", what, err))
		l.mu.Unlock()
	}
}

func (l *clientLoad) note(dst *[]int, v int) {
	l.mu.Lock()
	*dst = append(*dst, v)
	l.mu.Unlock()
}

// runGoRedis runs the workload through addr until ctx ends; ready is closed once every part of it is
// under way, and the idle pool is checked when checkIdle is received from.
func runGoRedis(ctx context.Context, addr, prefix string, ready chan<- struct{}, checkIdle <-chan struct{}) *clientLoad {
	l := &clientLoad{}
	opts := &redis.Options{Addr: addr, Password: testPassword}
	client := redis.NewClient(opts)
	defer client.Close()
	var wg sync.WaitGroup
	run := func(fn func()) {
		wg.Add(1)
		go func() { defer wg.Done(); fn() }()
	}
	for w := range 4 {
		run(func() {
			for n := 0; ctx.Err() == nil; n++ {
				key := fmt.Sprintf("%sw%d:%d", prefix, w, n)
				if err := client.Set(ctx, key, n, 0).Err(); err != nil {
					if ctx.Err() == nil {
						l.fail("SET", err)
					}
					continue
				}
				l.mu.Lock()
				l.writes = append(l.writes, key)
				l.mu.Unlock()
			}
		})
	}
	run(func() {
		for ctx.Err() == nil {
			var incr *redis.IntCmd
			_, err := client.TxPipelined(ctx, func(p redis.Pipeliner) error {
				incr = p.Incr(ctx, prefix+"tx-counter")
				return nil
			})
			if err != nil {
				if ctx.Err() == nil {
					l.fail("MULTI/INCR/EXEC", err)
				}
				continue
			}
			l.mu.Lock()
			l.incrs = append(l.incrs, incr.Val())
			l.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	})
	sub := client.Subscribe(ctx, prefix+"news")
	if _, err := sub.Receive(ctx); err != nil {
		l.fail("SUBSCRIBE", err)
	}
	run(func() {
		for {
			msg, err := sub.ReceiveMessage(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				l.fail("subscriber", err)
				continue
			}
			n, _ := strconv.Atoi(msg.Payload)
			l.note(&l.heard, n)
		}
	})
	run(func() {
		for n := 0; ctx.Err() == nil; n++ {
			if err := client.Publish(ctx, prefix+"news", n).Err(); err != nil {
				if ctx.Err() == nil {
					l.fail("PUBLISH", err)
				}
			} else {
				l.note(&l.pubs, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	run(func() {
		for ctx.Err() == nil {
			kv, err := client.BLPop(ctx, 2*time.Second, prefix+"jobs").Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				if ctx.Err() == nil {
					l.fail("BLPOP", err)
				}
				continue
			}
			n, _ := strconv.Atoi(kv[1])
			l.note(&l.popped, n)
		}
	})
	run(func() {
		for n := 0; ctx.Err() == nil; n++ {
			if err := client.RPush(ctx, prefix+"jobs", n).Err(); err != nil {
				if ctx.Err() == nil {
					l.fail("RPUSH", err)
				}
			} else {
				l.note(&l.pushed, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	// A consumer blocked with no timeout on a list nothing is pushed to until after the failover: its
	// BLPOP is waiting on the old master at the cut, and must get the one item, once.
	run(func() {
		kv, err := client.BLPop(ctx, 0, prefix+"late-job").Result()
		switch {
		case err != nil && ctx.Err() == nil:
			l.fail("BLPOP waiting at the cut", err)
		case err == nil:
			n, _ := strconv.Atoi(kv[1])
			l.note(&l.popped, n)
		}
	})
	// The idle pool: 20 connections opened now, used again only after the failover.
	idle := redis.NewClient(&redis.Options{Addr: addr, Password: testPassword, PoolSize: 20, MinIdleConns: 20})
	defer idle.Close()
	pingAll := func(what string) {
		var pw sync.WaitGroup
		for range 20 {
			pw.Add(1)
			go func() {
				defer pw.Done()
				if err := idle.Ping(ctx).Err(); err != nil && ctx.Err() == nil {
					l.fail(what, err)
				}
			}()
		}
		pw.Wait()
	}
	pingAll("idle connection before")
	close(ready)
	select {
	case <-checkIdle:
		pingAll("idle connection after")
		if err := client.RPush(ctx, prefix+"late-job", -1).Err(); err != nil {
			l.fail("RPUSH late-job", err)
		} else {
			l.note(&l.pushed, -1)
		}
	case <-ctx.Done():
	}
	<-ctx.Done()
	_ = sub.Close() // a read of the subscription does not end with ctx
	wg.Wait()
	return l
}

// check looks for everything the workload had acknowledged on master, and reports what is missing or
// doubled, with the errors.
func (l *clientLoad) check(t *testing.T, name, prefix, master string, strict bool) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: master, Password: testPassword})
	defer c.Close()
	ctx := context.Background()
	lost := 0
	for _, chunk := range slices.Collect(slices.Chunk(l.writes, 500)) {
		vals, err := c.MGet(ctx, chunk...).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if v == nil {
				lost++
			}
		}
	}
	counter, _ := c.Get(ctx, prefix+"tx-counter").Int64()
	doubled := 0
	incrs := slices.Clone(l.incrs)
	slices.Sort(incrs)
	for i := 1; i < len(incrs); i++ {
		if incrs[i] == incrs[i-1] {
			doubled++ // two acknowledged EXECs returned the same value: impossible
		}
	}
	// Every increment the counter holds was acknowledged: one more means an EXEC ran twice, or ran and
	// was answered with an error.
	unacked := int(counter) - len(incrs)
	left, _ := c.LRange(ctx, prefix+"jobs", 0, -1).Result()
	late, _ := c.LRange(ctx, prefix+"late-job", 0, -1).Result()
	left = append(left, late...)
	have := map[int]int{}
	for _, n := range l.popped {
		have[n]++
	}
	for _, s := range left {
		n, _ := strconv.Atoi(s)
		have[n]++
	}
	itemsLost, itemsDoubled := 0, 0
	for _, n := range l.pushed {
		switch have[n] {
		case 0:
			itemsLost++
		case 1:
		default:
			itemsDoubled++
		}
	}
	heard := map[int]bool{}
	for _, n := range l.heard {
		heard[n] = true
	}
	unheard := 0
	for _, n := range l.pubs[:max(0, len(l.pubs)-1)] { // the last may still be on its way
		if !heard[n] {
			unheard++
		}
	}
	t.Logf("%s: %d errors %q; %d writes acknowledged, %d lost; %d increments acknowledged, counter %d (%d doubled, %d not acknowledged); %d messages published, %d unheard; %d items pushed, %d lost, %d doubled",
		name, l.errs.Load(), l.first, len(l.writes), lost, len(l.incrs), counter, doubled, unacked, len(l.pubs), unheard, len(l.pushed), itemsLost, itemsDoubled)
	if !strict {
		return
	}
	if l.errs.Load() != 0 || lost != 0 || doubled != 0 || unacked != 0 || unheard != 0 || itemsLost != 0 || itemsDoubled != 0 {
		t.Errorf("%s: the failover was noticed: %d errors, %d writes lost, %d increments doubled or not acknowledged, %d messages unheard, %d items lost, %d doubled",
			name, l.errs.Load(), lost, doubled+unacked, unheard, itemsLost, itemsDoubled)
	}
	if len(l.writes) < 100 || len(l.incrs) < 10 || len(l.popped) < 10 || len(l.heard) < 10 {
		t.Errorf("%s: too little done to tell: %d writes, %d increments, %d pops, %d messages", name, len(l.writes), len(l.incrs), len(l.popped), len(l.heard))
	}
}

// TestClientLibrariesNoticeNoFailover: go-redis through resp mode, with and without multiplex, through
// SENTINEL FAILOVER and the proxy's switchover: no error, nothing lost or doubled, no message unheard.
// SENTINEL_PROXY_CLIENTS_MODE=tcp runs the same in tcp mode and only reports what the client saw (the
// measurement in docs/failover.md, "tcp or resp mode").
func TestClientLibrariesNoticeNoFailover(t *testing.T) {
	mode := cmp.Or(os.Getenv("SENTINEL_PROXY_CLIENTS_MODE"), "resp")
	for _, multiplex := range []bool{false, true} {
		if multiplex && mode != "resp" {
			continue
		}
		for _, how := range []string{"sentinel-failover", "switchover"} {
			name := how
			if multiplex {
				name += "-multiplex"
			}
			t.Run(name, func(t *testing.T) {
				s := startSwitchoverSetup(t, mode, redistest.Options{}, nil, func(cfg *config.Config) {
					if multiplex {
						multiplexed(cfg)
					}
				})
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				ready, checkIdle := make(chan struct{}), make(chan struct{})
				loads := make(chan *clientLoad, 1)
				go func() { loads <- runGoRedis(ctx, s.p.master, "go:", ready, checkIdle) }()
				py := startRedisPy(t, s.p.master, "py:")
				<-ready
				time.Sleep(500 * time.Millisecond)
				old := s.topo.Nodes[0].Addr
				var final string
				switch how {
				case "sentinel-failover":
					m, err := s.topo.Failover(30 * time.Second)
					if err != nil {
						t.Fatal(err)
					}
					final = m
				case "switchover":
					status, lines := switchoverHTTP(t, s.p, url.Values{"timeout": {"10s"}})
					if status != 200 {
						t.Fatalf("switchover: %d %s", status, strings.Join(lines, "\n"))
					}
					m, err := s.topo.AgreedMaster(30 * time.Second)
					if err != nil {
						t.Fatal(err)
					}
					final = m
				}
				if final == old {
					t.Fatalf("the master is still %s", old)
				}
				waitRoutedTo(t, s.p.master, final, 10*time.Second)
				time.Sleep(time.Second)
				close(checkIdle)
				py.idle(t)
				time.Sleep(500 * time.Millisecond)
				cancel()
				pyLoad := py.stop(t)
				(<-loads).check(t, "go-redis", "go:", final, mode == "resp")
				pyLoad.check(t, "redis-py", "py:", final, mode == "resp")
			})
		}
	}
}

// redisPy is the workload run by redis-py (Debian's python3-redis, at its defaults) in a Python process
// of its own: testdata/redis_py_load.py.
type redisPy struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// debianPython is the interpreter Debian's python3-redis is installed for.
func debianPython() string {
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return "python3"
}

func startRedisPy(t *testing.T, addr, prefix string) *redisPy {
	t.Helper()
	py := debianPython()
	if err := exec.Command(py, "-c", "import redis").Run(); err != nil {
		t.Fatalf("redis-py is not installed for %s (make test-deps installs python3-redis): %v", py, err)
	}
	cmd := exec.Command(py, "testdata/redis_py_load.py", addr, testPassword, prefix)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := &redisPy{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	p.out.Buffer(nil, 64<<20)
	if !p.out.Scan() || p.out.Text() != "ready" {
		t.Fatalf("redis-py workload did not start: %q %v", p.out.Text(), p.out.Err())
	}
	return p
}

func (p *redisPy) idle(t *testing.T) {
	if _, err := io.WriteString(p.in, "idle\n"); err != nil {
		t.Fatal(err)
	}
}

// stop ends the workload and returns what it saw.
func (p *redisPy) stop(t *testing.T) *clientLoad {
	t.Helper()
	if _, err := io.WriteString(p.in, "stop\n"); err != nil {
		t.Fatal(err)
	}
	if !p.out.Scan() {
		t.Fatalf("redis-py workload: no result: %v", p.out.Err())
	}
	var seen struct {
		Errors                      int64
		First                       []string
		Writes                      []string
		Incrs                       []int64
		Pubs, Heard, Pushed, Popped []int
	}
	if err := json.Unmarshal(p.out.Bytes(), &seen); err != nil {
		t.Fatalf("redis-py workload: %v", err)
	}
	l := &clientLoad{first: seen.First, writes: seen.Writes, incrs: seen.Incrs, pubs: seen.Pubs, heard: seen.Heard,
		pushed: seen.Pushed, popped: seen.Popped}
	l.errs.Store(seen.Errors)
	return l
}
