package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/redistest"
	"github.com/sentinel-proxy/sentinel-proxy/server"
)

// tlsPort returns the TLS port of the node that answers through addr.
func tlsPort(addr string, tc *tls.Config) (string, error) {
	r, err := redistest.DoTLS(addr, testPassword, tc, "CONFIG", "GET", "tls-port")
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(r), "\n")
	return "127.0.0.1:" + strings.TrimSpace(lines[len(lines)-1]), nil
}

// TestTLSOnEveryHop runs real redis-server and redis-sentinel that speak only TLS and require client
// certificates, and a proxy that terminates mutual TLS from clients, speaks TLS to the nodes (probes
// and sessions) and to the Sentinels — through a failover.
func TestTLSOnEveryHop(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { tlsOnEveryHop(t, mode) })
	}
}

func tlsOnEveryHop(t *testing.T, mode string) {
	pki, err := redistest.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	topo := redistest.New(t, redistest.Options{Replicas: 1, Sentinels: 3, Password: testPassword, TLS: pki})
	doc := testConfigDoc(t, topo, topo.Name)
	dialTLS := fmt.Sprintf("enabled = true\nca_file = %q\ncert_file = %q\nkey_file = %q\n", pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile)
	doc = strings.Replace(doc, "[redis]\n", "[sentinel.tls]\n"+dialTLS+"[redis]\n", 1)
	doc = strings.Replace(doc, "[check]\n", "[redis.tls]\n"+dialTLS+"[check]\n", 1)
	doc = strings.Replace(doc, "[stats]\n", fmt.Sprintf("[masters.tls]\ncert_file = %q\nkey_file = %q\nclient_ca_file = %q\nmin_version = \"1.2\"\n[stats]\n",
		pki.ServerCertFile, pki.ServerKeyFile, pki.CAFile), 1)
	cfg, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	p := startProxyWith(t, inMode(cfg, mode), server.Options{})
	client := pki.ClientConfig()
	master := topo.Nodes[0].Addr
	routedTo := func(addr, node string) {
		t.Helper()
		if err := redistest.Eventually(15*time.Second, func() error {
			got, err := tlsPort(addr, client)
			if err != nil || got != node {
				return fmt.Errorf("served by %s (%v), want %s", got, err, node)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	routedTo(p.master, master)
	routedTo(p.replica, topo.Nodes[1].Addr)
	if r, err := redistest.DoTLS(p.master, testPassword, client, "SET", "over-tls", "yes"); err != nil || r != "OK" {
		t.Fatalf("SET through TLS: %q %v", r, err)
	}

	// Without a client certificate, or in plain text, a client gets nowhere.
	noCert := &tls.Config{RootCAs: client.RootCAs, MinVersion: tls.VersionTLS12}
	if _, err := redistest.DoTLS(p.master, testPassword, noCert, "PING"); err == nil {
		t.Errorf("a client without a certificate was served")
	}
	if _, err := redistest.Do(p.master, testPassword, "PING"); err == nil {
		t.Errorf("a plain-text client was served")
	}
	old13 := &tls.Config{RootCAs: client.RootCAs, Certificates: client.Certificates, MaxVersion: tls.VersionTLS11}
	if _, err := redistest.DoTLS(p.master, testPassword, old13, "PING"); err == nil {
		t.Errorf("a TLS 1.1 client was served despite min_version 1.2")
	}

	// Failover: events and views come over TLS from the Sentinels, probes over TLS to the nodes.
	conn, err := redistest.DialTLS(p.master, testPassword, client)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := topo.Failover(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	routedTo(p.master, topo.Nodes[1].Addr)
	if mode == "tcp" {
		if r, err := conn.Do("PING"); err == nil {
			t.Errorf("a TLS session to the demoted master still answers: %q", r)
		}
	} else if info, err := conn.Do("INFO", "server"); err != nil {
		t.Errorf("resp mode: the TLS session did not move to the new master: %v", err)
	} else if node, _ := nodeOf(info); node != topo.Nodes[1].Addr {
		t.Errorf("resp mode: the TLS session is on %s, want the new master %s", node, topo.Nodes[1].Addr)
	}
	if v, err := redistest.DoTLS(p.master, testPassword, client, "GET", "over-tls"); err != nil || v != "yes" {
		t.Errorf("GET on the new master: %q %v", v, err)
	}
	if !strings.Contains(p.logs.String(), `"event":"master_switched"`) {
		t.Errorf("no master_switched")
	}
	for _, l := range statsJSON(t, p).Groups[0].Listeners {
		if l.Role == "master" && l.HandshakeErrors < 3 {
			t.Errorf("the three refused clients must count as handshake errors: %d", l.HandshakeErrors)
		}
	}
	if err := redistest.Eventually(30*time.Second, func() error {
		var out bytes.Buffer
		if err := server.Check(context.Background(), cfg, &out); err != nil {
			return fmt.Errorf("%v\n%s", err, out.String())
		}
		return nil
	}); err != nil {
		t.Errorf("check over TLS: %v", err)
	}
}
