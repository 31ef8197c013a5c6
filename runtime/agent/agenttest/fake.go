// Package agenttest provides FakeRuntime, an in-memory agent.Runtime that
// records every call and fails on demand, for tests of the agent and of
// anything that executes its commands.
package agenttest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

var _ agent.Runtime = (*FakeRuntime)(nil)

// Op names a Runtime method in recorded calls and injected faults.
type Op string

// Runtime methods.
const (
	OpList   Op = "list"
	OpPull   Op = "pull"
	OpCreate Op = "create"
	OpStart  Op = "start"
	OpStop   Op = "stop"
	OpRemove Op = "remove"
	OpLogs   Op = "logs"
)

// Call is one recorded Runtime call.
type Call struct {
	Op     Op
	Target string // the image for OpPull, the module name otherwise ("" for OpList)
	// Auth (OpPull), Spec (OpCreate) and Timeout (OpStop) are the arguments.
	Auth    *deployment.RegistryCredential
	Spec    *agent.ModuleSpec
	Timeout time.Duration
}

// String is "op target", e.g. "pull x.io/m:1" or "start m".
func (c Call) String() string {
	if c.Target == "" {
		return string(c.Op)
	}
	return string(c.Op) + " " + c.Target
}

// FakeRuntime is an in-memory module runtime. Its zero value is ready: no
// modules, no images, no faults. It behaves like Docker where the agent
// cares: Create needs the image and a free name, Remove refuses a running
// module, Stop and Start are idempotent, and a stopped module exits with
// StopExitCode. It is safe for concurrent use.
type FakeRuntime struct {
	// Now is the clock for start and exit times; time.Now when nil.
	Now func() time.Time
	// StopExitCode is the exit code a module stopped by Stop reports.
	StopExitCode int
	// Progress is what Pull reports to its progress callback.
	Progress []agent.PullProgress

	mu      sync.Mutex
	calls   []Call
	modules map[string]*module
	images  map[string]bool
	faults  map[fault]error
}

type module struct {
	state agent.ModuleState
	spec  agent.ModuleSpec
	logs  string
}

type fault struct {
	op     Op
	target string
}

func (f *FakeRuntime) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *FakeRuntime) init() {
	if f.modules == nil {
		f.modules = make(map[string]*module)
		f.images = make(map[string]bool)
		f.faults = make(map[fault]error)
	}
}

// record logs a call and returns the injected fault for it, if any.
func (f *FakeRuntime) record(c Call) error {
	f.init()
	f.calls = append(f.calls, c)
	if err, ok := f.faults[fault{c.Op, c.Target}]; ok {
		return err
	}
	return f.faults[fault{c.Op, ""}]
}

// Fail makes every later call of op on target (an image for OpPull, a
// module name otherwise; "" for any) fail with err, until Fail is called
// again with a nil err. A failing call changes nothing but is recorded.
func (f *FakeRuntime) Fail(op Op, target string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	if err == nil {
		delete(f.faults, fault{op, target})
		return
	}
	f.faults[fault{op, target}] = err
}

// Calls returns the calls so far, in order.
func (f *FakeRuntime) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// CallStrings returns the calls so far as strings ("pull x.io/m:1",
// "create m"…), leaving out List calls, for compact assertions.
func (f *FakeRuntime) CallStrings() []string {
	var out []string
	for _, c := range f.Calls() {
		if c.Op != OpList {
			out = append(out, c.String())
		}
	}
	return out
}

// ResetCalls forgets the recorded calls.
func (f *FakeRuntime) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// AddImage makes image present locally, as if pulled or preloaded.
func (f *FakeRuntime) AddImage(image string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	f.images[image] = true
}

// HasImage reports whether image is present.
func (f *FakeRuntime) HasImage(image string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.images[image]
}

// ImageID is the id the fake gives image: "sha256:" and the hex SHA-256 of
// the name.
func ImageID(image string) string {
	sum := sha256.Sum256([]byte(image))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Module returns the state and spec of module name, and whether it exists.
func (f *FakeRuntime) Module(name string) (agent.ModuleState, agent.ModuleSpec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.modules[name]
	if !ok {
		return agent.ModuleState{}, agent.ModuleSpec{}, false
	}
	return m.state, m.spec, true
}

// Put adds or replaces a module in the given state, as if created earlier
// (or by hand). Its Record and Pulling are ignored.
func (f *FakeRuntime) Put(st agent.ModuleState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	st.Record, st.Pulling = agent.Record{}, false
	f.modules[st.Name] = &module{state: st}
}

// Exit makes a running module exit with code, as if it crashed or finished.
func (f *FakeRuntime) Exit(name string, code int) error {
	return f.change(name, func(m *module) {
		m.state.State, m.state.ExitCode, m.state.ExitedAt, m.state.Health = agent.StateExited, code, f.now(), restart.NoHealthCheck
	})
}

// Die marks a module dead.
func (f *FakeRuntime) Die(name string) error {
	return f.change(name, func(m *module) {
		m.state.State, m.state.ExitedAt, m.state.Health = agent.StateDead, f.now(), restart.NoHealthCheck
	})
}

// SetHealth sets a module's health check result.
func (f *FakeRuntime) SetHealth(name string, h restart.Health) error {
	return f.change(name, func(m *module) { m.state.Health = h })
}

// SetLogs sets what Logs returns for a module.
func (f *FakeRuntime) SetLogs(name, text string) error {
	return f.change(name, func(m *module) { m.logs = text })
}

// Delete removes a module without recording a call, as if deleted by hand.
func (f *FakeRuntime) Delete(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.modules, name)
}

