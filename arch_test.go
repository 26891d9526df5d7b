package main

import (
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const mod = "github.com/sentinel-proxy/sentinel-proxy"

// TestImportsFlowOneWay keeps the package graph as docs/architecture.md draws it: the forwarder and
// the probes know nothing of Sentinel or routing, and only server wires everything together.
func TestImportsFlowOneWay(t *testing.T) {
	// What each package, and every package below it, may import of ours, directly or not. An entry
	// allows the packages below it too (proxy allows proxy/...).
	allowed := map[string][]string{
		"config":    nil,
		"resp":      nil, // the RESP protocol: every package that reads or writes it goes through it
		"check":     {"resp"},
		"proxy":     {"resp"},
		"sentinel":  {"resp"},
		"redistest": {"resp"},
		"routing":   {"check", "resp", "sentinel"},
		"stats":     {"check", "proxy", "resp", "routing", "sentinel"},
		// A switchover reads routing snapshots (whose types come from check and sentinel) and is handed
		// everything else: credentials by server, not config; the proxy's hold through an interface, not
		// proxy. Only server wires it to the router and the listeners.
		"switchover": {"check", "resp", "routing", "sentinel"},
	}
	// The forwarder is told routes and "close the sessions to X": it must never follow Sentinel or decide.
	forbidden := map[string][]string{
		"proxy":      {"routing", "sentinel"},
		"switchover": {"config", "proxy", "stats", "server"},
	}
	for pkg, ok := range allowed {
		deps := ourDeps(t, "-deps", "./"+pkg+"/...")
		for _, dep := range deps {
			if !within(dep, pkg) && !withinAny(dep, ok) {
				t.Errorf("%s imports %s; allowed: %v", pkg, dep, ok)
			}
		}
		for _, dep := range deps {
			if withinAny(dep, forbidden[pkg]) {
				t.Errorf("%s imports %s, which it must never know", pkg, dep)
			}
		}
	}
}

// TestOnlyServerWiresEverything: server is the one package that brings config, the probes, the
// Sentinels, the router, the forwarder and the stats page together; main is the command line on top of
// it and imports nothing else of ours.
func TestOnlyServerWiresEverything(t *testing.T) {
	everything := []string{"config", "check", "sentinel", "routing", "proxy", "stats"}
	out, err := exec.Command("go", "list", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, path := range strings.Fields(string(out)) {
		pkg := strings.TrimPrefix(strings.TrimPrefix(path, mod), "/")
		if pkg == "" {
			continue // main: through server (below)
		}
		deps := ourDeps(t, "-deps", "./"+pkg)
		all := true
		for _, want := range everything {
			found := false
			for _, dep := range deps {
				found = found || within(dep, want)
			}
			all = all && found
		}
		switch {
		case pkg == "server" && !all:
			t.Errorf("server imports %v; it must wire all of %v", deps, everything)
		case pkg != "server" && all:
			t.Errorf("%s imports all of %v: only server wires everything", pkg, everything)
		}
	}
	direct := ourDeps(t, ".") // main's own imports: everything else comes through server
	for _, dep := range direct {
		if dep != "config" && dep != "server" {
			t.Errorf("main imports %s; it may import only config and server of ours", dep)
		}
	}
}

// ourDeps lists the packages of this module that go list reports for args: with -deps every package
// the named ones need, directly or not; without, the named package's own imports.
func ourDeps(t *testing.T, args ...string) []string {
	t.Helper()
	format := "{{join .Imports \"\\n\"}}"
	if args[0] == "-deps" {
		format = "{{.ImportPath}}"
	}
	out, err := exec.Command("go", append([]string{"list", "-f", format}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	var ours []string
	for _, dep := range strings.Fields(string(out)) {
		if rest, found := strings.CutPrefix(dep, mod+"/"); found {
			ours = append(ours, rest)
		}
	}
	sort.Strings(ours)
	return ours
}

// within reports whether pkg is base or a package below it.
func within(pkg, base string) bool {
	return pkg == base || strings.HasPrefix(pkg, base+"/")
}

func withinAny(pkg string, bases []string) bool {
	for _, b := range bases {
		if within(pkg, b) {
			return true
		}
	}
	return false
}
