package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/netlab"
)

// timings are how long the scenarios keep the network broken.
type timings struct {
	hold      time.Duration // scenarios 1–4: one cut, then heal
	flapFor   time.Duration // scenario 5: cut and heal alternately this long
	flapEvery time.Duration // scenario 5: each cut, and each healed spell, lasts this long
}

// scenario is one way of partitioning the network. act makes the cuts, waits, and heals everything.
type scenario struct {
	name  string
	about string
	act   func(b *bed, t timings) error
}

func scenarios() []scenario {
	hosts := func(hs ...*netlab.Host) []*netlab.Host { return hs }
	return []scenario{
		{name: "split", about: "{h1,hp} | {h2,h3}: the majority promotes a replica; the proxy still reaches the old master",
			act: func(b *bed, t timings) error {
				return holdCut(b, t.hold, func() error { return b.cut(hosts(b.h1, b.hp), hosts(b.h2, b.h3)) })
			}},
		// The Sentinels share hosts with the data nodes, so "the proxy cannot reach any Sentinel but
		// reaches every data node" is a cut of the Sentinel ports only. Giving the Sentinels hosts of
		// their own instead would change what every other scenario cuts.
		{name: "sentinels", about: "hp | every Sentinel (Sentinel ports only; data nodes reachable): no failover should happen",
			act: func(b *bed, t timings) error {
				return holdCut(b, t.hold, func() error { return b.cutPorts(hosts(b.hp), hosts(b.h1, b.h2, b.h3), sentinelPorts()...) })
			}},
		{name: "isolate", about: "h1 | {h2,h3,hp}: the master alone; the proxy is with the majority",
			act: func(b *bed, t timings) error {
				return holdCut(b, t.hold, func() error { return b.cut(hosts(b.h1), hosts(b.h2, b.h3, b.hp)) })
			}},
		{name: "replicas", about: "h1 | {h2,h3}, hp reaches everyone: the majority promotes a replica; both masters reachable",
			act: func(b *bed, t timings) error {
				return holdCut(b, t.hold, func() error { return b.cut(hosts(b.h1), hosts(b.h2, b.h3)) })
			}},
		{name: "flap", about: "the split's cut made and healed alternately",
			act: func(b *bed, t timings) error {
				end := time.Now().Add(t.flapFor)
				for time.Now().Before(end) {
					if err := holdCut(b, t.flapEvery, func() error { return b.cut(hosts(b.h1, b.hp), hosts(b.h2, b.h3)) }); err != nil {
						return err
					}
					time.Sleep(t.flapEvery)
				}
				return nil
			}},
	}
}

// holdCut makes a cut, keeps it for d and heals it. A failed heal would leave the lab cut for the rest
// of the run, so it is retried once.
func holdCut(b *bed, d time.Duration, cut func() error) error {
	if err := cut(); err != nil {
		return err
	}
	time.Sleep(d)
	if err := b.heal(); err != nil {
		if err2 := b.heal(); err2 != nil {
			return fmt.Errorf("heal: %w", err)
		}
	}
	return nil
}

// pickScenarios selects by name or by number (1 = split, ...), comma-separated.
func pickScenarios(list string) ([]scenario, error) {
	all := scenarios()
	var out []scenario
	for _, want := range strings.Split(list, ",") {
		want = strings.TrimSpace(want)
		found := false
		for i, s := range all {
			if s.name == want || strconv.Itoa(i+1) == want {
				out = append(out, s)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown scenario %q (have split, sentinels, isolate, replicas, flap or 1-5)", want)
		}
	}
	return out, nil
}
