package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/docker"
)

// containerDockerSocket is where the agent's container finds the
// engine's socket (its DOCKER_HOST default).
const containerDockerSocket = "/var/run/docker.sock"

// dockerBackend runs the agent as the container edgeAgent, which Docker
// restarts (restart policy unless-stopped), and the modules as containers.
type dockerBackend struct {
	a   *app
	c   edgeConfig
	cli *client.Client
	rt  *docker.Runtime
	// name is the agent's container.
	name string
	// scope are labels put on the agent's container and required of every
	// container stop and uninstall touch, besides the owner label (env
	// DockerLabels; none on a device).
	scope map[string]string
}

func newDockerBackend(a *app, c edgeConfig) (*dockerBackend, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client from the environment: %w", err)
	}
	rt, err := docker.New(docker.Options{Client: cli, Network: c.network()})
	if err != nil {
		cli.Close()
		return nil, err
	}
	// The container is named after the module, as every module is; the
	// agent inside lists it under that name and leaves it alone.
	return &dockerBackend{a: a, c: c, cli: cli, rt: rt, name: agentContainer, scope: a.DockerLabels}, nil
}

func (d *dockerBackend) close() { d.cli.Close() }

// agentContainerConfig is the edgeAgent container: the agent reads the
// setup file with the same paths as on the host, because the data
// directory (and the hub CA, when outside it) are mounted at the same
// place, and drives the engine through its socket.
func (d *dockerBackend) agentContainerConfig(startTime time.Time) (*container.Config, *container.HostConfig) {
	c := d.c
	img := c.Docker.AgentImage
	setupPath := filepath.Join(c.Agent.DataDir, setupFile)
	cfg := &container.Config{
		Image: img,
		// --network also covers setup files older than agent.network.
		Cmd: []string{"--config", setupPath, "--network", c.network(), "--runtime-start-time", startTime.UTC().Format(time.RFC3339Nano)},
		Labels: map[string]string{
			agent.LabelOwner:  agent.Owner,
			agent.LabelModule: agentContainer,
			agent.LabelImage:  img,
		},
	}
	for k, v := range d.scope {
		cfg.Labels[k] = v
	}
	binds := []string{c.Agent.DataDir + ":" + c.Agent.DataDir}
	if host := d.cli.DaemonHost(); strings.HasPrefix(host, "unix://") {
		sock := strings.TrimPrefix(host, "unix://")
		binds = append(binds, sock+":"+containerDockerSocket)
	} else {
		cfg.Env = append(cfg.Env, "DOCKER_HOST="+host)
	}
	for _, f := range []string{c.Agent.CAFile} {
		if f != "" && !within(f, c.Agent.DataDir) {
			binds = append(binds, f+":"+f+":ro")
		}
	}
	network := c.Docker.AgentNetwork
	if network == "" {
		network = c.network()
	}
	host := &container.HostConfig{
		Binds:         binds,
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		NetworkMode:   container.NetworkMode(network),
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{
			"max-size": "10m", "max-file": "3",
		}},
	}
	return cfg, host
}

// within reports whether path is dir or under it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// start creates the modules' network and a fresh edgeAgent container (an
// old one is removed: it holds the previous start's settings), and starts
// it.
func (d *dockerBackend) start(ctx context.Context, startTime time.Time) (string, error) {
	if err := d.rt.EnsureNetwork(ctx); err != nil {
		return "", err
	}
	if err := d.cli.ContainerRemove(ctx, d.name, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("remove the old %s container: %w", d.name, err)
	}
	if err := d.ensureImage(ctx); err != nil {
		return "", err
	}
	cfg, host := d.agentContainerConfig(startTime)
	if _, err := d.cli.ContainerCreate(ctx, cfg, host, nil, nil, d.name); err != nil {
		return "", fmt.Errorf("create the %s container: %w", d.name, err)
	}
	if err := d.cli.ContainerStart(ctx, d.name, container.StartOptions{}); err != nil {
		return "", fmt.Errorf("start the %s container: %w", d.name, err)
	}
	return fmt.Sprintf("container %s, image %s, restart policy unless-stopped", d.name, cfg.Image), nil
}

// ensureImage pulls the agent's image when the engine does not have it,
// with the login stored for its registry (edgectl login), if any.
func (d *dockerBackend) ensureImage(ctx context.Context) error {
	img := d.c.Docker.AgentImage
	if _, err := d.cli.ImageInspect(ctx, img); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("image %s: %w", img, err)
	}
	var opts image.PullOptions
	logins, err := agent.ReadRegistries(filepath.Join(d.c.Agent.DataDir, agent.RegistriesFile))
	if err != nil {
		return err
	}
	if _, cred := agent.Credential(img, agent.LoginCredentials(logins)); cred != nil {
		b, _ := json.Marshal(map[string]string{"username": cred.Username, "password": cred.Password, "serveraddress": cred.Address})
		opts.RegistryAuth = base64.URLEncoding.EncodeToString(b)
	}
	rc, err := d.cli.ImagePull(ctx, img, opts)
	if err != nil {
		return fmt.Errorf("pull the agent's image %s: %w", img, err)
	}
	defer rc.Close()
	// The stream reports errors in-band; the image's presence is the proof.
	io.Copy(io.Discard, rc)
	if _, err := d.cli.ImageInspect(ctx, img); err != nil {
		return fmt.Errorf("pull the agent's image %s: not present after the pull: %w", img, err)
	}
	return nil
}

