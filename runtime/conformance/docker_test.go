package conformance

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/outpost-edge/outpost/runtime/agent"
)

// Unit tests of the Docker runner against a fake engine, for the answers a real engine
// gives only with effort (a refused start, a broken wait). e2e_docker_test.go runs the
// kit on real images.

// fakeEngine is a dockerEngine that records calls and answers from its fields.
type fakeEngine struct {
	mu      sync.Mutex
	calls   []string
	removed []string

	noImage   bool
	startErr  error
	waitErr   error // the wait breaks with it (else it answers exitCode when exited)
	exitCode  int64
	exited    chan struct{}
	list      []container.Summary
	created   *container.Config
	hostCfg   *container.HostConfig
	output    func(stdout, stderr io.Writer)
	inspected int
}

func newFakeEngine() *fakeEngine { return &fakeEngine{exited: make(chan struct{})} }

func (f *fakeEngine) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeEngine) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	f.record("image-inspect")
	if f.noImage {
		return image.InspectResponse{}, cerrdefs.ErrNotFound.WithMessage("No such image: " + ref)
	}
	return image.InspectResponse{ID: "sha256:abc"}, nil
}

func (f *fakeEngine) ContainerList(context.Context, container.ListOptions) ([]container.Summary, error) {
	f.record("list")
	return f.list, nil
}

func (f *fakeEngine) ContainerCreate(_ context.Context, cfg *container.Config, hc *container.HostConfig, _ *network.NetworkingConfig, _ *ocispec.Platform, _ string) (container.CreateResponse, error) {
	f.record("create")
	f.created, f.hostCfg = cfg, hc
	return container.CreateResponse{ID: "c1"}, nil
}

func (f *fakeEngine) ContainerAttach(context.Context, string, container.AttachOptions) (types.HijackedResponse, error) {
	f.record("attach")
	engineSide, clientSide := net.Pipe()
	go func() {
		if f.output != nil {
			f.output(stdcopy.NewStdWriter(engineSide, stdcopy.Stdout), stdcopy.NewStdWriter(engineSide, stdcopy.Stderr))
		}
		<-f.exited
		engineSide.Close()
	}()
	return types.NewHijackedResponse(clientSide, ""), nil
}

func (f *fakeEngine) ContainerWait(ctx context.Context, _ string, _ container.WaitCondition) (<-chan container.WaitResponse, <-chan error) {
	f.record("wait")
	wc, ec := make(chan container.WaitResponse, 1), make(chan error, 1)
	go func() {
		if f.waitErr != nil {
			ec <- f.waitErr
			return
		}
		select {
		case <-f.exited:
			wc <- container.WaitResponse{StatusCode: f.exitCode}
		case <-ctx.Done():
			ec <- ctx.Err()
		}
	}()
	return wc, ec
}

func (f *fakeEngine) ContainerStart(context.Context, string, container.StartOptions) error {
	f.record("start")
	return f.startErr
}

func (f *fakeEngine) ContainerStop(context.Context, string, container.StopOptions) error {
	f.record("stop")
	return nil
}

func (f *fakeEngine) ContainerKill(_ context.Context, _, sig string) error {
	f.record("kill " + sig)
	return nil
}

func (f *fakeEngine) ContainerRemove(_ context.Context, id string, _ container.RemoveOptions) error {
	f.record("remove")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, id)
	return nil
}

func (f *fakeEngine) ContainerInspect(context.Context, string) (container.InspectResponse, error) {
	f.record("inspect")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inspected++
	st := &container.State{Status: container.StateRunning, Running: true, StartedAt: "2025-12-31T23:59:59Z"}
	if f.inspected > 3 { // exits after three looks (the start's and two of a poll)
		st = &container.State{Status: container.StateExited, ExitCode: int(f.exitCode)}
	}
	return container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{State: st}}, nil
}

func (f *fakeEngine) ContainerStatsOneShot(context.Context, string) (container.StatsResponseReader, error) {
	return container.StatsResponseReader{Body: io.NopCloser(strings.NewReader(`{"read":"2026-01-01T00:00:00Z",
		"memory_stats":{"usage":10485760,"stats":{"total_inactive_file":2097152}},"cpu_stats":{"cpu_usage":{"total_usage":1500000000}}}`))}, nil
}

func (f *fakeEngine) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// moduleEnvFor is what the harness gives a module called m.
func moduleEnvFor(m, caFile string) map[string]string {
	return map[string]string{agent.EnvModuleID: m, agent.EnvModuleCACertificateFile: caFile, "A": "1"}
}

