package features

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	dcontainer "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	dnetwork "github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/outpost-edge/outpost/runtime/agent/docker/dockertest"
)

// Labels on everything the docker backend creates. LabelRun (the test
// process id) is dockertest's: its sweep removes what an interrupted run
// left, and dockertest.Main what this run built.
const (
	labelTest     = "io.github.outpost-edge.test"
	labelTestVal  = "features"
	labelScenario = "io.github.outpost-edge.test.scenario"
)

// moduleNetwork is the network the Docker runtime puts modules on
// (docker.DefaultNetwork; the agent has no flag to change it).
const moduleNetwork = "azure-iot-edge"

// Module image versions pushed to the registry.
var moduleTags = []string{"1.0", "1.1"}

// Images the backend builds, FROM scratch, from this repository.
const (
	imageRepo     = "outpost-features/"
	pkgFakehub    = "github.com/outpost-edge/outpost/cmd/fakehub"
	pkgEdgeagent  = "github.com/outpost-edge/outpost/cmd/edgeagent"
	pkgEdgehub    = "github.com/outpost-edge/outpost/cmd/edgehub"
	pkgTestmodule = "github.com/outpost-edge/outpost/features/testmodule"
	registryUser  = "features"
)

// dockerBackend runs the fake hub and the edge agent as containers
// (testcontainers-go, host networking: they reach each other and the
// registry on loopback), and the agent with the Docker runtime on the
// host's engine (its socket mounted). Module images are pulled from an
// in-process registry with basic authentication on 127.0.0.1, which the
// engine reaches because it runs on this host.
type dockerBackend struct {
	cli        *client.Client
	registry   *dockertest.Registry
	password   string   // of the registry's only user
	hubImage   string   // the fake hub's image
	agentImg   string   // the edge agent's image
	socketBind string   // "<host socket>:/var/run/docker.sock", or ""
	agentEnv   []string // DOCKER_HOST for an engine on TCP
	createdNet bool     // the modules' network is ours to remove
	runID      string   // the test process id, dockertest.LabelRun
}

// closeTimeout bounds the clean-up at the end of the run.
const closeTimeout = time.Minute

// newDockerBackend builds the images and starts the registry. It uses t
// (the backend's test) for dockertest's helpers, which fail t on error.
func newDockerBackend(t *testing.T, ctx context.Context) (*dockerBackend, error) {
	cli := dockertest.Client(t)
	dockertest.Cleanup(t) // sweeps what interrupted runs left
	if err := sweepContainers(ctx, cli); err != nil {
		t.Logf("sweeping containers of earlier runs: %v", err)
	}
	tag := "run" + strconv.Itoa(os.Getpid())
	b := &dockerBackend{cli: cli, password: randomHex(12), runID: strconv.Itoa(os.Getpid())}
	b.hubImage = dockertest.BuildImage(t, ctx, imageRepo+"fakehub", tag, pkgFakehub)
	b.agentImg = dockertest.BuildImage(t, ctx, imageRepo+"edgeagent", tag, pkgEdgeagent)
	b.registry = dockertest.StartRegistry(t, registryUser, b.password)
	for _, v := range moduleTags {
		local := dockertest.BuildImage(t, ctx, imageRepo+moduleImage, v, pkgTestmodule)
		b.registry.Push(t, ctx, local)
	}
	b.registry.Push(t, ctx, dockertest.BuildImage(t, ctx, imageRepo+hubImageRepo, hubImageTag, pkgEdgehub))
	host := os.Getenv("DOCKER_HOST")
	switch {
	case host == "":
		b.socketBind = "/var/run/docker.sock:/var/run/docker.sock"
	case strings.HasPrefix(host, "unix://"):
		b.socketBind = strings.TrimPrefix(host, "unix://") + ":/var/run/docker.sock"
	default:
		b.agentEnv = []string{"DOCKER_HOST=" + host} // host networking reaches a TCP engine on loopback
	}
	if err := b.ensureNetwork(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (b *dockerBackend) name() string { return "docker" }

// labels are the labels of every container of scenario sc.
func (b *dockerBackend) labels(sc *scenario) map[string]string {
	return map[string]string{labelTest: labelTestVal, dockertest.LabelRun: b.runID, labelScenario: sc.id}
}

// ensureNetwork creates the modules' network, labelled as ours, when no
// one has: the agent would create it otherwise, and nothing would remove
// it. One that exists already (another run, a real device) is left alone.
func (b *dockerBackend) ensureNetwork(ctx context.Context) error {
	if _, err := b.cli.NetworkInspect(ctx, moduleNetwork, dnetwork.InspectOptions{}); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("network %s: %w", moduleNetwork, err)
	}
	_, err := b.cli.NetworkCreate(ctx, moduleNetwork, dnetwork.CreateOptions{
		Driver: "bridge",
		Labels: map[string]string{labelTest: labelTestVal, dockertest.LabelRun: b.runID},
	})
	switch {
	case err == nil:
		b.createdNet = true
	case cerrdefs.IsConflict(err): // created meanwhile by someone else
	default:
		return fmt.Errorf("create network %s: %w", moduleNetwork, err)
	}
	return nil
}

// run starts a container of image with args on the host network, the
// scenario directory mounted at its own path, and waits for marker.
func (b *dockerBackend) run(ctx context.Context, sc *scenario, role, image string, args []string, env []string, binds []string, marker string) (*dockerComponent, error) {
	envMap := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		envMap[k] = v
	}
	req := testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:  image,
			Name:   "outpost-features-" + sc.id + "-" + role,
			Cmd:    args,
			Env:    envMap,
			Labels: b.labels(sc),
			HostConfigModifier: func(hc *container.HostConfig) {
				hc.NetworkMode = "host"
				hc.Binds = append([]string{sc.dir + ":" + sc.dir}, binds...)
			},
			WaitingFor: wait.ForLog(marker).WithStartupTimeout(60 * time.Second),
		},
		Started: true,
		Logger:  tclog.NewNoopLogger(),
	}
	c, err := testcontainers.GenericContainer(ctx, req)
	dc := &dockerComponent{c: c, role: role}
	if err != nil {
		out := ""
		if c != nil {
			out = tail(dc.output(ctx), 30)
			dc.remove(context.WithoutCancel(ctx))
		}
		return nil, fmt.Errorf("%s container: %w\n%s", role, err, out)
	}
	return dc, nil
}

