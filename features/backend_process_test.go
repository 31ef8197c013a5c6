package features

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// processRegistry is the registry part of image references on the process
// backend. Nothing listens there: the process runtime maps an image to
// <image dir>/<name> and never downloads.
const processRegistry = "localhost:5000"

// processBackend runs the fake hub and the edge agent as OS processes
// (built once per test run), and the agent with the process runtime, whose
// image directory holds the test module.
type processBackend struct {
	bins     binaries
	imageDir string
}

func newProcessBackend(bins binaries, runDir string) (*processBackend, error) {
	imageDir := filepath.Join(runDir, "images")
	if err := os.MkdirAll(imageDir, 0o755); err != nil {
		return nil, err
	}
	// The image "<registry>/outpost-features/testmodule:<tag>" runs
	// <imageDir>/testmodule, whatever the tag; ".../edgehub:<tag>" the edge
	// hub.
	for name, bin := range map[string]string{moduleImage: bins.testmodule, hubImageRepo: bins.edgehub} {
		if err := os.Link(bin, filepath.Join(imageDir, name)); err != nil {
			return nil, fmt.Errorf("image directory: %w", err)
		}
	}
	return &processBackend{bins: bins, imageDir: imageDir}, nil
}

func (b *processBackend) name() string { return "process" }

func (b *processBackend) startHub(ctx context.Context, sc *scenario, dir, device string) (*hubProcess, error) {
	p := &proc{
		path: b.bins.fakehub, args: hubArgs(dir, device),
		env: scenarioEnv(sc), logFile: filepath.Join(sc.dir, "fakehub.log"),
	}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	var mqtt, http string
	err := eventually(ctx, 30*time.Second, "the fake hub is ready", func(ctx context.Context) error {
		var ok bool
		if mqtt, http, ok = parseHubReady(p.output(ctx)); !ok {
			if p.exited() {
				return errors.New("the fake hub exited")
			}
			return errors.New("no ready line yet")
		}
		return nil
	})
	if err != nil {
		p.remove(ctx)
		return nil, fmt.Errorf("%w\n%s", err, tail(p.output(ctx), 20))
	}
	return &hubProcess{component: p, mqttAddr: mqtt, httpAddr: http}, nil
}

func (b *processBackend) startAgent(ctx context.Context, sc *scenario, cfg agentConfig) (component, error) {
	args := append(cfg.args(), "--runtime", "process", "--image-dir", b.imageDir)
	p := &proc{path: b.bins.edgeagent, args: args, env: scenarioEnv(sc), logFile: filepath.Join(sc.dir, "edgeagent.log")}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (b *processBackend) image(repo, tag string) string {
	return processRegistry + "/outpost-features/" + repo + ":" + tag
}

func (b *processBackend) agentImage() string { return "exec:" + b.bins.edgeagent }

func (b *processBackend) credentials() map[string]registryCredential { return nil }

func (b *processBackend) healthCommand() []string {
	return []string{"CMD", filepath.Join(b.imageDir, "testmodule"), "health"}
}

// decorate gives each module the scenario's journal directory, the test
// process as its lease (an interrupted run leaves no module running) and
// the scenario marker the clean-up looks for.
func (b *processBackend) decorate(sc *scenario, env map[string]string, _ map[string]any) {
	env["TESTMODULE_JOURNAL"] = sc.journal.dir
	env["TESTMODULE_LEASE_PID"] = strconv.Itoa(os.Getpid())
	env[scenarioMarker] = sc.id
}

// decorateEdgeHub marks the edge hub with the scenario marker, for the
// clean-up: the process runtime gives a module exactly the environment of
// its deployment.
func (b *processBackend) decorateEdgeHub(sc *scenario, env map[string]string, _ map[string]any) {
	env[scenarioMarker] = sc.id
}

// moduleLog reads the log file the process runtime's supervisor writes.
func (b *processBackend) moduleLog(_ context.Context, _ *scenario, agentDataDir, module string) string {
	out, err := os.ReadFile(filepath.Join(agentDataDir, "process", "logs", module+".log"))
	if err != nil {
		return fmt.Sprintf("(log of %s: %v)", module, err)
	}
	return string(out)
}

// moduleExists looks for a running process of the module: the test module
// carries the scenario marker and its name in its environment.
func (b *processBackend) moduleExists(_ context.Context, sc *scenario, module string) (bool, error) {
	pids, err := markedProcesses(sc.id, "TESTMODULE_NAME="+module)
	return len(pids) > 0, err
}

func (b *processBackend) cleanup(_ context.Context, sc *scenario) error {
	return killMarked(sc.id)
}

func (b *processBackend) close() {}

// scenarioEnv is the environment of the hub and agent processes: the
// test's own plus the scenario marker, which the agent's module
// supervisors inherit.
func scenarioEnv(sc *scenario) []string {
	return append(os.Environ(), scenarioMarker+"="+sc.id)
}

// proc is a component run as a child process, its output appended to a
// file. The child dies with the test process (Pdeathsig).
type proc struct {
	path    string
	args    []string
	env     []string
	logFile string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current run has exited
}

func (p *proc) start(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is already running", filepath.Base(p.path))
		}
	}
	f, err := os.OpenFile(p.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", filepath.Base(p.path), err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		f.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// exited reports whether the current run has ended.
func (p *proc) exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return true
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stopTimeout bounds a graceful stop; the agent needs up to 5 s to report
// its shutdown.
const stopTimeout = 15 * time.Second

func (p *proc) stop(ctx context.Context) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(stopTimeout):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s did not stop within %s of SIGTERM; killed", filepath.Base(p.path), stopTimeout)
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return ctx.Err()
	}
}

func (p *proc) output(context.Context) string {
	b, _ := os.ReadFile(p.logFile)
	return string(b)
}

func (p *proc) remove(ctx context.Context) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	cmd.Process.Kill()
	<-done
	return nil
}
