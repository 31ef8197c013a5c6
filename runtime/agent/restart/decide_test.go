package restart

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Module shapes used by the rows. Times are relative to t0, which is "now"
// unless a row says otherwise.
func exited(code int, ago time.Duration) Status {
	return Status{Exited: true, ExitCode: code, StartedAt: t0.Add(-ago - time.Minute), ExitedAt: t0.Add(-ago)}
}

func running(h Health, since time.Duration) Status {
	return Status{Running: true, Health: h, StartedAt: t0.Add(-since)}
}

func TestDecide(t *testing.T) {
	long := time.Hour // far past any back-off
	tests := []struct {
		name   string
		policy Policy
		st     Status
		h      History
		now    time.Time // t0 when zero
		want   Decision  // Reason is checked only for being non-empty
	}{
		// Every policy against exit 0, exit 1, running unhealthy and running healthy.
		{name: "never/exit0", policy: Policy{Kind: Never}, st: exited(0, long), want: Decision{Action: None}},
		{name: "never/exit1", policy: Policy{Kind: Never}, st: exited(1, long), want: Decision{Action: None}},
		{name: "never/unhealthy", policy: Policy{Kind: Never}, st: running(Unhealthy, time.Minute), want: Decision{Action: None}},
		{name: "never/running-healthy", policy: Policy{Kind: Never}, st: running(Healthy, time.Minute), want: Decision{Action: None}},
		{name: "on-failure/exit0", policy: Policy{Kind: OnFailure}, st: exited(0, long), want: Decision{Action: None}},
		{name: "on-failure/exit1", policy: Policy{Kind: OnFailure}, st: exited(1, long), want: Decision{Action: Restart}},
		{name: "on-failure/unhealthy", policy: Policy{Kind: OnFailure}, st: running(Unhealthy, time.Minute), want: Decision{Action: None}},
		{name: "on-failure/running-healthy", policy: Policy{Kind: OnFailure}, st: running(Healthy, time.Minute), want: Decision{Action: None}},
		{name: "on-unhealthy/exit0", policy: Policy{Kind: OnUnhealthy}, st: exited(0, long), want: Decision{Action: None}},
		{name: "on-unhealthy/exit1", policy: Policy{Kind: OnUnhealthy}, st: exited(1, long), want: Decision{Action: Restart}},
		{name: "on-unhealthy/unhealthy", policy: Policy{Kind: OnUnhealthy}, st: running(Unhealthy, time.Minute), want: Decision{Action: Stop}},
		{name: "on-unhealthy/running-healthy", policy: Policy{Kind: OnUnhealthy}, st: running(Healthy, time.Minute), want: Decision{Action: None}},
		{name: "always/exit0", policy: Policy{Kind: Always}, st: exited(0, long), want: Decision{Action: Restart}},
		{name: "always/exit1", policy: Policy{Kind: Always}, st: exited(1, long), want: Decision{Action: Restart}},
		{name: "always/unhealthy", policy: Policy{Kind: Always}, st: running(Unhealthy, time.Minute), want: Decision{Action: Stop}},
		{name: "always/running-healthy", policy: Policy{Kind: Always}, st: running(Healthy, time.Minute), want: Decision{Action: None}},

		// Failures that are not a plain non-zero exit.
		{name: "on-failure/killed-137", policy: Policy{Kind: OnFailure}, st: exited(137, long), want: Decision{Action: Restart}},
		{name: "on-failure/failed-flag-exit0", policy: Policy{Kind: OnFailure}, st: Status{Exited: true, Failed: true, ExitedAt: t0.Add(-long)}, want: Decision{Action: Restart}},
		{name: "on-unhealthy/stopped-unhealthy-exit0", policy: Policy{Kind: OnUnhealthy}, st: Status{Exited: true, Failed: true, ExitCode: 0, ExitedAt: t0.Add(-time.Second)}, want: Decision{Action: Wait, At: t0.Add(9 * time.Second)}},
		{name: "never/failed-flag", policy: Policy{Kind: Never}, st: Status{Exited: true, Failed: true, ExitedAt: t0.Add(-long)}, want: Decision{Action: None}},
		{name: "on-unhealthy/running-starting", policy: Policy{Kind: OnUnhealthy}, st: running(HealthStarting, time.Minute), want: Decision{Action: None}},
		{name: "on-unhealthy/running-no-health-check", policy: Policy{Kind: OnUnhealthy}, st: running(NoHealthCheck, time.Minute), want: Decision{Action: None}},

		// A module that never ran is started at once, whatever the policy or history.
		{name: "never-started/never", policy: Policy{Kind: Never}, st: Status{}, want: Decision{Action: Restart}},
		{name: "never-started/with-history", policy: Policy{Kind: Always}, st: Status{}, h: History{RestartCount: 5, LastRestart: t0}, want: Decision{Action: Restart}},

		// Back-off counts from the exit; At is reachable exactly.
		{name: "backoff/first-exit-waits-10s", policy: Policy{Kind: Always}, st: exited(1, time.Second), want: Decision{Action: Wait, At: t0.Add(9 * time.Second)}},
		{name: "backoff/due-exactly-at", policy: Policy{Kind: Always}, st: exited(1, 10*time.Second), want: Decision{Action: Restart}},
		{name: "backoff/one-ns-early", policy: Policy{Kind: Always}, st: exited(1, 10*time.Second-1), want: Decision{Action: Wait, At: t0.Add(1)}},
		{name: "backoff/n=1-20s", policy: Policy{Kind: OnFailure}, st: exited(2, 15*time.Second), h: History{RestartCount: 1, LastRestart: t0.Add(-time.Minute)}, want: Decision{Action: Wait, At: t0.Add(5 * time.Second)}},
		{name: "backoff/n=5-capped-300s", policy: Policy{Kind: OnFailure}, st: exited(2, 100*time.Second), h: History{RestartCount: 5, LastRestart: t0.Add(-time.Hour)}, want: Decision{Action: Wait, At: t0.Add(200 * time.Second)}},
		{name: "backoff/n=50-still-capped", policy: Policy{Kind: OnFailure}, st: exited(2, 300*time.Second), h: History{RestartCount: 50, LastRestart: t0.Add(-time.Hour)}, want: Decision{Action: Restart}},
		{name: "backoff/custom-unit-and-cap", policy: Policy{Kind: Always, Unit: time.Second, Cap: 3 * time.Second}, st: exited(0, 0), h: History{RestartCount: 4, LastRestart: t0.Add(-time.Hour)}, want: Decision{Action: Wait, At: t0.Add(3 * time.Second)}},

		// Reset after running healthy for ResetAfter.
		{name: "reset/running-10m-healthy", policy: Policy{Kind: Always}, st: running(Healthy, 10*time.Minute), h: History{RestartCount: 3, LastRestart: t0.Add(-10 * time.Minute)}, want: Decision{Action: None, ResetHistory: true}},
		{name: "reset/running-10m-no-health-check", policy: Policy{Kind: OnFailure}, st: running(NoHealthCheck, 11*time.Minute), h: History{RestartCount: 1}, want: Decision{Action: None, ResetHistory: true}},
		{name: "reset/not-yet-at-9m59s", policy: Policy{Kind: Always}, st: running(Healthy, 10*time.Minute-time.Second), h: History{RestartCount: 3}, want: Decision{Action: None}},
		{name: "reset/not-while-starting", policy: Policy{Kind: Always}, st: running(HealthStarting, time.Hour), h: History{RestartCount: 3}, want: Decision{Action: None}},
		{name: "reset/not-while-unhealthy", policy: Policy{Kind: OnFailure}, st: running(Unhealthy, time.Hour), h: History{RestartCount: 3}, want: Decision{Action: None}},
		{name: "reset/nothing-to-reset", policy: Policy{Kind: Always}, st: running(Healthy, time.Hour), want: Decision{Action: None}},
		{name: "reset/start-time-unknown", policy: Policy{Kind: Always}, st: Status{Running: true}, h: History{RestartCount: 3}, want: Decision{Action: None}},
		{name: "reset/custom-reset-after", policy: Policy{Kind: Always, ResetAfter: time.Minute}, st: running(Healthy, time.Minute), h: History{RestartCount: 9}, want: Decision{Action: None, ResetHistory: true}},
		{name: "reset/long-run-then-crash-restarts-as-n=0", policy: Policy{Kind: OnFailure},
			st:   Status{Exited: true, ExitCode: 1, StartedAt: t0.Add(-time.Hour), ExitedAt: t0.Add(-time.Second)},
			h:    History{RestartCount: 6, LastRestart: t0.Add(-time.Hour)},
			want: Decision{Action: Wait, At: t0.Add(9 * time.Second), ResetHistory: true}},
		{name: "reset/long-run-lifts-give-up", policy: Policy{Kind: OnFailure, MaxRestarts: 3},
			st:   Status{Exited: true, ExitCode: 1, StartedAt: t0.Add(-time.Hour), ExitedAt: t0.Add(-time.Minute)},
			h:    History{RestartCount: 3, LastRestart: t0.Add(-time.Hour)},
			want: Decision{Action: Restart, ResetHistory: true}},

		// MaxRestarts.
		{name: "max/unlimited-by-default", policy: Policy{Kind: Always}, st: exited(1, long), h: History{RestartCount: 1000, LastRestart: t0.Add(-long)}, want: Decision{Action: Restart}},
		{name: "max/below-limit", policy: Policy{Kind: Always, MaxRestarts: 3}, st: exited(1, long), h: History{RestartCount: 2, LastRestart: t0.Add(-long)}, want: Decision{Action: Restart}},
		{name: "max/reached-gives-up", policy: Policy{Kind: Always, MaxRestarts: 3}, st: exited(1, long), h: History{RestartCount: 3, LastRestart: t0.Add(-long)}, want: Decision{Action: GiveUp}},
		{name: "max/reached-exit0-under-on-failure-is-none", policy: Policy{Kind: OnFailure, MaxRestarts: 3}, st: exited(0, long), h: History{RestartCount: 3}, want: Decision{Action: None}},
		{name: "max/reached-unhealthy-left-running", policy: Policy{Kind: OnUnhealthy, MaxRestarts: 3}, st: running(Unhealthy, time.Minute), h: History{RestartCount: 3}, want: Decision{Action: None}},
		{name: "max/negative-means-unlimited", policy: Policy{Kind: Always, MaxRestarts: -1}, st: exited(1, long), h: History{RestartCount: 30, LastRestart: t0.Add(-long)}, want: Decision{Action: Restart}},

		// Clock skew and unknown exit times.
		{name: "skew/exit-in-future-no-history-restarts", policy: Policy{Kind: Always}, st: Status{Exited: true, ExitCode: 1, ExitedAt: t0.Add(time.Hour)}, want: Decision{Action: Restart}},
		{name: "skew/exit-in-future-counts-from-last-restart", policy: Policy{Kind: Always}, st: Status{Exited: true, ExitCode: 1, ExitedAt: t0.Add(time.Hour)}, h: History{RestartCount: 1, LastRestart: t0.Add(-5 * time.Second)}, want: Decision{Action: Wait, At: t0.Add(15 * time.Second)}},
		{name: "skew/last-restart-also-in-future-restarts", policy: Policy{Kind: Always}, st: Status{Exited: true, ExitCode: 1, ExitedAt: t0.Add(time.Hour)}, h: History{RestartCount: 1, LastRestart: t0.Add(time.Minute)}, want: Decision{Action: Restart}},
		{name: "unknown-exit-time/no-history-restarts", policy: Policy{Kind: Always}, st: Status{Exited: true, ExitCode: 1}, want: Decision{Action: Restart}},
		{name: "unknown-exit-time/counts-from-last-restart", policy: Policy{Kind: Always}, st: Status{Exited: true, ExitCode: 1}, h: History{RestartCount: 2, LastRestart: t0.Add(-10 * time.Second)}, want: Decision{Action: Wait, At: t0.Add(30 * time.Second)}},

		// Defaults for nonsense settings.
		{name: "defaults/negative-unit-and-cap", policy: Policy{Kind: Always, Unit: -1, Cap: -1}, st: exited(1, 0), want: Decision{Action: Wait, At: t0.Add(10 * time.Second)}},
		{name: "defaults/cap-below-unit-is-unit", policy: Policy{Kind: Always, Unit: time.Minute, Cap: time.Second}, st: exited(1, 0), h: History{RestartCount: 3, LastRestart: t0.Add(-long)}, want: Decision{Action: Wait, At: t0.Add(time.Minute)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = t0
			}
			got := Decide(tc.policy, tc.st, tc.h, now)
			if got.Reason == "" {
				t.Errorf("empty Reason")
			}
			got.Reason = ""
			if got != tc.want {
				t.Errorf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestDecide_BackoffGrowth walks a crash loop: each restart is followed by an
// immediate crash, and the delays from exit to restart must be 10, 20, 40, 80,
// 160, 300, 300 seconds.
func TestDecide_BackoffGrowth(t *testing.T) {
	p := Policy{Kind: OnFailure}
	want := []time.Duration{10, 20, 40, 80, 160, 300, 300}
	var h History
	now := t0
	for i, w := range want {
		st := Status{Exited: true, ExitCode: 1, StartedAt: now.Add(-time.Second), ExitedAt: now}
		d := Decide(p, st, h, now)
		if d.Action != Wait || d.At.Sub(now) != w*time.Second {
			t.Fatalf("restart %d: got %v at +%v, want wait +%v (%s)", i+1, d.Action, d.At.Sub(now), w*time.Second, d.Reason)
		}
		if d := Decide(p, st, h, d.At); d.Action != Restart {
			t.Fatalf("restart %d: at At got %v, want restart (%s)", i+1, d.Action, d.Reason)
		}
		now = d.At
		h = History{RestartCount: h.RestartCount + 1, LastRestart: now}
	}
}

func TestPolicy_Delay(t *testing.T) {
	tests := []struct {
		name string
		p    Policy
		n    int
		want time.Duration
	}{
		{"n=0", Policy{}, 0, 10 * time.Second},
		{"n=1", Policy{}, 1, 20 * time.Second},
		{"n=2", Policy{}, 2, 40 * time.Second},
		{"n=3", Policy{}, 3, 80 * time.Second},
		{"n=4", Policy{}, 4, 160 * time.Second},
		{"n=5", Policy{}, 5, 300 * time.Second},
		{"n=6", Policy{}, 6, 300 * time.Second},
		{"n=1000-no-overflow", Policy{}, 1000, 300 * time.Second},
		{"negative-n", Policy{}, -3, 10 * time.Second},
		{"huge-cap-no-overflow", Policy{Cap: 1<<63 - 1}, 200, 1<<63 - 1},
		{"custom", Policy{Unit: time.Second, Cap: time.Minute}, 5, 32 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Delay(tc.n); got != tc.want {
				t.Errorf("Delay(%d) = %v, want %v", tc.n, got, tc.want)
			}
		})
	}
}

func TestDecide_Jitter(t *testing.T) {
	st := exited(1, 0)
	exact := Decide(Policy{Kind: Always}, st, History{}, t0)
	p := Policy{Kind: Always, Jitter: 0.5, JitterSeed: 42}
	a := Decide(p, st, History{}, t0)
	b := Decide(p, st, History{}, t0.Add(time.Second))
	if a.Action != Wait || a.At != b.At {
		t.Fatalf("repeated calls for the same exit disagree: %v vs %v", a.At, b.At)
	}
	lo, hi := t0.Add(5*time.Second), exact.At
	if a.At.Before(lo) || a.At.After(hi) {
		t.Fatalf("jittered At %v outside [%v, %v]", a.At, lo, hi)
	}
	seen := map[time.Time]bool{}
	for seed := uint64(0); seed < 20; seed++ {
		p.JitterSeed = seed
		seen[Decide(p, st, History{}, t0).At] = true
	}
	if len(seen) < 10 {
		t.Fatalf("20 seeds gave only %d distinct delays", len(seen))
	}
	p.Jitter = 7 // clamped to 1: never below zero delay
	if d := Decide(p, st, History{}, t0); d.At.Before(t0) {
		t.Fatalf("At %v before the exit", d.At)
	}
}

func TestParseKind(t *testing.T) {
	tests := []struct {
		in   string
		want Kind
		ok   bool
	}{
		{"never", Never, true},
		{"on-failure", OnFailure, true},
		{"On-Unhealthy", OnUnhealthy, true},
		{"ALWAYS", Always, true},
		{"sometimes", Never, false},
		{"", Never, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseKind(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseKind(%q) = %v, %v", tc.in, got, err)
			}
			if tc.ok && !strings.EqualFold(got.String(), tc.in) {
				t.Fatalf("String() = %q", got.String())
			}
		})
	}
	if !(Never < OnFailure && OnFailure < OnUnhealthy && OnUnhealthy < Always) {
		t.Fatal("policy levels are not ordered")
	}
}

// FuzzDecide checks invariants for arbitrary inputs: never panics, a Wait is
// in the future and no later than the cap from now, never never restarts a
// module that has run, and the answer does not depend on calling it twice.
func FuzzDecide(f *testing.F) {
	f.Add(uint8(3), true, false, uint8(0), 1, int64(-5), int64(-1), 2, int64(-30), 0)
	f.Add(uint8(1), false, true, uint8(3), 0, int64(-600), int64(0), 0, int64(0), 3)
	f.Fuzz(func(t *testing.T, kind uint8, exitedF, running bool, health uint8, code int, startedS, exitedS int64, count int, lastS int64, max int) {
		p := Policy{Kind: Kind(kind % 4), MaxRestarts: max}
		sec := func(s int64) time.Time {
			if s == 0 {
				return time.Time{}
			}
			return t0.Add(time.Duration(s%1e9) * time.Second)
		}
		st := Status{Running: running, Exited: exitedF, Health: Health(health % 4), ExitCode: code, StartedAt: sec(startedS), ExitedAt: sec(exitedS)}
		h := History{RestartCount: count, LastRestart: sec(lastS)}
		d := Decide(p, st, h, t0)
		if d != Decide(p, st, h, t0) {
			t.Fatal("not deterministic")
		}
		if d.Reason == "" {
			t.Fatal("empty reason")
		}
		if d.Action == Wait && (!d.At.After(t0) || d.At.Sub(t0) > DefaultCap) {
			t.Fatalf("wait until %v from %v", d.At, t0)
		}
		if p.Kind == Never && st.Exited && !st.Running && d.Action != None {
			t.Fatalf("never policy decided %v", d.Action)
		}
		if d.Action == Stop && (!st.Running || st.Health != Unhealthy) {
			t.Fatalf("stop for a module that is not running unhealthy")
		}
	})
}
