package features

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/cucumber/godog"
)

// registerRestartSteps: restart policies and the back-off, checked in the
// modules' journals.
func registerRestartSteps(sc *godog.ScenarioContext, w *world) {
	sc.Step(`^"([^"]*)" is restarted$`, w.isRestarted)
	sc.Step(`^"([^"]*)" is not restarted$`, w.isNotRestarted)
	sc.Step(`^"([^"]*)" is restarted (\d+) times$`, w.isRestartedTimes)
	sc.Step(`^the waits before those restarts were about (.+) back-off units$`, w.waitsWere)
	sc.Step(`^"([^"]*)" has kept running for the reset time$`, w.keptRunningForReset)
	sc.Step(`^"([^"]*)" is stopped by the edge agent$`, w.stoppedByAgent)
	sc.Step(`^no module was restarted$`, w.noModuleRestarted)
}

// restartMargin is what a restart may take beyond its back-off: noticing
// the exit, starting a container.
const restartMargin = 10 * time.Second

// triggerDelay is when module's behaviour gives the policy something to
// decide (its "after"), 0 when it has none.
func (w *world) triggerDelay(name string) time.Duration {
	m, ok := w.deployment.modules[name]
	if !ok || m.behaviour.after == "" {
		return 0
	}
	d, _ := time.ParseDuration(m.behaviour.after) // checked by parseBehaviour
	return d
}

// waitStarts waits until module's journal shows at least n starts.
func (w *world) waitStarts(ctx context.Context, name string, n int, timeout time.Duration) ([]journalEvent, error) {
	var starts []journalEvent
	err := eventually(ctx, timeout, fmt.Sprintf("%q started %d times", name, n), func(context.Context) error {
		var err error
		if starts, err = w.sc.journal.starts(name); err != nil {
			return err
		}
		if len(starts) < n {
			return fmt.Errorf("%s", w.sc.journal.describe(name))
		}
		return nil
	})
	return starts, err
}

// isRestarted waits for the module's second start. A module that became
// unhealthy must have been stopped by the agent in between; the agent must
// count the restart.
func (w *world) isRestarted(ctx context.Context, name string) error {
	if _, err := w.waitStarts(ctx, name, 1, startTimeout); err != nil {
		return err
	}
	timeout := w.triggerDelay(name) + 2*w.s.backoff.delay(0) + restartMargin
	starts, err := w.waitStarts(ctx, name, 2, timeout)
	if err != nil {
		return err
	}
	if m := w.deployment.modules[name]; m != nil && m.behaviour.trigger == evUnhealthy {
		sigs, err := w.sc.journal.only(name, evSignal)
		if err != nil {
			return err
		}
		if len(sigs) == 0 || sigs[0].Time.After(starts[1].Time) {
			return fmt.Errorf("the unhealthy module was not stopped by the agent before it was started again; %s", w.sc.journal.describe(name))
		}
	}
	return w.waitModule(ctx, name, "reported with a restart counted", reportTimeout, func(m map[string]any) error {
		if n, _ := number(m["restartCount"]); n < 1 {
			return fmt.Errorf("restartCount %d", n)
		}
		return nil
	})
}

