package main

import (
	"os"
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

// TestEveryOSFileHasASibling: a file for one system (name_linux.go, name_unix.go) has a sibling for the
// others (name_other.go) and the other way round, so that the module builds everywhere (make lint
// builds for macOS and vets for FreeBSD) and what a system lacks is said in one place.
func TestEveryOSFileHasASibling(t *testing.T) {
	out, err := exec.Command("git", "ls-files", "*.go").Output()
	if err != nil {
		t.Skipf("git ls-files: %v", err)
	}
	files := map[string]bool{}
	for _, f := range strings.Fields(string(out)) {
		files[f] = true
	}
	for f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue // a test of one system's code needs no sibling
		}
		stem, found := "", false
		for _, suffix := range []string{"_linux.go", "_unix.go"} {
			if s, ok := strings.CutSuffix(f, suffix); ok {
				stem, found = s, true
			}
		}
		if found && !files[stem+"_other.go"] {
			t.Errorf("%s has no sibling %s_other.go", f, stem)
		}
		if s, ok := strings.CutSuffix(f, "_other.go"); ok && !files[s+"_linux.go"] && !files[s+"_unix.go"] {
			t.Errorf("%s is the sibling of nothing (%s_linux.go or %s_unix.go)", f, s, s)
		}
	}
}

// TestUnitCoversEveryPackage: make unit runs the tests of every package of the product (the tests
// that need Redis skip themselves there); only the end-to-end tests, the benchmarks and the test
// harnesses are left to make test.
func TestUnitCoversEveryPackage(t *testing.T) {
	makefile, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(makefile), "\n") {
		if rest, ok := strings.CutPrefix(line, "UNIT_PKGS :="); ok {
			patterns = strings.Fields(rest)
		}
	}
	if len(patterns) == 0 {
		t.Fatal("no UNIT_PKGS in the Makefile")
	}
	covered := map[string]bool{}
	for _, pkg := range ourPackages(t, patterns...) {
		covered[pkg] = true
	}
	notProduct := []string{"test", "bench", "netlab", "redistest", "demo"}
	for _, pkg := range ourPackages(t, "./...") {
		if !covered[pkg] && !withinAny(pkg, notProduct) {
			t.Errorf("make unit leaves out %q: add it to UNIT_PKGS", pkg)
		}
	}
}

// ourPackages lists the packages of this module the patterns name, relative to the module ("" for main).
func ourPackages(t *testing.T, patterns ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, patterns...)...).Output()
	if err != nil {
		t.Fatalf("go list %v: %v", patterns, err)
	}
	var pkgs []string
	for _, path := range strings.Fields(string(out)) {
		pkgs = append(pkgs, strings.TrimPrefix(strings.TrimPrefix(path, mod), "/"))
	}
	return pkgs
}
