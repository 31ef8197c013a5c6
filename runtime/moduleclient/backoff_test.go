package moduleclient

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoff_JitterRange(t *testing.T) {
	const s, m = time.Second, time.Minute
	tests := []struct {
		name              string
		attempt           int
		lo, hi            time.Duration
		wantLow, wantHigh time.Duration // with the smallest and the largest random value
	}{
		{"first retry", 0, s, m, 1 * s, 2 * s},
		{"second retry doubles", 1, s, m, 2 * s, 4 * s},
		{"third retry doubles again", 2, s, m, 4 * s, 8 * s},
		{"sixth retry reaches the cap", 5, s, m, 30 * s, 60 * s},
		{"capped", 10, s, m, 30 * s, 60 * s},
		{"huge attempt does not overflow", math.MaxInt32, s, m, 30 * s, 60 * s},
		{"cap below the doubled floor", 0, s, 1500 * time.Millisecond, s, 1500 * time.Millisecond},
		{"lo equals hi", 3, 5 * s, 5 * s, 5 * s, 5 * s},
		{"hi below lo is raised to lo", 0, 5 * s, s, 5 * s, 5 * s},
		{"zero lo becomes 1ms", 0, 0, 10 * time.Millisecond, time.Millisecond, 2 * time.Millisecond},
		{"test-sized bounds", 2, 20 * time.Millisecond, 200 * time.Millisecond, 80 * time.Millisecond, 160 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backoff(tt.attempt, tt.lo, tt.hi, 0); got != tt.wantLow {
				t.Errorf("smallest random value: backoff = %v, want %v", got, tt.wantLow)
			}
			if got := backoff(tt.attempt, tt.lo, tt.hi, 1); got != tt.wantHigh {
				t.Errorf("largest random value: backoff = %v, want %v", got, tt.wantHigh)
			}
			rnd := rand.New(rand.NewPCG(1, 2))
			seen := map[time.Duration]bool{}
			for range 1000 {
				got := backoff(tt.attempt, tt.lo, tt.hi, rnd.Float64())
				if got < tt.wantLow || got > tt.wantHigh {
					t.Fatalf("backoff = %v, outside [%v, %v]", got, tt.wantLow, tt.wantHigh)
				}
				seen[got] = true
			}
			if tt.wantLow < tt.wantHigh && len(seen) < 100 {
				t.Errorf("only %d distinct waits in 1000 draws: no jitter", len(seen))
			}
		})
	}
}

func TestBackoff_SameSeedSameWaits(t *testing.T) {
	a, b := rand.New(rand.NewPCG(7, 7)), rand.New(rand.NewPCG(7, 7))
	for attempt := range 10 {
		x := backoff(attempt, time.Second, time.Minute, a.Float64())
		y := backoff(attempt, time.Second, time.Minute, b.Float64())
		if x != y {
			t.Fatalf("attempt %d: %v != %v with the same seed", attempt, x, y)
		}
	}
}

func TestBackoff_OutOfRangeRandomIsClamped(t *testing.T) {
	for _, u := range []float64{-1, math.NaN(), 2} {
		got := backoff(0, time.Second, time.Minute, u)
		if got < time.Second || got > 2*time.Second {
			t.Errorf("backoff(u=%v) = %v, outside [1s, 2s]", u, got)
		}
	}
}
