package dockertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// Labels that mark what tests create.
const (
	// LabelRun holds the id of the test process that created the object.
	LabelRun = "io.github.outpost-edge.dockertest.run"
	// LabelTest holds the name of the test that created a container.
	LabelTest = "io.github.outpost-edge.dockertest.test"
	// LabelImage holds the name BuildImage gave an image.
	LabelImage = "io.github.outpost-edge.dockertest.image"
	// LabelPush holds a nonce that Registry.Push adds to each image it
	// pushes.
	LabelPush = "io.github.outpost-edge.dockertest.push"

	// networkPrefix starts the names Network hands out:
	// "outpost-dockertest-<pid>-<n>".
	networkPrefix = "outpost-dockertest-"
	// RequiredEnv, when set, turns "no engine" from a skip into a failure.
	RequiredEnv = "OUTPOST_DOCKER_REQUIRED"
)

var (
	run = strconv.Itoa(os.Getpid())

	clientOnce sync.Once
	shared     *client.Client
	sharedErr  error

	sweepOnce sync.Once
	networks  atomic.Int64
)

// Client returns the process's Docker client. It skips t under -short, and
// when no engine answers (fails instead when OUTPOST_DOCKER_REQUIRED is
// set). The client lives as long as the process.
func Client(t testing.TB) *client.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("Docker Engine test: skipped with -short")
	}
	clientOnce.Do(func() {
		shared, sharedErr = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if sharedErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, sharedErr = shared.Ping(ctx)
	})
	if sharedErr != nil {
		msg := fmt.Sprintf("no Docker Engine answers (%v); start one with scripts/docker-up.sh", sharedErr)
		if os.Getenv(RequiredEnv) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return shared
}

// Labels returns the labels to put on every container t creates, so that
// Cleanup finds them.
func Labels(t testing.TB) map[string]string {
	return map[string]string{LabelRun: run, LabelTest: t.Name()}
}

// Cleanup removes, at the end of t, every container labelled with
// Labels(t), running or not. The first call in a process also sweeps what
// dead test processes left behind (see the package documentation).
func Cleanup(t testing.TB) {
	t.Helper()
	cli := Client(t)
	sweepOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := sweep(ctx, cli); err != nil {
			t.Logf("dockertest: sweeping earlier runs: %v", err)
		}
	})
	name := t.Name()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := removeContainers(ctx, cli, LabelRun+"="+run, LabelTest+"="+name); err != nil {
			t.Errorf("dockertest: removing the containers of %s: %v", name, err)
		}
	})
}

// Network returns a network name for t, unique to the process, for a
// runtime to create (the Docker runtime's EnsureNetwork does). At the end
// of t, t's containers and then the network are removed.
func Network(t testing.TB) string {
	t.Helper()
	cli := Client(t)
	name := fmt.Sprintf("%s%s-%d", networkPrefix, run, networks.Add(1))
	test := t.Name()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := removeContainers(ctx, cli, LabelRun+"="+run, LabelTest+"="+test)
		if rerr := cli.NetworkRemove(ctx, name); rerr != nil && !cerrdefs.IsNotFound(rerr) {
			err = errors.Join(err, rerr)
		}
		if err != nil {
			t.Errorf("dockertest: removing network %s: %v", name, err)
		}
	})
	return name
}

// Main runs the tests, then removes every container, network and image
// this process created, and returns the exit code for os.Exit.
func Main(m *testing.M) int {
	code := m.Run()
	if shared == nil || sharedErr != nil {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := removeRun(ctx, shared, run); err != nil {
		fmt.Fprintf(os.Stderr, "dockertest: clean-up: %v\n", err)
	}
	return code
}

// removeContainers force-removes the containers carrying all the labels
// (each "key=value").
func removeContainers(ctx context.Context, cli *client.Client, labels ...string) error {
	args := filters.NewArgs()
	for _, l := range labels {
		args.Add("label", l)
	}
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range list {
		err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeRun removes the containers, networks and images of test process
// pid: containers first, as they hold the others.
func removeRun(ctx context.Context, cli *client.Client, pid string) error {
	errs := []error{removeContainers(ctx, cli, LabelRun+"="+pid)}
	nets, err := cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", networkPrefix+pid+"-"))})
	errs = append(errs, err)
	for _, n := range nets {
		if strings.HasPrefix(n.Name, networkPrefix+pid+"-") {
			if err := cli.NetworkRemove(ctx, n.ID); err != nil && !cerrdefs.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	images, err := cli.ImageList(ctx, image.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelRun+"="+pid))})
	errs = append(errs, err)
	for _, img := range images {
		_, err := cli.ImageRemove(ctx, img.ID, image.RemoveOptions{Force: true, PruneChildren: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sweep removes the objects of test processes that no longer exist.
func sweep(ctx context.Context, cli *client.Client) error {
	dead := make(map[string]bool)
	consider := func(pid string) {
		if pid != "" && pid != run && !alive(pid) {
			dead[pid] = true
		}
	}
	args := filters.NewArgs(filters.Arg("label", LabelRun))
	containers, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		return err
	}
	for _, c := range containers {
		consider(c.Labels[LabelRun])
	}
	images, err := cli.ImageList(ctx, image.ListOptions{All: true, Filters: args})
	if err != nil {
		return err
	}
	for _, img := range images {
		consider(img.Labels[LabelRun])
	}
	nets, err := cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", networkPrefix))})
	if err != nil {
		return err
	}
	for _, n := range nets {
		pid, _, _ := strings.Cut(strings.TrimPrefix(n.Name, networkPrefix), "-")
		consider(pid)
	}
	var errs []error
	for pid := range dead {
		errs = append(errs, removeRun(ctx, cli, pid))
	}
	return errors.Join(errs...)
}

// alive reports whether process pid exists on this machine.
func alive(pid string) bool {
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		return false
	}
	err = syscall.Kill(n, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
