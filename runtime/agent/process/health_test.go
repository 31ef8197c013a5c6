package process_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent/process"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
)

// healthOpts is createOptions with a CMD-SHELL health check every 50 ms.
func healthOpts(shell string, timeout, startPeriod time.Duration, retries int) string {
	return fmt.Sprintf(`{"Healthcheck":{"Test":["CMD-SHELL",%q],"Interval":%d,"Timeout":%d,"StartPeriod":%d,"Retries":%d}}`,
		shell, int64(50*time.Millisecond), int64(timeout), int64(startPeriod), retries)
}

// runInBackground runs rt.Run until the test ends.
func runInBackground(t *testing.T, rt *process.Runtime) {
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- rt.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func waitHealth(t *testing.T, rt *process.Runtime, name string, want restart.Health) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%s %s", name, want), func() bool {
		return mustModule(t, rt, name).Health == want
	})
}

func TestHealth_UnhealthyAndBack(t *testing.T) {
	shellAvailable(t)
	rt, _ := mustRuntime(t, func(o *process.Options) { o.PollInterval = 20 * time.Millisecond })
	ok := filepath.Join(t.TempDir(), "ok")
	mustStart(t, rt, spec("checked", healthOpts("test -f "+ok, time.Second, 0, 2), "sleep"))

	// No checks run without Run: the module is still starting.
	if h := mustModule(t, rt, "checked").Health; h != restart.HealthStarting {
		t.Fatalf("health before any check: %s", h)
	}
	runInBackground(t, rt)
	waitHealth(t, rt, "checked", restart.Unhealthy)
	if err := os.WriteFile(ok, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, rt, "checked", restart.Healthy)
	if err := os.Remove(ok); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, rt, "checked", restart.Unhealthy)

	// A new run starts afresh.
	if err := rt.Stop(ctx, "checked", 0); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, "checked"); err != nil {
		t.Fatal(err)
	}
	if h := mustModule(t, rt, "checked").Health; h != restart.HealthStarting && h != restart.Unhealthy {
		t.Errorf("health after a restart: %s", h)
	}
	waitHealth(t, rt, "checked", restart.Unhealthy)
}

// TestHealth_StartPeriod checks that failures within the start period do
// not count, and that the start period ends with the first success.
func TestHealth_StartPeriod(t *testing.T) {
	shellAvailable(t)
	rt, _ := mustRuntime(t, func(o *process.Options) { o.PollInterval = 20 * time.Millisecond })
	dir := t.TempDir()
	ok, count := filepath.Join(dir, "ok"), filepath.Join(dir, "count")
	check := fmt.Sprintf("echo x >> %s; test -f %s", count, ok)
	mustStart(t, rt, spec("slow", healthOpts(check, time.Second, time.Hour, 1), "sleep"))
	runInBackground(t, rt)

	waitFor(t, 10*time.Second, "four failed checks", func() bool {
		b, _ := os.ReadFile(count)
		return strings.Count(string(b), "x") >= 4
	})
	if h := mustModule(t, rt, "slow").Health; h != restart.HealthStarting {
		t.Fatalf("health after failures in the start period: %s, want starting", h)
	}
	if err := os.WriteFile(ok, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, rt, "slow", restart.Healthy)
	if err := os.Remove(ok); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, rt, "slow", restart.Unhealthy) // counted now: it has started
}

func TestHealth_Timeout(t *testing.T) {
	shellAvailable(t)
	rt, _ := mustRuntime(t, func(o *process.Options) { o.PollInterval = 20 * time.Millisecond })
	mustStart(t, rt, spec("hung", healthOpts("sleep 30", 100*time.Millisecond, 0, 1), "sleep"))
	runInBackground(t, rt)
	began := time.Now()
	waitHealth(t, rt, "hung", restart.Unhealthy)
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("a hung check took %s to count", took)
	}
}

func TestHealth_CMDForm(t *testing.T) {
	rt, _ := mustRuntime(t, func(o *process.Options) { o.PollInterval = 20 * time.Millisecond })
	exe, _ := os.Executable()
	// The check is the test binary in module mode (the module's environment
	// sets it): "exit 0" passes.
	opts := fmt.Sprintf(`{"Healthcheck":{"Test":["CMD",%q,"exit","0"],"Interval":%d}}`, exe, int64(50*time.Millisecond))
	mustStart(t, rt, spec("cmdform", opts, "sleep"))
	runInBackground(t, rt)
	waitHealth(t, rt, "cmdform", restart.Healthy)
}
