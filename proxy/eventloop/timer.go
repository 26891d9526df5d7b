package eventloop

import "time"

// TimerTick is the timer wheel's resolution: a timer fires up to this much late.
const TimerTick = 50 * time.Millisecond

// Expirer is what a Timer calls when it fires, on the loop's goroutine.
type Expirer interface{ Expire() }

// Timer is a timer on one loop's wheel. A handler embeds it in the object it times (a session), sets
// Owner, and schedules it with the loop's Schedule: timers allocate nothing, and a loop with thousands
// of idle sessions wakes once per tick, not once per session. A zero Timer with Owner set is ready.
type Timer struct {
	Owner      Expirer
	next, prev *Timer
	slot       int32 // its slot on the wheel, plus one: 0 when not scheduled (so a zero Timer is ready)
	rounds     int32 // full turns of the wheel still to wait; firing while due at the tick being advanced
}

// firing marks a timer taken off the wheel as due at the tick being advanced; it is cleared if the timer
// is cancelled or rescheduled before it fires.
const firing = -1

func (t *Timer) scheduled() bool { return t.slot != 0 }

// wheel is a hashed timer wheel over intrusive lists.
type wheel struct {
	tick  time.Duration
	slots [512]*Timer
	cur   int
	last  time.Time
	count int
	due   []*Timer // the timers firing at the current tick, reused
}

func (w *wheel) init(tick time.Duration) { w.tick = tick }

func (w *wheel) empty() bool { return w.count == 0 }

// schedule (re)schedules t to fire at the first tick at or after at; now is the loop's time.
func (w *wheel) schedule(t *Timer, at, now time.Time) {
	w.cancel(t)
	if w.count == 0 {
		w.last = now
	}
	ticks := int((at.Sub(w.last) + w.tick - 1) / w.tick)
	if ticks < 1 {
		ticks = 1
	}
	slot := (w.cur + ticks) % len(w.slots)
	t.slot = int32(slot + 1)
	t.rounds = int32((ticks - 1) / len(w.slots))
	t.prev, t.next = nil, w.slots[slot]
	if t.next != nil {
		t.next.prev = t
	}
	w.slots[slot] = t
	w.count++
}

// remove unschedules t; a timer that is not scheduled is left alone.
func (w *wheel) remove(t *Timer) {
	if !t.scheduled() {
		return
	}
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		w.slots[t.slot-1] = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	}
	t.prev, t.next, t.slot = nil, nil, 0
	w.count--
}

// cancel unschedules t, and keeps it from firing if it is due at the tick being advanced.
func (w *wheel) cancel(t *Timer) {
	w.remove(t)
	t.rounds = 0
}

// advance moves the wheel to now, firing every timer whose time has come. The timers due at a tick are
// taken off the wheel before any fires, so an Expire may schedule or remove any timer, itself included;
// one that another's Expire rescheduled or removed meanwhile does not fire.
func (w *wheel) advance(now time.Time) {
	if w.count == 0 {
		w.last = now
		return
	}
	for now.Sub(w.last) >= w.tick {
		w.last = w.last.Add(w.tick)
		w.cur = (w.cur + 1) % len(w.slots)
		w.due = w.due[:0]
		for t := w.slots[w.cur]; t != nil; t = t.next {
			if t.rounds > 0 {
				t.rounds--
			} else {
				w.due = append(w.due, t)
			}
		}
		for _, t := range w.due {
			w.remove(t)
			t.rounds = firing
		}
		for i, t := range w.due {
			w.due[i] = nil
			if t.rounds == firing && !t.scheduled() {
				t.rounds = 0
				t.Owner.Expire()
			}
		}
	}
}
