package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

var _ agent.Runtime = (*Runtime)(nil)

// Defaults of Options.
const (
	// DefaultPollInterval is how often Run looks at every module when
	// Options.PollInterval is 0.
	DefaultPollInterval = time.Second
	// defaultPath is the PATH a module gets when its environment has none:
	// Docker's default for Linux containers.
	defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// stopPoll is how often Stop looks whether the module has exited.
	stopPoll = 10 * time.Millisecond
	// killWait bounds the wait for a module to die after SIGKILL.
	killWait = 10 * time.Second
)

// Options configure a Runtime.
type Options struct {
	// StateDir holds the runtime's state: module state files, logs and
	// working directories (see the package documentation, "On disk").
	// Required. It must be kept across agent restarts: it is how a new
	// agent finds the modules the old one started.
	StateDir string
	// ImageDir is where registry-style images resolve to executables:
	// image "host:5000/team/tempsensor:1.0" runs <ImageDir>/tempsensor.
	// Without it only "exec:/abs/path" images can be used.
	ImageDir string
	// Logger receives the runtime's logs; discarded when nil.
	Logger *slog.Logger
	// Now is the clock for recorded start times and health start periods;
	// time.Now when nil. Exit times and log times come from the
	// supervisor, which always uses the wall clock.
	Now func() time.Time
	// Executable is the program started as a module's supervisor with
	// SuperviseArg; its main must call SuperviseMain. The running
	// executable (os.Executable) when empty.
	Executable string
	// LogMaxBytes is the size at which a module's log file is rotated (one
	// rotated file is kept, so a module's logs take at most about twice
	// this); DefaultLogMaxBytes when 0.
	LogMaxBytes int64
	// PollInterval is how often Run refreshes every module (records exits,
	// starts and stops health checkers); DefaultPollInterval when 0.
	PollInterval time.Duration
}

// Runtime runs modules as plain OS processes. It is safe for concurrent
// use, and several Runtimes (in one process or in successive agent
// processes) may share a StateDir one after the other: a new one adopts the
// modules an earlier one started.
//
// Lock order: a module's lock (locks[name]) before mu. mu is held only for
// map access, never across I/O.
type Runtime struct {
	opts Options
	p    paths
	log  *slog.Logger
	now  func() time.Time
	exe  string

	mu     sync.Mutex
	locks  map[string]*sync.Mutex  // per module: Create, Start, Stop, Remove
	health map[string]healthResult // by module name, for the current run

	wake    chan struct{} // coalesced wake-ups of Run
	running atomic.Bool   // Run is running

	// watchers are the channels of WatchExits calls, guarded by mu.
	watchers map[chan string]struct{}
}

