package main

import (
	"context"
	"testing"
	"time"
)

func TestDueAt(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		n    uint64
		rate float64
		want time.Duration
	}{
		{name: "first message at once", n: 0, rate: 10, want: 0},
		{name: "ten per second", n: 3, rate: 10, want: 300 * time.Millisecond},
		{name: "fractional rate", n: 2, rate: 0.5, want: 4 * time.Second},
		{name: "high rate", n: 1000000, rate: 100000, want: 10 * time.Second},
		{name: "no pacing", n: 500, rate: 0, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := dueAt(start, tt.n, tt.rate).Sub(start); got != tt.want {
				t.Errorf("due after %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRatePerSecond(t *testing.T) {
	tests := []struct {
		name    string
		count   int64
		elapsed time.Duration
		want    float64
	}{
		{name: "plain", count: 100, elapsed: 2 * time.Second, want: 50},
		{name: "sub-second", count: 5, elapsed: 100 * time.Millisecond, want: 50},
		{name: "no time", count: 5, elapsed: 0, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ratePerSecond(tt.count, tt.elapsed); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSleepUntil(t *testing.T) {
	done, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		at   time.Time
		want bool
	}{
		{name: "past", ctx: t.Context(), at: time.Now().Add(-time.Second), want: true},
		{name: "soon", ctx: t.Context(), at: time.Now().Add(time.Millisecond), want: true},
		{name: "cancelled", ctx: done, at: time.Now().Add(time.Hour), want: false},
		{name: "cancelled and past", ctx: done, at: time.Now().Add(-time.Hour), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sleepUntil(tt.ctx, tt.at); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
