package features

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cucumber/godog"
)

// registerModuleSteps: what is reported about modules, and what their
// journals show really happened.
func registerModuleSteps(sc *godog.ScenarioContext, w *world) {
	sc.Step(`^"([^"]*)" is reported "([^"]*)"$`, w.moduleReported)
	sc.Step(`^every module of the deployment is reported "([^"]*)"$`, w.everyModuleReported)
	sc.Step(`^"([^"]*)" is reported "([^"]*)" at version "([^"]*)"$`, w.moduleReportedAtVersion)
	sc.Step(`^"([^"]*)" is reported "([^"]*)" with restart count (\d+)$`, w.moduleReportedWithCount)
	sc.Step(`^the reported modules carry the version, image and restart policy of the deployment$`, w.reportedMatchesDeployment)
	sc.Step(`^"([^"]*)" is no longer reported$`, w.moduleNotReported)
	sc.Step(`^"([^"]*)" was stopped and no longer exists on the device$`, w.moduleRemoved)
	sc.Step(`^"([^"]*)" was not restarted$`, w.moduleNotRestartedSoFar)
	sc.Step(`^"([^"]*)" was not stopped$`, w.moduleNotStopped)
	sc.Step(`^the old "([^"]*)" was stopped before the new one started$`, w.oldStoppedBeforeNew)
	sc.Step(`^the modules started in this order: (.+)$`, w.startedInOrder)
	sc.Step(`^"([^"]*)" never started$`, w.neverStarted)
	sc.Step(`^the reported registry password is hidden$`, w.passwordHidden)
	sc.Step(`^the reported properties do not contain the wrong password$`, w.wrongPasswordNotReported)
}

// quietPeriod is how long "nothing happens" is watched for when no
// back-off is involved: a few reconciles.
const quietPeriod = 3 * reconcilePeriod

// waitModule waits until the reported entry of module satisfies ok.
func (w *world) waitModule(ctx context.Context, name, what string, timeout time.Duration, ok func(m map[string]any) error) error {
	return eventually(ctx, timeout, fmt.Sprintf("%q %s", name, what), func(ctx context.Context) error {
		r, err := w.reported(ctx)
		if err != nil {
			return err
		}
		m, found := reportedModule(r, name)
		if !found {
			return fmt.Errorf("not reported")
		}
		return ok(m)
	})
}

// statusIs checks runtimeStatus.
func statusIs(want string) func(map[string]any) error {
	return func(m map[string]any) error {
		if got := field(m, "runtimeStatus"); got != want {
			return fmt.Errorf("runtimeStatus %q (%s)", got, field(m, "statusDescription"))
		}
		return nil
	}
}

func (w *world) moduleReported(ctx context.Context, name, status string) error {
	return w.waitModule(ctx, name, "reported "+status, startTimeout, statusIs(status))
}

func (w *world) everyModuleReported(ctx context.Context, status string) error {
	for _, m := range w.deployment.all() {
		if err := w.moduleReported(ctx, m.name, status); err != nil {
			return err
		}
	}
	return nil
}

func (w *world) moduleReportedAtVersion(ctx context.Context, name, status, version string) error {
	return w.waitModule(ctx, name, fmt.Sprintf("reported %s at version %s", status, version), startTimeout, func(m map[string]any) error {
		if err := statusIs(status)(m); err != nil {
			return err
		}
		settings, _ := m["settings"].(map[string]any)
		if got, image := field(m, "version"), field(settings, "image"); got != version || !strings.HasSuffix(image, ":"+version) {
			return fmt.Errorf("version %q, image %q", got, image)
		}
		return nil
	})
}

func (w *world) moduleReportedWithCount(ctx context.Context, name, status string, count int64) error {
	// A count is reached after back-offs; a reset after the reset time.
	timeout := startTimeout + w.s.backoff.resetAfter
	return w.waitModule(ctx, name, fmt.Sprintf("reported %s with restart count %d", status, count), timeout, func(m map[string]any) error {
		if err := statusIs(status)(m); err != nil {
			return err
		}
		if got, _ := number(m["restartCount"]); got != count {
			return fmt.Errorf("restartCount %d", got)
		}
		return nil
	})
}