// New returns a Runtime keeping its state under o.StateDir, which it
// creates if needed. It fails when the directories cannot be created or
// when the system has no Linux /proc, which the runtime needs to tell its
// processes from unrelated ones.
func New(o Options) (*Runtime, error) {
	if o.StateDir == "" {
		return nil, errors.New("process runtime: Options.StateDir is required")
	}
	var err error
	if o.StateDir, err = filepath.Abs(o.StateDir); err != nil {
		return nil, fmt.Errorf("process runtime: state dir: %w", err)
	}
	if o.ImageDir != "" {
		if o.ImageDir, err = filepath.Abs(o.ImageDir); err != nil {
			return nil, fmt.Errorf("process runtime: image dir: %w", err)
		}
	}
	for _, d := range []string{modulesDir, logsDir, workDir} {
		if err := os.MkdirAll(filepath.Join(o.StateDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("process runtime: %w", err)
		}
	}
	if _, err := readStat(os.Getpid()); err != nil {
		return nil, fmt.Errorf("process runtime: needs Linux /proc: %w", err)
	}
	if o.Executable == "" {
		if o.Executable, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("process runtime: supervisor executable: %w", err)
		}
	}
	if o.LogMaxBytes <= 0 {
		o.LogMaxBytes = DefaultLogMaxBytes
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	r := &Runtime{
		opts:   o,
		p:      paths{dir: o.StateDir},
		log:    o.Logger,
		now:    o.Now,
		exe:    o.Executable,
		locks:  make(map[string]*sync.Mutex),
		health: make(map[string]healthResult),
		wake:   make(chan struct{}, 1),

		watchers: make(map[chan string]struct{}),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r, nil
}

// lockOf returns the lock of module name. Locks are never deleted: there is
// one per module name ever used, a few bytes each.
func (r *Runtime) lockOf(name string) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.locks[name]
	if !ok {
		l = new(sync.Mutex)
		r.locks[name] = l
	}
	return l
}

// kick wakes Run up, if it runs.
func (r *Runtime) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// List implements agent.Runtime. It reads every state file and checks each
// running module against /proc and its exit file (see the package
// documentation, "Adoption"), recording exits it finds. A state file that
// cannot be read is listed as agent.StateDead, so that the agent removes
// and recreates the module.
func (r *Runtime) List(ctx context.Context) ([]agent.ModuleState, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	names, err := r.p.names()
	if err != nil {
		return nil, fmt.Errorf("list modules: %w", err)
	}
	out := make([]agent.ModuleState, 0, len(names))
	for _, name := range names {
		rec, err := r.p.loadRecord(name)
		switch {
		case errors.Is(err, agent.ErrNotFound):
			continue // removed meanwhile
		case errors.Is(err, ErrCorrupt):
			r.log.Warn("module state unreadable; listed as dead", "module", name, "err", err)
			out = append(out, agent.ModuleState{Name: name, State: agent.StateDead, ExitCode: -1})
			continue
		case err != nil:
			return nil, fmt.Errorf("list modules: %w", err)
		}
		if rec.Labels[agent.LabelOwner] != agent.Owner {
			continue
		}
		r.refresh(rec)
		out = append(out, r.state(rec))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// state is the agent's view of rec.
func (r *Runtime) state(rec *record) agent.ModuleState {
	image := rec.Labels[agent.LabelImage]
	if image == "" {
		image = rec.Image
	}
	s := agent.ModuleState{
		Name:      rec.Name,
		State:     rec.State,
		ExitCode:  rec.ExitCode,
		StartedAt: rec.StartedAt,
		ExitedAt:  rec.ExitedAt,
		Image:     image,
		ImageID:   rec.ImageID,
		SpecHash:  rec.Labels[agent.LabelSpecHash],
	}
	if rec.State == agent.StateRunning {
		s.Health = r.healthOf(rec)
	}
	return s
}

// observe checks a module recorded as running against the system and, if
// it has exited, sets its exit in rec and returns true. The order of the
// checks matters: the supervisor writes the exit file before it exits, so
// a supervisor seen dead before the exit file is read has written it if it
// ever will.
func (r *Runtime) observe(rec *record) bool {
	if rec.State != agent.StateRunning || alive(rec.Pid, rec.PidStart) {
		return false
	}
	supervisorAlive := alive(rec.Supervisor, rec.SupervisorStart)
	if ex, ok := r.p.loadExit(rec.Name); ok && ex.Run == rec.Run {
		rec.State, rec.ExitCode, rec.ExitedAt = agent.StateExited, ex.ExitCode, ex.ExitedAt
		if ex.Err != "" {
			r.log.Warn("module supervisor reported a problem", "module", rec.Name, "err", ex.Err)
		}
		return true
	}
	if supervisorAlive {
		return false // the module is gone; its supervisor is still writing its logs and exit
	}
	// Both gone without an exit file: the supervisor was killed, or the
	// machine rebooted. The exit code and time are unknown.
	rec.State, rec.ExitCode, rec.ExitedAt = agent.StateExited, -1, time.Time{}
	r.log.Info("module exited while its supervisor was gone; exit code unknown", "module", rec.Name)
	return true
}

// refresh observes rec and saves an exit it finds, unless another call
// holds the module (a Start or Stop, which records its own outcome).
func (r *Runtime) refresh(rec *record) {
	if !r.observe(rec) {
		return
	}
	l := r.lockOf(rec.Name)
	if !l.TryLock() {
		return
	}
	defer l.Unlock()
	cur, err := r.p.loadRecord(rec.Name)
	if err != nil || cur.Run != rec.Run || !r.observe(cur) {
		return // changed meanwhile; the newer record stands
	}
	if err := r.p.saveRecord(cur); err != nil {
		r.log.Warn("cannot record module exit", "module", rec.Name, "err", err)
		return
	}
	r.notifyExit(rec.Name)
}

// Pull implements agent.Runtime. Nothing is downloaded: it checks that the
// image resolves to an executable file (see the package documentation,
// "Images") and fails with agent.ErrImageNotFound otherwise. auth and
// progress are not used.
func (r *Runtime) Pull(ctx context.Context, image string, auth *deployment.RegistryCredential, progress func(agent.PullProgress)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := findImage(image, r.opts.ImageDir)
	return err
}

// Create implements agent.Runtime: it resolves the image and the
// createOptions into how the module will run and records it; nothing is
// started. Besides the agent's errors it fails with ErrName and
// ErrCreateOptions.
func (r *Runtime) Create(ctx context.Context, spec agent.ModuleSpec) error {
	if err := checkName(spec.Name); err != nil {
		return err
	}
	l := r.lockOf(spec.Name)
	l.Lock()
	defer l.Unlock()
	if _, err := os.Lstat(r.p.record(spec.Name)); err == nil {
		return fmt.Errorf("module %q: %w", spec.Name, agent.ErrExists)
	}
	path, err := findImage(spec.Image, r.opts.ImageDir)
	if err != nil {
		return fmt.Errorf("module %q: %w", spec.Name, err)
	}
	o, err := parseCreateOptions(spec.CreateOptions)
	if err != nil {
		return fmt.Errorf("module %q: %w", spec.Name, err)
	}
	if len(o.Ignored) > 0 {
		r.log.Debug("createOptions fields not used by the process runtime", "module", spec.Name, "fields", o.Ignored)
	}
	ex := execSpec{Path: path, Args: o.Cmd, Env: moduleEnv(spec.Env), Dir: o.WorkingDir, Health: o.Health}
	if len(o.Entrypoint) > 0 {
		if ex.Path, err = r.resolveEntrypoint(o.Entrypoint[0]); err != nil {
			return fmt.Errorf("module %q: %w", spec.Name, err)
		}
		ex.Args = append(append([]string(nil), o.Entrypoint[1:]...), o.Cmd...)
	}
	id, err := imageID(path)
	if err != nil {
		return fmt.Errorf("module %q: image %q: %w", spec.Name, spec.Image, err)
	}
	rec := &record{
		Name:          spec.Name,
		Image:         spec.Image,
		Env:           spec.Env,
		CreateOptions: spec.CreateOptions,
		Labels:        spec.Labels,
		Hash:          spec.Hash,
		ImageID:       id,
		Exec:          ex,
		CreatedAt:     r.now(),
		State:         agent.StateCreated,
	}
	return r.p.saveRecord(rec)
}

// resolveEntrypoint finds the executable named by createOptions'
// Entrypoint[0]: an absolute path, or a bare name in the image directory.
func (r *Runtime) resolveEntrypoint(name string) (string, error) {
	path := name
	switch {
	case filepath.IsAbs(name):
	case !strings.Contains(name, "/") && r.opts.ImageDir != "" && name != "." && name != "..":
		path = filepath.Join(r.opts.ImageDir, name)
	default:
		return "", fmt.Errorf("%w: Entrypoint %q: want an absolute path or a name in the image directory", ErrCreateOptions, name)
	}
	if err := checkExecutable(path); err != nil {
		return "", fmt.Errorf("%w: Entrypoint %q: %v", ErrCreateOptions, name, err)
	}
	return filepath.Clean(path), nil
}

// moduleEnv is the module's environment: exactly spec.Env, plus Docker's
// default PATH when it sets none. Nothing of the agent's own environment
// leaks into it.
func moduleEnv(env []string) []string {
	out := append([]string(nil), env...)
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			return out
		}
	}
	return append(out, defaultPath)
}

// dir is the working directory of rec's module.
func (r *Runtime) dir(rec *record) string {
	if rec.Exec.Dir != "" {
		return rec.Exec.Dir
	}
	return r.p.workDir(rec.Name)
}

// Start implements agent.Runtime. It starts a supervisor, which starts the
// module and replies with its pid; Start returns once the module's process
// runs. When the executable cannot be run, the module is recorded as exited
// with code 127 or 126 and Start fails with ErrStart.
func (r *Runtime) Start(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	l := r.lockOf(name)
	l.Lock()
	defer l.Unlock()
	rec, err := r.p.loadRecord(name)
	if err != nil {
		return err
	}
	changed := r.observe(rec)
	if rec.State == agent.StateRunning && !alive(rec.Pid, rec.PidStart) {
		// The module has exited and its supervisor is finishing: wait for
		// the exit rather than call the module running.
		if err := r.awaitExit(ctx, rec, drainTimeout+time.Second); err != nil {
			return err
		}
		changed = true
	}
	if changed {
		if err := r.p.saveRecord(rec); err != nil {
			return err
		}
	}
	if rec.State == agent.StateRunning {
		return nil
	}
	if err := os.Remove(r.p.exit(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("module %q: %w", name, err)
	}
	if rec.Exec.Dir == "" {
		if err := os.MkdirAll(r.dir(rec), 0o700); err != nil {
			return fmt.Errorf("module %q: %w", name, err)
		}
	}
	run := rec.Run + 1
	// Taken before the launch: a module may exit before launch returns,
	// and StartedAt must not come after its ExitedAt.
	now := r.now()
	sup, rep, err := r.launch(ctx, superviseConfig{
		Name:        name,
		Run:         run,
		Path:        rec.Exec.Path,
		Args:        rec.Exec.Args,
		Env:         rec.Exec.Env,
		Dir:         r.dir(rec),
		Log:         r.p.log(name),
		LogMaxBytes: r.opts.LogMaxBytes,
		Exit:        r.p.exit(name),
	})
	if err != nil {
		return fmt.Errorf("module %q: %w", name, err)
	}
	rec.Run, rec.StartedAt = run, now
	if rep.Err != "" {
		rec.State, rec.ExitCode, rec.ExitedAt = agent.StateExited, rep.ExitCode, now
		rec.Pid, rec.PidStart, rec.Supervisor, rec.SupervisorStart = 0, 0, 0, 0
		if err := r.p.saveRecord(rec); err != nil {
			return err
		}
		return fmt.Errorf("module %q: %w: %s", name, ErrStart, rep.Err)
	}
	rec.State, rec.ExitCode, rec.ExitedAt = agent.StateRunning, 0, time.Time{}
	rec.Pid, rec.PidStart = rep.Pid, rep.Start
	rec.Supervisor, rec.SupervisorStart = sup.Pid, sup.Start
	if err := r.p.saveRecord(rec); err != nil {
		// Unrecorded, the module could never be stopped: end it now.
		syscall.Kill(-rep.Pid, syscall.SIGKILL)
		return err
	}
	r.log.Info("module started", "module", name, "pid", rep.Pid, "run", run)
	r.kick()
	return nil
}

// Stop implements agent.Runtime: SIGTERM to the module's process group,
// SIGKILL once timeout has passed (at once when it is 0 or less), then
// wait for the supervisor to record the exit code. It fails when ctx ends
// first, or when the module survives SIGKILL for 10 s.
func (r *Runtime) Stop(ctx context.Context, name string, timeout time.Duration) error {
	if err := checkName(name); err != nil {
		return err
	}
	l := r.lockOf(name)
	l.Lock()
	defer l.Unlock()
	rec, err := r.p.loadRecord(name)
	if err != nil {
		return err
	}
	if r.observe(rec) {
		return r.p.saveRecord(rec) // it exited by itself
	}
	if rec.State != agent.StateRunning {
		return nil
	}
	r.signal(rec, syscall.SIGTERM)
	deadline, killed := time.Now().Add(timeout), false
	tick := time.NewTicker(stopPoll)
	defer tick.Stop()
	for !r.observe(rec) {
		switch {
		case !killed && !time.Now().Before(deadline):
			r.log.Info("module did not stop in time; killing it", "module", name, "timeout", timeout)
			r.signal(rec, syscall.SIGKILL)
			deadline, killed = time.Now().Add(killWait), true
		case killed && !time.Now().Before(deadline):
			return fmt.Errorf("module %q: still running %s after SIGKILL", name, killWait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("module %q: stop: %w", name, ctx.Err())
		case <-tick.C:
		}
	}
	if err := r.p.saveRecord(rec); err != nil {
		return err
	}
	r.log.Info("module stopped", "module", name, "exitCode", rec.ExitCode)
	r.notifyExit(name)
	r.kick()
	return nil
}

// awaitExit waits up to d for observe to find rec's module exited.
func (r *Runtime) awaitExit(ctx context.Context, rec *record, d time.Duration) error {
	tick := time.NewTicker(stopPoll)
	defer tick.Stop()
	deadline := time.Now().Add(d)
	for !r.observe(rec) {
		if !time.Now().Before(deadline) {
			return fmt.Errorf("module %q: its supervisor did not record the exit within %s", rec.Name, d)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("module %q: %w", rec.Name, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// signal sends sig to the module's process group, if its process is still
// the one the runtime started (never to a reused pid).
func (r *Runtime) signal(rec *record, sig syscall.Signal) {
	if !alive(rec.Pid, rec.PidStart) {
		return // exited; its supervisor is finishing
	}
	if err := syscall.Kill(-rec.Pid, sig); errors.Is(err, syscall.ESRCH) {
		syscall.Kill(rec.Pid, sig) // it left its process group
	}
}

// Remove implements agent.Runtime: it deletes the module's state, exit
// file, logs and, unless createOptions chose another working directory,
// its working directory. A running module is refused with ErrNotStopped.
// A module whose state is unreadable (dead) is removed whatever it runs.
func (r *Runtime) Remove(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	l := r.lockOf(name)
	l.Lock()
	defer l.Unlock()
	rec, err := r.p.loadRecord(name)
	switch {
	case errors.Is(err, ErrCorrupt):
	case err != nil:
		return err
	default:
		r.observe(rec)
		if rec.State == agent.StateRunning {
			return fmt.Errorf("module %q: %w: stop it first", name, ErrNotStopped)
		}
	}
	// The state file goes first: once it is gone the module is not listed,
	// whatever happens to the rest.
	if err := os.Remove(r.p.record(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("module %q: %w", name, err)
	}
	var errs []error
	for _, f := range []string{r.p.exit(name), r.p.log(name), r.p.log(name) + rotatedExt} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(r.p.workDir(name)); err != nil {
		errs = append(errs, err)
	}
	r.mu.Lock()
	delete(r.health, name)
	r.mu.Unlock()
	r.kick()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("module %q: removed, but not all its files: %w", name, err)
	}
	return nil
}

// healthOf is the health of a running module.
func (r *Runtime) healthOf(rec *record) restart.Health {
	if rec.Exec.Health == nil {
		return restart.NoHealthCheck
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.health[rec.Name]; ok && h.run == rec.Run {
		return h.status
	}
	return restart.HealthStarting
}

// Logs implements agent.Runtime (see logs.go).
func (r *Runtime) Logs(ctx context.Context, name string, opts agent.LogOptions) (io.ReadCloser, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if _, err := os.Stat(r.p.record(name)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("module %q: %w", name, agent.ErrNotFound)
		}
		return nil, fmt.Errorf("module %q: %w", name, err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(r.streamLogs(ctx, name, opts, pw)) }()
	return pr, nil
}
