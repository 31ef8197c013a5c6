package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/process"
)

// processStateDir is edgeagent's process runtime state directory in the
// data directory (cmd/edgeagent processDir).
const processStateDir = "process"

// agentBinaryName is the agent's executable, looked for next to edgectl.
const agentBinaryName = "edgeagent"

// watchdogStopWait bounds the wait for the watchdog to stop the agent.
const watchdogStopWait = agentStopGrace + 15*time.Second

// processBackend runs the agent under edgectl's watchdog and the modules
// as processes (runtime/agent/process).
type processBackend struct {
	a           *app
	c           edgeConfig
	agentBinary string // --agent-binary of start
	// launched is the watchdog start launched, until it has written its
	// state file.
	launched procID
}

func (p *processBackend) close() {}

// binary finds the edgeagent executable: --agent-binary, the setup's,
// next to edgectl, else on PATH.
func (p *processBackend) binary() (string, error) {
	for _, b := range []string{p.agentBinary, p.c.Process.orEmpty().AgentBinary} {
		if b != "" {
			return filepath.Abs(b)
		}
	}
	var tried []string
	if exe, err := p.a.executable(); err == nil {
		next := filepath.Join(filepath.Dir(exe), agentBinaryName)
		if fi, err := os.Stat(next); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return next, nil
		}
		tried = append(tried, next)
	}
	if b, err := exec.LookPath(agentBinaryName); err == nil {
		return filepath.Abs(b)
	}
	tried = append(tried, "$PATH")
	return "", fmt.Errorf("cannot find %s (looked in %s): pass --agent-binary, or set it with setup --agent-binary", agentBinaryName, strings.Join(tried, ", "))
}

func (s *processSettings) orEmpty() processSettings {
	if s == nil {
		return processSettings{}
	}
	return *s
}

// start runs edgectl supervise-agent detached: in a session of its own, so
// that the terminal's signals and the end of this command do not reach it.
func (p *processBackend) start(ctx context.Context, startTime time.Time) (string, error) {
	bin, err := p.binary()
	if err != nil {
		return "", err
	}
	exe, err := p.a.executable()
	if err != nil {
		return "", fmt.Errorf("edgectl's own executable, to run the watchdog: %w", err)
	}
	logPath := p.c.agentLog()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", fmt.Errorf("agent log: %w", err)
	}
	defer logf.Close()
	args := []string{"--data-dir", p.c.Agent.DataDir, superviseCommand, "--agent-binary", bin, "--log", logPath, "--",
		"--config", filepath.Join(p.c.Agent.DataDir, setupFile), "--runtime-start-time", startTime.UTC().Format(time.RFC3339Nano)}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.Env = agentEnviron(os.Environ())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start the watchdog: %w", err)
	}
	go cmd.Wait() // reap it, should this process outlive it
	if id, err := procOf(cmd.Process.Pid); err == nil {
		p.launched = id
	}
	return fmt.Sprintf("edgectl watchdog pid %d; agent log %s", cmd.Process.Pid, logPath), nil
}

// agentEnviron is the watchdog's and the agent's environment: ours without
// EDGEAGENT_* variables, so that the setup file alone configures the agent.
func agentEnviron(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "EDGEAGENT_") {
			out = append(out, kv)
		}
	}
	return out
}

// supervisor describes the watchdog.
func (p *processBackend) supervisor(ctx context.Context) supervisorState {
	st, ok, err := readWatchdog(p.c.Agent.DataDir)
	switch {
	case err != nil:
		return supervisorState{Desc: "edgectl watchdog: " + err.Error()}
	case !ok && p.launched.alive():
		return supervisorState{Running: true, Desc: fmt.Sprintf("edgectl watchdog pid %d, starting", p.launched.Pid), Log: p.c.agentLog()}
	case !ok:
		return supervisorState{Desc: "edgectl watchdog: not running", Log: p.launchedLog()}
	case !st.Watchdog.alive() && st.Agent.alive():
		return supervisorState{Desc: fmt.Sprintf("edgectl watchdog: gone (pid %d); the agent (pid %d) runs without it: edgectl restart brings both back", st.Watchdog.Pid, st.Agent.Pid),
			Log: st.Log, AgentPID: st.Agent.Pid}
	case !st.Watchdog.alive():
		return supervisorState{Desc: fmt.Sprintf("edgectl watchdog: not running (pid %d is gone)", st.Watchdog.Pid), Log: st.Log}
	}
	desc := fmt.Sprintf("edgectl watchdog pid %d, %d restart(s) of the agent", st.Watchdog.Pid, st.Restarts)
	if st.LastExit != "" {
		desc += " (last: " + st.LastExit + ")"
	}
	return supervisorState{Running: true, Desc: desc, Log: st.Log, AgentPID: st.Agent.Pid}
}

