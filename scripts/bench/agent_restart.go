package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
)

// restartConfig is one setting of the agent's restart back-off.
type restartConfig struct {
	Name    string        // for the report
	Backoff time.Duration // the delay of a first restart: the back-off unit
	Args    []string      // edgeagent flags
}

// restartResetAfter is the agent's --restart-reset-after in these runs, and
// restartRunFor how long a module runs before the harness kills it: longer, so that every
// crash is a first one (restart.Decide forgets the history of a run that lasted
// ResetAfter) and waits the back-off unit, not a doubled delay.
const (
	restartResetAfter = 2 * time.Second
	restartRunFor     = 2500 * time.Millisecond
)

// restartSpread is the range of a random extra wait before each kill of the agent's
// module: the agent's reconcile period (5 s), so that kills fall anywhere in its cycle.
// Without it every kill would come at the same point of the cycle (the module starts
// during a reconcile and is killed a fixed time later), and the time the agent takes to
// notice an exit would be the same in every run.
const restartSpread = 5 * time.Second

// restartConfigs are the agent's default back-off (unit 10 s, so a first restart waits
// 10 s, longer than the 5 s reconcile period) and a short one (1 s), under which the time
// the agent takes to notice an exit shows.
var restartConfigs = []restartConfig{
	{Name: "default back-off (unit 10 s)", Backoff: 10 * time.Second, Args: []string{"--restart-reset-after", restartResetAfter.String()}},
	{Name: "back-off unit 1 s", Backoff: time.Second, Args: []string{"--restart-backoff-unit", "1s", "--restart-reset-after", restartResetAfter.String()}},
}

// dockerRestartDelay is the Docker Engine's first restart delay under its own restart
// policy (moby's restartmanager: 100 ms, doubled while the container ran less than 10 s).
const dockerRestartDelay = 100 * time.Millisecond

// restartRun is one crash: kill -9 of the module's process, then the times to the agent
// reporting it (noticed) and to the module running again.
type restartRun struct {
	Noticed time.Duration // first report after the kill that shows the exit (backoff) or a restart
	Running time.Duration // the module runs again (process: the runtime's log line; Docker: start event)
}

// restartResult is one runtime's half of the scenario.
type restartResult struct {
	Runtime string
	Skipped string
	Agent   [][]restartRun  // by restartConfigs index
	Ref     []time.Duration // reference: kill -> running again
	Notes   []string
}

func agentRestartScenario() scenario {
	return scenario{
		ID:    "agent-restart",
		Title: "Agent: crash → running again",
		Limit: func(s *settings) time.Duration { return pick(s, 20*time.Minute, 6*time.Minute) },
		Run: func(ctx context.Context, s *settings, _ []*section) (*section, error) {
			return runAgentRestart(ctx, s)
		},
	}
}

func runAgentRestart(ctx context.Context, s *settings) (*section, error) {
	sec := &section{ID: "agent-restart", Title: "Agent: crash → running again (restart policy always)"}
	sec.Intro = restartIntro(s)
	if err := checkAgentBinaries(s); err != nil {
		return sec, err
	}
	load := startMachineLoad()
	var results []restartResult
	for _, rt := range []string{runtimeProcess, runtimeDocker} {
		if ctx.Err() != nil {
			break
		}
		results = append(results, measureRestartRuntime(ctx, s, rt))
	}
	fillRestartSection(sec, results, s.Runs)
	sec.Notes = append(sec.Notes, load.note())
	return sec, nil
}

func restartIntro(s *settings) string {
	return fmt.Sprintf("The device of the deployment runs (fake hub, agent, edge hub) with one more module, the temperature sensor "+
		"(restart policy `always`). Each run waits until the module has run %v plus a random 0–%v (the agent's reconcile period: "+
		"the kills fall anywhere in its cycle), kills its process with SIGKILL from the host "+
		"(process runtime: the pid in the runtime's state file; Docker: the container's main process, as a crash would: "+
		"`docker kill` would tell the engine the stop was wanted) and measures, from just before the kill, when the agent's "+
		"reported properties first show the exit (`backoff`, or the restart already done; the twin polled every %v) and "+
		"when the module runs again (the same signals as for a deployment). The agent's back-off is min(unit × 2^n, cap) "+
		"from the exit (runtime/agent/restart), n the restarts since the history was reset: a first restart is **not** "+
		"immediate, it waits the unit, 10 s by default. To make every crash a first one, the agent runs with "+
		"`--restart-reset-after %v` (a run that lasted that long resets the history) and the harness lets the module run "+
		"longer than that; two settings: the default unit (10 s, longer than the agent's 5 s reconcile period) and "+
		"`--restart-backoff-unit 1s`. The agent learns of an exit at its next reconcile (every 5 s, or sooner when something "+
		"else wakes it): there is no exit watch, so with a unit shorter than the period the restart waits for that "+
		"reconcile. **Reference**: process runtime, a loop in the harness that re-executes the same executable (same "+
		"environment) as soon as `wait` returns; Docker, a fresh container of the same image and environment with Docker's "+
		"own restart policy `always` (the engine restarts it after %v the first time), killed the same way. %d runs per "+
		"setting and runtime.", human(restartRunFor), human(restartSpread), human(reportPoll), restartResetAfter, human(dockerRestartDelay), s.Runs)
}

