package conformance

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"sync"
	"syscall"
	"time"
)

// Runner starts the module under test. ProcessRunner runs an executable; DockerRunner an
// image. Run calls Start once per run, from its own goroutine.
type Runner interface {
	// Start starts the module with env as its whole environment (nothing inherited, as in
	// a container built FROM scratch; an image's own ENV stays under it). File paths in
	// env (EdgeModuleCACertificateFile) are paths on this host: a runner that isolates the
	// module's file system makes the file available to it and rewrites the variable. The
	// module runs until it exits or is killed; ctx bounds the start only.
	Start(ctx context.Context, env map[string]string) (Instance, error)
	// Describe names what is run, for the report ("executable ./relayer").
	Describe() string
}

// Instance is a started module. Its methods are safe for concurrent use.
type Instance interface {
	// PID is the module's process id on this host, whose /proc entry the resource checks
	// sample; 0 when unknown. A ResourceSampler is sampled through its own method instead;
	// any other instance with no PID has its resource checks skipped.
	PID() int
	// Terminate sends SIGTERM.
	Terminate() error
	// Kill ends the module at once (SIGKILL).
	Kill() error
	// Done is closed when the module has exited.
	Done() <-chan struct{}
	// ExitCode is the exit code once Done is closed; -1 before, and for a process that a
	// signal ended (a container's is the engine's, 128+n after signal n).
	ExitCode() int
	// Output is the end of what the module wrote to stdout and stderr (at most
	// maxOutput bytes).
	Output() string
	// Close releases what the instance holds once the module has exited or been killed:
	// a container is removed. Run calls it exactly once, at the end of the run, whatever
	// happened (failed checks, an interrupted run).
	Close() error
}

// ResourceSampler is implemented by instances that measure their own resource use (a
// container: the engine's stats of its cgroup) rather than through /proc by PID. The
// memory and cpu checks then sample it every SampleInterval while the module runs.
type ResourceSampler interface {
	// SampleResources returns the module's current memory use and its CPU time so far. It
	// may block until the engine's next measurement. The first sample may be the module's
	// start (nothing used yet), so that the average CPU covers the whole run even when the
	// engine measures rarely.
	SampleResources(ctx context.Context) (ResourceSample, error)
	// SampleInterval is the time between two samples.
	SampleInterval() time.Duration
	// ResourceSource names what is measured, for the evidence ("docker stats").
	ResourceSource() string
}

// ResourceSample is one measurement of a module's resource use.
type ResourceSample struct {
	// Memory is the memory in use, in bytes: a process's resident set; a container's
	// cgroup memory use without its inactive page cache (what docker stats shows).
	Memory int64
	// CPU is the CPU time used since the module started (user and system).
	CPU time.Duration
	// At is when the measurement was taken; zero means when SampleResources returned. A
	// sampler whose engine measures on its own schedule (docker stats: once a second)
	// gives the engine's time.
	At time.Time
}

// GracefulStopper is implemented by instances that an engine stops (docker stop: the
// image's stop signal, SIGTERM unless it says otherwise, then SIGKILL after a timeout).
// The sigterm check calls Stop rather than Terminate; it still judges the exit against
// the spec's grace period itself, and kills a module that outlives it.
type GracefulStopper interface {
	// Stop asks the engine to stop the module, leaving it at least grace before the engine
	// kills it. It returns at once: the engine sends the signal as it gets the request.
	Stop(grace time.Duration) error
}

// maxOutput bounds the module output kept for the report.
const maxOutput = 64 << 10

// ProcessRunner runs an executable as a child process.
type ProcessRunner struct {
	// Path is the executable.
	Path string
	// Args are its arguments.
	Args []string
}

var _ Runner = (*ProcessRunner)(nil)

// Describe implements Runner.
func (r *ProcessRunner) Describe() string { return "executable " + r.Path }

// Start implements Runner.
func (r *ProcessRunner) Start(ctx context.Context, env map[string]string) (Instance, error) {
	fi, err := os.Stat(r.Path)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrTarget, err)
	case fi.IsDir() || fi.Mode()&0o111 == 0:
		return nil, fmt.Errorf("%w: %s is not an executable file", ErrTarget, r.Path)
	}
	cmd := exec.Command(r.Path, r.Args...)
	cmd.Env = envList(env)
	p := &process{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	// Its own process group, so that a terminal's Ctrl-C reaches edgectl, which stops the
	// module itself, rather than the module directly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrTarget, r.Path, err)
	}
	go func() {
		_ = cmd.Wait() // the exit status is read from ProcessState
		close(p.done)
	}()
	return p, nil
}

// envList turns env into KEY=VALUE pairs, sorted for a stable order.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// process is a module started by ProcessRunner.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	out  tailBuffer
}

func (p *process) PID() int              { return p.cmd.Process.Pid }
func (p *process) Done() <-chan struct{} { return p.done }
func (p *process) Output() string        { return p.out.String() }
func (p *process) Terminate() error      { return p.signal(syscall.SIGTERM) }
func (p *process) Kill() error           { return p.signal(syscall.SIGKILL) }
func (p *process) Close() error          { return nil } // Run waits for the process to exit
func (p *process) ExitCode() int {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

func (p *process) signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to the module: %w", sig, err)
	}
	return nil
}

// tailBuffer keeps the last maxOutput bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	cut bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - maxOutput; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
		b.cut = true
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cut {
		return "[...]\n" + string(b.buf)
	}
	return string(b.buf)
}