// launchedLog is the agent's log when start launched a watchdog that
// died before it wrote its state (its errors are there).
func (p *processBackend) launchedLog() string {
	if p.launched.Pid == 0 {
		return ""
	}
	return p.c.agentLog()
}

// stopAgent stops the watchdog, which stops the agent; an agent left
// without its watchdog is stopped directly.
func (p *processBackend) stopAgent(ctx context.Context) (string, error) {
	dir := p.c.Agent.DataDir
	st, ok, err := readWatchdog(dir)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", nil
	}
	defer os.Remove(filepath.Join(dir, watchdogFile))
	switch {
	case st.Watchdog.alive():
		if err := st.Watchdog.signal(syscall.SIGTERM); err != nil {
			return "", fmt.Errorf("stop the watchdog (pid %d): %w", st.Watchdog.Pid, err)
		}
		if !st.Watchdog.waitGone(watchdogStopWait) {
			st.Watchdog.signal(syscall.SIGKILL)
			st.Agent.signal(syscall.SIGKILL)
			st.Agent.waitGone(5 * time.Second)
			return fmt.Sprintf("killed the watchdog (pid %d) and the agent: they did not stop within %s", st.Watchdog.Pid, watchdogStopWait), nil
		}
		return fmt.Sprintf("stopped the edge agent and its watchdog (pid %d)", st.Watchdog.Pid), nil
	case st.Agent.alive():
		// The watchdog was killed; its agent may still run.
		st.Agent.signal(syscall.SIGTERM)
		if !st.Agent.waitGone(agentStopGrace) {
			st.Agent.signal(syscall.SIGKILL)
			st.Agent.waitGone(5 * time.Second)
		}
		return fmt.Sprintf("stopped the edge agent (pid %d; its watchdog was gone)", st.Agent.Pid), nil
	}
	return "", nil
}

// moduleRuntime opens the process runtime's state, as the agent does;
// nil when the agent never ran modules here.
func (p *processBackend) moduleRuntime() (*process.Runtime, error) {
	dir := filepath.Join(p.c.Agent.DataDir, processStateDir)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return process.New(process.Options{StateDir: dir, ImageDir: p.c.Agent.ImageDir})
}

// stopModules stops every running module the agent owns, in parallel.
func (p *processBackend) stopModules(ctx context.Context, timeout time.Duration) ([]string, error) {
	rt, err := p.moduleRuntime()
	if err != nil || rt == nil {
		return nil, err
	}
	return stopAll(ctx, rt, timeout)
}

// remove removes every module the agent owns (they are stopped).
func (p *processBackend) remove(ctx context.Context) ([]string, error) {
	rt, err := p.moduleRuntime()
	if err != nil || rt == nil {
		return nil, err
	}
	mods, err := rt.List(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, m := range mods {
		if err := rt.Remove(ctx, m.Name); err != nil && !errors.Is(err, agent.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "module "+m.Name)
	}
	return removed, errors.Join(errs...)
}

// stopAll stops every running module of rt, in parallel, and returns the
// names it stopped, sorted.
func stopAll(ctx context.Context, rt agent.Runtime, timeout time.Duration) ([]string, error) {
	mods, err := rt.List(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range mods {
		if m.State == agent.StateRunning {
			names = append(names, m.Name)
		}
	}
	return stopEach(ctx, names, func(ctx context.Context, name string) error { return rt.Stop(ctx, name, timeout) })
}

// stopEach calls stop for every name in parallel, and returns the names
// stopped (or already gone), sorted.
func stopEach(ctx context.Context, names []string, stop func(ctx context.Context, name string) error) ([]string, error) {
	var (
		mu      sync.Mutex
		stopped []string
		errs    []error
		wg      sync.WaitGroup
	)
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := stop(ctx, name)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && !errors.Is(err, agent.ErrNotFound) {
				errs = append(errs, fmt.Errorf("stop module %q: %w", name, err))
				return
			}
			stopped = append(stopped, name)
		}()
	}
	wg.Wait()
	sort.Strings(stopped)
	return stopped, errors.Join(errs...)
}
