// Command headofline measures what one client's heavy commands cost the others on each path: 50
// clients doing GET in a loop while one client repeatedly GETs a 50 MB value, or runs a script that
// keeps Redis busy for 200 ms. Sessions that share a backend connection (multiplex) wait behind
// whatever is ahead of them on it; the others' p99 says how much. See docs/benchmarks.md.
//
//	go run ./bench/headofline -proxy bin/sentinel-proxy
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/bench/harness"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

const password = "mypassword"

func main() {
	proxyBin := flag.String("proxy", "bin/sentinel-proxy", "sentinel-proxy binary")
	haproxyBin := flag.String("haproxy", "haproxy", "haproxy binary")
	duration := flag.Duration("d", 5*time.Second, "how long each path and load runs")
	clients := flag.Int("c", 50, "clients doing GET")
	flag.Parse()
	if err := run(*proxyBin, *haproxyBin, *duration, *clients); err != nil {
		fmt.Fprintln(os.Stderr, "headofline:", err)
		os.Exit(1)
	}
}

type path struct{ name, addr string }

func run(proxyBin, haproxyBin string, d time.Duration, clients int) error {
	topo, err := redistest.Start(redistest.Options{Replicas: 1, Sentinels: 3, Password: password, DownAfter: 30 * time.Second})
	if err != nil {
		return err
	}
	defer topo.Close() // and removes its directory, where the proxies keep their files
	dir := topo.Dir()
	master := topo.Nodes[0].Addr
	paths := []path{{"direct", master}}
	for _, v := range []struct{ name, master string }{
		{"sentinel-proxy resp", `mode = "resp"`},
		{"sentinel-proxy multiplex", "mode = \"resp\"\nmultiplex = true"},
	} {
		p, err := harness.StartSentinelProxyWith(proxyBin, topo, dir, harness.ProxyOptions{Master: v.master})
		if err != nil {
			return err
		}
		defer p.Stop()
		paths = append(paths, path{v.name, p.Addr})
	}
	hp, err := harness.StartHAProxy(haproxyBin, topo, dir)
	if err != nil {
		return err
	}
	defer hp.Stop()
	paths = append(paths, path{"haproxy", hp.Addr})
	for _, p := range paths {
		if err := harness.WaitServedBy(p.addr, password, master, 20*time.Second); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	big := strings.Repeat("x", 50<<20)
	if _, err := redistest.Do(master, password, "SET", "big", big); err != nil {
		return err
	}
	if _, err := redistest.Do(master, password, "SET", "small", "v"); err != nil {
		return err
	}
	heavy := []struct {
		name string
		args []string
	}{
		{"none", nil},
		{"GET of a 50 MB value", []string{"GET", "big"}},
		{"EVAL busy 200 ms", []string{"EVAL", "local t = redis.call('TIME') local e = t[1]*1000000 + t[2] + 200000 " +
			"repeat t = redis.call('TIME') until t[1]*1000000 + t[2] >= e return 1", "0"}},
	}
	fmt.Printf("# head-of-line: %d clients GET in a loop for %s while one client repeats a heavy command\n\n", clients, d)
	fmt.Println("| heavy command | path | GETs/s | p50 ms | p99 ms | max ms | heavy commands done |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, h := range heavy {
		for _, p := range paths {
			r, err := measure(p.addr, clients, d, h.args)
			if err != nil {
				return fmt.Errorf("%s %s: %w", h.name, p.name, err)
			}
			fmt.Printf("| %s | %s | %.0f | %.3f | %.3f | %.1f | %d |\n", h.name, p.name, r.rate, r.p50, r.p99, r.max, r.heavy)
		}
	}
	return nil
}

type result struct {
	rate, p50, p99, max float64
	heavy               int64
}

func measure(addr string, clients int, d time.Duration, heavy []string) (result, error) {
	stop := time.Now().Add(d)
	var mu sync.Mutex
	var lat []float64
	var errs []error
	var heavyDone atomic.Int64
	var wg sync.WaitGroup
	failed := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	// run runs body on a client of its own until it returns, recording its error.
	run := func(body func(c *redistest.Conn) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := redistest.Dial(addr, password)
			if err != nil {
				failed(err)
				return
			}
			defer c.Close()
			if err := body(c); err != nil {
				failed(err)
			}
		}()
	}
	for i := 0; i < clients; i++ {
		run(func(c *redistest.Conn) error {
			var mine []float64
			for time.Now().Before(stop) {
				t0 := time.Now()
				if _, err := c.DoWithin(30*time.Second, "GET", "small"); err != nil {
					return err
				}
				mine = append(mine, float64(time.Since(t0).Microseconds())/1000)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
			return nil
		})
	}
	if heavy != nil {
		run(func(c *redistest.Conn) error {
			for time.Now().Before(stop) {
				if _, err := c.DoWithin(30*time.Second, heavy...); err != nil {
					return fmt.Errorf("heavy: %w", err)
				}
				heavyDone.Add(1)
			}
			return nil
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return result{}, errs[0]
	}
	sort.Float64s(lat)
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(q*float64(len(lat))))]
	}
	return result{rate: float64(len(lat)) / d.Seconds(), p50: pct(0.5), p99: pct(0.99), max: pct(1), heavy: heavyDone.Load()}, nil
}
