package main

import (
	"fmt"
	"slices"
)

// Confirm re-runs the units that hold regressions n more times, on fresh topologies, directly and on each
// path that had them. Some tests race with traffic that is not theirs (Sentinel's PINGs and hellos, the
// proxy's probes): one run alone cannot tell a proxy's fault from such luck. A test stays a regression
// when the proxy explains a failure of it (Disrupted), or when it passed directly every time and failed
// through the proxy every time; any other mix moves it to r.Flaky.
func Confirm(o Options, r *Report, n int) {
	if n <= 0 || len(r.Regressions) == 0 {
		return
	}
	var direct *Path
	for _, pr := range r.Runs {
		if !pr.Path.Proxied {
			direct = &pr.Path
		}
	}
	if direct == nil {
		return
	}
	sub := o
	sub.Units = nil
	for _, u := range o.Units {
		if slices.ContainsFunc(r.Regressions, func(reg Regression) bool { return reg.Test.Unit == u }) {
			sub.Units = append(sub.Units, u)
		}
	}
	for i := 1; i <= n; i++ {
		sub.Prefix = fmt.Sprintf("%sconfirm%d-", o.Prefix, i)
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "confirming: %d units again (%d of %d)\n", len(sub.Units), i, n)
		}
		again := outcomes(RunPath(sub, *direct))
		for _, pr := range r.Runs {
			if !pr.Path.Proxied || !slices.ContainsFunc(r.Regressions, func(reg Regression) bool { return reg.Path == pr.Path.Name }) {
				continue
			}
			via := outcomes(RunPath(sub, pr.Path))
			for j := range r.Regressions {
				reg := &r.Regressions[j]
				if reg.Path != pr.Path.Name {
					continue
				}
				reg.DirectRuns++
				if again[reg.key].test.Status == StatusOK {
					reg.DirectPassed++
				}
				reg.ProxyRuns++
				if v := via[reg.key]; v.test.Status != StatusOK {
					reg.ProxyFailed++
					reg.Disrupted = reg.Disrupted || v.disrupted
				}
			}
		}
	}
	var flaky []Regression
	r.Regressions, flaky = settle(r.Regressions)
	r.Flaky = append(r.Flaky, flaky...)
}

// settle splits regressions after re-runs into those that stay and the flaky ones.
func settle(regs []Regression) (kept, flaky []Regression) {
	for _, reg := range regs {
		if reg.Disrupted || reg.DirectPassed == reg.DirectRuns && reg.ProxyFailed == reg.ProxyRuns {
			kept = append(kept, reg)
		} else {
			flaky = append(flaky, reg)
		}
	}
	return kept, flaky
}
