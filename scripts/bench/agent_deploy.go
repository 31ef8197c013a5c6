package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
)

// deployRun is one deployment measured on the agent's side: the times from the request
// that set the deployment on the fake hub to each step.
type deployRun struct {
	Seen     time.Duration // the agent logged the new deployment
	Pulled   time.Duration // the agent's pull command done (Docker: the registry said up to date)
	Created  time.Duration // the agent's create command done
	Started  time.Duration // the module runs: process started (the runtime's log line), container's start event
	Reported time.Duration // $edgeAgent reported it running (polled)
	FirstMsg time.Duration // its first reading arrived at the fake hub
}

// referenceRun is the same module started by hand, without the agent.
type referenceRun struct {
	Started  time.Duration // process: exec returned; Docker: the container's start event
	FirstMsg time.Duration
}

// deployResult is one runtime's half of the scenario.
type deployResult struct {
	Runtime  string
	Skipped  string // why the half did not run (no Docker)
	Agent    []deployRun
	Ref      []referenceRun
	AgentRSS int64 // the agent's RSS after the runs, bytes (0: unknown)
	Notes    []string
}

// deployLimit bounds one deployment run (the agent's and the reference's).
const deployLimit = 2 * time.Minute

func agentDeployScenario() scenario {
	return scenario{
		ID:    "agent-deploy",
		Title: "Agent: deployment applied → module running",
		Limit: func(s *settings) time.Duration { return pick(s, 15*time.Minute, 5*time.Minute) },
		Run: func(ctx context.Context, s *settings, _ []*section) (*section, error) {
			return runAgentDeploy(ctx, s)
		},
	}
}

func runAgentDeploy(ctx context.Context, s *settings) (*section, error) {
	sec := &section{ID: "agent-deploy", Title: "Agent: deployment applied → module running (process and Docker runtimes)"}
	sec.Intro = deployIntro(s)
	if err := checkAgentBinaries(s); err != nil {
		return sec, err
	}
	load := startMachineLoad()
	var results []deployResult
	for _, rt := range []string{runtimeProcess, runtimeDocker} {
		if ctx.Err() != nil {
			break
		}
		results = append(results, measureDeployRuntime(ctx, s, rt))
	}
	fillDeploySection(sec, results, s.Runs)
	sec.Notes = append(sec.Notes, load.note())
	return sec, nil
}

func deployIntro(s *settings) string {
	return fmt.Sprintf("A whole edge device as `make run` wires it: the fake IoT Hub (`bin/fakehub`) and the edge agent (`bin/edgeagent`, "+
		"process or Docker runtime) for its edge device, which runs the edge hub (`bin/edgehub`, or `outpost/edgehub:dev` from "+
		"scripts/images.sh) as a system module. Each run sets a deployment that adds one module, the sample temperature sensor "+
		"(`bin/tempsensor` / `outpost/tempsensor:dev`, a reading every second, routed `FROM /messages/* INTO $upstream`), under "+
		"a new name (a new identity for the agent to create in the hub, a new client for the edge hub to authenticate upstream), "+
		"through the fake hub's service API as `edgectl deploy` does (`applyConfigurationContent`); the clock starts just "+
		"before that request. Measured on the same clock: when the module runs (process runtime: its \"module started\" log line, "+
		"written once the supervisor has started the executable; Docker: the engine's start event of the container), when the "+
		"agent's reported properties say `running` (the twin polled every %v), and when the module's first reading reaches the "+
		"fake hub (module → edge hub over MQTT/TLS → upstream link → fake hub). Then the module is removed again (a deployment "+
		"without it), and the **reference** starts the same thing without the agent: process runtime, a bare fork/exec of the same "+
		"executable with the environment the agent gave the module (read from the runtime's state file); Docker, a bare "+
		"`docker run --pull always` of the same image through the Docker API (pull, create, start) with the same environment, "+
		"binds and host networking. Docker images come from a registry the harness serves on 127.0.0.1 (distribution/v3, in "+
		"memory), pushed from the engine's own images, so each pull is the registry round trip that finds the image up to "+
		"date (imagePullPolicy on-create). One warm-up run first, not counted; then %d runs per runtime, medians with "+
		"(lowest–highest). Agent defaults otherwise (reconcile period 5 s). The agent's run is also the new identity's first "+
		"connection, which the edge hub authenticates upstream; the reference reuses that identity, known by then.", human(reportPoll), s.Runs)
}

