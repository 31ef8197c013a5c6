package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/agenttest"
)

// streamingLogs is a runtime whose Logs of one module stream: the lines
// written so far, then, with Follow, every line Append adds until the
// request's context ends. It records the options of every Logs call.
type streamingLogs struct {
	*agenttest.FakeRuntime

	mu      sync.Mutex
	lines   []string
	waiters []chan struct{} // woken on Append
	opts    []agent.LogOptions
}

func (s *streamingLogs) Append(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
	for _, w := range s.waiters {
		close(w)
	}
	s.waiters = nil
}

// Calls returns the options of the Logs calls so far.
func (s *streamingLogs) Calls() []agent.LogOptions {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]agent.LogOptions(nil), s.opts...)
}

func (s *streamingLogs) Logs(ctx context.Context, name string, opts agent.LogOptions) (io.ReadCloser, error) {
	s.mu.Lock()
	s.opts = append(s.opts, opts)
	s.mu.Unlock()
	pr, pw := io.Pipe()
	go func() {
		sent := 0
		for {
			s.mu.Lock()
			pending := s.lines[sent:]
			sent = len(s.lines)
			wake := make(chan struct{})
			s.waiters = append(s.waiters, wake)
			s.mu.Unlock()
			for _, l := range pending {
				if _, err := io.WriteString(pw, l+"\n"); err != nil {
					return
				}
			}
			if !opts.Follow {
				pw.Close()
				return
			}
			select {
			case <-ctx.Done():
				pw.Close() // a followed stream ends cleanly with its context
				return
			case <-wake:
			}
		}
	}()
	return pr, nil
}

// lockedBuffer is a strings.Builder safe for a writer and a poller.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogs_Follow streams a module's logs with --follow: the lines there
// at the start, then lines appended while following, until the command is
// interrupted, which ends it with status 0.
func TestLogs_Follow(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		prefix func(line string) string // how a line appears on stdout
	}{
		{name: "text", args: []string{"logs", "web", "--follow"}, prefix: func(l string) string { return l + "\n" }},
		{name: "json lines", args: []string{"-o", "json", "logs", "web", "-f"},
			prefix: func(l string) string { return `{"module":"web","line":"` + l + `"}` + "\n" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ec := testConfig(dir)
			writeConfig(t, ec)
			rt := &streamingLogs{FakeRuntime: &agenttest.FakeRuntime{}}
			rt.Put(agent.ModuleState{Name: "web", State: agent.StateRunning, StartedAt: time.Now()})
			rt.Append("one")
			rt.Append("two")
			startAPI(t, dir, rt, nil, ec)

			var stdout, stderr lockedBuffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan int, 1)
			go func() {
				done <- run(ctx, append([]string{"--data-dir", dir}, tc.args...), env{Stdout: &stdout, Stderr: &stderr})
			}()
			want := tc.prefix("one") + tc.prefix("two")
			waitFor(t, "the lines already written", func() bool { return stdout.String() == want })
			for _, l := range []string{"three", "four"} {
				rt.Append(l)
				want += tc.prefix(l)
				waitFor(t, "line "+l+" while following", func() bool { return stdout.String() == want })
			}
			select {
			case code := <-done:
				t.Fatalf("logs --follow ended by itself with %d; stderr %q", code, stderr.String())
			default:
			}
			cancel() // Ctrl-C
			select {
			case code := <-done:
				if code != exitOK || stderr.String() != "" {
					t.Errorf("interrupted logs --follow = %d, stderr %q; want 0 and nothing", code, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("logs --follow did not stop when interrupted")
			}
			if got := stdout.String(); got != want {
				t.Errorf("stdout\n%q\nwant\n%q", got, want)
			}
			if calls := rt.Calls(); len(calls) != 1 || !calls[0].Follow {
				t.Errorf("runtime Logs calls %+v, want one with Follow", calls)
			}
		})
	}
}

// TestLogs_Since passes valid --since (and --until) values to the agent,
// which reads them against its own clock.
func TestLogs_Since(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	ec := testConfig(dir)
	writeConfig(t, ec)
	rt := &streamingLogs{FakeRuntime: &agenttest.FakeRuntime{}}
	rt.Put(agent.ModuleState{Name: "web", State: agent.StateRunning, StartedAt: now})
	rt.Append("line")
	// The management API on the agent's fixed clock.
	ms := &agent.ManagementServer{Path: filepath.Join(dir, agent.ManagementSocket), Runtime: rt, Config: ec,
		Now: func() time.Time { return now }}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ms.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("management server: %v", err)
		}
	})
	waitFor(t, "the management socket", func() bool {
		_, err := newAgentClient(ms.Path, "").Status(context.Background())
		return err == nil
	})
	tests := []struct {
		name      string
		args      []string
		wantSince time.Time
		wantUntil time.Time
	}{
		{name: "default: one day", args: nil, wantSince: now.Add(-24 * time.Hour)},
		{name: "duration", args: []string{"--since", "10m"}, wantSince: now.Add(-10 * time.Minute)},
		{name: "days", args: []string{"--since", "2d"}, wantSince: now.Add(-48 * time.Hour)},
		{name: "RFC 3339", args: []string{"--since", "2026-03-01T11:30:00Z", "--until", "2026-03-01T11:45:00+00:00"},
			wantSince: time.Date(2026, 3, 1, 11, 30, 0, 0, time.UTC), wantUntil: time.Date(2026, 3, 1, 11, 45, 0, 0, time.UTC)},
		{name: "Unix seconds", args: []string{"--since", "1772362800"}, wantSince: time.Unix(1772362800, 0)},
		{name: "everything", args: []string{"--since", ""}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := cli(t, env{}, append([]string{"--data-dir", dir, "logs", "web"}, tt.args...)...)
			if code != exitOK || out != "line\n" {
				t.Fatalf("logs %v = %d %q %q", tt.args, code, out, errOut)
			}
			calls := rt.Calls()
			if len(calls) != i+1 {
				t.Fatalf("%d Logs calls, want %d", len(calls), i+1)
			}
			got := calls[i]
			if !got.Since.Equal(tt.wantSince) || !got.Until.Equal(tt.wantUntil) || got.Follow {
				t.Errorf("runtime got since %v, until %v, follow %v; want since %v, until %v, no follow",
					got.Since, got.Until, got.Follow, tt.wantSince, tt.wantUntil)
			}
		})
	}
}
