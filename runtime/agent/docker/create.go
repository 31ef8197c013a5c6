package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/outpost-edge/outpost/runtime/agent"
)

// Create creates the module's container from spec, not started. The
// container is named spec.Name and built from spec.CreateOptions (see
// createRequest); when it joins the runtime's network, the network is
// created first if missing. A container of that name already there gives
// agent.ErrExists; an image not present locally gives
// agent.ErrImageNotFound (pull it first).
func (r *Runtime) Create(ctx context.Context, spec agent.ModuleSpec) error {
	if spec.Name == "" {
		return fmt.Errorf("create: module spec without a name: %w", agent.ErrInvalidCommand)
	}
	if spec.Image == "" {
		return fmt.Errorf("create %q: module spec without an image: %w", spec.Name, agent.ErrInvalidCommand)
	}
	if r.requireDigest {
		if _, err := r.pinned(spec.Image); err != nil {
			return fmt.Errorf("create %q: %w", spec.Name, err)
		}
	}
	req, err := r.createRequest(spec)
	if err != nil {
		return err
	}
	if req.usesNetwork(r.network) {
		if err := r.EnsureNetwork(ctx); err != nil {
			return fmt.Errorf("create %q: %w", spec.Name, err)
		}
	}
	resp, err := r.cli.ContainerCreate(ctx, req.Config, req.HostConfig, req.NetworkingConfig, nil, spec.Name)
	switch {
	case err == nil:
	case cerrdefs.IsConflict(err):
		return fmt.Errorf("create %q: %w: %w", spec.Name, agent.ErrExists, err)
	case cerrdefs.IsNotFound(err) && r.imageMissing(ctx, spec.Image):
		return fmt.Errorf("create %q: image %q: %w", spec.Name, spec.Image, agent.ErrImageNotFound)
	default:
		return fmt.Errorf("create %q: %w", spec.Name, err)
	}
	r.log.Info("created container", "module", spec.Name, "image", spec.Image, "id", shortID(resp.ID))
	return nil
}

// imageMissing tells a create that failed with a 404 for a missing image
// apart from one that failed for a missing network or volume plugin.
func (r *Runtime) imageMissing(ctx context.Context, image string) bool {
	_, err := r.cli.ImageInspect(ctx, image)
	return cerrdefs.IsNotFound(err)
}

// createRequest is the engine's create body for one module.
type createRequest struct {
	*container.Config
	HostConfig       *container.HostConfig
	NetworkingConfig *network.NetworkingConfig
}

// usesNetwork reports whether the container joins the named network.
func (c createRequest) usesNetwork(name string) bool {
	if string(c.HostConfig.NetworkMode) == name {
		return true
	}
	_, ok := c.NetworkingConfig.EndpointsConfig[name]
	return ok
}

// createRequest decodes spec.CreateOptions, a Docker Engine create body
// (container.Config fields at the top level, with HostConfig and
// NetworkingConfig), and applies the module conventions of
// edge-runtime-behaviour D.4 over it:
//
//   - Image is spec.Image and Env is spec.Env, whatever createOptions says
//     (spec.Env already holds createOptions.Env, merged by agent.Env);
//   - Labels are createOptions' labels with spec.Labels over them;
//   - the Docker restart policy is "no": the agent restarts modules;
//   - unless createOptions has NetworkingConfig.EndpointsConfig, the
//     container joins the runtime's network (and HostConfig.NetworkMode
//     names it, when createOptions left it empty or "default");
//   - edgeHub gets GatewayHostName as an alias on the runtime's network.
//
// Everything else (port bindings, binds, mounts, Healthcheck, User, Cmd,
// Entrypoint, LogConfig…) passes through. Field names match
// case-insensitively and unknown fields are ignored, as in the engine.
// Empty or "null" createOptions mean {}.
func (r *Runtime) createRequest(spec agent.ModuleSpec) (createRequest, error) {
	var req createRequest
	if opts := strings.TrimSpace(spec.CreateOptions); opts != "" && opts != "null" {
		var body container.CreateRequest
		dec := json.NewDecoder(strings.NewReader(opts))
		if err := dec.Decode(&body); err != nil {
			return req, fmt.Errorf("module %q: %w: %w", spec.Name, ErrCreateOptions, err)
		}
		if dec.More() {
			return req, fmt.Errorf("module %q: %w: text after the JSON object", spec.Name, ErrCreateOptions)
		}
		req = createRequest{body.Config, body.HostConfig, body.NetworkingConfig}
	}
	if req.Config == nil {
		req.Config = &container.Config{}
	}
	if req.HostConfig == nil {
		req.HostConfig = &container.HostConfig{}
	}

	req.Image = spec.Image
	req.Env = slices.Clone(spec.Env)
	labels := maps.Clone(req.Labels)
	if labels == nil {
		labels = make(map[string]string, len(spec.Labels))
	}
	maps.Copy(labels, spec.Labels)
	req.Labels = labels
	req.HostConfig.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyDisabled}

	if req.NetworkingConfig == nil || len(req.NetworkingConfig.EndpointsConfig) == 0 {
		req.NetworkingConfig = &network.NetworkingConfig{
			EndpointsConfig: map[string]*network.EndpointSettings{r.network: {}},
		}
		if mode := req.HostConfig.NetworkMode; mode == "" || mode.IsDefault() {
			req.HostConfig.NetworkMode = container.NetworkMode(r.network)
		}
	}
	if ep, ok := req.NetworkingConfig.EndpointsConfig[r.network]; ok && spec.Name == r.hub && r.gateway != "" {
		if ep == nil {
			ep = &network.EndpointSettings{}
			req.NetworkingConfig.EndpointsConfig[r.network] = ep
		}
		if !slices.Contains(ep.Aliases, r.gateway) {
			ep.Aliases = append(ep.Aliases, r.gateway)
		}
	}
	return req, nil
}