// measureDeployRuntime runs the warm-up and s.Runs deployments with the agent on
// runtime rt, each followed by its reference.
func measureDeployRuntime(ctx context.Context, s *settings, rt string) deployResult {
	res := deployResult{Runtime: rt}
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
		res.Notes = append(res.Notes, "Docker images (scripts/images.sh, built from the tree of that time): "+strings.Join(d.built, ", ")+".")
	}
	env, err := startAgentEnv(ctx, s, agentEnvConfig{Runtime: rt, Docker: d})
	if err != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("%s runtime: the device did not start: %v", runtimeLabel(rt), oneLine(err)))
		return res
	}
	defer func() {
		if err := env.close(); err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("%s runtime: clean-up: %v", runtimeLabel(rt), oneLine(err)))
		}
	}()
	base := benchManifest{EdgeHub: env.edgeHubModule(), Routes: upstreamRoutes}
	if err := env.deployAndWait(ctx, base, deployLimit); err != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("%s runtime: the edge hub did not start: %v", runtimeLabel(rt), oneLine(err)))
		return res
	}
	for i := 0; i <= s.Runs; i++ { // run 0 warms up
		label := fmt.Sprintf("run %d", i)
		if i == 0 {
			label = "the warm-up run"
		}
		if ctx.Err() != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("%s runtime, %s: not run, the scenario's time limit was reached", runtimeLabel(rt), label))
			break
		}
		s.waitQuiet(ctx)
		a, ref, err := env.deployOnce(ctx, base, fmt.Sprintf("sensor%d", i))
		if err != nil {
			s.Log.Warn("run failed", "case", "agent-deploy", "runtime", rt, "run", i, "err", err)
			env.keep = true
			res.Notes = append(res.Notes, fmt.Sprintf("%s runtime, %s failed: %v", runtimeLabel(rt), label, oneLine(err)))
			continue
		}
		s.Log.Info("run", "case", "agent-deploy", "runtime", rt, "run", i, "agent", fmt.Sprintf("%+v", a), "reference", fmt.Sprintf("%+v", ref))
		if i > 0 {
			res.Agent = append(res.Agent, a)
			res.Ref = append(res.Ref, ref)
		}
	}
	if m, err := env.agentRSS(); err == nil {
		res.AgentRSS = m.RSS
	}
	return res
}

// deployOnce deploys base plus a sensor called name, measures until it runs and sends,
// removes it, and measures the reference.
func (e *agentEnv) deployOnce(ctx context.Context, base benchManifest, name string) (deployRun, referenceRun, error) {
	rctx, cancel := context.WithTimeout(ctx, deployLimit)
	defer cancel()
	m := base
	m.Modules = []benchModule{e.sensorModule(name)}
	mark := e.agent.mark()
	t0, v, err := e.deploy(rctx, m)
	if err != nil {
		return deployRun{}, referenceRun{}, err
	}
	var run deployRun
	var wg sync.WaitGroup
	errs := make([]error, 3)
	wg.Go(func() { // the module runs
		if e.cfg.Runtime == runtimeDocker {
			ev, err := e.cfg.Docker.events.wait(rctx, name, "start", t0)
			run.Started, errs[0] = ev.At.Sub(t0), err
			return
		}
		l, err := e.agent.waitLine(rctx, mark, func(l logLine) bool { return l.Msg == "module started" && l.Module == name })
		run.Started, errs[0] = l.At.Sub(t0), err
	})
	wg.Go(func() { // the agent reports it
		at, _, err := e.api.waitReported(rctx, agentEdge, func(r agentReported) bool { return r.applied(v) && r.status(name) == "running" })
		run.Reported, errs[1] = at.Sub(t0), err
	})
	wg.Go(func() { // its first reading
		ev, err := e.events.waitFirst(rctx, name, t0)
		run.FirstMsg, errs[2] = ev.At.Sub(t0), err
	})
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return run, referenceRun{}, fmt.Errorf("agent: %w", err)
	}
	// The agent's own steps, from its log (already read: they came before the start).
	if l, ok := e.agent.find(mark, func(l logLine) bool { return l.Msg == "new deployment" }); ok {
		run.Seen = l.At.Sub(t0)
	}
	for kind, p := range map[string]*time.Duration{"pull": &run.Pulled, "create": &run.Created} {
		if l, ok := e.agent.find(mark, func(l logLine) bool {
			return l.Msg == "module command done" && l.Kind == kind && l.Module == name
		}); ok {
			*p = l.At.Sub(t0)
		}
	}

	ref, err := e.captureReference(rctx, name)
	if err != nil {
		return run, referenceRun{}, fmt.Errorf("reading the module's settings: %w", err)
	}
	if err := e.removeModules(rctx, base, name); err != nil {
		return run, referenceRun{}, err
	}
	r, err := e.reference(rctx, name, ref)
	return run, r, err
}