func (f *FakeRuntime) change(name string, fn func(*module)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.modules[name]
	if !ok {
		return fmt.Errorf("module %q: %w", name, agent.ErrNotFound)
	}
	fn(m)
	return nil
}

// List implements agent.Runtime; modules are sorted by name.
func (f *FakeRuntime) List(ctx context.Context) ([]agent.ModuleState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpList}); err != nil {
		return nil, err
	}
	out := make([]agent.ModuleState, 0, len(f.modules))
	for _, m := range f.modules {
		out = append(out, m.state)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Pull implements agent.Runtime.
func (f *FakeRuntime) Pull(ctx context.Context, image string, auth *deployment.RegistryCredential, progress func(agent.PullProgress)) error {
	f.mu.Lock()
	err := f.record(Call{Op: OpPull, Target: image, Auth: auth})
	events := append([]agent.PullProgress(nil), f.Progress...)
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if progress != nil {
		for _, p := range events {
			progress(p) // outside the lock, as a real runtime would
		}
	}
	f.AddImage(image)
	return nil
}

// Create implements agent.Runtime.
func (f *FakeRuntime) Create(ctx context.Context, spec agent.ModuleSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := spec
	if err := f.record(Call{Op: OpCreate, Target: spec.Name, Spec: &s}); err != nil {
		return err
	}
	if _, ok := f.modules[spec.Name]; ok {
		return fmt.Errorf("module %q: %w", spec.Name, agent.ErrExists)
	}
	if !f.images[spec.Image] {
		return fmt.Errorf("image %q: %w", spec.Image, agent.ErrImageNotFound)
	}
	image := spec.Labels[agent.LabelImage]
	if image == "" {
		image = spec.Image
	}
	f.modules[spec.Name] = &module{spec: s, state: agent.ModuleState{
		Name: spec.Name, State: agent.StateCreated, Image: image, ImageID: ImageID(spec.Image),
		SpecHash: spec.Labels[agent.LabelSpecHash],
	}}
	return nil
}

// Start implements agent.Runtime.
func (f *FakeRuntime) Start(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpStart, Target: name}); err != nil {
		return err
	}
	m, ok := f.modules[name]
	switch {
	case !ok:
		return fmt.Errorf("module %q: %w", name, agent.ErrNotFound)
	case m.state.State == agent.StateDead:
		return fmt.Errorf("module %q is dead", name)
	case m.state.State != agent.StateRunning:
		m.state.State, m.state.StartedAt, m.state.Health, m.state.ExitCode = agent.StateRunning, f.now(), restart.NoHealthCheck, 0
	}
	return nil
}

// Stop implements agent.Runtime.
func (f *FakeRuntime) Stop(ctx context.Context, name string, timeout time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpStop, Target: name, Timeout: timeout}); err != nil {
		return err
	}
	m, ok := f.modules[name]
	if !ok {
		return fmt.Errorf("module %q: %w", name, agent.ErrNotFound)
	}
	if m.state.State == agent.StateRunning {
		m.state.State, m.state.ExitCode, m.state.ExitedAt, m.state.Health = agent.StateExited, f.StopExitCode, f.now(), restart.NoHealthCheck
	}
	return nil
}

// Remove implements agent.Runtime.
func (f *FakeRuntime) Remove(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpRemove, Target: name}); err != nil {
		return err
	}
	m, ok := f.modules[name]
	switch {
	case !ok:
		return fmt.Errorf("module %q: %w", name, agent.ErrNotFound)
	case m.state.State == agent.StateRunning:
		return fmt.Errorf("module %q is running: stop it first", name)
	}
	delete(f.modules, name)
	return nil
}

// Logs implements agent.Runtime: the text set with SetLogs, limited to the
// last opts.Tail lines.
func (f *FakeRuntime) Logs(ctx context.Context, name string, opts agent.LogOptions) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Op: OpLogs, Target: name}); err != nil {
		return nil, err
	}
	m, ok := f.modules[name]
	if !ok {
		return nil, fmt.Errorf("module %q: %w", name, agent.ErrNotFound)
	}
	text := m.logs
	if opts.Tail > 0 {
		lines := strings.SplitAfter(text, "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		if len(lines) > opts.Tail {
			lines = lines[len(lines)-opts.Tail:]
		}
		text = strings.Join(lines, "")
	}
	return io.NopCloser(strings.NewReader(text)), nil
}
