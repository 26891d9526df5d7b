package eventloop

import (
	"testing"
	"time"
)

// recorder is an Expirer that notes when it fired and may act on the wheel from its Expire.
type recorder struct {
	t      Timer
	fired  []time.Time
	now    *time.Time
	action func()
}

func (r *recorder) Expire() {
	r.fired = append(r.fired, *r.now)
	if r.action != nil {
		r.action()
	}
}

func newRecorder(now *time.Time) *recorder {
	r := &recorder{now: now}
	r.t.Owner = r
	return r
}

// run advances w from start to start+d tick by tick, as a loop would, keeping *now current.
func run(w *wheel, now *time.Time, d time.Duration) {
	end := now.Add(d)
	for now.Before(end) {
		*now = now.Add(TimerTick / 5)
		w.advance(*now)
	}
}

func TestWheelFiresOnTimeNotBefore(t *testing.T) {
	var w wheel
	w.init(TimerTick)
	now := time.Unix(1000, 0)
	start := now
	var rs []*recorder
	for _, after := range []time.Duration{10 * time.Millisecond, TimerTick, 3 * TimerTick, 700 * TimerTick} {
		r := newRecorder(&now)
		w.schedule(&r.t, now.Add(after), now)
		rs = append(rs, r)
	}
	run(&w, &now, 800*TimerTick)
	for i, after := range []time.Duration{10 * time.Millisecond, TimerTick, 3 * TimerTick, 700 * TimerTick} {
		r := rs[i]
		if len(r.fired) != 1 {
			t.Fatalf("timer %d (after %s) fired %d times", i, after, len(r.fired))
		}
		late := r.fired[0].Sub(start.Add(after))
		if late < 0 || late > TimerTick+TimerTick/5 {
			t.Errorf("timer %d (after %s) fired %s late", i, after, late)
		}
	}
	if !w.empty() {
		t.Errorf("wheel not empty after every timer fired: %d", w.count)
	}
}

func TestWheelRescheduleAndCancel(t *testing.T) {
	var w wheel
	w.init(TimerTick)
	now := time.Unix(1000, 0)
	a, b := newRecorder(&now), newRecorder(&now)
	w.schedule(&a.t, now.Add(2*TimerTick), now)
	w.schedule(&b.t, now.Add(2*TimerTick), now)
	w.schedule(&a.t, now.Add(10*TimerTick), now) // moved later: fires once, then
	w.cancel(&b.t)                               // and b never
	w.cancel(&b.t)                               // cancelling twice is harmless
	run(&w, &now, 5*TimerTick)
	if len(a.fired) != 0 || len(b.fired) != 0 {
		t.Fatalf("fired early: a %d, b %d", len(a.fired), len(b.fired))
	}
	run(&w, &now, 10*TimerTick)
	if len(a.fired) != 1 || len(b.fired) != 0 || !w.empty() {
		t.Fatalf("a fired %d, b %d, wheel count %d", len(a.fired), len(b.fired), w.count)
	}
}

func TestWheelExpireMayChangeTheWheel(t *testing.T) {
	var w wheel
	w.init(TimerTick)
	now := time.Unix(1000, 0)
	a, b, c := newRecorder(&now), newRecorder(&now), newRecorder(&now)
	// Due at the same tick: a cancels b, and reschedules itself; c still fires.
	a.action = func() {
		w.cancel(&b.t)
		if len(a.fired) == 1 {
			w.schedule(&a.t, now.Add(3*TimerTick), now)
		}
	}
	for _, r := range []*recorder{c, b, a} { // a is first in the slot's list
		w.schedule(&r.t, now.Add(TimerTick), now)
	}
	run(&w, &now, 10*TimerTick)
	if len(a.fired) != 2 || len(b.fired) != 0 || len(c.fired) != 1 || !w.empty() {
		t.Fatalf("a fired %d (want 2), b %d (want 0), c %d (want 1); count %d", len(a.fired), len(b.fired), len(c.fired), w.count)
	}
}

func TestWheelIdleCatchesUp(t *testing.T) {
	var w wheel
	w.init(TimerTick)
	now := time.Unix(1000, 0)
	r := newRecorder(&now)
	w.schedule(&r.t, now.Add(2*TimerTick), now)
	now = now.Add(time.Second) // the loop slept through many ticks
	w.advance(now)
	if len(r.fired) != 1 {
		t.Fatalf("a timer overdue when the loop woke fired %d times", len(r.fired))
	}
}