// isNotRestarted waits until the module has given its policy something to
// decide (it exited, became unhealthy, or was stopped), then watches it for
// longer than a restart would take: it must not start again, and an
// unhealthy module must be left running.
func (w *world) isNotRestarted(ctx context.Context, name string) error {
	if _, err := w.waitStarts(ctx, name, 1, startTimeout); err != nil {
		return err
	}
	var trigger journalEvent
	err := eventually(ctx, w.triggerDelay(name)+reportTimeout, fmt.Sprintf("%q exits, is stopped or becomes unhealthy", name), func(context.Context) error {
		events, err := w.sc.journal.events(name)
		if err != nil {
			return err
		}
		for _, e := range events {
			if e.Event == evExit || e.Event == evSignal || e.Event == evUnhealthy {
				trigger = e
				return nil
			}
		}
		return fmt.Errorf("%s", w.sc.journal.describe(name))
	})
	if err != nil {
		return err
	}
	window := w.s.backoff.delay(0) + 2*reconcilePeriod + time.Second
	err = consistently(ctx, window, fmt.Sprintf("%q is left as it is", name), func(context.Context) error {
		events, err := w.sc.journal.events(name)
		if err != nil {
			return err
		}
		starts, stops := 0, 0
		for _, e := range events {
			switch e.Event {
			case evStart:
				starts++
			case evSignal, evExit:
				stops++
			}
		}
		if starts != 1 || (trigger.Event == evUnhealthy && stops != 0) {
			return fmt.Errorf("after %s it was acted on; %s", trigger.Event, w.sc.journal.describe(name))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return w.waitModule(ctx, name, "reported with restart count 0", reportTimeout, func(m map[string]any) error {
		if n, _ := number(m["restartCount"]); n != 0 {
			return fmt.Errorf("restartCount %d", n)
		}
		return nil
	})
}

// isRestartedTimes waits for n restarts (n+1 starts), allowing each its
// back-off.
func (w *world) isRestartedTimes(ctx context.Context, name string, n int) error {
	if _, err := w.waitStarts(ctx, name, 1, startTimeout); err != nil {
		return err
	}
	timeout := restartMargin
	for i := 0; i < n; i++ {
		timeout += w.triggerDelay(name) + w.s.backoff.delay(i) + time.Second
	}
	_, err := w.waitStarts(ctx, name, n+1, timeout)
	return err
}

// waitsWere checks the back-off between each exit and the next start, in
// the last module's journal, against the units listed ("1, 2 and 4"): at
// least the back-off, and not much more.
func (w *world) waitsWere(ctx context.Context, list string) error {
	name := w.lastModule()
	starts, err := w.sc.journal.starts(name)
	if err != nil {
		return err
	}
	exits, err := w.sc.journal.only(name, evExit)
	if err != nil {
		return err
	}
	units := splitList(list)
	if len(starts) < len(units)+1 || len(exits) < len(units) {
		return fmt.Errorf("want %d restarts to measure; %s", len(units), w.sc.journal.describe(name))
	}
	for i, u := range units {
		n, err := strconv.ParseFloat(u, 64)
		if err != nil {
			return fmt.Errorf("back-off units %q: %q is not a number", list, u)
		}
		want := time.Duration(n * float64(w.s.backoff.unit))
		got := starts[i+1].Time.Sub(exits[i].Time)
		lo, hi := want*9/10-100*time.Millisecond, want+2*time.Second
		if got < lo || got > hi {
			return fmt.Errorf("restart %d came %s after the exit; want about %s (%s units of %s); %s",
				i+1, got.Round(time.Millisecond), want, u, w.s.backoff.unit, w.sc.journal.describe(name))
		}
		godog.Logf(ctx, "restart %d of %q: %s after the exit (back-off %s)", i+1, name, got.Round(time.Millisecond), want)
	}
	return nil
}

// lastModule is the only user module of the deployment, which the steps
// without a module name are about.
func (w *world) lastModule() string {
	names := w.deployment.names()
	if len(names) == 0 {
		return ""
	}
	return names[len(names)-1]
}

// maxResetWait is the longest reset time the scenarios wait for: with the
// agent's default (10 minutes) the scenario is skipped.
const maxResetWait = time.Minute

// keptRunningForReset waits until the module has run, since its last
// start, for the agent's reset time.
func (w *world) keptRunningForReset(ctx context.Context, name string) error {
	if reset := w.s.backoff.resetAfter; reset > maxResetWait {
		godog.Logf(ctx, "skipping: the edge agent's restart history resets after %s (no --%s flag to shorten it)", reset, flagResetAfter.flag)
		return godog.ErrSkip
	}
	starts, err := w.sc.journal.starts(name)
	if err != nil {
		return err
	}
	if len(starts) == 0 {
		return fmt.Errorf("%q never started", name)
	}
	// Time passing is what this step is about: wait for it, not for an event.
	until := starts[len(starts)-1].Time.Add(w.s.backoff.resetAfter)
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return w.startedOnceSince(name, len(starts))
}

// startedOnceSince checks that module has not started again after start n.
func (w *world) startedOnceSince(name string, n int) error {
	starts, err := w.sc.journal.starts(name)
	if err != nil {
		return err
	}
	if len(starts) != n {
		return fmt.Errorf("it started again; %s", w.sc.journal.describe(name))
	}
	return nil
}

func (w *world) stoppedByAgent(ctx context.Context, name string) error {
	return eventually(ctx, reportTimeout, fmt.Sprintf("%q is asked to stop", name), func(context.Context) error {
		sigs, err := w.sc.journal.only(name, evSignal)
		if err != nil {
			return err
		}
		if len(sigs) == 0 {
			return fmt.Errorf("%s", w.sc.journal.describe(name))
		}
		return nil
	})
}

// noModuleRestarted checks every module of the deployment after an agent
// restart: one start in its journal, no stop, and the same reported start
// time and restart count as before.
func (w *world) noModuleRestarted(ctx context.Context) error {
	for _, m := range w.deployment.all() {
		if err := w.startedOnce(m.name); err != nil {
			return fmt.Errorf("%q: %w", m.name, err)
		}
	}
	err := consistently(ctx, quietPeriod, "no module is restarted", func(context.Context) error {
		for _, m := range w.deployment.all() {
			if err := w.startedOnce(m.name); err != nil {
				return fmt.Errorf("%q: %w", m.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	r, err := w.reported(ctx)
	if err != nil {
		return err
	}
	for _, m := range w.deployment.all() {
		now, ok := reportedModule(r, m.name)
		if !ok {
			return fmt.Errorf("%q is not reported", m.name)
		}
		before := w.before[m.name]
		if a, b := field(before, "lastStartTimeUtc"), field(now, "lastStartTimeUtc"); a != b {
			return fmt.Errorf("%q: lastStartTimeUtc was %q before the agent restarted, %q after", m.name, a, b)
		}
		if n, _ := number(now["restartCount"]); n != 0 {
			return fmt.Errorf("%q: restartCount %d", m.name, n)
		}
	}
	return nil
}
