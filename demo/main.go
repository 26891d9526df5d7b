// Command demo starts a local Sentinel topology (1 master, 2 replicas, 3 Sentinels on loopback) and
// runs sentinel-proxy in front of it on 5000/5001/9000. Ctrl-C stops everything it started. It is the
// README's first command (make demo); it is not part of the product.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

func main() {
	proxyBin := flag.String("proxy", "bin/sentinel-proxy", "sentinel-proxy binary to run")
	password := flag.String("password", "mypassword", "requirepass of the demo's Redis nodes")
	flag.Parse()
	if err := demo(*proxyBin, *password); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func demo(proxyBin, password string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "sentinel-proxy-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fmt.Println("starting 1 master + 2 replicas (6380-6382) and 3 Sentinels (26380-26382) in", dir)
	topo, err := redistest.Start(redistest.Options{
		Replicas: 2, Sentinels: 3, Password: password, Dir: dir,
		DownAfter: time.Second, FailoverTimeout: 5 * time.Second,
		Ports: []int{6380, 6381, 6382, 26380, 26381, 26382},
	})
	if err != nil {
		return fmt.Errorf("start topology (are ports 6380-6382 and 26380-26382 free?): %w", err)
	}
	defer topo.Close()

	conf := filepath.Join(dir, "demo.toml")
	quoted := make([]string, len(topo.Sentinels))
	for i, s := range topo.Sentinels {
		quoted[i] = fmt.Sprintf("%q", s.Addr)
	}
	err = os.WriteFile(conf, []byte(fmt.Sprintf(`[log]
level = "info"
format = "console"

[sentinel]
addrs = [%s]

[redis]
password = %q

[[masters]]
name = "mymaster"
master_listen = "127.0.0.1:5000"
replica_listen = "127.0.0.1:5001"

[stats]
listen = "127.0.0.1:9000"
user = "haproxy"
password = "password"
admin = true
`, strings.Join(quoted, ", "), password)), 0o600)
	if err != nil {
		return err
	}

	check := exec.CommandContext(ctx, proxyBin, "check", "-c", conf)
	check.Stdout, check.Stderr = os.Stdout, os.Stderr
	fmt.Println("\n$ sentinel-proxy check -c", conf)
	_ = check.Run()

	proxy := exec.Command(proxyBin, "run", "-c", conf)
	proxy.Stdout, proxy.Stderr = os.Stdout, os.Stderr
	if err := proxy.Start(); err != nil {
		return fmt.Errorf("start %s: %w", proxyBin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- proxy.Wait() }()

	fmt.Printf(`
sentinel-proxy is running. Try, in another terminal:
  redis-cli -p 5000 -a %[1]s SET hello world      # the master
  redis-cli -p 5001 -a %[1]s GET hello            # a replica (round-robin)
  redis-cli -p 5001 -a %[1]s INFO replication | grep role
  curl -u haproxy:password http://127.0.0.1:9000/stats
Trigger a failover and watch the master port follow it:
  redis-cli -p 26380 SENTINEL FAILOVER mymaster
  kill -9 $(redis-cli -p 5000 -a %[1]s INFO server | awk -F: '/process_id/{print $2}' | tr -d '\r')
Ctrl-C stops the proxy and every Redis process the demo started.

`, password)
	select {
	case <-ctx.Done():
		_ = proxy.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = proxy.Process.Kill()
		}
		fmt.Println("\ndemo stopped")
		return nil
	case err := <-exited:
		return fmt.Errorf("sentinel-proxy exited: %v", err)
	}
}