// reportedMatchesDeployment compares every reported module with the
// deployment applied.
func (w *world) reportedMatchesDeployment(ctx context.Context) error {
	r, err := w.reported(ctx)
	if err != nil {
		return err
	}
	var problems []string
	for _, dm := range w.deployment.all() {
		m, ok := reportedModule(r, dm.name)
		if !ok {
			problems = append(problems, dm.name+" is not reported")
			continue
		}
		settings, _ := m["settings"].(map[string]any)
		if image := w.s.be.image(moduleImage, dm.version); field(settings, "image") != image {
			problems = append(problems, fmt.Sprintf("%s: image %q, want %q", dm.name, field(settings, "image"), image))
		}
		if dm.name != "edgeHub" && field(m, "version") != dm.version {
			problems = append(problems, fmt.Sprintf("%s: version %q, want %q", dm.name, field(m, "version"), dm.version))
		}
		if dm.restartPolicy != "" && field(m, "restartPolicy") != dm.restartPolicy {
			problems = append(problems, fmt.Sprintf("%s: restartPolicy %q, want %q", dm.name, field(m, "restartPolicy"), dm.restartPolicy))
		}
		if field(m, "status") != dm.status {
			problems = append(problems, fmt.Sprintf("%s: status %q, want %q", dm.name, field(m, "status"), dm.status))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("the report does not match the deployment: %s", strings.Join(problems, "; "))
	}
	return nil
}

func (w *world) moduleNotReported(ctx context.Context, name string) error {
	return eventually(ctx, reportTimeout, fmt.Sprintf("%q is no longer reported", name), func(ctx context.Context) error {
		r, err := w.reported(ctx)
		if err != nil {
			return err
		}
		if _, found := reportedModule(r, name); found {
			return fmt.Errorf("still reported")
		}
		return nil
	})
}

// moduleRemoved checks that the module got a stop signal and that the
// runtime no longer has it (no container, no process).
func (w *world) moduleRemoved(ctx context.Context, name string) error {
	return eventually(ctx, reportTimeout, fmt.Sprintf("%q stopped and removed", name), func(ctx context.Context) error {
		sigs, err := w.sc.journal.only(name, evSignal)
		if err != nil {
			return err
		}
		if len(sigs) == 0 {
			return fmt.Errorf("it was never asked to stop; %s", w.sc.journal.describe(name))
		}
		exists, err := w.s.be.moduleExists(ctx, w.sc, name)
		if err != nil {
			return err
		}
		if exists {
			return fmt.Errorf("the %s runtime still has it", w.s.be.name())
		}
		return nil
	})
}

// startedOnce checks that module's journal shows one start and no stop.
func (w *world) startedOnce(name string) error {
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
	if starts != 1 || stops != 0 {
		return fmt.Errorf("want one start and no stop; %s", w.sc.journal.describe(name))
	}
	return nil
}

// moduleNotRestartedSoFar checks, over a few reconciles, that the module
// has run once without interruption and that the agent counts no restart.
func (w *world) moduleNotRestartedSoFar(ctx context.Context, name string) error {
	err := consistently(ctx, quietPeriod, fmt.Sprintf("%q runs on, not restarted", name), func(context.Context) error {
		return w.startedOnce(name)
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

// moduleNotStopped checks that the module runs on, untouched.
func (w *world) moduleNotStopped(ctx context.Context, name string) error {
	return consistently(ctx, quietPeriod, fmt.Sprintf("%q keeps running", name), func(ctx context.Context) error {
		if err := w.startedOnce(name); err != nil {
			return err
		}
		exists, err := w.s.be.moduleExists(ctx, w.sc, name)
		if err == nil && !exists {
			err = fmt.Errorf("the %s runtime no longer has it", w.s.be.name())
		}
		return err
	})
}

// oldStoppedBeforeNew checks an update from the journal: the first
// instance got a stop signal, then a second instance started.
func (w *world) oldStoppedBeforeNew(ctx context.Context, name string) error {
	return eventually(ctx, reportTimeout, fmt.Sprintf("%q replaced", name), func(context.Context) error {
		events, err := w.sc.journal.events(name)
		if err != nil {
			return err
		}
		var kinds []string
		for _, e := range events {
			kinds = append(kinds, e.Event)
		}
		if !slices.Equal(kinds, []string{evStart, evSignal, evStart}) {
			return fmt.Errorf("want start, stop signal, start; %s", w.sc.journal.describe(name))
		}
		return nil
	})
}

// startedInOrder checks the order of the modules' first starts: the
// reported lastStartTimeUtc (the runtime's start times) in that order, and
// each module's own journal start after the reported start of the module
// before it. The journals are not compared with each other: the agent
// starts a module once the one before is launched, not once it runs, so two
// modules may write their first journal lines a few milliseconds out of
// order however well the agent orders them.
func (w *world) startedInOrder(ctx context.Context, list string) error {
	names := splitList(list)
	var prevReported time.Time
	r, err := w.reported(ctx)
	if err != nil {
		return err
	}
	for i, name := range names {
		starts, err := w.sc.journal.starts(name)
		if err != nil {
			return err
		}
		if len(starts) == 0 {
			return fmt.Errorf("%q never started", name)
		}
		m, ok := reportedModule(r, name)
		if !ok {
			return fmt.Errorf("%q is not reported", name)
		}
		rep, err := timeField(m, "lastStartTimeUtc")
		if err != nil {
			return err
		}
		if i > 0 && !starts[0].Time.After(prevReported) {
			return fmt.Errorf("%q started at %s (its journal), before %q was started (%s, reported)", name, starts[0].Time.Format(time.StampMicro), names[i-1], prevReported.Format(time.StampMicro))
		}
		if i > 0 && !rep.After(prevReported) {
			return fmt.Errorf("%q is reported started at %s, not after %q (%s)", name, rep.Format(time.StampMicro), names[i-1], prevReported.Format(time.StampMicro))
		}
		prevReported = rep
	}
	return nil
}

// splitList reads "a, b and c".
func splitList(s string) []string {
	s = strings.ReplaceAll(s, " and ", ", ")
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// neverStarted checks, over a few reconciles, that the module has not run.
func (w *world) neverStarted(ctx context.Context, name string) error {
	return consistently(ctx, quietPeriod, fmt.Sprintf("%q never starts", name), func(context.Context) error {
		starts, err := w.sc.journal.starts(name)
		if err != nil {
			return err
		}
		if len(starts) > 0 {
			return fmt.Errorf("it started; %s", w.sc.journal.describe(name))
		}
		return nil
	})
}

// passwordHidden checks that the reported registry credentials hide the
// password, as "***".
func (w *world) passwordHidden(ctx context.Context) error {
	return eventually(ctx, reportTimeout, "the reported registry password is hidden", func(ctx context.Context) error {
		r, err := w.reported(ctx)
		if err != nil {
			return err
		}
		rt, _ := r["runtime"].(map[string]any)
		settings, _ := rt["settings"].(map[string]any)
		creds, _ := settings["registryCredentials"].(map[string]any)
		if len(creds) == 0 {
			return fmt.Errorf("no registry credentials reported")
		}
		for name, v := range creds {
			c, _ := v.(map[string]any)
			if p := field(c, "password"); p != "***" {
				return fmt.Errorf("credential %q reported with password %q", name, p)
			}
		}
		return w.noPasswordIn(r)
	})
}

func (w *world) wrongPasswordNotReported(ctx context.Context) error {
	r, err := w.reported(ctx)
	if err != nil {
		return err
	}
	return w.noPasswordIn(r)
}

// noPasswordIn checks that no registry password of the deployment appears
// anywhere in the reported properties.
func (w *world) noPasswordIn(r map[string]any) error {
	text := compactJSON(r)
	for name, c := range w.deployment.credentials {
		if strings.Contains(text, c.Password) {
			return fmt.Errorf("the password of registry credential %q appears in the reported properties", name)
		}
	}
	return nil
}
