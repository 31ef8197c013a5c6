package agent_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/agenttest"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
)

// watchedRuntime is a FakeRuntime that is also an ExitWatcher fed by the
// test.
type watchedRuntime struct {
	*agenttest.FakeRuntime
	exits    chan string
	watches  chan struct{} // one value per WatchExits call
	failures int           // calls of WatchExits still to fail
	lists    atomic.Int64  // List calls
}

func (w *watchedRuntime) List(ctx context.Context) ([]agent.ModuleState, error) {
	w.lists.Add(1)
	return w.FakeRuntime.List(ctx)
}

func (w *watchedRuntime) WatchExits(ctx context.Context) (<-chan string, error) {
	w.watches <- struct{}{}
	if w.failures > 0 {
		w.failures--
		return nil, errors.New("no events today")
	}
	out := make(chan string)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case name := <-w.exits:
				select {
				case out <- name:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// crash makes module exit in the fake runtime and tells the watch,
// returning the exit time.
func (w *watchedRuntime) crash(t *testing.T, module string) time.Time {
	t.Helper()
	at := time.Now()
	if err := w.Exit(module, 1); err != nil {
		t.Fatal(err)
	}
	w.exits <- module
	return at
}

// newWatchedHarness is a harness on the real clock whose runtime watches
// exits, with a reconcile period so long that only the watch (or a Wait's
// timer) can make the agent reconcile during the test.
func newWatchedHarness(t *testing.T, unit time.Duration) (*harness, *watchedRuntime) {
	h := newHarness(t)
	h.now = time.Now
	h.opts.Period = time.Hour
	h.opts.Backoff = restart.Policy{Unit: unit}
	w := &watchedRuntime{FakeRuntime: h.rt, exits: make(chan string), watches: make(chan struct{}, 4)}
	h.wrap = func(agent.Runtime) agent.Runtime { return w }
	return h, w
}

func TestRun_ExitWakesReconcile(t *testing.T) {
	h, w := newWatchedHarness(t, time.Hour)
	h.twin.SetDesired(deploymentDoc(t))
	h.start()
	h.waitConverged()
	<-w.watches

	exited := w.crash(t, "tempSensor")
	waitFor(t, "tempSensor reported in back-off", func() bool {
		return runtimeStatus(h.twin.Reported(), "tempSensor") == string(agent.StatusBackoff)
	})
	// Within the debounce and a reconcile; without the watch the next
	// reconcile would be an hour away.
	if d := time.Since(exited); d > time.Second {
		t.Errorf("back-off reported %s after the exit, want within 1 s", d)
	}
}

func TestRun_BackoffEndsOnTime(t *testing.T) {
	const unit = 300 * time.Millisecond
	h, w := newWatchedHarness(t, unit)
	h.twin.SetDesired(deploymentDoc(t))
	h.start()
	h.waitConverged()
	<-w.watches

	exited := w.crash(t, "tempSensor")
	var restarted time.Time
	waitFor(t, "tempSensor restarted", func() bool {
		m, _, _ := h.rt.Module("tempSensor")
		if m.State == agent.StateRunning && m.StartedAt.After(exited) {
			restarted = m.StartedAt
			return true
		}
		return false
	})
	d := restarted.Sub(exited)
	t.Logf("restarted %s after the exit (back-off %s)", d, unit)
	if d < unit {
		t.Errorf("restarted %s after the exit, before the back-off of %s ended", d, unit)
	}
	if d > unit+500*time.Millisecond {
		t.Errorf("restarted %s after the exit, want within 500 ms of the back-off's end (%s)", d, unit)
	}
}

// TestRun_ExitBurstIsOneReconcile: exits that come together cost one
// reconcile (one List), not one each.
func TestRun_ExitBurstIsOneReconcile(t *testing.T) {
	h, w := newWatchedHarness(t, time.Hour)
	h.twin.SetDesired(deploymentDoc(t))
	h.start()
	h.waitConverged()
	<-w.watches
	before := w.lists.Load()
	for _, m := range []string{"tempSensor", "filter", "edgeHub"} {
		w.crash(t, m)
	}
	waitFor(t, "the modules reported in back-off", func() bool {
		rep := h.twin.Reported()
		return runtimeStatus(rep, "tempSensor") == string(agent.StatusBackoff) &&
			runtimeStatus(rep, "filter") == string(agent.StatusBackoff) &&
			runtimeStatus(rep, "edgeHub") == string(agent.StatusBackoff)
	})
	// A reconcile with nothing to do lists once.
	if got := w.lists.Load() - before; got != 1 {
		t.Errorf("%d reconciles (Lists) for a burst of 3 exits, want 1", got)
	}
}

// TestRun_ExitWatchRetried: a watch that cannot be set up is tried again
// (after Options.Period), and exits then wake the agent.
func TestRun_ExitWatchRetried(t *testing.T) {
	h, w := newWatchedHarness(t, time.Hour)
	h.opts.Period = 100 * time.Millisecond
	w.failures = 1
	h.twin.SetDesired(deploymentDoc(t))
	h.start()
	for i := range 2 {
		select {
		case <-w.watches:
		case <-time.After(5 * time.Second):
			t.Fatalf("WatchExits called %d times, want 2 (a retry after the failure)", i)
		}
	}
}
