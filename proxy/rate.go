package proxy

import (
	"sync"
	"time"
)

// rateCounter counts events per second the way HAProxy's frequency counters do: the current second's
// count plus the previous second's, weighted by how much of the current second is still to come. It
// sits on the accept path only, so a mutex costs nothing that matters.
type rateCounter struct {
	mu        sync.Mutex
	second    int64 // unix second the current count belongs to
	cur, prev uint64
	max       uint64 // the highest rate seen
}

func (r *rateCounter) roll(now time.Time) {
	sec := now.Unix()
	switch {
	case sec == r.second:
	case sec == r.second+1:
		r.prev, r.cur = r.cur, 0
	default:
		r.prev, r.cur = 0, 0
	}
	r.second = sec
}

// add counts one event at now.
func (r *rateCounter) add(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.roll(now)
	r.cur++
	r.max = max(r.max, r.rateLocked(now))
}

// rate returns the events per second around now, and the highest rate seen.
func (r *rateCounter) rate(now time.Time) (cur, peak uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.roll(now)
	return r.rateLocked(now), r.max
}

func (r *rateCounter) rateLocked(now time.Time) uint64 {
	remaining := 1 - float64(now.Nanosecond())/1e9
	return r.cur + uint64(float64(r.prev)*remaining+0.5)
}
