package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// line is one run's summary, printed as it finishes.
func line(r result) string {
	return fmt.Sprintf("%-9s %-15s run %d: acked=%d (%s) lost=%d (%s) lost_acked=%s longest_gap=%s errors=%d noreplicas=%d dual_buckets=%d failovers=%s final=%s fenced=%s took=%s",
		r.scenario, r.path, r.run, r.acked, byHost(r.ackedBy), r.lost, byHost(r.lostBy), lostWhen(r), gap(r), r.errors, r.unconfirmed,
		r.dualBuckets, failovers(r), r.finalMaster, fence(r), r.took.Round(time.Second))
}

// table prints the markdown table, one row per run.
func table(w io.Writer, rs []result) {
	fmt.Fprintln(w, "| scenario | path | run | acked writes | acked and lost | lost writes acked (ms from cut, first / last) | longest write gap (starts at, ms from cut) | errors (of them NOREPLICAS) | 100 ms buckets with acks from >1 node | failovers (`+switch-master`) | final master | cut → first `master_fenced` (fenced / unfenced lines) | run time |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %s | %d | %d | %d (%s) | %s | %s | %d (%d) | %d | %s | %s | %s | %s |\n",
			r.scenario, r.path, r.run, r.acked, r.lost, percent(r.lost, r.acked), lostWhen(r), gap(r), r.errors, r.unconfirmed,
			r.dualBuckets, failovers(r), r.finalMaster, fence(r), r.took.Round(time.Second))
	}
}

// failovers is the number of failovers, marked when a Sentinel was in TILT during the run.
func failovers(r result) string {
	if r.tilts > 0 {
		return fmt.Sprintf("%d (Sentinel TILT ×%d)", r.switches, r.tilts)
	}
	return fmt.Sprintf("%d", r.switches)
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
