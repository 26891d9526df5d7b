package server

import (
	"context"
	"fmt"

	"github.com/sentinel-proxy/sentinel-proxy/routing"
	"github.com/sentinel-proxy/sentinel-proxy/stats"
)

var _ stats.Control = (*control)(nil)

// control carries the stats page's admin actions to the router and to the listeners groups returns (the
// groups in force: a reload changes them). ctx is the proxy's: an action waits for the router no longer
// than the proxy runs.
type control struct {
	ctx    context.Context
	router *routing.Router
	groups func() []stats.GroupPorts
}

func newControl(ctx context.Context, router *routing.Router, groups func() []stats.GroupPorts) *control {
	return &control{ctx: ctx, router: router, groups: groups}
}

func (c *control) SetAdminState(ctx context.Context, node string, st routing.AdminState) error {
	done := make(chan struct{})
	c.router.Submit(ctx, routing.AdminInput{Node: node, State: st, Done: done})
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("set %s to %s: %w", node, st, ctx.Err())
	case <-c.ctx.Done():
		return fmt.Errorf("set %s to %s: proxy shutting down", node, st)
	}
	if st == routing.AdminMaint {
		// The route change closed the node's sessions if it was in a pool; a session that was being
		// admitted to it at that moment is closed here.
		c.KillSessions(node)
	}
	return nil
}

func (c *control) KillSessions(node string) int {
	n := 0
	for _, g := range c.groups() {
		if g.Master != nil {
			n += g.Master.CloseSessionsTo(node)
		}
		if g.Replica != nil {
			n += g.Replica.CloseSessionsTo(node)
		}
	}
	return n
}
