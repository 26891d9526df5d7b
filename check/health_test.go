package check

import "testing"

func TestHealthRiseFall(t *testing.T) {
	type step struct {
		ok      bool
		up      bool
		changed bool
	}
	tests := []struct {
		name       string
		rise, fall int
		steps      []step
	}{
		{"first success is up at once", 2, 3, []step{{true, true, true}, {true, true, false}}},
		{"first failure is down at once", 2, 3, []step{{false, false, true}, {false, false, false}}},
		{"fall 3 needs three failures", 2, 3, []step{
			{true, true, true}, {false, true, false}, {false, true, false}, {false, false, true}}},
		{"a success resets the fall streak", 2, 3, []step{
			{true, true, true}, {false, true, false}, {false, true, false}, {true, true, false},
			{false, true, false}, {false, true, false}, {false, false, true}}},
		{"rise 2 needs two successes", 2, 3, []step{
			{false, false, true}, {true, false, false}, {true, true, true}}},
		{"a failure resets the rise streak", 2, 3, []step{
			{false, false, true}, {true, false, false}, {false, false, false}, {true, false, false}, {true, true, true}}},
		{"rise 1 fall 1 follows each result", 1, 1, []step{
			{true, true, true}, {false, false, true}, {true, true, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Health
			for i, s := range tt.steps {
				var changed bool
				h, changed = h.Observe(s.ok, tt.rise, tt.fall)
				if h.Up != s.up || changed != s.changed {
					t.Fatalf("step %d (ok=%v): up=%v changed=%v, want up=%v changed=%v", i, s.ok, h.Up, changed, s.up, s.changed)
				}
			}
		})
	}
}
