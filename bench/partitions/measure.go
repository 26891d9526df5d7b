package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/redistest"
)

// bucket is the width of the intervals in which acknowledgements by two different nodes count as
// simultaneous: two nodes acknowledging writes within the same 100 ms means two masters took writes.
const bucket = 100 * time.Millisecond

// result is what one run of one scenario on one path measured. Times are relative to the first cut.
type result struct {
	scenario, path string
	run            int
	took           time.Duration // the whole run, lab to lab removal

	acked, lost, errors int
	unconfirmed         int           // of the errors, NOREPLICAS (wait_replicas)
	lostFirst, lostLast time.Duration // when the first and last lost writes were acknowledged
	gap, gapAt          time.Duration // the longest time without an acknowledgement, and when it began
	dualBuckets         int           // 100 ms buckets with acknowledgements from more than one node
	ackedBy, lostBy     map[string]int
	switches            int           // distinct +switch-master announcements: failovers that completed
	failoverAt          time.Duration // the first +switch-master, from the cut
	haveFailover        bool
	tilts               int    // +tilt events: a Sentinel whose timer stalled, so the run is disturbed
	finalMaster         string // host of the master after healing

	firstOnFinal time.Duration // from the cut to the first write the final master acknowledged after it
	haveOnFinal  bool
	healed       time.Duration // from the cut to the first heal

	fenced, unfenced int           // sentinel-proxy master_fenced / master_unfenced log lines
	firstFenced      time.Duration // from the cut to the first master_fenced
	haveFenced       bool
	isProxy          bool // sentinel-proxy: the fence columns apply

	notes []string // what went wrong without spoiling the measurement

	// proxyHost is where the proxy ran; empty for a fleet's result, which is over every proxy's writers
	// and has one result per proxy in fleet.
	proxyHost string
	fleet     []result

	// The raw material, for the in-repo test's assertions.
	acks, lostAcks []redistest.Ack
	cut            time.Time
	final          string // the final master's address
}

// measure fills in what the writers saw, against the final master.
func measure(r *result, b *bed, res *redistest.LoadResult, lost []redistest.Ack, cut time.Time, final string) {
	r.acked, r.lost, r.errors, r.unconfirmed = len(res.Acks), len(lost), res.Errors, res.Unconfirmed
	r.acks, r.lostAcks, r.cut = res.Acks, lost, cut
	if a, ok := res.FirstAckBy(final, cut); ok {
		r.firstOnFinal, r.haveOnFinal = a.At.Sub(cut), true
	}
	r.ackedBy, r.lostBy = map[string]int{}, map[string]int{}
	for _, a := range res.Acks {
		r.ackedBy[b.hostOf(a.Node)]++
	}
	for i, a := range lost {
		r.lostBy[b.hostOf(a.Node)]++
		if at := a.At.Sub(cut); i == 0 || at < r.lostFirst {
			r.lostFirst = at
		}
		if at := a.At.Sub(cut); i == 0 || at > r.lostLast {
			r.lostLast = at
		}
	}
	gap, from := res.LongestGap()
	r.gap, r.gapAt = gap, from.Sub(cut)
	r.dualBuckets = dualBuckets(res.Acks, cut)
}

// mergeLoads is what the writers of every load saw, as if one load: a fleet's writers.
func mergeLoads(loads []*redistest.LoadResult) *redistest.LoadResult {
	all := &redistest.LoadResult{}
	for _, l := range loads {
		all.Acks = append(all.Acks, l.Acks...)
		all.Errors += l.Errors
		all.Unconfirmed += l.Unconfirmed
		if l.End.After(all.End) {
			all.End = l.End
		}
	}
	sort.SliceStable(all.Acks, func(i, j int) bool { return all.Acks[i].At.Before(all.Acks[j].At) })
	return all
}

// mergeLost is the lost writes of every member of a fleet, in the order they were acknowledged.
func mergeLost(members []result) []redistest.Ack {
	var lost []redistest.Ack
	for _, m := range members {
		lost = append(lost, m.lostAcks...)
	}
	sort.SliceStable(lost, func(i, j int) bool { return lost[i].At.Before(lost[j].At) })
	return lost
}