// supervisor describes the edgeAgent container.
func (d *dockerBackend) supervisor(ctx context.Context) supervisorState {
	info, err := d.cli.ContainerInspect(ctx, d.name)
	switch {
	case cerrdefs.IsNotFound(err):
		return supervisorState{Desc: "container " + d.name + ": none"}
	case err != nil:
		return supervisorState{Desc: fmt.Sprintf("container %s: cannot ask Docker: %v", d.name, err)}
	case info.State == nil:
		return supervisorState{Desc: "container " + d.name + ": no state"}
	}
	s := info.State
	desc := fmt.Sprintf("container %s %s, restart policy %s, %d restart(s)", d.name, s.Status, restartPolicyOf(info), info.RestartCount)
	if s.Error != "" {
		desc += " (" + s.Error + ")"
	}
	return supervisorState{Running: s.Running || s.Restarting, Desc: desc, AgentPID: s.Pid,
		Log: "docker logs " + d.name}
}

func restartPolicyOf(info container.InspectResponse) string {
	if info.HostConfig == nil || info.HostConfig.RestartPolicy.Name == "" {
		return "no"
	}
	return string(info.HostConfig.RestartPolicy.Name)
}

// stopAgent stops edgeAgent: a stopped unless-stopped container stays
// stopped, also across reboots.
func (d *dockerBackend) stopAgent(ctx context.Context) (string, error) {
	info, err := d.cli.ContainerInspect(ctx, d.name)
	if cerrdefs.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if info.State != nil && !info.State.Running && !info.State.Restarting {
		return "", nil
	}
	secs := int(agentStopGrace / time.Second)
	if err := d.cli.ContainerStop(ctx, d.name, container.StopOptions{Timeout: &secs}); err != nil && !cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("stop container %s: %w", d.name, err)
	}
	return "stopped the container " + d.name, nil
}

// owned lists the containers labelled as the agent's (and with the scope
// labels).
func (d *dockerBackend) owned(ctx context.Context) ([]container.Summary, error) {
	f := filters.NewArgs(filters.Arg("label", agent.LabelOwner+"="+agent.Owner))
	for k, v := range d.scope {
		f.Add("label", k+"="+v)
	}
	list, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return list, nil
}

// containerName is a listed container's name.
func containerName(c container.Summary) string {
	return strings.TrimPrefix(firstOr(c.Names, c.ID), "/")
}

// stopModules stops every other running container labelled as the
// agent's.
func (d *dockerBackend) stopModules(ctx context.Context, timeout time.Duration) ([]string, error) {
	list, err := d.owned(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, c := range list {
		if name := containerName(c); name != d.name && (c.State == "running" || c.State == "restarting" || c.State == "paused") {
			names = append(names, name)
		}
	}
	return stopEach(ctx, names, func(ctx context.Context, name string) error { return d.rt.Stop(ctx, name, timeout) })
}

// remove deletes every container labelled as the agent's, the named
// volumes they mounted, and the modules' network when edgectl or the
// agent created it.
func (d *dockerBackend) remove(ctx context.Context) ([]string, error) {
	list, err := d.owned(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	volumes := map[string]bool{}
	for _, c := range list {
		for _, m := range c.Mounts {
			if m.Type == mount.TypeVolume && m.Name != "" {
				volumes[m.Name] = true
			}
		}
		name := containerName(c)
		if err := d.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", name, err))
			continue
		}
		removed = append(removed, "container "+name)
	}
	names := make([]string, 0, len(volumes))
	for v := range volumes {
		names = append(names, v)
	}
	sort.Strings(names)
	for _, v := range names {
		// An anonymous volume went with its container already.
		switch err := d.cli.VolumeRemove(ctx, v, false); {
		case cerrdefs.IsNotFound(err):
		case err != nil:
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v, err))
		default:
			removed = append(removed, "volume "+v)
		}
	}
	netName := d.c.network()
	n, err := d.cli.NetworkInspect(ctx, netName, network.InspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
	case err != nil:
		errs = append(errs, fmt.Errorf("network %s: %w", netName, err))
	case n.Labels[agent.LabelOwner] != agent.Owner:
		// Not created by Outpost (EnsureNetwork labels it): someone else's.
	default:
		if err := d.cli.NetworkRemove(ctx, n.ID); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", netName, err))
		} else {
			removed = append(removed, "network "+netName)
		}
	}
	return removed, errors.Join(errs...)
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}
