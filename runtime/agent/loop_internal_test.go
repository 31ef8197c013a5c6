package agent

import (
	"testing"
	"time"
)

// TestDownloadThrottle replays one pull's percentages at given times and
// checks which ones are reported: none before 2 s, then one per 2 s at
// most, and only after a move of 5 points or more.
func TestDownloadThrottle(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	type event struct {
		after   time.Duration // since the pull started
		percent int
		want    bool
	}
	tests := []struct {
		name   string
		events []event
	}{
		{name: "nothing in the first interval", events: []event{{0, 10, false}, {time.Second, 50, false}, {1999 * time.Millisecond, 99, false}}},
		{name: "the first percentage once the interval passed, whatever it is", events: []event{{2 * time.Second, 1, true}}},
		{name: "a small move waits", events: []event{{2 * time.Second, 10, true}, {5 * time.Second, 14, false}, {9 * time.Second, 15, true}}},
		{name: "a big move waits for the interval", events: []event{{2 * time.Second, 10, true}, {3 * time.Second, 90, false}, {4 * time.Second, 91, true}}},
		{name: "the interval counts from the last report", events: []event{
			{2 * time.Second, 20, true}, {3 * time.Second, 60, false}, {5 * time.Second, 62, true}, {6 * time.Second, 80, false}, {7 * time.Second, 81, true}}},
		{name: "the end of a fast pull is not reported", events: []event{{2 * time.Second, 97, true}, {3 * time.Second, 100, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := downloadThrottle{at: start, percent: -1}
			for i, e := range tt.events {
				if got := th.due(e.percent, start.Add(e.after)); got != e.want {
					t.Errorf("event %d (%d%% after %s): due = %v, want %v", i, e.percent, e.after, got, e.want)
				}
			}
		})
	}
}
