package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/outpost-edge/outpost/runtime/agent/docker/dockertest"
)

// Labels and names on the Docker Engine.
const (
	// benchRunLabel marks every container the agent scenarios create, the agent's modules
	// (through createOptions) and the references alike; its value is the harness's pid.
	// It is not the agent's owner label: the agent of another run (the features) never
	// touches the references, and the clean-up finds everything by it.
	benchRunLabel = "io.github.outpost-edge.bench.run"
	// agentOwnerLabel is the label the edge agent puts on its modules (agent.LabelOwner)
	// with the value agentOwner; the agent manages every container that carries it.
	agentOwnerLabel = "io.github.outpost-edge.owner"
	agentOwner      = "outpost"
	// moduleNetwork is the network the agent's Docker runtime creates (docker.DefaultNetwork).
	moduleNetwork = "azure-iot-edge"
)

// dockerImages are the images of scripts/images.sh the scenarios deploy, by binary name.
var dockerImages = []string{"edgehub", "tempsensor", "filter"}

// localImage is scripts/images.sh's tag of binary name.
func localImage(name string) string { return "outpost/" + name + ":dev" }

// dockerEnv is the Docker Engine side of the agent scenarios: a client, the registry the
// images are served from, and the engine's events for the scenarios' containers.
type dockerEnv struct {
	cli    *client.Client
	reg    *benchRegistry
	refs   map[string]string // binary name -> image reference in the registry
	built  []string          // "outpost/x:dev built <time>", for the report
	label  string            // benchRunLabel's value
	hadNet bool              // moduleNetwork existed before: leave it

	events       *dockerEvents
	cancelEvents context.CancelFunc
	unlock       func() // releases the Docker lock, when the harness took it
}

// openDocker connects to the engine and prepares the images. When Docker cannot be
// used, it returns a nil env and the reason, for the report; err is for failures of a
// usable engine.
func openDocker(ctx context.Context, log *slog.Logger) (d *dockerEnv, skip string, err error) {
	unlock, err := lockDocker(ctx, log)
	if err != nil {
		return nil, "", err
	}
	d, skip, err = openEngine(ctx)
	if d == nil {
		unlock()
		return nil, skip, err
	}
	d.unlock = unlock
	return d, "", nil
}

func openEngine(ctx context.Context) (d *dockerEnv, skip string, err error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Sprintf("no Docker client (%v)", err), nil
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = cli.Ping(pctx)
	cancel()
	if err != nil {
		cli.Close()
		return nil, fmt.Sprintf("no Docker Engine answers (%v); start one with scripts/docker-up.sh", oneLine(err)), nil
	}
	d = &dockerEnv{cli: cli, label: strconv.Itoa(os.Getpid()), refs: map[string]string{}}
	for _, name := range dockerImages {
		img, err := cli.ImageInspect(ctx, localImage(name))
		if err != nil {
			cli.Close()
			return nil, fmt.Sprintf("image %s is not on the engine (%v): build the images with bash scripts/images.sh", localImage(name), oneLine(err)), nil
		}
		built := img.Created
		if t, err := time.Parse(time.RFC3339Nano, img.Created); err == nil {
			built = t.UTC().Format("2006-01-02 15:04 UTC")
		}
		d.built = append(d.built, fmt.Sprintf("%s built %s", localImage(name), built))
	}
	if err := d.sweep(ctx); err != nil {
		cli.Close()
		return nil, "", err
	}
	if others, err := d.foreignModules(ctx); err != nil {
		cli.Close()
		return nil, "", err
	} else if len(others) > 0 {
		cli.Close()
		return nil, fmt.Sprintf("containers of another Outpost agent are on the engine (%s): an agent manages every container "+
			"labelled %s=%s, so the harness's agent would take them over; run under flock /tmp/outpost-docker.lock once they are gone",
			strings.Join(others, ", "), agentOwnerLabel, agentOwner), nil
	}
	if _, err := cli.NetworkInspect(ctx, moduleNetwork, network.InspectOptions{}); err == nil {
		d.hadNet = true
	}
	if d.reg, err = startRegistry(); err != nil {
		cli.Close()
		return nil, "", err
	}
	for _, name := range dockerImages {
		ref, err := d.push(ctx, name)
		if err != nil {
			d.close()
			return nil, "", err
		}
		d.refs[name] = ref
	}
	ectx, cancelEvents := context.WithCancel(context.WithoutCancel(ctx))
	d.cancelEvents = cancelEvents
	d.events = followDockerEvents(ectx, cli, benchRunLabel+"="+d.label)
	return d, "", nil
}

