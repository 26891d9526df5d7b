package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// line is one result's summary, printed as its run finishes.
func line(r result) string {
	return fmt.Sprintf("%-9s %-15s run %d: acked=%d (%s) lost=%d (%s) lost_acked=%s longest_gap=%s errors=%d noreplicas=%d dual_buckets=%d failovers=%s final=%s on_final=%s fenced=%s took=%s",
		r.scenario, r.path, r.run, r.acked, byHost(r.ackedBy), r.lost, byHost(r.lostBy), lostWhen(r), gap(r), r.errors, r.unconfirmed,
		r.dualBuckets, failovers(r), r.finalMaster, onFinal(r), fence(r), r.took.Round(time.Second))
}

// rows are the results in the order they are printed: a fleet's own, over all its proxies' writers,
// then one per proxy.
func rows(rs []result) []result {
	var out []result
	for _, r := range rs {
		out = append(out, r)
		out = append(out, r.fleet...)
	}
	return out
}

// table prints the markdown table, one row per run, and for a fleet's run one more per proxy.
func table(w io.Writer, rs []result) {
	fmt.Fprintln(w, "| scenario | path | run | acked writes | acked and lost | lost writes acked (ms from cut, first / last) | longest write gap (starts at, ms from cut) | errors (of them NOREPLICAS) | 100 ms buckets with acks from >1 node | failovers (`+switch-master`) | final master | cut → first write on it (heal at) | cut → first `master_fenced` (fenced / unfenced lines) | run time |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows(rs) {
		fmt.Fprintf(w, "| %s | %s | %d | %d | %d (%s) | %s | %s | %d (%d) | %d | %s | %s | %s | %s | %s |\n",
			r.scenario, r.path, r.run, r.acked, r.lost, percent(r.lost, r.acked), lostWhen(r), gap(r), r.errors, r.unconfirmed,
			r.dualBuckets, failovers(r), r.finalMaster, onFinal(r), fence(r), r.took.Round(time.Second))
	}
}

// onFinal is when the final master acknowledged its first write after the cut, and when the cut was
// healed: a proxy that follows the failover writes there before the heal, a fenced one after.
func onFinal(r result) string {
	first := "-"
	if r.haveOnFinal {
		first = fmt.Sprintf("%+d ms", r.firstOnFinal.Milliseconds())
	}
	return fmt.Sprintf("%s (%+d ms)", first, r.healed.Milliseconds())
}

// failovers is the number of failovers and when the first completed, marked when a Sentinel was in
// TILT during the run.
func failovers(r result) string {
	s := fmt.Sprintf("%d", r.switches)
	if r.haveFailover {
		s += fmt.Sprintf(" (first %+d ms)", r.failoverAt.Milliseconds())
	}
	if r.tilts > 0 {
		s += fmt.Sprintf(" (Sentinel TILT ×%d)", r.tilts)
	}
	return s
}

func percent(n, of int) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f %%", 100*float64(n)/float64(of))
}

func lostWhen(r result) string {
	if r.lost == 0 {
		return "-"
	}
	return fmt.Sprintf("%+d / %+d", r.lostFirst.Milliseconds(), r.lostLast.Milliseconds())
}

func gap(r result) string {
	return fmt.Sprintf("%s (%+d)", r.gap.Round(time.Millisecond), r.gapAt.Milliseconds())
}

func fence(r result) string {
	if !r.isProxy {
		return "n/a"
	}
	first := "-"
	if r.haveFenced {
		first = fmt.Sprintf("%+d ms", r.firstFenced.Milliseconds())
	}
	return fmt.Sprintf("%s (%d / %d)", first, r.fenced, r.unfenced)
}

// byHost prints counts per host in host order: "h1 1200, h2 300".
func byHost(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
