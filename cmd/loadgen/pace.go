package main

import (
	"context"
	"time"
)

// dueAt is when message n (from 0) is due at rate messages per second, counted from start:
// the schedule is fixed in advance, so a send that was late is followed by sends that catch
// up, and the mean rate over the run is the one asked for. A rate of 0 (no pacing) makes
// every message due at start.
func dueAt(start time.Time, n uint64, rate float64) time.Time {
	if rate <= 0 {
		return start
	}
	return start.Add(time.Duration(float64(n) / rate * float64(time.Second)))
}

// ratePerSecond is count messages over elapsed, 0 for no time.
func ratePerSecond(count int64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(count) / elapsed.Seconds()
}

// sleepUntil waits until t and reports whether it did; it returns false at once when ctx
// is done first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
