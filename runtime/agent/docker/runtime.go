package docker

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

var _ agent.Runtime = (*Runtime)(nil)

// DefaultNetwork is the user-defined bridge every module joins unless its
// createOptions names its own networks (edge-runtime-behaviour D.4).
const DefaultNetwork = "azure-iot-edge"

// Options configure a Runtime. The zero value is usable: a client from the
// Docker environment variables, the azure-iot-edge network, no gateway
// alias, no logging.
type Options struct {
	// Client is the Docker Engine client. When nil, New makes one from the
	// standard Docker environment (DOCKER_HOST, DOCKER_API_VERSION,
	// DOCKER_CERT_PATH, DOCKER_TLS_VERIFY, as the docker CLI reads them)
	// with API version negotiation, and Close closes it.
	Client *client.Client
	// Network is the bridge network modules join; DefaultNetwork when empty.
	Network string
	// GatewayHostName is the edge device's host name. edgeHub gets it as a
	// network alias, so that modules resolve IOTEDGE_GATEWAYHOSTNAME to
	// edgeHub inside the network. No alias when empty.
	GatewayHostName string
	// Logger receives debug and info records (pulls, creates); discarded
	// when nil.
	Logger *slog.Logger
	// Now is the clock used to time pulls in logs; time.Now when nil.
	Now func() time.Time
	// RequireDigest refuses to pull or create from an image that is not
	// pinned by digest (name@sha256:…), so that a device runs only images
	// whose content the deployment names exactly.
	RequireDigest bool
}

// Runtime runs modules as Docker containers; it implements agent.Runtime.
// It holds no state of its own beyond its options: every call asks the
// engine, so it is safe for concurrent use and survives restarts of the
// agent (and of dockerd) without resynchronising.
type Runtime struct {
	cli           engine
	closer        func() error // closes a client New made; nil otherwise
	network       string
	gateway       string
	hub           string // the module that gets the gateway alias
	log           *slog.Logger
	now           func() time.Time
	requireDigest bool
}

// New returns a Runtime on opts.Client (or on a client from the Docker
// environment). It does not contact the engine: the first call does.
func New(opts Options) (*Runtime, error) {
	if opts.Client != nil {
		return newRuntime(opts.Client, opts), nil
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client from environment: %w", err)
	}
	r := newRuntime(cli, opts)
	r.closer = cli.Close
	return r, nil
}

// newRuntime builds a Runtime on any engine; the unit tests pass a fake.
func newRuntime(cli engine, opts Options) *Runtime {
	r := &Runtime{
		cli:           cli,
		network:       opts.Network,
		gateway:       opts.GatewayHostName,
		hub:           deployment.EdgeHubName,
		log:           opts.Logger,
		now:           opts.Now,
		requireDigest: opts.RequireDigest,
	}
	if r.network == "" {
		r.network = DefaultNetwork
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Close releases the client New made from the environment; a client passed
// in Options.Client is left to its owner.
func (r *Runtime) Close() error {
	if r.closer == nil {
		return nil
	}
	return r.closer()
}

// Network returns the name of the network modules join by default.
func (r *Runtime) Network() string { return r.network }

// EnsureNetwork creates the modules' bridge network when it does not exist
// (as aziot-edged does at start). Create calls it before attaching a module
// to the network; the agent may call it at start to fail early.
func (r *Runtime) EnsureNetwork(ctx context.Context) error {
	_, err := r.cli.NetworkInspect(ctx, r.network, network.InspectOptions{})
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("network %q: %w", r.network, err)
	}
	_, err = r.cli.NetworkCreate(ctx, r.network, network.CreateOptions{
		Driver: "bridge",
		Labels: map[string]string{agent.LabelOwner: agent.Owner},
	})
	// Conflict: another caller created it between inspect and create.
	if err != nil && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("create network %q: %w", r.network, err)
	}
	if err == nil {
		r.log.Info("created network", "network", r.network)
	}
	return nil
}

// List returns the containers labelled LabelOwner=Owner, in the engine's
// order, with their state from an inspect of each. A container removed
// between the listing and its inspect is left out.
func (r *Runtime) List(ctx context.Context) ([]agent.ModuleState, error) {
	containers, err := r.cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", agent.LabelOwner+"="+agent.Owner)),
	})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]agent.ModuleState, 0, len(containers))
	for _, c := range containers {
		info, err := r.cli.ContainerInspect(ctx, c.ID)
		if cerrdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("inspect container %s: %w", shortID(c.ID), err)
		}
		out = append(out, moduleState(info))
	}
	return out, nil
}

// Start starts the module's container. Starting a running container
// succeeds (the engine answers 304).
func (r *Runtime) Start(ctx context.Context, name string) error {
	if err := r.cli.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		return containerError(name, err)
	}
	return nil
}

// Stop sends the container SIGTERM (or its StopSignal) and kills it once
// timeout has passed; the engine counts whole seconds, so timeout is rounded
// up. A zero or negative timeout kills at once. Stopping a container that
// is not running succeeds.
func (r *Runtime) Stop(ctx context.Context, name string, timeout time.Duration) error {
	secs := 0
	if timeout > 0 {
		secs = int(math.Min(math.Ceil(timeout.Seconds()), math.MaxInt32))
	}
	if err := r.cli.ContainerStop(ctx, name, container.StopOptions{Timeout: &secs}); err != nil {
		return containerError(name, err)
	}
	return nil
}

// Remove deletes a stopped container with its anonymous volumes; named
// volumes and bind mounts stay. A running container is refused with
// ErrRunning: the agent stops modules before removing them.
func (r *Runtime) Remove(ctx context.Context, name string) error {
	err := r.cli.ContainerRemove(ctx, name, container.RemoveOptions{RemoveVolumes: true})
	if cerrdefs.IsConflict(err) {
		return fmt.Errorf("remove container %q: %w: %w", name, ErrRunning, err)
	}
	if err != nil {
		return containerError(name, err)
	}
	return nil
}

// containerError wraps an engine error about container name, turning a 404
// into agent.ErrNotFound.
func containerError(name string, err error) error {
	if cerrdefs.IsNotFound(err) {
		return fmt.Errorf("container %q: %w: %w", name, agent.ErrNotFound, err)
	}
	return fmt.Errorf("container %q: %w", name, err)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
