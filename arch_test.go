package main

import (
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// TestImportsFlowOneWay keeps the package graph as docs/architecture.md draws it: the forwarder and
// the probes know nothing of Sentinel or routing, and only main wires everything together.
func TestImportsFlowOneWay(t *testing.T) {
	const mod = "github.com/sentinel-proxy/sentinel-proxy"
	allowed := map[string][]string{
		"config":          nil,
		"check":           nil,
		"resp":            nil,
		"proxy":           {"resp"},
		"proxy/eventloop": nil,
		"proxy/pipe":      {"proxy", "proxy/eventloop", "resp"},
		"sentinel":        nil,
		"redistest":       nil,
		"routing":         {"check", "sentinel"},
		"stats":           {"check", "proxy", "resp", "routing", "sentinel"},
	}
	for pkg, ok := range allowed {
		out, err := exec.Command("go", "list", "-deps", "./"+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		var ours []string
		for _, dep := range strings.Fields(string(out)) {
			if rest, found := strings.CutPrefix(dep, mod+"/"); found && rest != pkg {
				ours = append(ours, rest)
			}
		}
		sort.Strings(ours)
		for _, dep := range ours {
			if !contains(ok, dep) {
				t.Errorf("%s imports %s; allowed: %v", pkg, dep, ok)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
