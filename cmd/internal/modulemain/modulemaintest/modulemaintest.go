// Package modulemaintest runs a sample module's run function in-process against a fake IoT
// Hub, for the modules' integration tests: Env registers the module and builds the
// environment the edge agent would give it, Start runs the module, Stop sends it the
// equivalent of SIGTERM and checks that it stops cleanly within a second. BuildStatic and
// StartProcess do the same with the real binary, built with CGO_ENABLED=0.
package modulemaintest

import (
	"bytes"
	"context"
	"debug/elf"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
)

// WaitTimeout bounds every wait of these helpers.
const WaitTimeout = 15 * time.Second

// StopTimeout is how long a module may take to stop once told to.
const StopTimeout = time.Second

// Env registers moduleID on the edge device deviceID of s (registering the device first if
// needed) and returns the environment the edge agent would give the module:
// EdgeHubConnectionString, EdgeModuleCACertificateFile, the hub's port in OUTPOST_MQTT_PORT,
// and RuntimeLogLevel=debug.
func Env(t testing.TB, s *fakehub.Server, deviceID, moduleID string) map[string]string {
	t.Helper()
	if _, err := s.GetDevice(deviceID); err != nil {
		fakehubtest.MustDevice(t, s, deviceID, fakehubtest.Edge())
	}
	_, cs := fakehubtest.MustModule(t, s, deviceID, moduleID)
	_, port, err := net.SplitHostPort(s.MQTTAddress())
	if err != nil {
		t.Fatalf("modulemaintest: fake hub address %q: %v", s.MQTTAddress(), err)
	}
	return map[string]string{
		moduleclient.EnvEdgeHubConnectionString: cs,
		moduleclient.EnvCACertificateFile:       s.CAFile(),
		modulemain.EnvPort:                      port,
		modulemain.EnvLogLevel:                  "debug",
	}
}

// Getenv returns a getenv function over env.
func Getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// Module is a run function running in-process.
type Module struct {
	t      testing.TB
	cancel context.CancelFunc
	done   chan struct{}
	code   int
	stderr syncBuffer
}

// Start runs run with env in a goroutine. The module is stopped at the end of the test if it
// is still running, and its stderr goes to the test log.
func Start(t testing.TB, run modulemain.RunFunc, env map[string]string) *Module {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := &Module{t: t, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		m.code = run(ctx, Getenv(env), &m.stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-m.done:
		case <-time.After(WaitTimeout):
			t.Errorf("module did not stop")
		}
		t.Logf("module stderr:\n%s", m.Stderr())
	})
	return m
}

// Stderr returns what the module has logged so far.
func (m *Module) Stderr() string { return m.stderr.String() }

// Stop cancels the module's context, as SIGTERM does, and returns its exit code. It fails the
// test if the module takes more than StopTimeout to return.
func (m *Module) Stop() int {
	m.t.Helper()
	m.cancel()
	start := time.Now()
	select {
	case <-m.done:
		if d := time.Since(start); d > StopTimeout {
			m.t.Errorf("module took %v to stop, want at most %v", d, StopTimeout)
		}
		return m.code
	case <-time.After(WaitTimeout):
		m.t.Fatalf("module did not stop within %v", WaitTimeout)
		return -1
	}
}

// Wait waits for the module to return by itself and returns its exit code.
func (m *Module) Wait() int {
	m.t.Helper()
	select {
	case <-m.done:
		return m.code
	case <-time.After(WaitTimeout):
		m.t.Fatalf("module did not finish within %v; stderr:\n%s", WaitTimeout, m.Stderr())
		return -1
	}
}

// Done is closed when run has returned.
func (m *Module) Done() <-chan struct{} { return m.done }

// WaitFor polls cond every 10 ms until it holds, failing the test with what after
// WaitTimeout.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitConnected waits until the fake hub has a connection for deviceID/moduleID.
func WaitConnected(t testing.TB, s *fakehub.Server, deviceID, moduleID string) {
	t.Helper()
	id := deviceID + "/" + moduleID
	WaitFor(t, id+" to connect", func() bool {
		for _, c := range s.Connections() {
			for _, i := range c.Identities {
				if i == id {
					return true
				}
			}
		}
		return false
	})
}