// push tags the local image of binary name into the registry and pushes it there.
func (d *dockerEnv) push(ctx context.Context, name string) (string, error) {
	ref := d.reg.addr + "/outpost/" + name + ":dev"
	if err := d.cli.ImageTag(ctx, localImage(name), ref); err != nil {
		return "", fmt.Errorf("tag %s as %s: %w", localImage(name), ref, err)
	}
	// An open registry: any credentials do, but the engine wants the header.
	auth := base64.URLEncoding.EncodeToString([]byte("{}"))
	rc, err := d.cli.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: auth})
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	defer rc.Close()
	if err := dockertest.StreamError(rc); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	return ref, nil
}

// foreignModules lists the containers of an Outpost agent that this harness did not
// create.
func (d *dockerEnv) foreignModules(ctx context.Context) ([]string, error) {
	list, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", agentOwnerLabel+"="+agentOwner))})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, c := range list {
		if _, ours := c.Labels[benchRunLabel]; !ours {
			names = append(names, strings.TrimPrefix(firstOr(c.Names, c.ID), "/"))
		}
	}
	return names, nil
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// sweep removes the containers an interrupted earlier run of the harness left (labelled
// with the pid of a process that is gone).
func (d *dockerEnv) sweep(ctx context.Context) error {
	list, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", benchRunLabel))})
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range list {
		pid, err := strconv.Atoi(c.Labels[benchRunLabel])
		if err == nil && pid != os.Getpid() && processExists(pid) {
			continue // a harness running at the same time (it should hold the Docker lock)
		}
		if err := d.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func processExists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// removeContainers force-removes every container of this harness run.
func (d *dockerEnv) removeContainers(ctx context.Context) error {
	list, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", benchRunLabel+"="+d.label))})
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range list {
		if err := d.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// close removes the containers, the registry tags and (when the agent created it) the
// modules' network, and stops the registry.
func (d *dockerEnv) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if d.cancelEvents != nil {
		d.cancelEvents()
	}
	errs := []error{d.removeContainers(ctx)}
	for _, ref := range d.refs {
		if _, err := d.cli.ImageRemove(ctx, ref, image.RemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if !d.hadNet {
		if n, err := d.cli.NetworkInspect(ctx, moduleNetwork, network.InspectOptions{}); err == nil && len(n.Containers) == 0 {
			if err := d.cli.NetworkRemove(ctx, moduleNetwork); err != nil && !cerrdefs.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	if d.reg != nil {
		errs = append(errs, d.reg.close())
	}
	errs = append(errs, d.cli.Close())
	if d.unlock != nil {
		d.unlock()
	}
	return errors.Join(errs...)
}

// moduleOptions are the createOptions of a module in the Docker runs: host networking
// (the edge hub reaches the fake hub, and modules the edge hub, on loopback, as in the
// demo with RUNTIME=docker), binds (each "dir:dir[:ro]"), and the harness's label.
func (d *dockerEnv) moduleOptions(binds ...string) map[string]any {
	return map[string]any{
		"HostConfig":       map[string]any{"NetworkMode": "host", "Binds": binds},
		"NetworkingConfig": map[string]any{"EndpointsConfig": map[string]any{"host": map[string]any{}}},
		"Labels":           map[string]any{benchRunLabel: d.label},
	}
}

// containerPid returns the host pid of a running container's main process.
func (d *dockerEnv) containerPid(ctx context.Context, name string) (int, error) {
	c, err := d.cli.ContainerInspect(ctx, name)
	if err != nil {
		return 0, err
	}
	if c.State == nil || !c.State.Running || c.State.Pid <= 0 {
		return 0, fmt.Errorf("container %s is not running", name)
	}
	return c.State.Pid, nil
}

// referenceSpec is what a reference container is created with: the agent's module's
// image, environment and binds, captured while it ran.
type referenceSpec struct {
	Image string
	Env   []string
	Binds []string
}

// captureReference reads a running module container's image, environment and binds.
func (d *dockerEnv) captureReference(ctx context.Context, name string) (referenceSpec, error) {
	c, err := d.cli.ContainerInspect(ctx, name)
	if err != nil {
		return referenceSpec{}, err
	}
	if c.Config == nil || c.HostConfig == nil {
		return referenceSpec{}, fmt.Errorf("container %s: no config in its inspection", name)
	}
	return referenceSpec{Image: c.Config.Image, Env: slices.Clone(c.Config.Env), Binds: slices.Clone(c.HostConfig.Binds)}, nil
}

// runReference does what a bare `docker run --pull always` of spec does through the
// API: pull, create and start a container name, with restart policy restart (Docker's
// own: "no" or "always").
func (d *dockerEnv) runReference(ctx context.Context, name string, spec referenceSpec, restart container.RestartPolicyMode) error {
	rc, err := d.cli.ImagePull(ctx, spec.Image, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("pull %s: %w", spec.Image, err)
	}
	err = dockertest.StreamError(rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("pull %s: %w", spec.Image, err)
	}
	_, err = d.cli.ContainerCreate(ctx,
		&container.Config{Image: spec.Image, Env: spec.Env, Labels: map[string]string{benchRunLabel: d.label}},
		&container.HostConfig{NetworkMode: "host", Binds: spec.Binds, RestartPolicy: container.RestartPolicy{Name: restart}},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"host": {}}}, nil, name)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if err := d.cli.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	return nil
}

// removeContainer force-removes container name.
func (d *dockerEnv) removeContainer(ctx context.Context, name string) error {
	err := d.cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// dockerEvent is a container event of the engine, with the engine's own time.
type dockerEvent struct {
	Name   string // container name
	Action string // "start", "die", ...
	At     time.Time
}

// dockerEvents follows the engine's container events for a label.
type dockerEvents struct {
	mu     sync.Mutex
	events []dockerEvent
	more   chan struct{}
	err    error
}

func followDockerEvents(ctx context.Context, cli *client.Client, label string) *dockerEvents {
	e := &dockerEvents{more: make(chan struct{})}
	msgs, errs := cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)), filters.Arg("label", label))})
	go func() {
		for {
			select {
			case m := <-msgs:
				ev := dockerEvent{Name: m.Actor.Attributes["name"], Action: string(m.Action), At: time.Unix(0, m.TimeNano)}
				e.mu.Lock()
				e.events = append(e.events, ev)
				if len(e.events) > keptEvents {
					e.events = append([]dockerEvent(nil), e.events[len(e.events)-keptEvents/2:]...)
				}
				close(e.more)
				e.more = make(chan struct{})
				e.mu.Unlock()
			case err := <-errs:
				e.mu.Lock()
				e.err = err
				close(e.more)
				e.more = make(chan struct{})
				e.mu.Unlock()
				return
			}
		}
	}()
	return e
}

// wait returns the first event action of container name at or after since.
func (e *dockerEvents) wait(ctx context.Context, name, action string, since time.Time) (dockerEvent, error) {
	for {
		e.mu.Lock()
		for _, ev := range e.events {
			if ev.Name == name && ev.Action == action && !ev.At.Before(since) {
				e.mu.Unlock()
				return ev, nil
			}
		}
		more, err := e.more, e.err
		e.mu.Unlock()
		if err != nil {
			return dockerEvent{}, fmt.Errorf("docker events: %w", err)
		}
		select {
		case <-more:
		case <-ctx.Done():
			return dockerEvent{}, fmt.Errorf("no %s event of container %s: %w", action, name, ctx.Err())
		}
	}
}
