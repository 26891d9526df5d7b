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
	// proxies are the hosts a proxy runs on, each with writers of its own; nil is hp alone.
	proxies []string
	// downAfter is the Sentinels' down-after-milliseconds for this scenario; zero is the runner's.
	downAfter time.Duration
	act       func(b *bed, t timings) error
}

// proxyHosts are the hosts the scenario runs a proxy on.
func (sc scenario) proxyHosts() []string {
	if len(sc.proxies) == 0 {
		return []string{"hp"}
	}
	return sc.proxies
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
		// Scenario 1 with a fleet: hp is cut as in split, with a second proxy beside it, and a third
		// with the majority. Whether the fleet agrees is what it shows: the two beside the old master
		// fence, the third follows the failover, and no two nodes take writes through the fleet at once.
		// That needs the fence to close before the majority can promote a replica: the fence closes
		// about replica_timeout (3 s) after the cut, a promotion comes down-after and an election
		// after it. With the other scenarios' 2 s the two race, both at about +2.5 s: in one run of
		// five, hq wrote to the new master from +2.5 s while hp and hp2 fenced at +2.9 s, and both
		// masters took writes through the fleet in between. 5 s leaves the fence two seconds.
		{name: "split-fleet", about: "{h1,hp,hp2} | {h2,h3,hq}: scenario 1 with a proxy on each of hp, hp2 and hq, writers through each",
			proxies: []string{"hp", "hp2", "hq"}, downAfter: 5 * time.Second,
			act: func(b *bed, t timings) error {
				return holdCut(b, t.hold, func() error { return b.cut(b.hosts("h1", "hp", "hp2"), b.hosts("h2", "h3", "hq")) })
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

// pickScenarios selects by name or by number (1 = split, ..., 6 = split-fleet), comma-separated.
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
			return nil, fmt.Errorf("unknown scenario %q (have %s or 1-%d)", want, scenarioNames(all), len(all))
		}
	}
	return out, nil
}

// scenarioNames lists the scenarios' names, comma-separated, in order.
func scenarioNames(scs []scenario) string {
	names := make([]string, len(scs))
	for i, s := range scs {
		names[i] = s.name
	}
	return strings.Join(names, ",")
}