func (b *dockerBackend) startHub(ctx context.Context, sc *scenario, dir, device string) (*hubProcess, error) {
	c, err := b.run(ctx, sc, "fakehub", b.hubImage, hubArgs(dir, device), nil, nil, hubReady)
	if err != nil {
		return nil, err
	}
	mqtt, http, ok := parseHubReady(c.output(ctx))
	if !ok {
		c.remove(ctx)
		return nil, fmt.Errorf("fake hub container: no ready line in its output")
	}
	return &hubProcess{component: c, mqttAddr: mqtt, httpAddr: http}, nil
}

func (b *dockerBackend) startAgent(ctx context.Context, sc *scenario, cfg agentConfig) (component, error) {
	var binds []string
	if b.socketBind != "" {
		binds = append(binds, b.socketBind)
	}
	args := append(cfg.args(), "--runtime", "docker")
	return b.run(ctx, sc, "edgeagent", b.agentImg, args, b.agentEnv, binds, agentReady)
}

func (b *dockerBackend) image(repo, tag string) string {
	return b.registry.Addr() + "/" + imageRepo + repo + ":" + tag
}

func (b *dockerBackend) agentImage() string { return b.agentImg }

func (b *dockerBackend) credentials() map[string]registryCredential {
	return map[string]registryCredential{
		"features": {Address: b.registry.Addr(), Username: registryUser, Password: b.password},
	}
}

func (b *dockerBackend) healthCommand() []string { return []string{"CMD", "/testmodule", "health"} }

// decorate mounts the scenario's journal directory at /journal and labels
// the module's container for clean-up.
func (b *dockerBackend) decorate(sc *scenario, env map[string]string, opts map[string]any) {
	env["TESTMODULE_JOURNAL"] = "/journal"
	labels, _ := opts["Labels"].(map[string]any)
	if labels == nil {
		labels = map[string]any{}
	}
	for k, v := range b.labels(sc) {
		labels[k] = v
	}
	opts["Labels"] = labels
	hc, _ := opts["HostConfig"].(map[string]any)
	if hc == nil {
		hc = map[string]any{}
	}
	binds, _ := hc["Binds"].([]any)
	hc["Binds"] = append(binds, sc.journal.dir+":/journal")
	opts["HostConfig"] = hc
}