// measureRestartRuntime runs the crashes on runtime rt under each back-off setting, then
// the reference.
func measureRestartRuntime(ctx context.Context, s *settings, rt string) restartResult {
	res := restartResult{Runtime: rt, Agent: make([][]restartRun, len(restartConfigs))}
	var d *dockerEnv
	if rt == runtimeDocker {
		var skip string
		var err error
		d, skip, err = openDocker(ctx, s.Log)
		switch {
		case err != nil:
			res.Skipped = "the Docker half failed to start: " + oneLine(err)
			return res
		case skip != "":
			res.Skipped = "the Docker half was skipped: " + skip
			return res
		}
		defer func() {
			if err := d.close(); err != nil {
				res.Notes = append(res.Notes, "Docker clean-up: "+oneLine(err))
			}
		}()
	}
	for ci, cfg := range restartConfigs {
		if ctx.Err() != nil {
			break
		}
		runs, ref, notes := measureRestartConfig(ctx, s, rt, d, cfg, ci == 0)
		res.Agent[ci] = runs
		res.Ref = append(res.Ref, ref...)
		res.Notes = append(res.Notes, notes...)
	}
	return res
}

// restartModule is the module the restart runs crash.
const restartModule = "crasher"

// measureRestartConfig starts a device with the agent under cfg, deploys the module and
// crashes it s.Runs times. With reference, it then removes the module and crashes the
// same executable or image s.Runs times without the agent, on the same device (the
// module connects to its edge hub).
func measureRestartConfig(ctx context.Context, s *settings, rt string, d *dockerEnv, cfg restartConfig, reference bool) (
	runs []restartRun, ref []time.Duration, notes []string) {
	module := restartModule
	what := fmt.Sprintf("%s runtime, %s", runtimeLabel(rt), cfg.Name)
	env, err := startAgentEnv(ctx, s, agentEnvConfig{Runtime: rt, Docker: d, AgentArgs: cfg.Args})
	if err != nil {
		return nil, nil, []string{fmt.Sprintf("%s: the device did not start: %v", what, oneLine(err))}
	}
	defer func() {
		if err := env.close(); err != nil {
			notes = append(notes, fmt.Sprintf("%s: clean-up: %v", what, oneLine(err)))
		}
	}()
	base := benchManifest{EdgeHub: env.edgeHubModule(), Routes: upstreamRoutes}
	m := base
	m.Modules = []benchModule{env.sensorModule(module)}
	if err := env.deployAndWait(ctx, m, deployLimit); err != nil {
		return nil, nil, []string{fmt.Sprintf("%s: the module did not start: %v", what, oneLine(err))}
	}
	for i := range s.Runs {
		if ctx.Err() != nil {
			notes = append(notes, fmt.Sprintf("%s, run %d: not run, the scenario's time limit was reached", what, i+1))
			break
		}
		s.waitQuiet(ctx)
		r, err := env.crashOnce(ctx, module, cfg.Backoff)
		if err != nil {
			s.Log.Warn("run failed", "case", "agent-restart", "runtime", rt, "backoff", cfg.Name, "run", i+1, "err", err)
			env.keep = true
			notes = append(notes, fmt.Sprintf("%s, run %d failed: %v", what, i+1, oneLine(err)))
			continue
		}
		s.Log.Info("run", "case", "agent-restart", "runtime", rt, "backoff", cfg.Name, "run", i+1, "result", fmt.Sprintf("%+v", r))
		runs = append(runs, r)
	}
	if !reference || ctx.Err() != nil {
		return runs, nil, notes
	}
	cctx, cancel := context.WithTimeout(ctx, deployLimit)
	c, err := env.captureReference(cctx, module)
	if err == nil {
		err = env.removeModules(cctx, base, module)
	}
	cancel()
	if err != nil {
		env.keep = true
		return runs, nil, append(notes, fmt.Sprintf("%s runtime: no reference (capturing the agent's module: %v)", runtimeLabel(rt), oneLine(err)))
	}
	for i := range s.Runs {
		if ctx.Err() != nil {
			break
		}
		s.waitQuiet(ctx)
		var dur time.Duration
		if rt == runtimeDocker {
			dur, err = dockerRestartReference(ctx, d, c.docker, fmt.Sprintf("%s-reference-%d", module, i))
		} else {
			dur, err = processRestartReference(ctx, env.dir, c.process)
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s runtime, reference run %d failed: %v", runtimeLabel(rt), i+1, oneLine(err)))
			continue
		}
		s.Log.Info("run", "case", "agent-restart reference", "runtime", rt, "run", i+1, "running_again", dur)
		ref = append(ref, dur)
	}
	return runs, ref, notes
}

