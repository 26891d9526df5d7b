package main

import (
	"fmt"
	"strings"
)

// Path is one way the suite reaches the master.
type Path struct {
	Name    string
	Proxied bool // through a sentinel-proxy process
	// Master is added to the proxy's [[masters]] block: how its sessions are served.
	Master string
}

// KnownPaths lists every path -via accepts, direct first: it is what the others are compared with. A
// session mode of the proxy is one more entry here.
func KnownPaths() []Path {
	return []Path{
		{Name: "direct"},
		{Name: "tcp", Proxied: true, Master: `mode = "tcp"`},   // the byte forwarder
		{Name: "resp", Proxied: true, Master: `mode = "resp"`}, // sessions that read RESP (proxy/respsession)
		// resp sessions sharing backend connections
		{Name: "multiplex", Proxied: true, Master: "mode = \"resp\"\nmultiplex = true"},
		// resp sessions whose writes are confirmed by the topology's replica before their reply (WAIT)
		{Name: "durable", Proxied: true, Master: "mode = \"resp\"\nwait_replicas = 1"},
	}
}

// ParsePaths turns -via's comma-separated names into paths, in KnownPaths' order; "all" is every path.
func ParsePaths(list string) ([]Path, error) {
	known := KnownPaths()
	want := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if name == "all" {
			return known, nil
		}
		found := false
		for _, p := range known {
			found = found || p.Name == name
		}
		if !found {
			return nil, fmt.Errorf("-via: unknown path %q (known: %s)", name, pathNames(known))
		}
		want[name] = true
	}
	var paths []Path
	for _, p := range known {
		if want[p.Name] {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("-via: no path given (known: %s)", pathNames(known))
	}
	return paths, nil
}

func pathNames(paths []Path) string {
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}
