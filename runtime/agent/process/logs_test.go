package process_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/process"
)

func TestLogs_Select(t *testing.T) {
	rt, _ := mustRuntime(t)
	mustStart(t, rt, spec("lines", "", "lines", "5"))
	waitState(t, rt, "lines", agent.StateExited)

	// The times of the five lines, from the stored records.
	stamped := strings.Split(strings.TrimSuffix(logs(t, rt, "lines", agent.LogOptions{Timestamps: true}), "\n"), "\n")
	if len(stamped) != 5 {
		t.Fatalf("%d lines with timestamps: %q", len(stamped), stamped)
	}
	var at []time.Time
	for i, l := range stamped {
		ts, text, _ := strings.Cut(l, " ")
		tm, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || text != fmt.Sprintf("line %d", i+1) {
			t.Fatalf("line %q: time %v, text %q", l, err, text)
		}
		if len(ts) != len("2006-01-02T15:04:05.000000000Z") {
			t.Errorf("time %q is not in the fixed nanosecond form", ts)
		}
		at = append(at, tm)
	}
	lines := func(ns ...int) string {
		var b strings.Builder
		for _, n := range ns {
			fmt.Fprintf(&b, "line %d\n", n)
		}
		return b.String()
	}
	for _, tc := range []struct {
		name string
		opts agent.LogOptions
		want string
	}{
		{"all", agent.LogOptions{}, lines(1, 2, 3, 4, 5)},
		{"tail", agent.LogOptions{Tail: 2}, lines(4, 5)},
		{"tail-more-than-all", agent.LogOptions{Tail: 50}, lines(1, 2, 3, 4, 5)},
		{"since", agent.LogOptions{Since: at[2]}, lines(3, 4, 5)},
		{"until", agent.LogOptions{Until: at[2]}, lines(1, 2)},
		{"since-until", agent.LogOptions{Since: at[1], Until: at[3]}, lines(2, 3)},
		{"since-tail", agent.LogOptions{Since: at[1], Tail: 1}, lines(5)},
		{"until-tail", agent.LogOptions{Until: at[3], Tail: 2}, lines(2, 3)},
		{"since-future", agent.LogOptions{Since: at[4].Add(time.Hour)}, ""},
		{"timestamps-tail", agent.LogOptions{Timestamps: true, Tail: 1}, stamped[4] + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := logs(t, rt, "lines", tc.opts); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("created-never-started", func(t *testing.T) {
		if err := rt.Create(ctx, spec("quiet", "", "sleep")); err != nil {
			t.Fatal(err)
		}
		if got := logs(t, rt, "quiet", agent.LogOptions{}); got != "" {
			t.Errorf("got %q", got)
		}
	})
}

// TestLogs_FollowAcrossRotation follows a module that writes 80 lines at
// once into a log rotated at 4 KiB (one rotation), and checks that every
// line arrives once, in order.
func TestLogs_FollowAcrossRotation(t *testing.T) {
	rt, dir := mustRuntime(t, func(o *process.Options) { o.LogMaxBytes = 4096 })
	trigger := filepath.Join(t.TempDir(), "go")
	mustStart(t, rt, spec("follow", "", "wait", trigger, "80"))
	waitLog(t, rt, "follow", "ready")

	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc, err := rt.Logs(fctx, "follow", agent.LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := make(chan string, 200)
	ended := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(rc)
		for sc.Scan() {
			got <- sc.Text()
		}
		ended <- sc.Err()
	}()
	next := func() string {
		t.Helper()
		select {
		case l := <-got:
			return l
		case <-time.After(10 * time.Second):
			t.Fatal("no log line within 10 s")
		}
		return ""
	}
	if l := next(); l != "ready" {
		t.Fatalf("first line %q, want ready", l)
	}
	if err := os.WriteFile(trigger, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 80; i++ {
		if want := fmt.Sprintf("line %03d %s", i, strings.Repeat("x", 40)); next() != want {
			t.Fatalf("line %d out of order or missing", i)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "logs", "follow.log.1")); err != nil {
		t.Errorf("the log was not rotated: %v", err)
	}
	cancel()
	select {
	case err := <-ended:
		if err != nil {
			t.Errorf("follow ended with %v, want EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end with its context")
	}
	if len(got) != 0 {
		t.Errorf("extra line %q", <-got)
	}

	// Without Follow, the rotated file and the current one read as one.
	all := logs(t, rt, "follow", agent.LogOptions{})
	if !strings.HasSuffix(all, fmt.Sprintf("line 080 %s\n", strings.Repeat("x", 40))) {
		t.Errorf("logs do not end with the last line: %q", all[max(0, len(all)-100):])
	}
	n := strings.Count(all, "\n")
	for i := 80 - n + 2; i <= 80; i++ { // the kept lines are the last ones, in order
		if !strings.Contains(all, fmt.Sprintf("line %03d ", i)) {
			t.Errorf("line %d missing from the kept logs", i)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "state", "logs", "follow.log")); err != nil || fi.Size() > 4096 {
		t.Errorf("current log file: %v, %v; want at most 4096 bytes", fi, err)
	}
}

func TestLogs_FollowUntil(t *testing.T) {
	rt, _ := mustRuntime(t)
	mustStart(t, rt, spec("sleeper", "", "sleep"))
	waitLog(t, rt, "sleeper", "pid=")
	rc, err := rt.Logs(ctx, "sleeper", agent.LogOptions{Follow: true, Until: time.Now().Add(200 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	done := make(chan string)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(rc)
		for sc.Scan() {
			b.WriteString(sc.Text())
		}
		done <- b.String()
	}()
	select {
	case text := <-done:
		if !strings.HasPrefix(text, "pid=") {
			t.Errorf("got %q", text)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end once Until passed")
	}
}
