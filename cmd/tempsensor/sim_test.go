package main

import (
	"math"
	"testing"
	"time"
)

func TestSimulator_Step(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name    string
		start   float64 // machine temperature before the step
		lo, hi  float64 // bounds of the step
		wantMax bool    // the temperature was above machineTempMax
	}{
		{name: "climbing from the baseline", start: 21, lo: -0.25, hi: 1.25},
		{name: "climbing just below the maximum", start: 100, lo: -0.25, hi: 1.25},
		{name: "wandering above the maximum", start: 100.5, lo: -0.5, hi: 0.5, wantMax: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := range uint64(200) {
				s := newSimulator(defaultSimParams, newRand(seed))
				s.temp = tt.start
				r := s.next(now)
				step := r.Machine.Temperature - tt.start
				if step < tt.lo || step >= tt.hi {
					t.Fatalf("seed %d: step %v outside [%v, %v)", seed, step, tt.lo, tt.hi)
				}
				wantP := 1 + (r.Machine.Temperature-21)*9/79
				if math.Abs(r.Machine.Pressure-wantP) > 1e-9 {
					t.Fatalf("seed %d: pressure %v, want %v", seed, r.Machine.Pressure, wantP)
				}
				if a := r.Ambient.Temperature; a < 20.5 || a >= 21.5 {
					t.Fatalf("seed %d: ambient temperature %v outside [20.5, 21.5)", seed, a)
				}
				if h := r.Ambient.Humidity; h < 24 || h > 26 {
					t.Fatalf("seed %d: humidity %v outside [24, 26]", seed, h)
				}
				if !r.TimeCreated.Equal(now) || r.TimeCreated.Location() != time.UTC {
					t.Fatalf("timeCreated %v, want %v in UTC", r.TimeCreated, now)
				}
			}
		})
	}
}

func TestSimulator_Trend(t *testing.T) {
	tests := []struct {
		name  string
		steps int
		check func(t *testing.T, temp float64)
	}{
		{name: "drifts upward", steps: 40, check: func(t *testing.T, temp float64) {
			if temp < 21+10 { // +0.5 per step on average: about 41 after 40 steps
				t.Errorf("temperature %v after 40 steps, want above 31", temp)
			}
		}},
		{name: "levels off around the maximum", steps: 1000, check: func(t *testing.T, temp float64) {
			if temp < 95 || temp > 130 {
				t.Errorf("temperature %v after 1000 steps, want near 100", temp)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSimulator(defaultSimParams, newRand(7))
			var r reading
			for range tt.steps {
				r = s.next(time.Now())
			}
			tt.check(t, r.Machine.Temperature)
		})
	}
}

func TestSimulator_ResetAndSeed(t *testing.T) {
	run := func(seed uint64, n int) []reading {
		s := newSimulator(defaultSimParams, newRand(seed))
		out := make([]reading, n)
		for i := range out {
			out[i] = s.next(time.Time{})
		}
		return out
	}
	t.Run("same seed, same readings", func(t *testing.T) {
		a, b := run(42, 50), run(42, 50)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("reading %d differs: %+v vs %+v", i, a[i], b[i])
			}
		}
	})
	t.Run("other seed, other readings", func(t *testing.T) {
		if run(1, 5)[4] == run(2, 5)[4] {
			t.Fatal("seeds 1 and 2 gave the same fifth reading")
		}
	})
	t.Run("reset returns to the baseline", func(t *testing.T) {
		s := newSimulator(defaultSimParams, newRand(3))
		for range 100 {
			s.next(time.Now())
		}
		s.reset()
		if temp := s.next(time.Now()).Machine.Temperature; temp < 21-0.25 || temp >= 21+1.25 {
			t.Errorf("first reading after reset %v, want within a step of 21", temp)
		}
	})
}
