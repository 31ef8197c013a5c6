package store

import "testing"

func TestPick(t *testing.T) {
	c := func(prio int, enq int64) candidate { return candidate{prio: prio, enqueued: enq} }
	tests := []struct {
		name       string
		cands      []candidate
		streak     int
		burst      int
		wantIdx    int
		wantStreak int
	}{
		{"nothing ready", nil, 3, 8, -1, 3},
		{"lone lane resets the streak", []candidate{c(5, 10)}, 7, 8, 0, 0},
		{"highest priority first", []candidate{c(0, 50), c(1, 10)}, 0, 8, 0, 1},
		{"streak grows below the burst", []candidate{c(0, 50), c(1, 10)}, 7, 8, 0, 8},
		{"burst reached: lower priority gets one", []candidate{c(0, 50), c(1, 10)}, 8, 8, 1, 0},
		{"burst reached: oldest lower priority wins", []candidate{c(0, 50), c(3, 30), c(9, 20)}, 8, 8, 2, 0},
		{"burst reached: tie goes to the higher priority", []candidate{c(0, 50), c(3, 20), c(9, 20)}, 8, 8, 1, 0},
		{"burst reached: highest is oldest but still yields", []candidate{c(0, 1), c(3, 20)}, 8, 8, 1, 0},
		{"burst of 1 alternates", []candidate{c(0, 1), c(3, 20)}, 1, 1, 1, 0},
		{"strict priority never yields", []candidate{c(0, 50), c(1, 10)}, 1000, -1, 0, 1001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idx, streak := pick(tt.cands, tt.streak, tt.burst)
			if idx != tt.wantIdx || streak != tt.wantStreak {
				t.Errorf("pick = (%d, %d), want (%d, %d)", idx, streak, tt.wantIdx, tt.wantStreak)
			}
		})
	}
}

// TestPick_LowerPriorityNotStarved runs pick against a priority-0 lane that never
// empties: the priority-5 lane must get exactly one item in every K+1.
func TestPick_LowerPriorityNotStarved(t *testing.T) {
	const k, rounds = 8, 900
	streak, low := 0, 0
	for i := range rounds {
		cands := []candidate{{prio: 0, enqueued: int64(1000 + i)}, {prio: 5, enqueued: int64(i)}}
		var idx int
		idx, streak = pick(cands, streak, k)
		if idx == 1 {
			low++
		}
	}
	if want := rounds / (k + 1); low != want {
		t.Errorf("priority 5 got %d of %d items, want %d", low, rounds, want)
	}
}

func TestVictim(t *testing.T) {
	h := func(q string, prio int, enq int64) head { return head{queue: q, prio: prio, enqueued: enq} }
	tests := []struct {
		name  string
		heads []head
		want  int
	}{
		{"no lanes", nil, -1},
		{"one lane", []head{h("a", 0, 5)}, 0},
		{"lowest priority first even if newer", []head{h("a", 0, 1), h("b", 7, 100), h("c", 3, 2)}, 1},
		{"within a priority the oldest", []head{h("a", 2, 30), h("b", 2, 10), h("c", 2, 20)}, 1},
		{"full tie broken by queue name", []head{h("b", 2, 10), h("a", 2, 10)}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := victim(tt.heads); got != tt.want {
				t.Errorf("victim = %d, want %d", got, tt.want)
			}
		})
	}
}