// removeModules deploys base and waits until the agent reports names gone.
func (e *agentEnv) removeModules(ctx context.Context, base benchManifest, names ...string) error {
	_, v, err := e.deploy(ctx, base)
	if err != nil {
		return err
	}
	_, _, err = e.api.waitReported(ctx, agentEdge, func(r agentReported) bool {
		if !r.applied(v) {
			return false
		}
		for _, n := range names {
			if r.status(n) != "" {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("removing %v: %w", names, err)
	}
	return nil
}

// moduleCapture is how the agent ran a module, for its reference.
type moduleCapture struct {
	process moduleRecord  // process runtime
	docker  referenceSpec // Docker runtime
}

func (e *agentEnv) captureReference(ctx context.Context, name string) (moduleCapture, error) {
	if e.cfg.Runtime == runtimeDocker {
		spec, err := e.cfg.Docker.captureReference(ctx, name)
		return moduleCapture{docker: spec}, err
	}
	rec, err := readModuleRecord(e.agentData, name)
	if err == nil && rec.Exec.Path == "" {
		err = fmt.Errorf("module %s: no executable in its state file", name)
	}
	return moduleCapture{process: rec}, err
}

// reference starts the captured module without the agent (same executable or image,
// same environment), measures it as the agent's run, and removes it. The module's
// identity is the agent's module's, which the agent has just removed.
func (e *agentEnv) reference(ctx context.Context, name string, c moduleCapture) (referenceRun, error) {
	var r referenceRun
	if e.cfg.Runtime == runtimeDocker {
		d := e.cfg.Docker
		cname := name + "-reference"
		t0 := time.Now()
		if err := d.runReference(ctx, cname, c.docker, container.RestartPolicyDisabled); err != nil {
			return r, fmt.Errorf("reference: %w", err)
		}
		defer d.removeContainer(context.WithoutCancel(ctx), cname)
		ev, err := d.events.wait(ctx, cname, "start", t0)
		if err != nil {
			return r, fmt.Errorf("reference: %w", err)
		}
		first, err := e.events.waitFirst(ctx, name, t0)
		if err != nil {
			return r, fmt.Errorf("reference: %w", err)
		}
		return referenceRun{Started: ev.At.Sub(t0), FirstMsg: first.At.Sub(t0)}, nil
	}
	p, t0, started, err := execModule(e.dir, c.process)
	if err != nil {
		return r, fmt.Errorf("reference: %w", err)
	}
	defer p.stop()
	first, err := e.events.waitFirst(ctx, name, t0)
	if err != nil {
		return r, fmt.Errorf("reference: %w", err)
	}
	return referenceRun{Started: started.Sub(t0), FirstMsg: first.At.Sub(t0)}, nil
}

// execedModule is a module executable the harness started itself.
type execedModule struct {
	cmd  *exec.Cmd
	done chan struct{}
	dir  string
}

// execModule fork/execs the module of rec as the process runtime would (executable,
// arguments, environment; a working directory of its own) and returns the time just
// before and just after exec.
func execModule(parent string, rec moduleRecord) (*execedModule, time.Time, time.Time, error) {
	dir, err := os.MkdirTemp(parent, "reference-")
	if err != nil {
		return nil, time.Time{}, time.Time{}, err
	}
	cmd := exec.Command(rec.Exec.Path, rec.Exec.Args...)
	cmd.Env, cmd.Dir = rec.Exec.Env, dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, t0, time.Time{}, err
	}
	started := time.Now()
	m := &execedModule{cmd: cmd, done: make(chan struct{}), dir: dir}
	go func() {
		_ = cmd.Wait()
		close(m.done)
	}()
	return m, t0, started, nil
}

// stop ends the module (SIGTERM, SIGKILL after 5 s) and removes its directory.
func (m *execedModule) stop() {
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.done
	}
	os.RemoveAll(m.dir)
}

// Deployment target (docs/peers-and-targets.md, cold start).
const targetDeployDockerMS = 1500

// fillDeploySection writes the tables, notes and checks of the deployment scenario.
func fillDeploySection(sec *section, results []deployResult, runs int) {
	tb := table{Header: []string{"runtime", "from the deployment request to", "agent", "reference", "agent / reference", "target", "verdict"}}
	steps := table{
		Caption: "Where the agent's time goes (medians, from the same request; from its log lines as the harness read them): " +
			"\"saw\" is the agent logging the new deployment (the fake hub's notification, the agent's twin read, validation), then each " +
			"module command done in turn (the identity is created in the hub before the commands).",
		Header: []string{"runtime", "agent saw the deployment", "pull done", "create done", "module runs", "reported running"},
	}
	for _, r := range results {
		if r.Skipped != "" {
			sec.Notes = append(sec.Notes, r.Skipped)
			if r.Runtime == runtimeDocker {
				sec.Checks = append(sec.Checks, check{ID: "agent-deploy-docker", Area: "cold start (Docker)",
					Target: "deployment applied → module running ≤ 1.5 s", Measured: r.Skipped, NotMeasured: true})
			}
			continue
		}
		sum := func(f func(deployRun) time.Duration) summary {
			return summarize(values(r.Agent, func(x deployRun) float64 { return float64(f(x)) }))
		}
		refSum := func(f func(referenceRun) time.Duration) summary {
			return summarize(values(r.Ref, func(x referenceRun) float64 { return float64(f(x)) }))
		}
		started, reported, first := sum(func(x deployRun) time.Duration { return x.Started }),
			sum(func(x deployRun) time.Duration { return x.Reported }), sum(func(x deployRun) time.Duration { return x.FirstMsg })
		refStarted, refFirst := refSum(func(x referenceRun) time.Duration { return x.Started }), refSum(func(x referenceRun) time.Duration { return x.FirstMsg })
		what := map[string]string{runtimeProcess: "module process started", runtimeDocker: "container started"}[r.Runtime]
		refWhat := map[string]string{runtimeProcess: "fork/exec", runtimeDocker: "`docker run --pull always` (API)"}[r.Runtime]
		target, v := "–", "–"
		if r.Runtime == runtimeDocker {
			met := started.N > 0 && started.Median <= targetDeployDockerMS*float64(time.Millisecond)
			target, v = "≤ 1.5 s", verdict(met)
			measured := "no successful run"
			if started.N > 0 {
				measured = fmt.Sprintf("%s ms to the container's start (reported running at %s ms; bare docker run %s ms, %s)",
					ms(started.Median), ms(reported.Median), ms(refStarted.Median), ratio(started, refStarted))
			}
			sec.Checks = append(sec.Checks, check{ID: "agent-deploy-docker", Area: "cold start (Docker)",
				Target: "deployment applied → module running ≤ 1.5 s", Measured: measured, Met: met})
		}
		tb.Rows = append(tb.Rows,
			[]string{runtimeLabel(r.Runtime), what + " (reference: " + refWhat + ")", millis(started) + " ms", millis(refStarted) + " ms", ratio(started, refStarted), target, v},
			[]string{runtimeLabel(r.Runtime), "`running` in the agent's reported properties", millis(reported) + " ms", "–", "–", "–", "–"},
			[]string{runtimeLabel(r.Runtime), "first reading at the fake hub", millis(first) + " ms", millis(refFirst) + " ms", ratio(first, refFirst), "–", "–"},
		)
		steps.Rows = append(steps.Rows, []string{runtimeLabel(r.Runtime),
			msCell(sum(func(x deployRun) time.Duration { return x.Seen })), msCell(sum(func(x deployRun) time.Duration { return x.Pulled })),
			msCell(sum(func(x deployRun) time.Duration { return x.Created })), msCell(started), msCell(reported)})
		if r.AgentRSS > 0 {
			sec.Notes = append(sec.Notes, fmt.Sprintf("%s runtime: the agent's RSS after the runs was %s.", runtimeLabel(r.Runtime),
				mebibytes(summary{Median: float64(r.AgentRSS), N: 1})))
		}
		if len(r.Agent) < runs {
			sec.Notes = append(sec.Notes, fmt.Sprintf("%s runtime: %d of %d runs succeeded.", runtimeLabel(r.Runtime), len(r.Agent), runs))
		}
		sec.Notes = append(sec.Notes, r.Notes...)
	}
	sec.Tables = []table{tb, steps}
	sec.Notes = append([]string{"Times in ms from just before the deployment request, medians of the runs with (lowest–highest). " +
		"\"reference\" is measured the same way from just before its first call (exec, or the pull)."}, sec.Notes...)
}

// msCell is a median in ms, or "–" when no run has it.
func msCell(s summary) string {
	if s.N == 0 {
		return "–"
	}
	return ms(s.Median) + " ms"
}
