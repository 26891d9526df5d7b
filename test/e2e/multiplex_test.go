package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

// multiplexed returns cfg in resp mode with shared backend connections, on two event loops.
func multiplexed(cfg *config.Config) *config.Config {
	inMode(cfg, "resp")
	for i := range cfg.Masters {
		cfg.Masters[i].Multiplex = true
	}
	cfg.Proxy.EventLoops = 2
	return cfg
}

// backendClients lists the connections of node's CLIENT LIST on database db that are not the
// Sentinels' nor the probes' (named, or on database 0).
func backendClients(t *testing.T, node, password string, db int) []string {
	t.Helper()
	list, err := redistest.Do(node, password, "CLIENT", "LIST")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, fmt.Sprintf(" db=%d ", db)) && strings.Contains(line, " name= ") {
			out = append(out, line)
		}
	}
	return out
}

// TestMultiplexSharesConnections: 300 clients authenticated on database 2 each send commands at once
// through a listener with multiplex = true: the master sees one connection per event loop they run on
// (at most two; one here: multiplexed sessions take half of the loops), each client gets its own replies, and a client that needs a connection of its own
// (MULTI/EXEC, BLPOP, SUBSCRIBE, CLIENT SETNAME) gets one while the others keep sharing.
func TestMultiplexSharesConnections(t *testing.T) {
	topo := newTopology(t, 1)
	p := startProxy(t, multiplexed(testConfig(t, topo, topo.Name)))
	master := topo.Nodes[0].Addr
	waitRoutedTo(t, p.master, master, 10*time.Second)

	const clients = 300
	conns := make([]*redistest.Conn, clients)
	for i := range conns {
		c, err := redistest.Dial(p.master, testPassword)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		if r, err := c.Do("SELECT", "2"); err != nil || r != "OK" {
			t.Fatalf("client %d: SELECT 2: %q %v", i, r, err)
		}
		// What client libraries send as they connect (Redis 7.2 takes it, 7.0 does not know it): it
		// keeps them sharing.
		if r, err := c.Do("CLIENT", "SETINFO", "LIB-NAME", "e2e"); !(err == nil && r == "OK" ||
			err != nil && strings.Contains(err.Error(), "nknown subcommand")) {
			t.Fatalf("client %d: CLIENT SETINFO: %q %v", i, r, err)
		}
		conns[i] = c
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				key := fmt.Sprintf("k:%d", i)
				if r, err := c.Do("SET", key, fmt.Sprintf("%d-%d", i, j)); err != nil || r != "OK" {
					errs <- fmt.Errorf("client %d SET: %q %v", i, r, err)
					return
				}
				if r, err := c.Do("GET", key); err != nil || r != fmt.Sprintf("%d-%d", i, j) {
					errs <- fmt.Errorf("client %d GET: %q %v (another client's reply?)", i, r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := len(backendClients(t, master, testPassword, 2)); n > 2 {
		t.Errorf("%d backend connections on db 2 for %d clients, want at most 2 (one shared and its spare)", n, clients)
	}
	if v, err := redistest.Do(master, testPassword, "EXISTS", "k:0"); err != nil || v != "0" {
		t.Errorf("a key of database 2 is in database 0: %q %v", v, err)
	}

	// A transaction, a blocked client, a subscriber and a named client each get a connection of their
	// own; the others still share.
	tx := conns[0]
	for _, cmd := range [][]string{{"MULTI"}, {"INCR", "tx"}, {"INCR", "tx"}} {
		if _, err := tx.Do(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := tx.Do("EXEC"); err != nil || r != "1\n2" {
		t.Fatalf("EXEC: %q %v", r, err)
	}
	blocked := make(chan string, 1)
	go func() {
		r, err := conns[1].DoWithin(10*time.Second, "BLPOP", "queue", "10")
		if err != nil {
			r = err.Error()
		}
		blocked <- r
	}()
	named := conns[2]
	if r, err := named.Do("CLIENT", "SETNAME", "mine"); err != nil || r != "OK" {
		t.Fatalf("CLIENT SETNAME: %q %v", r, err)
	}
	if r, err := named.Do("CLIENT", "GETNAME"); err != nil || r != "mine" {
		t.Fatalf("CLIENT GETNAME: %q %v", r, err)
	}
	time.Sleep(100 * time.Millisecond)
	if r, err := conns[3].Do("RPUSH", "queue", "job"); err != nil || r != "1" {
		t.Fatalf("RPUSH: %q %v", r, err)
	}
	select {
	case r := <-blocked:
		if r != "queue\njob" {
			t.Fatalf("BLPOP: %q", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("BLPOP never returned")
	}
	for i := 4; i < clients; i++ {
		if r, err := conns[i].Do("GET", fmt.Sprintf("k:%d", i)); err != nil || r != fmt.Sprintf("%d-19", i) {
			t.Fatalf("client %d GET after: %q %v", i, r, err)
		}
	}
	// shared (2) + the transaction's, the blocked client's and the named client's own
	if n := len(backendClients(t, master, testPassword, 2)); n > 2+2 {
		t.Errorf("%d backend connections on db 2 with 3 private clients, want at most 4 (shared, spare, 2 private without a name)", n)
	}
	// The metrics count them: the shared connections open (db 2, on the one loop of the two that
	// multiplexed sessions run on, and its spare; those for db 0 closed with their last session), the 3
	// sessions that left them.
	req, _ := http.NewRequest("GET", "http://"+p.stats+"/metrics", nil)
	req.SetBasicAuth("admin", "stats-pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"sentinel_proxy_shared_backend_connections 2\n", "sentinel_proxy_sessions_unshared_total 3\n"} {
		if !strings.Contains(string(body), want) {
			for _, l := range strings.Split(string(body), "\n") {
				if strings.Contains(l, "shared") {
					t.Log(l)
				}
			}
		}
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestMultiplexUsersStayApart: ACL users share connections only with themselves: each runs with its
// own permissions, a wrong password is refused as Redis refuses it and leaves the client as it was,
// and a client that did not authenticate is refused what the default user may not do.
func TestMultiplexUsersStayApart(t *testing.T) {
	topo := newTopology(t, 1)
	master := topo.Nodes[0].Addr
	for _, cmd := range [][]string{
		{"ACL", "SETUSER", "alice", "on", ">alice-pw", "~alice:*", "+@all"},
		{"ACL", "SETUSER", "bob", "on", ">bob-pw", "~bob:*", "+@all"},
	} {
		if r, err := redistest.Do(master, testPassword, cmd...); err != nil || r != "OK" {
			t.Fatalf("%v: %q %v", cmd, r, err)
		}
	}
	p := startProxy(t, multiplexed(testConfig(t, topo, topo.Name)))
	waitRoutedTo(t, p.master, master, 10*time.Second)

	dial := func(user, pass string) *redistest.Conn {
		c, err := redistest.Dial(p.master, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if user != "" {
			if r, err := c.Do("AUTH", user, pass); err != nil || r != "OK" {
				t.Fatalf("AUTH %s: %q %v", user, r, err)
			}
		}
		return c
	}
	alice, bob, anon := dial("alice", "alice-pw"), dial("bob", "bob-pw"), dial("", "")
	for i := 0; i < 50; i++ {
		if r, err := alice.Do("SET", "alice:k", "a"); err != nil || r != "OK" {
			t.Fatalf("alice SET: %q %v", r, err)
		}
		if r, err := bob.Do("GET", "alice:k"); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Fatalf("bob read alice's key: %q %v", r, err)
		}
		if r, err := alice.Do("ACL", "WHOAMI"); err != nil || r != "alice" {
			t.Fatalf("alice ACL WHOAMI: %q %v", r, err)
		}
		if r, err := bob.Do("ACL", "WHOAMI"); err != nil || r != "bob" {
			t.Fatalf("bob ACL WHOAMI: %q %v", r, err)
		}
		if r, err := anon.Do("GET", "alice:k"); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
			t.Fatalf("an unauthenticated client read: %q %v", r, err)
		}
	}
	// A wrong password: Redis's refusal, and the client stays who it was.
	if r, err := alice.Do("AUTH", "bob", "wrong"); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") {
		t.Fatalf("AUTH with a wrong password: %q %v", r, err)
	}
	if r, err := alice.Do("ACL", "WHOAMI"); err != nil || r != "alice" {
		t.Fatalf("after a refused AUTH: %q %v", r, err)
	}
	if r, err := anon.Do("AUTH", "wrong"); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") {
		t.Fatalf("AUTH with a wrong password: %q %v", r, err)
	}
	if r, err := anon.Do("GET", "x"); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("after a refused AUTH: %q %v", r, err)
	}
	// Pipelined: a refused AUTH, then a command. The command must not run as anyone.
	raw, err := net.Dial("tcp", p.master)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Write([]byte("AUTH alice nope\r\nGET alice:k\r\nAUTH alice alice-pw\r\nGET alice:k\r\n")); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(raw)
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	var lines []string
	for range 4 {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("pipelined AUTH: %v after %q", err, lines)
		}
		if strings.HasPrefix(line, "$") {
			body, _ := rd.ReadString('\n')
			line += body
		}
		lines = append(lines, line)
	}
	if !strings.HasPrefix(lines[0], "-WRONGPASS") || !strings.HasPrefix(lines[1], "-NOAUTH") ||
		lines[2] != "+OK\r\n" || lines[3] != "$1\r\na\r\n" {
		t.Fatalf("pipelined AUTH, GET, AUTH, GET answered %q", lines)
	}
}

// sharedIdleClients opens n clients that share backend connections: authenticated, on database 3,
// each with a key of its own there.
func sharedIdleClients(t *testing.T, addr string, n int) []*redistest.Conn {
	t.Helper()
	conns := make([]*redistest.Conn, n)
	for i := range conns {
		c, err := redistest.Dial(addr, testPassword)
		if err != nil {
			t.Fatalf("shared client %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		for _, cmd := range [][]string{{"SELECT", "3"}, {"SET", fmt.Sprintf("shared-%d", i), "here"}} {
			if r, err := c.Do(cmd...); err != nil || r != "OK" {
				t.Fatalf("shared client %d: %v: %q %v", i, cmd, r, err)
			}
		}
		conns[i] = c
	}
	return conns
}

// checkSharedIdleClients asks every shared idle client where it is: each must answer from master (its
// port), on database 3 (its key), without an error.
func checkSharedIdleClients(t *testing.T, conns []*redistest.Conn, master string) {
	t.Helper()
	port := master[strings.LastIndexByte(master, ':')+1:]
	bad := 0
	for i, c := range conns {
		p, err := c.Do("CONFIG", "GET", "port")
		v, err2 := c.Do("GET", fmt.Sprintf("shared-%d", i))
		if err != nil || err2 != nil || p != "port\n"+port || v != "here" {
			if bad < 3 {
				t.Errorf("shared idle client %d after the failover: port %q %v, key %q %v (want %s, here)", i, p, err, v, err2, port)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d shared idle clients did not carry over", bad, len(conns))
	}
}

// TestMultiplexSlowReaderBlocksNobody: a client that pipelines reads of 20 MB of replies and never reads
// them stops being read itself; the clients sharing its connection go on.
func TestMultiplexSlowReaderBlocksNobody(t *testing.T) {
	topo := newTopology(t, 1)
	p := startProxy(t, multiplexed(testConfig(t, topo, topo.Name)))
	master := topo.Nodes[0].Addr
	waitRoutedTo(t, p.master, master, 10*time.Second)
	if _, err := redistest.Do(master, testPassword, "SET", "v", strings.Repeat("x", 10<<10)); err != nil {
		t.Fatal(err)
	}
	slow, err := net.Dial("tcp", p.master)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	pipeline := fmt.Sprintf("AUTH %s\r\n", testPassword) + strings.Repeat("GET v\r\n", 2000)
	go func() { _, _ = slow.Write([]byte(pipeline)) }() // it may block: the proxy stops reading it
	time.Sleep(200 * time.Millisecond)

	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := redistest.Dial(p.master, testPassword)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := 0; j < 100; j++ {
				if r, err := c.DoWithin(5*time.Second, "GET", "v"); err != nil || len(r) != 10<<10 {
					errs <- fmt.Errorf("client %d GET %d: %d bytes, %v", i, j, len(r), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestMultiplexLongScriptHoldsNobody: a client that shares a connection with one running a long script
// gets Redis's answer (-BUSY past busy-reply-threshold) as a client of its own would, not the script's
// end; and SCRIPT KILL gets through.
func TestMultiplexLongScriptHoldsNobody(t *testing.T) {
	topo := newTopology(t, 1)
	p := startProxy(t, multiplexed(testConfig(t, topo, topo.Name)))
	master := topo.Nodes[0].Addr
	waitRoutedTo(t, p.master, master, 10*time.Second)
	if r, err := redistest.Do(master, testPassword, "CONFIG", "SET", "busy-reply-threshold", "50"); err != nil || r != "OK" {
		t.Fatalf("CONFIG SET: %q %v", r, err)
	}
	script, err := redistest.Dial(p.master, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer script.Close()
	other, err := redistest.Dial(p.master, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Do("PING"); err != nil { // on the shared connection
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		// Read-only, so SCRIPT KILL may stop it; it would run 20 s otherwise.
		_, err := script.DoWithin(30*time.Second, "EVAL", "local t = redis.call('TIME') local e = tonumber(t[1]) + 20 "+
			"repeat t = redis.call('TIME') until tonumber(t[1]) >= e return 1", "0")
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	_, err = other.DoWithin(5*time.Second, "PING")
	if err == nil || !strings.HasPrefix(err.Error(), "BUSY") || time.Since(start) > 2*time.Second {
		t.Fatalf("PING while a script runs: %v after %s, want -BUSY at once", err, time.Since(start))
	}
	killer, err := redistest.Dial(p.master, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close()
	if r, err := killer.DoWithin(5*time.Second, "SCRIPT", "KILL"); err != nil || r != "OK" {
		t.Fatalf("SCRIPT KILL: %q %v", r, err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("the script: %v, want it killed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the script was not killed")
	}
}
