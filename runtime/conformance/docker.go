package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/outpost-edge/outpost/runtime/agent"
)

// A DockerRunner runs the module's image as a container on a Docker Engine on this host:
//
//   - network mode host, so that the container reaches the harness's edge hub on its
//     loopback port and dials it by GatewayHostName (localhost), the name in the hub's
//     certificate, exactly as a process does;
//   - the harness's environment over the image's ENV (the engine merges them, as for the
//     edge agent's containers), with EdgeModuleCACertificateFile pointing at
//     ContainerCAFile, where the run's edge CA is bind-mounted read-only;
//   - the image's entry point and command, its user; restart policy "no";
//   - the labels below (never the edge agent's io.github.outpost-edge.owner, so that edge
//     agents on the same engine leave the container alone), and removed at the end of the
//     run whatever happened.
//
// The module's output comes from an attach made before the start; its exit code from the
// engine's wait; its memory and CPU from the engine's stats (one-shot requests, which the
// engine answers at its collection pace, once a second, plus the container's start as the
// first sample); the sigterm check stops it with docker stop.

// Labels on the containers the kit creates.
const (
	// LabelOwner marks them, with the value Owner.
	LabelOwner = "io.github.outpost-edge.conformance.owner"
	// Owner is LabelOwner's value.
	Owner = "conformance-kit"
	// LabelPID holds the process id of the run that created the container and LabelHost
	// the host name of its machine: a later run on the same host removes the containers of
	// runs that no longer exist (an edgectl killed by SIGKILL cannot remove its own).
	LabelPID  = "io.github.outpost-edge.conformance.pid"
	LabelHost = "io.github.outpost-edge.conformance.host"
	// LabelModule holds the module's name.
	LabelModule = "io.github.outpost-edge.conformance.module"
)

// ContainerCAFile is where the run's edge CA certificate is mounted (read-only) in the
// container; EdgeModuleCACertificateFile names it.
const ContainerCAFile = "/mnt/edgemodule/edge-ca.pem"

// Timings of the Docker runner.
const (
	dockerSampleInterval = 100 * time.Millisecond
	dockerCallTimeout    = 30 * time.Second // one engine call that is not a wait
	dockerStopMargin     = time.Second      // docker stop's timeout beyond the grace period
	attachDrainTimeout   = 2 * time.Second  // the output's tail after the exit
)

// DockerRunner runs a Docker image as the module under test (see the package
// documentation and docs/conformance.md). The engine must run on this host: the container
// shares the host's network to reach the harness's edge hub on loopback, and mounts the CA
// file from this host's file system.
type DockerRunner struct {
	// Image is the image reference. It must be in the engine already (docker pull, docker
	// build): the runner does not pull.
	Image string
	// Client is the Docker Engine client; required. The caller closes it after the run.
	Client *client.Client
	// Labels are put on the container besides the kit's own (which win).
	Labels map[string]string
	// Logger receives the runner's own trouble (a failed stop, a container that could not
	// be removed); discarded when nil.
	Logger *slog.Logger

	engine dockerEngine // Client, or a fake in the unit tests
}

var _ Runner = (*DockerRunner)(nil)

// Describe implements Runner.
func (r *DockerRunner) Describe() string { return "image " + r.Image }

// Check reports whether the engine answers and holds the image, so that a command can
// tell an image from a mistyped file name before starting a run. Its errors wrap
// ErrTarget; errors.Is(err, ErrImageNotFound) tells a missing image.
func (r *DockerRunner) Check(ctx context.Context) error {
	eng, err := r.eng()
	if err != nil {
		return err
	}
	return r.checkImage(ctx, eng)
}

func (r *DockerRunner) checkImage(ctx context.Context, eng dockerEngine) error {
	if strings.TrimSpace(r.Image) == "" {
		return fmt.Errorf("%w: empty image reference", ErrTarget)
	}
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	_, err := eng.ImageInspect(ctx, r.Image)
	switch {
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%w: %s (pull or build it first: the kit does not pull)", ErrImageNotFound, r.Image)
	case err != nil:
		return fmt.Errorf("%w: image %s: %w", ErrTarget, r.Image, err)
	}
	return nil
}

func (r *DockerRunner) eng() (dockerEngine, error) {
	switch {
	case r.engine != nil:
		return r.engine, nil
	case r.Client != nil:
		return r.Client, nil
	}
	return nil, fmt.Errorf("%w: image %s: no Docker Engine client", ErrTarget, r.Image)
}

// Start implements Runner: it creates the container, attaches to its output, and starts
// it. A container that was created but could not be started is removed.
func (r *DockerRunner) Start(ctx context.Context, env map[string]string) (Instance, error) {
	eng, err := r.eng()
	if err != nil {
		return nil, err
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := r.checkImage(ctx, eng); err != nil {
		return nil, err
	}
	sweep(ctx, eng, log)
	cfg, hostCfg, err := r.containerConfig(env)
	if err != nil {
		return nil, err
	}
	name := containerName(env[agent.EnvModuleID])
	cctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	created, err := eng.ContainerCreate(cctx, cfg, hostCfg, nil, nil, name)
	cancel()
	if err != nil {
		// An interrupted create may still have made the container: remove it by name.
		rctx, cancel := context.WithTimeout(context.Background(), dockerCallTimeout)
		rerr := eng.ContainerRemove(rctx, name, container.RemoveOptions{Force: true, RemoveVolumes: true})
		cancel()
		if rerr != nil && !cerrdefs.IsNotFound(rerr) {
			log.Warn("removing a container whose create failed", "container", name, "err", rerr)
		}
		return nil, fmt.Errorf("%w: create a container of %s: %w", ErrTarget, r.Image, err)
	}
	c := newContainer(eng, created.ID, name, log)
	if err := c.start(ctx); err != nil {
		if cerr := c.Close(); cerr != nil {
			log.Warn("removing a container that did not start", "container", name, "err", cerr)
		}
		return nil, fmt.Errorf("%w: start %s: %w", ErrTarget, r.Image, err)
	}
	return c, nil
}

// containerConfig is the container's create request: see the package documentation.
func (r *DockerRunner) containerConfig(env map[string]string) (*container.Config, *container.HostConfig, error) {
	env = maps.Clone(env)
	var binds []string
	if ca := env[agent.EnvModuleCACertificateFile]; ca != "" {
		abs, err := filepath.Abs(ca)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: CA file %s: %w", ErrTarget, ca, err)
		}
		binds = append(binds, abs+":"+ContainerCAFile+":ro")
		env[agent.EnvModuleCACertificateFile] = ContainerCAFile
	}
	labels := maps.Clone(r.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	host, _ := os.Hostname() // "" is a host name too: the sweep then matches only ""
	maps.Copy(labels, map[string]string{
		LabelOwner: Owner, LabelPID: strconv.Itoa(os.Getpid()), LabelHost: host, LabelModule: env[agent.EnvModuleID],
	})
	cfg := &container.Config{
		Image: r.Image, Env: envList(env), Labels: labels,
		AttachStdout: true, AttachStderr: true,
	}
	hostCfg := &container.HostConfig{
		NetworkMode:   networkMode,
		Binds:         binds,
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
	}
	return cfg, hostCfg, nil
}

// networkMode is the containers' network mode: the host's, so that the edge hub on loopback
// is reachable under the name in its certificate.
const networkMode container.NetworkMode = "host"

// containerName is "outpost-conformance-{module}-{random}", the module name reduced to
// the characters a container name may hold.
func containerName(module string) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, module)
	if clean == "" {
		clean = "module"
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return "outpost-conformance-" + clean + "-" + hex.EncodeToString(b[:])
}
