package conformance_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/outpost-edge/outpost/runtime/agent/docker/dockertest"
	"github.com/outpost-edge/outpost/runtime/conformance"
)

// These tests run the kit on the sample modules as FROM scratch images on a real Docker
// Engine (built by dockertest, as scripts/images.sh builds them): the same verdicts as
// the executables, measured through the engine. They skip with -short and when no engine
// answers (dockertest.Client); run them under the Docker lock:
//
//	flock /tmp/outpost-docker.lock go test ./runtime/conformance/

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }

const (
	relayerPackage = "github.com/outpost-edge/outpost/cmd/relayer"
	brokenPackage  = "github.com/outpost-edge/outpost/cmd/brokenmodule"
)

func TestRun_DockerImages(t *testing.T) {
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	relayer := dockertest.BuildImage(t, ctx, "outpost-conformance-test/relayer", "1", relayerPackage)
	broken := dockertest.BuildImage(t, ctx, "outpost-conformance-test/brokenmodule", "1", brokenPackage)
	tests := []struct {
		name, image, dir, faults string
		want                     []string // the failed checks, in report order
		wantSkipped              []string
	}{
		{name: "relayer", image: relayer, dir: "cmd/relayer", wantSkipped: []string{conformance.CheckTwin}},
		{name: "brokenmodule without faults", image: broken, dir: "cmd/brokenmodule"},
		{name: "brokenmodule identity", image: broken, dir: "cmd/brokenmodule", faults: "identity", want: []string{conformance.CheckIdentity}},
		{name: "brokenmodule sigterm", image: broken, dir: "cmd/brokenmodule", faults: "sigterm", want: []string{conformance.CheckSigterm}},
		{name: "brokenmodule reconnect", image: broken, dir: "cmd/brokenmodule", faults: "reconnect", want: []string{conformance.CheckReconnect}},
		{name: "brokenmodule memory", image: broken, dir: "cmd/brokenmodule", faults: "memory", want: []string{conformance.CheckMemory}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dockertest.Cleanup(t) // should the kit leave a container behind, despite the check below
			var env map[string]string
			if tt.faults != "" {
				env = map[string]string{"BROKEN_FAULTS": tt.faults}
			}
			start := time.Now()
			rep, err := runDockerKit(context.Background(), t, cli, tt.image, specOf(t, tt.dir), env)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			t.Logf("run took %v", time.Since(start).Round(100*time.Millisecond))
			if got := rep.FailedChecks(); !slices.Equal(got, tt.want) {
				t.Errorf("failed checks %v, want %v", got, tt.want)
			}
			var skipped []string
			for _, r := range rep.Results {
				if r.Verdict == conformance.Skip {
					skipped = append(skipped, r.Name)
				}
			}
			if !slices.Equal(skipped, tt.wantSkipped) {
				t.Errorf("skipped %v, want %v", skipped, tt.wantSkipped)
			}
			if rep.Target != "image "+tt.image {
				t.Errorf("target %q", rep.Target)
			}
			// The resources were measured through the engine, not /proc.
			for _, name := range []string{conformance.CheckMemory, conformance.CheckCPU} {
				if r, _ := rep.Result(name); !strings.Contains(r.Evidence, "docker stats") {
					t.Errorf("%s evidence %q does not name docker stats", name, r.Evidence)
				}
			}
			assertNoContainers(t, cli)
		})
	}
}

// TestRun_DockerInterrupted interrupts a run while the module's container runs: the run
// ends with the context's error, and the container is gone.
func TestRun_DockerInterrupted(t *testing.T) {
	cli := dockertest.Client(t)
	dockertest.Cleanup(t)
	bctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	img := dockertest.BuildImage(t, bctx, "outpost-conformance-test/brokenmodule", "1", brokenPackage)
	ctx, interrupt := context.WithCancel(context.Background())
	defer interrupt()
	go func() {
		// Interrupt once the container runs (polled through the engine, by the test's label).
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if n, _ := containers(ctx, cli, t, true); n > 0 {
				interrupt()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	// The reconnect fault makes the run wait out the reconnect bound: a long window.
	rep, err := runDockerKit(ctx, t, cli, img, specOf(t, "cmd/brokenmodule"), map[string]string{"BROKEN_FAULTS": "reconnect"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, %v; want the interruption", rep, err)
	}
	assertNoContainers(t, cli)
}

func TestRun_DockerImageMissing(t *testing.T) {
	cli := dockertest.Client(t)
	r := &conformance.DockerRunner{Image: "outpost-conformance-test/missing:none", Client: cli}
	if err := r.Check(context.Background()); !errors.Is(err, conformance.ErrImageNotFound) {
		t.Errorf("Check = %v, want ErrImageNotFound", err)
	}
	rep, err := conformance.Run(context.Background(), conformance.Options{ModuleName: "m", Runner: r})
	if rep != nil || !errors.Is(err, conformance.ErrImageNotFound) || !errors.Is(err, conformance.ErrTarget) {
		t.Errorf("Run = %v, %v; want no report and ErrImageNotFound (an ErrTarget)", rep, err)
	}
}

// runDockerKit runs the kit on image, its containers labelled for t, and logs the report.
func runDockerKit(ctx context.Context, t *testing.T, cli *client.Client, image string, spec conformance.Spec, env map[string]string) (*conformance.Report, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	rep, err := conformance.Run(ctx, conformance.Options{
		Spec: spec, Env: env, WorkDir: t.TempDir(),
		Runner: &conformance.DockerRunner{Image: image, Client: cli, Labels: dockertest.Labels(t)},
	})
	if rep != nil {
		var b strings.Builder
		_ = rep.WriteText(&b)
		t.Logf("report:\n%s\nmodule output:\n%s", b.String(), rep.ModuleOutput)
	}
	return rep, err
}

// assertNoContainers fails t when a container carrying t's labels is left, running or not.
func assertNoContainers(t *testing.T, cli *client.Client) {
	t.Helper()
	n, err := containers(context.Background(), cli, t, false)
	if err != nil {
		t.Fatal(err)
	}
	if n > 0 {
		t.Errorf("%d container(s) of the run left behind", n)
	}
}

// containers counts the kit's containers labelled for t (only the running ones when
// running is set).
func containers(ctx context.Context, cli *client.Client, t *testing.T, running bool) (int, error) {
	args := filters.NewArgs(filters.Arg("label", conformance.LabelOwner+"="+conformance.Owner))
	for k, v := range dockertest.Labels(t) {
		args.Add("label", k+"="+v)
	}
	if running {
		args.Add("status", "running")
	}
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	return len(list), err
}