// crashOnce waits until module has run restartRunFor, kills its process and measures
// until it runs again.
func (e *agentEnv) crashOnce(ctx context.Context, module string, backoff time.Duration) (restartRun, error) {
	rctx, cancel := context.WithTimeout(ctx, backoff+time.Minute)
	defer cancel()
	pid, startedAt, err := e.modulePid(rctx, module)
	if err != nil {
		return restartRun{}, err
	}
	if wait := time.Until(startedAt.Add(restartRunFor)) + rand.N(restartSpread); wait > 0 {
		select {
		case <-time.After(wait):
		case <-rctx.Done():
			return restartRun{}, rctx.Err()
		}
	}
	before, err := e.api.agentTwin(rctx, agentEdge)
	if err != nil {
		return restartRun{}, err
	}
	was := before.Modules[module]
	mark := e.agent.mark()
	t0 := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return restartRun{}, fmt.Errorf("kill %s (pid %d): %w", module, pid, err)
	}
	var r restartRun
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() {
		// The exit shows as a status other than running (backoff), or, when the agent
		// noticed it after the back-off had passed, as a new exit and start at once; the
		// restart count is no sign: a module that ran restartResetAfter restarts from 0.
		at, _, err := e.api.waitReported(rctx, agentEdge, func(rep agentReported) bool { return exitReported(was, rep.Modules[module]) })
		r.Noticed, errs[0] = at.Sub(t0), err
	})
	wg.Go(func() {
		if e.cfg.Runtime == runtimeDocker {
			ev, err := e.cfg.Docker.events.wait(rctx, module, "start", t0)
			r.Running, errs[1] = ev.At.Sub(t0), err
			return
		}
		l, err := e.agent.waitLine(rctx, mark, func(l logLine) bool { return l.Msg == "module started" && l.Module == module })
		r.Running, errs[1] = l.At.Sub(t0), err
	})
	wg.Wait()
	return r, errors.Join(errs...)
}

// exitReported reports whether now, a module's report, shows an exit since was: a status
// other than running, or a later exit (or start) time.
func exitReported(was, now moduleReported) bool {
	return now.RuntimeStatus != "running" || now.LastExit != was.LastExit || now.LastStart != was.LastStart
}

// modulePid returns the pid of module's process and when it started.
func (e *agentEnv) modulePid(ctx context.Context, module string) (int, time.Time, error) {
	if e.cfg.Runtime == runtimeDocker {
		c, err := e.cfg.Docker.cli.ContainerInspect(ctx, module)
		if err != nil {
			return 0, time.Time{}, err
		}
		if c.State == nil || !c.State.Running || c.State.Pid <= 0 {
			return 0, time.Time{}, fmt.Errorf("container %s is not running", module)
		}
		started, err := time.Parse(time.RFC3339Nano, c.State.StartedAt)
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("container %s: start time %q: %w", module, c.State.StartedAt, err)
		}
		return c.State.Pid, started, nil
	}
	rec, err := readModuleRecord(e.agentData, module)
	if err != nil {
		return 0, time.Time{}, err
	}
	if !rec.running() {
		return 0, time.Time{}, fmt.Errorf("module %s is not running (state %q)", module, rec.State)
	}
	return rec.Pid, rec.StartedAt, nil
}

// processRestartReference runs the captured module under a minimal supervisor that
// executes it again as soon as wait returns after the harness killed it, lets it run
// restartRunFor, kills it, and returns the time until the second exec returned.
func processRestartReference(ctx context.Context, parent string, rec moduleRecord) (time.Duration, error) {
	dir, err := os.MkdirTemp(parent, "reference-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	exe := func() (*exec.Cmd, time.Time, error) {
		cmd := exec.Command(rec.Exec.Path, rec.Exec.Args...)
		cmd.Env, cmd.Dir = rec.Exec.Env, dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		err := cmd.Start()
		return cmd, time.Now(), err
	}
	first, _, err := exe()
	if err != nil {
		return 0, err
	}
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	select {
	case <-time.After(restartRunFor):
	case err := <-exited:
		return 0, fmt.Errorf("%s exited by itself (%v) before the kill", rec.Exec.Path, err)
	case <-ctx.Done():
		_ = syscall.Kill(-first.Process.Pid, syscall.SIGKILL)
		<-exited
		return 0, ctx.Err()
	}
	t0 := time.Now()
	if err := syscall.Kill(first.Process.Pid, syscall.SIGKILL); err != nil {
		return 0, err
	}
	<-exited // the supervisor's wait returns: start it again at once
	second, at, err := exe()
	if err != nil {
		return 0, err
	}
	_ = syscall.Kill(-second.Process.Pid, syscall.SIGKILL)
	_ = second.Wait()
	return at.Sub(t0), nil
}

