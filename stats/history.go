package stats

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/sentinel-proxy/sentinel-proxy/proxy"
)

// historyLen is how many samples each listener keeps: an hour at the default interval. The ring is
// fixed whatever the interval, so a shorter one (tests) covers a shorter window.
const historyLen = 360

// defaultSampleEvery is Server.SampleEvery's zero value.
const defaultSampleEvery = 10 * time.Second

// sample is one listener's activity over one sampling interval: rates per second over the time that
// really passed since the sample before, and the gauges at its end. Its fields are 32-bit on purpose:
// 40 bytes a sample, so a listener's ring is 360 × 40 B ≈ 14 KiB, and both ports of 8 groups stay
// under 256 KiB (TestHistoryMemoryIsBounded). float32 keeps 7 digits, more than a chart can show.
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

// ring is one listener's last historyLen samples.
type ring struct {
	role    string
	samples [historyLen]sample
	next    int // where the next sample goes
	n       int // how many are stored
	last    counters
}

func (r *ring) add(s sample) {
	r.samples[r.next] = s
	r.next = (r.next + 1) % historyLen
	r.n = min(r.n+1, historyLen)
}

// ordered returns the stored samples, oldest first.
func (r *ring) ordered() []sample {
	out := make([]sample, 0, r.n)
	for i := r.next - r.n; i < r.next; i++ {
		out = append(out, r.samples[(i+historyLen)%historyLen])
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
}

// statsOf reads every listener's counters.
func statsOf(groups []GroupPorts) []portStats {
	var out []portStats
	for _, p := range portsOf(groups) {
		if p.l != nil {
			out = append(out, portStats{p.role, p.l.Stats()})
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

// record adds one sample of every listener, taken at now. A listener's first call only sets where its
// counters start; a listener no longer among ports (a reload removed its group) is forgotten.
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
			h.rings[st.Name] = &ring{role: p.role, last: cur}
			continue
		}
		r.role = p.role
		if dt := cur.at.Sub(r.last.at).Seconds(); dt > 0 {
			perSecond := func(now, before uint64) float32 {
				if now < before { // a new listener under the same name: it counts from zero
					before = 0
				}
				return float32(float64(now-before) / dt)
			}
			r.add(sample{at: now.UnixNano(), current: clampInt32(st.Current), held: clampInt32(st.Held),
				sessions: perSecond(cur.total, r.last.total), bytesIn: perSecond(cur.bytesIn, r.last.bytesIn),
				bytesOut: perSecond(cur.bytesOut, r.last.bytesOut), refused: perSecond(cur.refused, r.last.refused),
				connectErrors: perSecond(cur.connErrs, r.last.connErrs), tlsErrors: perSecond(cur.tlsErrs, r.last.tlsErrs)})
		}
		r.last = cur
	}
	for name := range h.rings {
		if !seen[name] {
			delete(h.rings, name)
		}
	}
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
	s.history.record(statsOf(groups), now)
	s.unconfirmed.sample(groups, now)
}