// WaitReported waits until the module twin's reported properties satisfy cond and returns
// them.
func WaitReported(t testing.TB, s *fakehub.Server, deviceID, moduleID string, what string, cond func(map[string]any) bool) map[string]any {
	t.Helper()
	var reported map[string]any
	WaitFor(t, "reported properties with "+what, func() bool {
		tw, err := s.GetTwin(deviceID, moduleID)
		if err != nil {
			t.Fatalf("get twin %s/%s: %v", deviceID, moduleID, err)
		}
		reported = tw.Properties.Reported
		return cond(reported)
	})
	return reported
}

// Events waits until the hub captured at least n events with Seq > after from
// deviceID/moduleID and returns the first n of them.
func Events(t testing.TB, s *fakehub.Server, deviceID, moduleID string, after int64, n int) []fakehub.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	var got []fakehub.Event
	for len(got) < n {
		evs, err := s.WaitEvents(ctx, after, 0)
		if err != nil {
			t.Fatalf("waiting for %d events from %s/%s: got %d: %v", n, deviceID, moduleID, len(got), err)
		}
		for _, ev := range evs {
			after = ev.Seq
			if ev.DeviceID == deviceID && ev.ModuleID == moduleID {
				got = append(got, ev)
			}
		}
	}
	return got[:n]
}

// BuildStatic builds the main package in the current directory with CGO_ENABLED=0, checks
// that the result is a statically linked executable (no ELF interpreter, no shared
// libraries: it runs FROM scratch) and returns its path. It skips the test under -short.
func BuildStatic(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a binary; skipped with -short")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "module")
	cmd := exec.Command(gobin, "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("open built binary: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("binary has an ELF interpreter: it is dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("binary needs shared libraries %v", libs)
	}
	return bin
}

// Process is a module binary running as a plain process.
type Process struct {
	cmd    *exec.Cmd
	done   chan struct{}
	stderr syncBuffer
}

// StartProcess runs bin with env as its whole environment (nothing inherited, as in a
// FROM scratch container). It is killed at the end of the test if still running.
func StartProcess(t testing.TB, bin string, env map[string]string) *Process {
	t.Helper()
	p := &Process{cmd: exec.Command(bin), done: make(chan struct{})}
	p.cmd.Env = []string{}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		_ = p.cmd.Wait() // the exit status is read from ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		t.Logf("process stderr:\n%s", p.stderr.String())
	})
	return p
}

// Stderr returns what the process has written to stderr so far.
func (p *Process) Stderr() string { return p.stderr.String() }

// Terminate sends SIGTERM and returns the exit code, failing the test if the process takes
// more than StopTimeout to exit.
func (p *Process) Terminate(t testing.TB) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	start := time.Now()
	select {
	case <-p.done:
	case <-time.After(WaitTimeout):
		t.Fatalf("process did not exit within %v of SIGTERM", WaitTimeout)
	}
	if d := time.Since(start); d > StopTimeout {
		t.Errorf("process took %v to exit after SIGTERM, want at most %v", d, StopTimeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// Wait waits for the process to exit by itself and returns its exit code.
func (p *Process) Wait(t testing.TB) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(WaitTimeout):
		t.Fatalf("process did not exit within %v", WaitTimeout)
		return -1
	}
}

// HasLogLine reports whether stderr has a slog text line at level (DEBUG, INFO, WARN,
// ERROR) containing text.
func HasLogLine(stderr, level, text string) bool {
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, "level="+level) && strings.Contains(line, text) {
			return true
		}
	}
	return false
}

// RequireLogLine fails the test unless HasLogLine(stderr, level, text).
func RequireLogLine(t testing.TB, stderr, level, text string) {
	t.Helper()
	if !HasLogLine(stderr, level, text) {
		t.Errorf("no %s log line containing %q in:\n%s", level, text, stderr)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