// dockerRestartReference creates a container of the captured module with Docker's
// restart policy always, lets it run restartRunFor, kills its process, and returns the
// time until the engine's next start event. A fresh container each time makes every
// restart a first one (100 ms).
func dockerRestartReference(ctx context.Context, d *dockerEnv, spec referenceSpec, name string) (time.Duration, error) {
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := d.runReference(rctx, name, spec, container.RestartPolicyAlways); err != nil {
		return 0, err
	}
	defer d.removeContainer(context.WithoutCancel(ctx), name)
	select {
	case <-time.After(restartRunFor):
	case <-rctx.Done():
		return 0, rctx.Err()
	}
	pid, err := d.containerPid(rctx, name)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return 0, fmt.Errorf("kill %s (pid %d): %w", name, pid, err)
	}
	ev, err := d.events.wait(rctx, name, "start", t0)
	if err != nil {
		return 0, err
	}
	return ev.At.Sub(t0), nil
}

// Restart target (docs/peers-and-targets.md): restarted within 1 s plus the back-off.
const targetRestartOverhead = time.Second

// fillRestartSection writes the table, notes and checks of the restart scenario.
func fillRestartSection(sec *section, results []restartResult, runs int) {
	tb := table{Header: []string{"runtime", "agent back-off", "crash → exit reported", "crash → running again", "minus the back-off",
		"reference: crash → running again", "target", "verdict"}}
	for _, r := range results {
		if r.Skipped != "" {
			sec.Notes = append(sec.Notes, r.Skipped)
			sec.Checks = append(sec.Checks, check{ID: "agent-restart-docker", Area: "restart, Docker runtime",
				Target: "crash → restarted within 1 s plus the back-off", Measured: r.Skipped, NotMeasured: true})
			continue
		}
		ref := summarize(values(r.Ref, func(d time.Duration) float64 { return float64(d) }))
		refCell := millis(ref) + " ms"
		if r.Runtime == runtimeDocker {
			refCell += fmt.Sprintf(" (Docker's restart policy; its back-off %s)", human(dockerRestartDelay))
		} else {
			refCell += " (re-exec at once)"
		}
		for ci, cfg := range restartConfigs {
			rs := r.Agent[ci]
			noticed := summarize(values(rs, func(x restartRun) float64 { return float64(x.Noticed) }))
			running := summarize(values(rs, func(x restartRun) float64 { return float64(x.Running) }))
			over := summarize(values(rs, func(x restartRun) float64 { return float64(x.Running - cfg.Backoff) }))
			met := over.N > 0 && over.Median <= float64(targetRestartOverhead)
			tb.Rows = append(tb.Rows, []string{runtimeLabel(r.Runtime), cfg.Name, millis(noticed) + " ms", millis(running) + " ms", millis(over) + " ms",
				refCell, "≤ 1 s + back-off", verdict(met)})
			measured := "no successful run"
			if running.N > 0 {
				measured = fmt.Sprintf("%s ms with a %s back-off (%s ms beyond it; reference %s ms)",
					ms(running.Median), human(cfg.Backoff), ms(over.Median), ms(ref.Median))
			}
			sec.Checks = append(sec.Checks, check{ID: fmt.Sprintf("agent-restart-%s-%d", r.Runtime, ci),
				Area: fmt.Sprintf("restart, %s runtime, %s", runtimeLabel(r.Runtime), cfg.Name), Target: "crash → restarted within 1 s plus the back-off",
				Measured: measured, Met: met})
			if len(rs) < runs {
				sec.Notes = append(sec.Notes, fmt.Sprintf("%s runtime, %s: %d of %d runs succeeded.", runtimeLabel(r.Runtime), cfg.Name, len(rs), runs))
			}
		}
		sec.Notes = append(sec.Notes, r.Notes...)
	}
	sec.Tables = []table{tb}
	sec.Notes = append([]string{"Times in ms from just before the kill, medians with (lowest–highest). \"minus the back-off\" " +
		"is what the agent added to the delay its policy asked for: noticing the exit (its next reconcile) and starting the " +
		"module again."}, sec.Notes...)
}
