package proxy

import (
	"testing"
	"time"
)

func TestRateCounter(t *testing.T) {
	var r rateCounter
	base := time.Unix(1000, 0)
	for range 10 {
		r.add(base.Add(100 * time.Millisecond))
	}
	if cur, _ := r.rate(base.Add(900 * time.Millisecond)); cur != 10 {
		t.Errorf("rate within the second = %d, want 10", cur)
	}
	// Half way through the next second, half of the previous second's count still counts.
	if cur, peak := r.rate(base.Add(1500 * time.Millisecond)); cur != 5 || peak != 10 {
		t.Errorf("rate half a second later = %d (peak %d), want 5 (peak 10)", cur, peak)
	}
	if cur, _ := r.rate(base.Add(5 * time.Second)); cur != 0 {
		t.Errorf("rate after a quiet stretch = %d, want 0", cur)
	}
}
