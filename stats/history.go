package stats

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
	"github.com/sentinel-proxy/sentinel-proxy/routing"
)

// historyLen is how many samples each listener keeps: an hour at the default interval. The ring is
// fixed whatever the interval, so a shorter one (tests) covers a shorter window.
const historyLen = 360

// defaultSampleEvery is Server.SampleEvery's zero value.
const defaultSampleEvery = 10 * time.Second

// sample is one listener's activity over one sampling interval: rates per second over the time that
// really passed since the sample before, and the gauges at its end. Its fields are 32-bit on purpose:
// 40 bytes a sample, so a listener's ring is 360 × 40 B ≈ 14 KiB, and both ports of 8 groups, all 8
// multiplexed (sharedRing), stay under 256 KiB (TestHistoryMemoryIsBounded). float32 keeps 7 digits,
// more than a chart can show.
type sample struct {
	at                                int64 // unix nanoseconds, the end of the interval
	current, held                     int32
	sessions, bytesIn, bytesOut       float32
	refused, connectErrors, tlsErrors float32
}

// counters are the cumulative listener counters a sample is the difference of.
type counters struct {
	at                                                   time.Time
	total, bytesIn, bytesOut, refused, connErrs, tlsErrs uint64
}

func countersOf(st proxy.Stats, at time.Time) counters {
	return counters{at: at, total: st.Total, bytesIn: st.BytesIn, bytesOut: st.BytesOut, refused: st.Refused,
		connErrs: st.ConnectErrors, tlsErrs: st.HandshakeErrors}
}

// sharedCounts are a multiplexed group's shared backend connections to its nodes now, and the sessions
// that have left one of them for a connection of their own.
type sharedCounts struct{ conns, unshared uint64 }

// sharedSample is a multiplexed group's shared backend connections over one sampling interval: the
// gauge at its end and the sessions unshared per second. It has no time of its own, which keeps it at 8
// bytes: it was taken with the sample of the group's master port at the same index of the port's ring.
type sharedSample struct {
	conns    uint32
	unshared float32
}

// sharedRing is a multiplexed group's samples, kept with its master port's ring and filled in step
// with it: 360 × 8 B ≈ 2.8 KiB a group.
type sharedRing struct {
	samples [historyLen]sharedSample // samples[i] belongs to the port's samples[i]
	// n is how many of the port's newest samples have one: fewer when multiplexing began (a reload
	// turned it on) after the port's ring did.
	n            int
	lastUnshared uint64
}

// ring is one listener's last historyLen samples.
type ring struct {
	role    string
	samples [historyLen]sample
	next    int // where the next sample goes
	n       int // how many are stored
	last    counters
	// shared is the group's multiplex samples on its master port's ring; nil on a replica port's and
	// while the group does not multiplex.
	shared *sharedRing
}

// add stores s and returns where, for the shared sample taken with it.
func (r *ring) add(s sample) int {
	at := r.next
	r.samples[at] = s
	r.next = (r.next + 1) % historyLen
	r.n = min(r.n+1, historyLen)
	return at
}

// ordered returns the stored samples, oldest first.
func (r *ring) ordered() []sample {
	out := make([]sample, 0, r.n)
	for i := r.next - r.n; i < r.next; i++ {
		out = append(out, r.samples[(i+historyLen)%historyLen])
	}
	return out
}

// sharedPoint is a shared sample with the time of the port's sample it was taken with.
type sharedPoint struct {
	at int64 // unix nanoseconds
	sharedSample
}

// orderedShared returns the group's shared samples, oldest first; nil without multiplexing.
func (r *ring) orderedShared() []sharedPoint {
	if r.shared == nil {
		return nil
	}
	out := make([]sharedPoint, 0, r.shared.n)
	for i := r.next - r.shared.n; i < r.next; i++ {
		j := (i + historyLen) % historyLen
		out = append(out, sharedPoint{r.samples[j].at, r.shared.samples[j]})
	}
	return out
}

// history is the charts' memory: one ring per listener, by name. Its zero value is ready.
type history struct {
	mu    sync.Mutex
	rings map[string]*ring
}

// listenerPort is a listener and the role it serves, as the page names them.
type listenerPort struct {
	role string
	l    *proxy.Listener
}

// portStats is one listener's counters at a sample.
type portStats struct {
	role string
	st   proxy.Stats
	// shared is the group's multiplex counts, on its master port only; nil when the group does not
	// multiplex or snap did not know the group yet (nothing to count them over).
	shared *sharedCounts
}

// statsOf reads every listener's counters, and the multiplex counts of each group that multiplexes,
// over the nodes snap has for it.
func statsOf(groups []GroupPorts, snap *routing.Snapshot) []portStats {
	var out []portStats
	for _, g := range groups {
		for _, p := range portsOf([]GroupPorts{g}) {
			if p.l == nil {
				continue
			}
			ps := portStats{role: p.role, st: p.l.Stats()}
			if p.l == g.Master && g.Multiplex != nil {
				if gs := snap.Group(g.Name); gs != nil {
					conns, unshared := multiplexCounts(g, gs)
					ps.shared = &sharedCounts{conns, unshared}
				}
			}
			out = append(out, ps)
		}
	}
	return out
}

