package server

import (
	"fmt"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
)

// applyRoutes gives each listener its new route and closes the sessions of backends that left a pool:
// a client of the master port must never keep writing to a demoted master. It returns how many master
// sessions it closed per group. It runs on the router's goroutine.
func (rt *proxyRuntime) applyRoutes(prev, next *routing.Snapshot) map[string]int {
	rt.mu.Lock()
	all := append([]*ports(nil), rt.ports...)
	rt.mu.Unlock()
	closed := map[string]int{}
	for _, g := range all {
		ng := next.Group(g.name)
		if ng == nil {
			continue
		}
		pg := prev.Group(g.name)
		route := proxy.Route{Refusal: fmt.Sprintf("no verified master for %q (%s)", g.name, ng.NoMasterReason)}
		if ng.Master != "" {
			route = proxy.Route{Backends: []string{ng.Master}}
		}
		g.master.SetRoute(route)
		if g.replica != nil {
			route := proxy.Route{Backends: ng.Replicas,
				Refusal: fmt.Sprintf("no healthy replica and no verified master for %q", g.name)}
			g.replica.SetRoute(route)
		}
		oldMaster, oldReplicas := routing.Departed(pg, ng)
		if pg != nil && pg.Master != "" && ng.Master != "" && pg.Master != ng.Master {
			// Sentinel now turns every replica to the new master, and the old master when it is back (or,
			// when Sentinels flap, the one just routed), closing their clients with it.
			g.master.MasterChanged()
			if g.replica != nil {
				g.replica.MasterChanged()
			}
		}
		// In resp mode a retired session is not closed: it moves to the new backend, which its listener
		// logs (sessions_moved), and it is not counted as closed on the switch.
		resp := g.mode == "resp"
		for _, addr := range oldMaster {
			if n := g.master.RetireBackend(addr); !resp {
				closed[g.name] += n
			}
		}
		if g.replica != nil {
			for _, addr := range oldReplicas {
				n := g.replica.RetireBackend(addr)
				switch {
				case n == 0, resp:
				default:
					rt.log.Info().Str("event", "sessions_closed").Str("group", g.name).Str("listener", g.replica.Name).
						Str("backend", addr).Int("sessions_closed", n).Msg("closed the sessions of a node that left the replica pool")
				}
			}
		}
	}
	return closed
}