func TestDockerRunner_ContainerConfig(t *testing.T) {
	r := &DockerRunner{Image: "outpost/relayer:dev", Labels: map[string]string{"test": "x", LabelOwner: "someone"}}
	cfg, hc, err := r.containerConfig(moduleEnvFor("relayer", "/work/edgehub/ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Image != "outpost/relayer:dev" || cfg.Tty {
		t.Errorf("config %+v", cfg)
	}
	wantEnv := []string{"A=1", agent.EnvModuleCACertificateFile + "=" + ContainerCAFile, agent.EnvModuleID + "=relayer"}
	if !slices.Equal(cfg.Env, wantEnv) {
		t.Errorf("env %v, want %v (the CA variable names the mounted file)", cfg.Env, wantEnv)
	}
	if !slices.Equal(hc.Binds, []string{"/work/edgehub/ca.pem:" + ContainerCAFile + ":ro"}) {
		t.Errorf("binds %v, want the CA file read-only", hc.Binds)
	}
	if hc.NetworkMode != "host" || hc.RestartPolicy.Name != container.RestartPolicyDisabled {
		t.Errorf("host config %+v, want network host and no restart", hc)
	}
	for k, v := range map[string]string{"test": "x", LabelOwner: Owner, LabelModule: "relayer", LabelPID: strconv.Itoa(os.Getpid())} {
		if cfg.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cfg.Labels[k], v)
		}
	}
	if cfg.Labels[agent.LabelOwner] != "" {
		t.Errorf("the container carries the edge agent's owner label: agents would manage it")
	}
}

func TestDockerRunner_StartRefusals(t *testing.T) {
	tests := []struct {
		name       string
		runner     *DockerRunner
		engine     func(*fakeEngine)
		want       error
		wantSay    string
		wantRemove bool
	}{
		{name: "no client", runner: &DockerRunner{Image: "m:1"}, want: ErrTarget, wantSay: "no Docker Engine client"},
		{name: "empty image", runner: &DockerRunner{}, engine: func(*fakeEngine) {}, want: ErrTarget, wantSay: "empty image reference"},
		{name: "image not in the engine", runner: &DockerRunner{Image: "m:1"}, engine: func(f *fakeEngine) { f.noImage = true },
			want: ErrImageNotFound, wantSay: "m:1"},
		{name: "start refused", runner: &DockerRunner{Image: "m:1"}, engine: func(f *fakeEngine) {
			f.startErr = errors.New(`exec: "/m": stat /m: no such file or directory`)
		}, want: ErrTarget, wantSay: "no such file", wantRemove: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f *fakeEngine
			if tt.engine != nil {
				f = newFakeEngine()
				tt.engine(f)
				tt.runner.engine = f
			}
			inst, err := tt.runner.Start(context.Background(), moduleEnvFor("m", "/ca.pem"))
			if inst != nil || !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantSay) {
				t.Fatalf("Start = %v, %v; want %v saying %q", inst, err, tt.want, tt.wantSay)
			}
			if f != nil && slices.Contains(f.removed, "c1") != tt.wantRemove {
				t.Errorf("removed %v, want the created container removed: %v", f.removed, tt.wantRemove)
			}
		})
	}
}