func portsOf(groups []GroupPorts) []listenerPort {
	var out []listenerPort
	for _, g := range groups {
		out = append(out, listenerPort{"master", g.Master})
		if g.Replica != nil {
			out = append(out, listenerPort{"replica", g.Replica})
		}
	}
	return out
}

// record adds one sample of every listener, taken at now, and of its group's multiplex counts where it
// has them. A listener's first call only sets where its counters start, and so does the first call
// with multiplex counts; a listener no longer among ports (a reload removed its group) is forgotten,
// and so are the multiplex samples of a group that no longer has them.
func (h *history) record(ports []portStats, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rings == nil {
		h.rings = map[string]*ring{}
	}
	seen := map[string]bool{}
	for _, p := range ports {
		st := p.st
		seen[st.Name] = true
		cur := countersOf(st, now)
		r := h.rings[st.Name]
		if r == nil {
			h.rings[st.Name] = &ring{role: p.role, last: cur, shared: startShared(p.shared)}
			continue
		}
		r.role = p.role
		sharedStarts := false
		switch {
		case p.shared == nil:
			r.shared = nil
		case r.shared == nil:
			r.shared, sharedStarts = startShared(p.shared), true
		}
		if dt := cur.at.Sub(r.last.at).Seconds(); dt > 0 {
			i := r.add(sample{at: now.UnixNano(), current: clampInt32(st.Current), held: clampInt32(st.Held),
				sessions: perSecond(cur.total, r.last.total, dt), bytesIn: perSecond(cur.bytesIn, r.last.bytesIn, dt),
				bytesOut: perSecond(cur.bytesOut, r.last.bytesOut, dt), refused: perSecond(cur.refused, r.last.refused, dt),
				connectErrors: perSecond(cur.connErrs, r.last.connErrs, dt), tlsErrors: perSecond(cur.tlsErrs, r.last.tlsErrs, dt)})
			if sh := r.shared; sh != nil && !sharedStarts {
				sh.samples[i] = sharedSample{conns: uint32(min(p.shared.conns, math.MaxUint32)),
					unshared: perSecond(p.shared.unshared, sh.lastUnshared, dt)}
				sh.n = min(sh.n+1, historyLen)
			}
		}
		r.last = cur
		if r.shared != nil {
			r.shared.lastUnshared = p.shared.unshared
		}
	}
	for name := range h.rings {
		if !seen[name] {
			delete(h.rings, name)
		}
	}
}

// startShared begins a group's multiplex samples: its first counts only set where its counter starts.
// Nil without counts.
func startShared(c *sharedCounts) *sharedRing {
	if c == nil {
		return nil
	}
	return &sharedRing{lastUnshared: c.unshared}
}

// perSecond is a cumulative counter's rate over dt seconds. A counter below where it was has started
// again from zero (a new listener under the same name; the group's counts after a reload) and counts
// from there.
func perSecond(now, before uint64, dt float64) float32 {
	if now < before {
		before = 0
	}
	return float32(float64(now-before) / dt)
}

// samples returns a copy of the listener's samples, oldest first, and its role.
func (h *history) samples(listener string) ([]sample, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rings[listener]
	if r == nil {
		return nil, ""
	}
	return r.ordered(), r.role
}

// sharedSamples returns a copy of the multiplex samples kept with the listener's (a multiplexed group's
// master port), oldest first; nil when there are none.
func (h *history) sharedSamples(listener string) []sharedPoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rings[listener]
	if r == nil {
		return nil
	}
	return r.orderedShared()
}

func clampInt32(v int64) int32 { return int32(min(max(v, math.MinInt32), math.MaxInt32)) }

// sampleEvery is the sampling interval in force.
func (s *Server) sampleEvery() time.Duration {
	if s.SampleEvery > 0 {
		return s.SampleEvery
	}
	return defaultSampleEvery
}

// RecordHistory samples every listener each SampleEvery for the page's charts and /stats.json's
// history_series, until ctx ends; and each group's unconfirmed writes, so that the page can say when they
// went unconfirmed even if nobody looked then. Whoever runs the server starts it once, beside the HTTP
// server (package server does); without it the charts stay empty.
func (s *Server) RecordHistory(ctx context.Context) {
	t := time.NewTicker(s.sampleEvery())
	defer t.Stop()
	s.sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.sample(now)
		}
	}
}

func (s *Server) sample(now time.Time) {
	groups := s.cur().Groups
	var snap *routing.Snapshot
	if s.Snapshot != nil {
		snap = s.Snapshot()
	}
	s.history.record(statsOf(groups, snap), now)
	s.unconfirmed.sample(groups, now)
}
