package agent_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
)

func intp(n int) *int           { return &n }
func floatp(f float64) *float64 { return &f }

func TestDescribe(t *testing.T) {
	tests := []struct {
		name string
		m    agent.ModuleInfo
		want string
	}{
		{"running", agent.ModuleInfo{RuntimeStatus: agent.StatusRunning, StartedAt: now.Add(-3 * time.Minute)}, "Up 3 minutes"},
		{"running, start unknown", agent.ModuleInfo{RuntimeStatus: agent.StatusRunning}, "Up"},
		{"running for a second", agent.ModuleInfo{RuntimeStatus: agent.StatusRunning, StartedAt: now.Add(-time.Second)}, "Up 1 second"},
		{"unhealthy", agent.ModuleInfo{RuntimeStatus: agent.StatusUnhealthy, StartedAt: now.Add(-2 * time.Hour)}, "Up 2 hours (unhealthy)"},
		{"stopped", agent.ModuleInfo{RuntimeStatus: agent.StatusStopped, StartedAt: now.Add(-time.Hour), ExitedAt: now.Add(-2 * time.Minute), ExitCode: intp(0)}, "Stopped 2 minutes ago"},
		{"stopped, time unknown", agent.ModuleInfo{RuntimeStatus: agent.StatusStopped, StartedAt: now.Add(-time.Hour)}, "Stopped"},
		{"created, never started", agent.ModuleInfo{RuntimeStatus: agent.StatusStopped}, "Created, not started"},
		{"failed", agent.ModuleInfo{RuntimeStatus: agent.StatusFailed, ExitedAt: now.Add(-5 * time.Second), ExitCode: intp(1)}, "Failed (1) 5 seconds ago"},
		{"failed, time unknown", agent.ModuleInfo{RuntimeStatus: agent.StatusFailed, ExitCode: intp(137)}, "Failed (137)"},
		{"failed in the future (clock jump)", agent.ModuleInfo{RuntimeStatus: agent.StatusFailed, ExitedAt: now.Add(time.Minute), ExitCode: intp(2)}, "Failed (2) just now"},
		{"back-off", agent.ModuleInfo{RuntimeStatus: agent.StatusBackoff, RestartAt: now.Add(20 * time.Second)}, "Back-off, restart in 20s"},
		{"back-off rounds up", agent.ModuleInfo{RuntimeStatus: agent.StatusBackoff, RestartAt: now.Add(19*time.Second + time.Millisecond)}, "Back-off, restart in 20s"},
		{"back-off due", agent.ModuleInfo{RuntimeStatus: agent.StatusBackoff, RestartAt: now}, "Back-off, restarting"},
		{"back-off unknown", agent.ModuleInfo{RuntimeStatus: agent.StatusBackoff}, "Back-off"},
		{"downloading", agent.ModuleInfo{RuntimeStatus: agent.StatusDownloading, DownloadProgress: floatp(0.456)}, "Downloading 45%"},
		{"downloading, size unknown", agent.ModuleInfo{RuntimeStatus: agent.StatusDownloading}, "Downloading"},
		{"downloading, clamped", agent.ModuleInfo{RuntimeStatus: agent.StatusDownloading, DownloadProgress: floatp(1.7)}, "Downloading 100%"},
		{"dead", agent.ModuleInfo{RuntimeStatus: agent.StatusDead, ExitedAt: now.Add(-90 * time.Second)}, "Dead About a minute ago"},
		{"not created", agent.ModuleInfo{RuntimeStatus: agent.StatusUnknown}, "Not created"},
		{"unknown state", agent.ModuleInfo{RuntimeStatus: agent.StatusUnknown, StartedAt: now.Add(-time.Minute)}, "Unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := agent.Describe(tt.m, now); got != tt.want {
				t.Errorf("Describe = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHumanDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "Less than a second"},
		{500 * time.Millisecond, "Less than a second"},
		{time.Second, "1 second"},
		{59 * time.Second, "59 seconds"},
		{60 * time.Second, "About a minute"},
		{119 * time.Second, "About a minute"},
		{2 * time.Minute, "2 minutes"},
		{59 * time.Minute, "59 minutes"},
		{time.Hour, "About an hour"},
		{5 * time.Hour, "5 hours"},
		{47 * time.Hour, "47 hours"},
		{3 * 24 * time.Hour, "3 days"},
		{15 * 24 * time.Hour, "2 weeks"},
		{120 * 24 * time.Hour, "4 months"},
		{800 * 24 * time.Hour, "2 years"},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			if got := agent.HumanDuration(tt.d); got != tt.want {
				t.Errorf("HumanDuration(%s) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}

func TestPullStatusOf(t *testing.T) {
	tests := []struct {
		name   string
		layers []agent.PullProgress
		want   agent.PullStatus
		frac   float64
	}{
		{"nothing yet", nil, agent.PullStatus{}, 0},
		{"one layer half way", []agent.PullProgress{{Layer: "a", Status: "Downloading", Current: 50, Total: 100}},
			agent.PullStatus{Current: 50, Total: 100, Layers: 1}, 0.5},
		{"completed layers count whole", []agent.PullProgress{
			{Layer: "a", Status: "Pull complete", Current: 0, Total: 100},
			{Layer: "b", Status: "Downloading", Current: 25, Total: 300},
			{Layer: "c", Status: "Extracting", Current: 1, Total: 100},
		}, agent.PullStatus{Current: 225, Total: 500, Layers: 3, Done: 2}, 0.45},
		{"cached layer without size", []agent.PullProgress{{Layer: "a", Status: "Already exists"}, {Layer: "b", Status: "Waiting"}},
			agent.PullStatus{Layers: 2, Done: 1}, 0},
		{"current beyond total is capped", []agent.PullProgress{{Layer: "a", Status: "Downloading", Current: 150, Total: 100}},
			agent.PullStatus{Current: 100, Total: 100, Layers: 1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := agent.PullStatusOf(tt.layers)
			if got != tt.want {
				t.Errorf("PullStatusOf = %+v, want %+v", got, tt.want)
			}
			if f := got.Fraction(); f != tt.frac {
				t.Errorf("Fraction = %v, want %v", f, tt.frac)
			}
		})
	}
}

func TestParseLogQuery(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		want    agent.LogOptions
		wantErr string
	}{
		{name: "defaults", query: "", want: agent.LogOptions{}},
		{name: "all", query: "tail=all", want: agent.LogOptions{}},
		{name: "everything", query: "tail=10&since=10m&until=2026-03-01T11:59:00Z&follow=true&timestamps=1",
			want: agent.LogOptions{Tail: 10, Since: now.Add(-10 * time.Minute), Until: time.Date(2026, 3, 1, 11, 59, 0, 0, time.UTC), Follow: true, Timestamps: true}},
		{name: "days and unix time", query: "since=1d&until=1772366400",
			want: agent.LogOptions{Since: now.Add(-24 * time.Hour), Until: time.Unix(1772366400, 0)}},
		{name: "bad tail", query: "tail=-1", wantErr: "tail"},
		{name: "bad since", query: "since=yesterday", wantErr: "since"},
		{name: "bad follow", query: "follow=maybe", wantErr: "follow"},
		{name: "until before since", query: "since=1m&until=2m", wantErr: "not after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := agent.ParseLogQuery(q, now)
			if tt.wantErr != "" {
				if err == nil || !containsAll(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Since.Equal(tt.want.Since) || !got.Until.Equal(tt.want.Until) {
				t.Errorf("since/until = %v/%v, want %v/%v", got.Since, got.Until, tt.want.Since, tt.want.Until)
			}
			got.Since, got.Until, tt.want.Since, tt.want.Until = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			if got != tt.want {
				t.Errorf("ParseLogQuery = %+v, want %+v", got, tt.want)
			}
			// LogQuery is the inverse.
			back, err := agent.ParseLogQuery(agent.LogQuery(got), now)
			if err != nil || back != got {
				t.Errorf("round trip = %+v, %v; want %+v", back, err, got)
			}
		})
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		found := false
		for i := 0; i+len(p) <= len(s); i++ {
			if s[i:i+len(p)] == p {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func TestModules(t *testing.T) {
	d := mustDesired(t)
	image := func(name string) string { return d.Spec(module(t, d, name)).Image }
	// The back-off of tempSensor after its first restart, jitter included.
	crashed := withRecord(exitedAgo(t, d, "tempSensor", 1, 5*time.Second), history(1, 5*time.Second))
	dec := restart.Decide(d.Policy(module(t, d, "tempSensor")), restart.Status{
		Exited: true, ExitCode: 1, StartedAt: crashed.StartedAt, ExitedAt: crashed.ExitedAt,
	}, crashed.Record.History, now)
	if dec.Action != restart.Wait {
		t.Fatalf("Decide = %+v, want a wait", dec)
	}
	wait := (dec.At.Sub(now) + time.Second - 1).Truncate(time.Second)
	tests := []struct {
		name    string
		listed  []agent.ModuleState
		records map[string]agent.Record
		pulls   map[string]agent.PullStatus
		want    map[string]string // module -> "status | description"
	}{
		{
			name:   "converged",
			listed: converged(t, d),
			want: map[string]string{
				"edgeHub": "running | Up About a minute", "tempSensor": "running | Up About a minute", "filter": "running | Up About a minute",
				"archiver": "stopped | Created, not started",
			},
		},
		{
			name:  "nothing created, one image downloading",
			pulls: map[string]agent.PullStatus{image("filter"): {Current: 30, Total: 100, Layers: 1}},
			want:  map[string]string{"edgeHub": "unknown | Not created", "filter": "downloading | Downloading 30%"},
		},
		{
			name:    "crashed module in back-off",
			listed:  replace(converged(t, d), withRecord(crashed, agent.Record{})),
			records: map[string]agent.Record{"tempSensor": crashed.Record},
			want:    map[string]string{"tempSensor": "backoff | Back-off, restart in " + wait.String()},
		},
		{
			name:   "on-failure module that exited cleanly",
			listed: replace(converged(t, d), exitedAgo(t, d, "filter", 0, 5*time.Second)),
			want:   map[string]string{"filter": "stopped | Stopped 5 seconds ago"},
		},
		{
			name:   "module no longer desired",
			listed: append(converged(t, d), agent.ModuleState{Name: "old", State: agent.StateExited, ExitCode: 3, ExitedAt: now.Add(-time.Minute), Image: "x/old:1"}),
			want:   map[string]string{"old": "failed | Failed (3) About a minute ago"},
		},
		{
			name: "unhealthy",
			listed: replace(converged(t, d), func() agent.ModuleState {
				s := runningFor(t, d, "filter", 2*time.Hour)
				s.Health = restart.Unhealthy
				return s
			}()),
			want: map[string]string{"filter": "unhealthy | Up 2 hours (unhealthy)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := agent.Modules(d, tt.listed, tt.records, tt.pulls, now)
			byName := map[string]agent.ModuleInfo{}
			for i, m := range got {
				byName[m.Name] = m
				if i > 0 && got[i-1].Name >= m.Name {
					t.Errorf("not sorted: %q before %q", got[i-1].Name, m.Name)
				}
			}
			for name, want := range tt.want {
				m, ok := byName[name]
				if !ok {
					t.Errorf("no row for %q in %+v", name, got)
					continue
				}
				if g := string(m.RuntimeStatus) + " | " + m.Description; g != want {
					t.Errorf("%s = %q, want %q", name, g, want)
				}
			}
			for _, m := range got {
				if m.Desired != (m.Name != "old") {
					t.Errorf("%s: Desired = %v", m.Name, m.Desired)
				}
			}
		})
	}
}

func TestModules_NoDeployment(t *testing.T) {
	listed := []agent.ModuleState{{Name: "m", State: agent.StateRunning, StartedAt: now.Add(-time.Minute), Image: "x/m:1"}}
	got := agent.Modules(agent.Desired{}, listed, nil, nil, now)
	if len(got) != 1 || got[0].RuntimeStatus != agent.StatusRunning || got[0].Description != "Up About a minute" || got[0].Image != "x/m:1" {
		t.Fatalf("Modules = %+v", got)
	}
}

// The registry password of the test deployment never shows in a module's
// description, even when a failed pull quotes it.
func TestModules_RedactsRetryError(t *testing.T) {
	d := mustDesired(t)
	rec := agent.Record{Retry: agent.Retry{Failures: 1, At: now.Add(10 * time.Second), Last: now, Err: "pull: auth " + password + " refused"}}
	got := agent.Modules(d, nil, map[string]agent.Record{"filter": rec}, nil, now)
	for _, m := range got {
		if m.Name != "filter" {
			continue
		}
		if containsAll(m.StatusDescription, password) || !containsAll(m.StatusDescription, "retrying in 10s", "***") {
			t.Fatalf("filter description %q", m.StatusDescription)
		}
		return
	}
	t.Fatal("no filter row")
}
