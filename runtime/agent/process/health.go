package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
)

// maxCheckOutput is how much of a health check's output is kept for the
// log, as Docker keeps 4 KiB.
const maxCheckOutput = 4 << 10

// healthResult is the health of one run of a module.
type healthResult struct {
	run      int
	status   restart.Health
	failures int // consecutive failures counted (outside the start period)
}

// Run runs the runtime's background work until ctx ends, and returns nil
// then: every PollInterval (and at once after a Start, Stop, Remove or the
// exit of a supervisor it started, and within 100 ms of a module's exit
// while WatchExits has a watcher) it refreshes every module, which
// records exits as they happen and tells the watchers, and it keeps one health checker goroutine
// per running module that has a health check (see the package
// documentation, "Health checks"). Without Run, modules run and List works,
// but health stays "starting". Run never stops a module: when it returns
// the modules keep running. Run may be called again after it returned;
// ErrRunning while another call runs.
func (r *Runtime) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer r.running.Store(false)
	checkers := make(map[string]*checker)
	defer func() {
		for _, c := range checkers {
			c.cancel()
			<-c.done
		}
	}()
	tick := time.NewTicker(r.opts.PollInterval)
	defer tick.Stop()
	fast := time.NewTicker(exitPoll)
	defer fast.Stop()
	for {
		running := r.sync(ctx, checkers)
	wait:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
				break wait
			case <-r.wake:
				break wait
			case <-fast.C:
				// Cheap: one /proc read per running module, and only while
				// someone watches exits.
				if r.watched() && anyGone(running) {
					break wait
				}
			}
		}
	}
}

// checker is a running health checker goroutine for one run of a module.
type checker struct {
	run    int
	cancel context.CancelFunc
	done   chan struct{}
}

// sync refreshes every module and makes checkers match the running
// modules that have a health check. It returns the module processes still
// running, for the exit poll.
func (r *Runtime) sync(ctx context.Context, checkers map[string]*checker) (running []proc) {
	names, err := r.p.names()
	if err != nil {
		r.log.Warn("cannot list modules", "err", err)
		return nil
	}
	want := make(map[string]*record)
	for _, name := range names {
		rec, err := r.p.loadRecord(name)
		if err != nil {
			continue // List reports it
		}
		r.refresh(rec)
		if rec.State == agent.StateRunning {
			running = append(running, proc{Pid: rec.Pid, Start: rec.PidStart})
		}
		if rec.State == agent.StateRunning && rec.Exec.Health != nil {
			want[name] = rec
		}
	}
	for name, c := range checkers {
		if rec, ok := want[name]; !ok || rec.Run != c.run {
			c.cancel()
			<-c.done
			delete(checkers, name)
		}
	}
	for name, rec := range want {
		if _, ok := checkers[name]; ok {
			continue
		}
		cctx, cancel := context.WithCancel(ctx)
		c := &checker{run: rec.Run, cancel: cancel, done: make(chan struct{})}
		checkers[name] = c
		go func() {
			defer close(c.done)
			r.check(cctx, rec)
		}()
	}
	return running
}

// check runs rec's health check every Interval until ctx ends.
func (r *Runtime) check(ctx context.Context, rec *record) {
	h := rec.Exec.Health
	timer := time.NewTimer(h.Interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		out, err := r.probe(ctx, rec)
		if ctx.Err() != nil {
			return // stopped mid-check: the result means nothing
		}
		r.recordHealth(rec, out, err)
		timer.Reset(h.Interval)
	}
}

// probe runs the health check command once, with the module's environment
// and working directory, in a process group of its own that is killed
// when Timeout passes.
func (r *Runtime) probe(ctx context.Context, rec *record) ([]byte, error) {
	h := rec.Exec.Health
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Test[0], h.Test[1:]...)
	cmd.Env = rec.Exec.Env
	cmd.Dir = r.dir(rec)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var out capped
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %s", h.Timeout)
	}
	return out.Bytes(), err
}

// recordHealth applies Docker's rules to one check result: a success makes
// the module healthy; a failure counts unless the module is still starting
// within its start period; Retries consecutive counted failures make it
// unhealthy.
func (r *Runtime) recordHealth(rec *record, out []byte, err error) {
	h := rec.Exec.Health
	r.mu.Lock()
	res, ok := r.health[rec.Name]
	if !ok || res.run != rec.Run {
		res = healthResult{run: rec.Run, status: restart.HealthStarting}
	}
	before := res.status
	switch {
	case err == nil:
		res.status, res.failures = restart.Healthy, 0
	case res.status == restart.HealthStarting && r.now().Sub(rec.StartedAt) < h.StartPeriod:
		// Not counted: the module may still be starting.
	default:
		res.failures++
		if res.failures >= h.Retries {
			res.status = restart.Unhealthy
		}
	}
	r.health[rec.Name] = res
	r.mu.Unlock()

	if err != nil {
		r.log.Debug("health check failed", "module", rec.Name, "err", err, "output", string(out), "failures", res.failures)
	}
	if res.status != before {
		r.log.Info("module health changed", "module", rec.Name, "health", res.status.String())
	}
}

// capped is a buffer that keeps the first maxCheckOutput bytes.
type capped struct{ bytes.Buffer }

func (c *capped) Write(p []byte) (int, error) {
	if room := maxCheckOutput - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