// fleetFence sums the members' fence log lines into the fleet's result; its first fence is the
// earliest of theirs.
func fleetFence(r *result, members []result) {
	for _, m := range members {
		r.fenced += m.fenced
		r.unfenced += m.unfenced
		if m.haveFenced && (!r.haveFenced || m.firstFenced < r.firstFenced) {
			r.firstFenced, r.haveFenced = m.firstFenced, true
		}
	}
}

// dualBuckets counts the 100 ms intervals, aligned on the cut, in which more than one node
// acknowledged writes.
func dualBuckets(acks []redistest.Ack, cut time.Time) int {
	nodes := map[int64]map[string]bool{}
	for _, a := range acks {
		k := bucketOf(a.At, cut)
		if nodes[k] == nil {
			nodes[k] = map[string]bool{}
		}
		nodes[k][a.Node] = true
	}
	n := 0
	for _, set := range nodes {
		if len(set) > 1 {
			n++
		}
	}
	return n
}

// bucketOf is the index of the interval holding t; negative before the cut.
func bucketOf(t, cut time.Time) int64 {
	d := t.Sub(cut)
	k := int64(d / bucket)
	if d < 0 && d%bucket != 0 {
		k-- // round toward minus infinity, so the bucket just before the cut is -1, not 0
	}
	return k
}

// switches counts the distinct +switch-master announcements (each Sentinel repeats the same one).
func switches(events []redistest.SentinelEvent) int {
	seen := map[string]bool{}
	for _, e := range events {
		if e.Channel == "+switch-master" {
			seen[e.Payload] = true
		}
	}
	return len(seen)
}

// firstSwitch is when the first +switch-master was announced: when the first failover completed.
func firstSwitch(events []redistest.SentinelEvent) (time.Time, bool) {
	for _, e := range events {
		if e.Channel == "+switch-master" {
			return e.At, true
		}
	}
	return time.Time{}, false
}

// tilts counts the times a Sentinel entered TILT mode.
func tilts(events []redistest.SentinelEvent) int {
	n := 0
	for _, e := range events {
		if e.Channel == "+tilt" {
			n++
		}
	}
	return n
}

// fenceEvents reads sentinel-proxy's log for the fence feature's events.
func fenceEvents(r *result, logPath string, cut time.Time) error {
	f, err := os.Open(logPath)
	if err != nil {
		return fmt.Errorf("proxy log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		fenced := strings.Contains(line, `"event":"master_fenced"`)
		if !fenced && !strings.Contains(line, `"event":"master_unfenced"`) {
			continue
		}
		if !fenced {
			r.unfenced++
			continue
		}
		r.fenced++
		var ev struct {
			Time time.Time `json:"time"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Time.IsZero() {
			r.notes = append(r.notes, fmt.Sprintf("master_fenced line without a time: %s", line))
			continue
		}
		if d := ev.Time.Sub(cut); !r.haveFenced || d < r.firstFenced {
			r.firstFenced, r.haveFenced = d, true
		}
	}
	return sc.Err()
}

// writeTimeline writes, per 100 ms bucket and node, the acknowledgements and the lost ones among them:
// the raw material for a plot of who took writes when.
func writeTimeline(path string, b *bed, res *redistest.LoadResult, lost []redistest.Ack, cut time.Time) error {
	type key struct {
		k    int64
		node string
	}
	acks, losses := map[key]int{}, map[key]int{}
	for _, a := range res.Acks {
		acks[key{bucketOf(a.At, cut), b.hostOf(a.Node)}]++
	}
	for _, a := range lost {
		losses[key{bucketOf(a.At, cut), b.hostOf(a.Node)}]++
	}
	keys := make([]key, 0, len(acks))
	for k := range acks {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].k != keys[j].k {
			return keys[i].k < keys[j].k
		}
		return keys[i].node < keys[j].node
	})
	var out strings.Builder
	out.WriteString("ms_from_cut,node,acked,lost\n")
	for _, k := range keys {
		fmt.Fprintf(&out, "%d,%s,%d,%d\n", k.k*bucket.Milliseconds(), k.node, acks[k], losses[k])
	}
	return os.WriteFile(path, []byte(out.String()), 0o644)
}
