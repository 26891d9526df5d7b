package check

// Health is HAProxy's rise/fall counter for one node. It is a value: Observe returns the next state,
// so the owner of routing state can keep it without locks.
type Health struct {
	Known bool // false until the first probe result arrives
	Up    bool
	// streak counts consecutive results that disagree with Up: successes while down, failures while up.
	streak int
}

// Observe folds one probe outcome into the health. The first result sets the state at once, so a
// proxy that starts next to a healthy deployment routes after one probe rather than after `rise`
// of them. After that, `rise` consecutive successes bring a DOWN node UP and `fall` consecutive
// failures take an UP node DOWN. changed reports an UP/DOWN transition (including the first result).
func (h Health) Observe(ok bool, rise, fall int) (next Health, changed bool) {
	if !h.Known {
		return Health{Known: true, Up: ok}, true
	}
	if ok == h.Up {
		h.streak = 0
		return h, false
	}
	h.streak++
	need := fall
	if !h.Up {
		need = rise
	}
	if h.streak >= need {
		return Health{Known: true, Up: ok}, true
	}
	return h, false
}

// Streak is how many consecutive results so far disagree with the current state: successes while DOWN
// (on the way to rise), failures while UP (on the way to fall).
func (h Health) Streak() int { return h.streak }