// TestDockerContainer_Lifecycle starts a container on the fake engine and checks the
// order of the calls, the output, the exit code, stop and kill, and the removal.
func TestDockerContainer_Lifecycle(t *testing.T) {
	f := newFakeEngine()
	f.exitCode = 0
	f.output = func(stdout, stderr io.Writer) {
		io.WriteString(stdout, "started\n")
		io.WriteString(stderr, "a warning\n")
	}
	r := &DockerRunner{Image: "m:1", engine: f}
	inst, err := r.Start(context.Background(), moduleEnvFor("m", "/ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	c := inst.(*dockerContainer)
	if got := f.callLog(); !slices.Equal(got[:6], []string{"image-inspect", "list", "create", "attach", "wait", "start"}) {
		t.Errorf("calls %v: the attach and the wait must come before the start", got)
	}
	if inst.ExitCode() != -1 || inst.PID() != 0 {
		t.Errorf("running: exit code %d, pid %d", inst.ExitCode(), inst.PID())
	}
	started, read := time.Date(2025, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := c.SampleResources(context.Background())
	if err != nil || s != (ResourceSample{At: started}) {
		t.Errorf("first sample %+v, %v; want the container's start, nothing used", s, err)
	}
	s, err = c.SampleResources(context.Background())
	if err != nil || s.Memory != 8<<20 || s.CPU != 1500*time.Millisecond || !s.At.Equal(read) {
		t.Errorf("sample %+v, %v; want 8 MiB (usage without inactive files) and 1.5s, read at %v", s, err, read)
	}
	if s, err := c.SampleResources(context.Background()); !errors.Is(err, errStaleStats) {
		t.Errorf("the same engine sample again: %+v, %v; want errStaleStats", s, err)
	}
	if err := c.Stop(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	close(f.exited)
	<-inst.Done()
	if inst.ExitCode() != 0 || !strings.Contains(inst.Output(), "started\n") || !strings.Contains(inst.Output(), "a warning\n") {
		t.Errorf("exit code %d, output %q", inst.ExitCode(), inst.Output())
	}
	if err := inst.Kill(); err != nil {
		t.Errorf("Kill after the exit: %v", err)
	}
	if slices.Contains(f.callLog(), "kill KILL") {
		t.Error("killed a container that had exited")
	}
	if err := inst.Close(); err != nil || !slices.Equal(f.removed, []string{"c1"}) {
		t.Errorf("Close = %v, removed %v", err, f.removed)
	}
	if err := inst.Close(); err != nil || len(f.removed) != 1 {
		t.Errorf("second Close = %v, removed %v", err, f.removed)
	}
}

func TestDockerContainer_BrokenWaitPollsState(t *testing.T) {
	f := newFakeEngine()
	f.waitErr = errors.New("connection reset by peer")
	f.exitCode = 3
	inst, err := (&DockerRunner{Image: "m:1", engine: f}).Start(context.Background(), moduleEnvFor("m", "/ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	close(f.exited) // ends the attach
	select {
	case <-inst.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after the container exited")
	}
	if inst.ExitCode() != 3 {
		t.Errorf("exit code %d, want 3 from the polled state", inst.ExitCode())
	}
}

func TestStatsSample(t *testing.T) {
	tests := []struct {
		name    string
		stats   container.StatsResponse
		want    ResourceSample
		wantErr error
	}{
		{name: "cgroup v1", stats: stats(100<<20, map[string]uint64{"total_inactive_file": 30 << 20, "inactive_file": 1}, 2e9),
			want: ResourceSample{Memory: 70 << 20, CPU: 2 * time.Second}},
		{name: "cgroup v2", stats: stats(100<<20, map[string]uint64{"inactive_file": 10 << 20}, 5e6),
			want: ResourceSample{Memory: 90 << 20, CPU: 5 * time.Millisecond}},
		{name: "no page cache figures", stats: stats(7<<20, nil, 0), want: ResourceSample{Memory: 7 << 20}},
		{name: "more inactive than usage", stats: stats(1<<20, map[string]uint64{"total_inactive_file": 2 << 20}, 0),
			want: ResourceSample{Memory: 1 << 20}},
		{name: "not running", stats: container.StatsResponse{}, wantErr: errNotRunning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := statsSample(tt.stats)
			if err == nil {
				tt.want.At = tt.stats.Read // the engine's time of the sample
			}
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("got %+v, %v; want %+v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func stats(usage uint64, memStats map[string]uint64, cpuNs uint64) container.StatsResponse {
	var st container.StatsResponse
	st.Read = time.Unix(1000, 0)
	st.MemoryStats.Usage, st.MemoryStats.Stats = usage, memStats
	st.CPUStats.CPUUsage.TotalUsage = cpuNs
	return st
}

// TestSweep removes the containers of runs whose process is gone, and only those.
func TestSweep(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Skipf("no true command: %v", err)
	}
	f := newFakeEngine()
	f.list = []container.Summary{
		{ID: "mine", Labels: map[string]string{LabelPID: strconv.Itoa(os.Getpid())}},
		{ID: "dead", Labels: map[string]string{LabelPID: strconv.Itoa(gone.Process.Pid)}},
		{ID: "odd", Labels: map[string]string{LabelPID: "not-a-pid"}},
	}
	sweep(context.Background(), f, discardLogger())
	if !slices.Equal(f.removed, []string{"dead"}) {
		t.Errorf("removed %v, want only the container of the exited process", f.removed)
	}
}

func TestContainerName(t *testing.T) {
	a, b := containerName("my module/x"), containerName("my module/x")
	if a == b || !strings.HasPrefix(a, "outpost-conformance-my-module-x-") {
		t.Errorf("names %q, %q: want distinct outpost-conformance-my-module-x-{random}", a, b)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
