package stats

import (
	"sync"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/proxy/respsession"
)

// unconfirmedRecent is how long after writes last went unconfirmed the page still flags them: as long
// as the SentinelProxyWritesUnconfirmed alert's window and its `for` together, so that the page shows
// what an alert fired for.
const unconfirmedRecent = 5 * time.Minute

// DurabilityView is a resp-mode group's durable acknowledgements (`wait_replicas`): the setting, and
// what the master port's sessions counted since the proxy started.
type DurabilityView struct {
	WaitReplicas  int     `json:"wait_replicas"` // 0: off, replies pass as Redis gives them
	WaitTimeoutMS float64 `json:"wait_timeout_ms"`
	Waiting       int64   `json:"writes_waiting"`     // write replies held for a WAIT now
	Confirmed     uint64  `json:"writes_confirmed"`   // write replies a WAIT confirmed
	Unconfirmed   uint64  `json:"writes_unconfirmed"` // write replies the client got as NOREPLICAS instead
	Waits         uint64  `json:"waits"`              // WAITs answered
	// ReplicasAcked is what the last WAIT answered: how many replicas had the writes; -1 before the first.
	ReplicasAcked int64 `json:"replicas_acked"`
	// UnconfirmedRecently is set while writes went unconfirmed in the last unconfirmedRecent (5 minutes);
	// UnconfirmedSince is when that run began and UnconfirmedInRun how many since. LastUnconfirmed is
	// when the count was last seen to grow, recent or not. The proxy reads the counter at every request
	// and sampling interval (10 s), so these times are as close as that.
	UnconfirmedRecently bool      `json:"unconfirmed_recently"`
	UnconfirmedSince    time.Time `json:"unconfirmed_since,omitzero"`
	UnconfirmedInRun    uint64    `json:"writes_unconfirmed_in_run,omitempty"`
	LastUnconfirmed     time.Time `json:"last_unconfirmed_at,omitzero"`
}

// durabilityView shows c, with what run says of when its writes went unconfirmed.
func durabilityView(c respsession.DurabilityCounts, run unconfirmedRun, now time.Time) *DurabilityView {
	v := &DurabilityView{WaitReplicas: c.Replicas, WaitTimeoutMS: msOf(c.Timeout), Waiting: c.Waiting,
		Confirmed: c.Confirmed, Unconfirmed: c.Unconfirmed, Waits: c.Waits, ReplicasAcked: -1}
	if c.Waits > 0 {
		v.ReplicasAcked = c.LastReplicas
	}
	v.LastUnconfirmed = run.last
	if !run.last.IsZero() && now.Sub(run.last) <= unconfirmedRecent {
		v.UnconfirmedRecently = true
		v.UnconfirmedSince, v.UnconfirmedInRun = run.since, c.Unconfirmed-run.base
	}
	return v
}

// unconfirmedRun is what the page knows of one group's unconfirmed writes beyond the counter: the
// counters say how many, not when.
type unconfirmedRun struct {
	count uint64    // the counter when last read
	last  time.Time // when it was last seen to grow; zero: never
	since time.Time // when the current run began: the first growth after a quiet unconfirmedRecent
	base  uint64    // the counter before that run
}

// seen returns r after reading count at now.
func (r unconfirmedRun) seen(count uint64, now time.Time) unconfirmedRun {
	if count <= r.count {
		return r
	}
	if r.last.IsZero() || now.Sub(r.last) > unconfirmedRecent {
		r.since, r.base = now, r.count
	}
	r.count, r.last = count, now
	return r
}

// unconfirmedWatch remembers an unconfirmedRun per Durability (a group removed and added again by a
// reload gets a new one, whose counters start at zero). Its zero value is ready.
type unconfirmedWatch struct {
	mu   sync.Mutex
	runs map[*respsession.Durability]unconfirmedRun
}

// observe reads d's counts at now and returns them with what is known of their unconfirmed writes.
func (w *unconfirmedWatch) observe(d *respsession.Durability, now time.Time) (respsession.DurabilityCounts, unconfirmedRun) {
	c := d.Counts()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.runs == nil {
		w.runs = map[*respsession.Durability]unconfirmedRun{}
	}
	r := w.runs[d].seen(c.Unconfirmed, now)
	w.runs[d] = r
	return c, r
}

// sample observes every group's durability at now, and forgets those no longer among groups: the
// sampler's tick calls it, so that a run of unconfirmed writes is dated even when nobody looks.
func (w *unconfirmedWatch) sample(groups []GroupPorts, now time.Time) {
	keep := map[*respsession.Durability]bool{}
	for _, g := range groups {
		if g.Durability != nil {
			keep[g.Durability] = true
			w.observe(g.Durability, now)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for d := range w.runs {
		if !keep[d] {
			delete(w.runs, d)
		}
	}
}
