package upstream

import (
	"math"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const s = time.Second
	cases := []struct {
		name    string
		attempt int
		lo, hi  time.Duration
		u       float64
		want    time.Duration
	}{
		{"first retry, low end", 0, s, 30 * s, 0, s / 2},
		{"first retry, high end", 0, s, 30 * s, 1, s},
		{"first retry, middle", 0, s, 30 * s, 0.5, 750 * time.Millisecond},
		{"second retry", 1, s, 30 * s, 0, s},
		{"third retry", 2, s, 30 * s, 1, 4 * s},
		{"capped", 5, s, 30 * s, 0, 15 * s},
		{"capped, high end", 5, s, 30 * s, 1, 30 * s},
		{"far past the cap", 1000, s, 30 * s, 1, 30 * s},
		{"negative random clamps to the low end", 1, s, 30 * s, -3, s},
		{"NaN clamps to the low end", 1, s, 30 * s, math.NaN(), s},
		{"random above one clamps to the high end", 1, s, 30 * s, 7, 2 * s},
		{"max below min", 3, 2 * s, s, 1, 2 * s},
		{"zero min", 0, 0, s, 1, time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := backoff(c.attempt, c.lo, c.hi, c.u); got != c.want {
				t.Fatalf("backoff(%d, %s, %s, %v) = %s, want %s", c.attempt, c.lo, c.hi, c.u, got, c.want)
			}
		})
	}
}

func TestBackoff_GrowsAndStaysWithinBounds(t *testing.T) {
	lo, hi := 20*time.Millisecond, 200*time.Millisecond
	prevCeiling := time.Duration(0)
	for attempt := range 20 {
		low, high := backoff(attempt, lo, hi, 0), backoff(attempt, lo, hi, 1)
		if low < lo/2 || high > hi || low > high {
			t.Fatalf("attempt %d: [%s, %s] outside [%s, %s]", attempt, low, high, lo/2, hi)
		}
		if high < prevCeiling {
			t.Fatalf("attempt %d: ceiling %s shrank from %s", attempt, high, prevCeiling)
		}
		prevCeiling = high
	}
}