// decorateEdgeHub puts the edge hub on the host's network, where IoT Hub
// (the fake hub, on loopback) and the scenarios' clients are, as a device
// whose edgeHub publishes its ports would; mounts the scenario directory at
// its own path (the hub's data directory, IoT Hub's CA); and labels the
// container for clean-up.
func (b *dockerBackend) decorateEdgeHub(sc *scenario, _ map[string]string, opts map[string]any) {
	labels := map[string]any{}
	for k, v := range b.labels(sc) {
		labels[k] = v
	}
	opts["Labels"] = labels
	opts["HostConfig"] = map[string]any{
		"NetworkMode": "host",
		"Binds":       []any{sc.dir + ":" + sc.dir},
	}
	// Without an endpoint of its own the runtime would join the container
	// to its module network.
	opts["NetworkingConfig"] = map[string]any{"EndpointsConfig": map[string]any{"host": map[string]any{}}}
}

// moduleLog reads the module container's logs.
func (b *dockerBackend) moduleLog(ctx context.Context, sc *scenario, _, module string) string {
	list, err := b.cli.ContainerList(ctx, dcontainer.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", labelScenario+"="+sc.id),
		filters.Arg("name", "^/"+module+"$"),
	)})
	if err != nil || len(list) == 0 {
		return fmt.Sprintf("(no container of %s: %v)", module, err)
	}
	rc, err := b.cli.ContainerLogs(ctx, list[0].ID, dcontainer.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return fmt.Sprintf("(logs of %s: %v)", module, err)
	}
	defer rc.Close()
	var out strings.Builder
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		fmt.Fprintf(&out, "(reading the logs of %s: %v)", module, err)
	}
	return out.String()
}

// moduleExists looks for the module's container (named after the module)
// carrying the scenario's label.
func (b *dockerBackend) moduleExists(ctx context.Context, sc *scenario, module string) (bool, error) {
	list, err := b.cli.ContainerList(ctx, dcontainer.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", labelScenario+"="+sc.id),
		filters.Arg("name", "^/"+module+"$"),
	)})
	return len(list) > 0, err
}

// cleanup removes the scenario's module containers.
func (b *dockerBackend) cleanup(ctx context.Context, sc *scenario) error {
	return removeContainers(ctx, b.cli, labelScenario+"="+sc.id)
}

// close removes every container of this run and the network it created.
func (b *dockerBackend) close() {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := removeContainers(ctx, b.cli, labelTest+"="+labelTestVal, dockertest.LabelRun+"="+b.runID); err != nil {
		fmt.Fprintf(os.Stderr, "features: removing containers: %v\n", err)
	}
	if b.createdNet {
		if err := b.cli.NetworkRemove(ctx, moduleNetwork); err != nil && !cerrdefs.IsNotFound(err) {
			fmt.Fprintf(os.Stderr, "features: removing network %s: %v\n", moduleNetwork, err)
		}
	}
}

// removeContainers force-removes the containers carrying every label.
func removeContainers(ctx context.Context, cli *client.Client, labels ...string) error {
	args := filters.NewArgs()
	for _, l := range labels {
		args.Add("label", l)
	}
	list, err := cli.ContainerList(ctx, dcontainer.ListOptions{All: true, Filters: args})
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range list {
		if err := cli.ContainerRemove(ctx, c.ID, dcontainer.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sweepContainers removes the containers labelled by earlier runs of the
// features whose test process is gone (interrupted runs).
func sweepContainers(ctx context.Context, cli *client.Client) error {
	list, err := cli.ContainerList(ctx, dcontainer.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", labelTest+"="+labelTestVal))})
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range list {
		run, err := strconv.Atoi(c.Labels[dockertest.LabelRun])
		if err == nil && (run == os.Getpid() || alive(run)) {
			continue
		}
		if err := cli.ContainerRemove(ctx, c.ID, dcontainer.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// dockerComponent is a component run as a container.
type dockerComponent struct {
	c    testcontainers.Container
	role string
}

func (d *dockerComponent) stop(ctx context.Context) error {
	timeout := stopTimeout
	return d.c.Stop(ctx, &timeout)
}

func (d *dockerComponent) start(ctx context.Context) error { return d.c.Start(ctx) }

func (d *dockerComponent) output(ctx context.Context) string {
	rc, err := d.c.Logs(ctx)
	if err != nil {
		return fmt.Sprintf("(logs of the %s container: %v)", d.role, err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

func (d *dockerComponent) remove(ctx context.Context) error {
	if err := d.c.Terminate(ctx); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("%s container: %w", d.role, err)
	}
	return nil
}
