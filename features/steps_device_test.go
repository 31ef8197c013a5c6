package features

import (
	"context"
	"fmt"
	"strings"

	"github.com/cucumber/godog"
)

// registerDeviceSteps: the edge device, its agent, lastDesiredStatus.
func registerDeviceSteps(sc *godog.ScenarioContext, w *world) {
	sc.Step(`^the device's modules run in Docker$`, w.modulesRunInDocker)
	sc.Step(`^an IoT Edge device with a running edge agent$`, w.startDevice)
	sc.Step(`^the edge agent is stopped$`, w.agentStopped)
	sc.Step(`^the edge agent is restarted$`, w.agentRestarted)
	sc.Step(`^the edge agent reports status (\d+)$`, w.reportsStatus)
	sc.Step(`^the edge agent reports status (\d+) for that deployment$`, w.reportsStatusForDeployment)
	sc.Step(`^the edge agent reports status (\d+) naming "([^"]*)"$`, w.reportsStatusNaming)
}

// modulesRunInDocker skips the scenario on the process backend: it needs
// what only Docker has (a registry, credentials).
func (w *world) modulesRunInDocker(ctx context.Context) error {
	if w.s.be.name() == "docker" {
		return nil
	}
	godog.Logf(ctx, "skipping %q on the %s backend: it needs the Docker runtime (tag @docker)", w.sc.name, w.s.be.name())
	return godog.ErrSkip
}

// agentStopped stops the agent (SIGTERM, as systemd or docker stop do)
// and waits until it has exited.
func (w *world) agentStopped(ctx context.Context) error {
	return w.agent.stop(ctx)
}

// agentRestarted stops the agent, waits for its shutdown report (406),
// and starts it again on the same data directory. Before that it saves
// the reported modules, for "no module was restarted".
func (w *world) agentRestarted(ctx context.Context) error {
	r, err := w.reported(ctx)
	if err != nil {
		return err
	}
	w.before = reportedModules(r)
	if err := w.agent.stop(ctx); err != nil {
		return err
	}
	if err := w.reportsStatus(ctx, 406); err != nil {
		return fmt.Errorf("the stopped agent's shutdown report: %w", err)
	}
	return w.startAgent(ctx)
}

// waitStatus waits until lastDesiredStatus satisfies ok.
func (w *world) waitStatus(ctx context.Context, what string, ok func(code int64, desc string, r map[string]any) error) error {
	return eventually(ctx, reportTimeout, what, func(ctx context.Context) error {
		r, err := w.reported(ctx)
		if err != nil {
			return err
		}
		code, desc, found := lastDesiredStatus(r)
		if !found {
			return fmt.Errorf("no lastDesiredStatus reported yet")
		}
		return ok(code, desc, r)
	})
}

func (w *world) reportsStatus(ctx context.Context, want int64) error {
	return w.waitStatus(ctx, fmt.Sprintf("lastDesiredStatus %d", want), func(code int64, desc string, _ map[string]any) error {
		if code != want {
			return fmt.Errorf("lastDesiredStatus is %d %q", code, desc)
		}
		return nil
	})
}

// reportsStatusForDeployment also checks that the status is about the
// deployment last applied: lastDesiredVersion is its desired $version.
func (w *world) reportsStatusForDeployment(ctx context.Context, want int64) error {
	return w.waitStatus(ctx, fmt.Sprintf("lastDesiredStatus %d for desired version %d", want, w.desiredVersion), func(code int64, desc string, r map[string]any) error {
		v, _ := number(r["lastDesiredVersion"])
		if code != want || v != w.desiredVersion {
			return fmt.Errorf("lastDesiredStatus is %d %q for lastDesiredVersion %d", code, desc, v)
		}
		return nil
	})
}

// reportsStatusNaming checks the code and that the description names what
// is wrong.
func (w *world) reportsStatusNaming(ctx context.Context, want int64, name string) error {
	return w.waitStatus(ctx, fmt.Sprintf("lastDesiredStatus %d naming %q", want, name), func(code int64, desc string, _ map[string]any) error {
		if code != want || !strings.Contains(desc, name) {
			return fmt.Errorf("lastDesiredStatus is %d %q", code, desc)
		}
		return nil
	})
}
