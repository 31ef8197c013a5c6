package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

// Pull pulls image from its registry, with auth (sent to the engine as the
// X-Registry-Auth header) when not nil; the agent picks auth with
// agent.Credential. Progress events of the engine's JSON stream are passed
// to progress, in order, from this goroutine. An error in the stream ends
// the pull with that error: a refusal of the credentials wraps
// ErrUnauthorized, an unknown image ErrImageUnknown. Error texts never
// contain the password.
//
// An image pinned by digest (name@sha256:…) is verified after the pull:
// the local image must list that digest among its RepoDigests, or Pull
// fails with ErrDigestMismatch. With Options.RequireDigest an image that is
// not pinned is refused with ErrUnpinned before anything is fetched.
func (r *Runtime) Pull(ctx context.Context, ref string, auth *deployment.RegistryCredential, progress func(agent.PullProgress)) error {
	named, err := parseImage(ref)
	if err != nil {
		return err
	}
	pin, pinned := named.(reference.Canonical)
	if r.requireDigest && !pinned {
		return unpinnedError(ref)
	}
	var opts image.PullOptions
	if auth != nil {
		opts.RegistryAuth, err = registry.EncodeAuthConfig(registry.AuthConfig{
			Username:      auth.Username,
			Password:      auth.Password,
			ServerAddress: auth.Address,
		})
		if err != nil {
			return fmt.Errorf("image %q: encode registry credentials: %w", ref, err)
		}
	}

	start := r.now()
	host := reference.Domain(named)
	stream, err := r.cli.ImagePull(ctx, ref, opts)
	if err != nil {
		return pullError(host, auth, err)
	}
	defer stream.Close()
	if err := readPullStream(ctx, stream, progress); err != nil {
		return pullError(host, auth, err)
	}

	info, err := r.cli.ImageInspect(ctx, ref)
	if err != nil {
		return fmt.Errorf("image %q after pull: %w", ref, err)
	}
	if pinned && !hasDigest(info.RepoDigests, pin) {
		return fmt.Errorf("image %q: %w: the engine's image %s has digests %v",
			ref, ErrDigestMismatch, shortID(strings.TrimPrefix(info.ID, "sha256:")), info.RepoDigests)
	}
	r.log.Info("pulled image", "image", ref, "id", info.ID, "took", r.now().Sub(start))
	return nil
}

// parseImage parses an image reference as the engine does (docker.io and
// library/ implied).
func parseImage(ref string) (reference.Named, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w: %w", ref, ErrInvalidImage, err)
	}
	return named, nil
}

// pinned returns image's digest reference, or ErrUnpinned.
func (r *Runtime) pinned(ref string) (reference.Canonical, error) {
	named, err := parseImage(ref)
	if err != nil {
		return nil, err
	}
	if pin, ok := named.(reference.Canonical); ok {
		return pin, nil
	}
	return nil, unpinnedError(ref)
}

func unpinnedError(ref string) error {
	return fmt.Errorf("image %q: %w: the runtime requires images pinned as name@sha256:<digest>", ref, ErrUnpinned)
}

// hasDigest reports whether one of the engine's RepoDigests
// ("127.0.0.1:5000/m@sha256:…", "alpine@sha256:…") is pin.
func hasDigest(repoDigests []string, pin reference.Canonical) bool {
	return slices.ContainsFunc(repoDigests, func(d string) bool {
		named, err := reference.ParseNormalizedNamed(d)
		if err != nil {
			return false
		}
		c, ok := named.(reference.Canonical)
		return ok && c.Name() == pin.Name() && c.Digest() == pin.Digest()
	})
}

// pullMessage is one object of the engine's pull stream (the fields of
// docker's jsonmessage.JSONMessage that a pull produces).
type pullMessage struct {
	Status         string `json:"status"`
	ID             string `json:"id"`
	ProgressDetail struct {
		Current int64 `json:"current"`
		Total   int64 `json:"total"`
	} `json:"progressDetail"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Error string `json:"error"`
}

// streamError is an error the engine reported inside the pull stream.
type streamError struct{ msg string }

func (e streamError) Error() string { return e.msg }

// readPullStream reads the pull stream to its end, reporting progress.
func readPullStream(ctx context.Context, stream io.Reader, progress func(agent.PullProgress)) error {
	dec := json.NewDecoder(stream)
	for {
		var m pullMessage
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("reading the engine's pull stream: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return streamError{m.ErrorDetail.Message}
		}
		if m.Error != "" {
			return streamError{m.Error}
		}
		if progress == nil || m.Status == "" {
			continue
		}
		p := agent.PullProgress{Layer: m.ID, Status: m.Status, Current: m.ProgressDetail.Current, Total: m.ProgressDetail.Total}
		if strings.HasPrefix(m.Status, "Pulling from ") {
			p.Layer = "" // its id is the tag, not a layer
		}
		progress(p)
	}
}

// pullError classifies a failed pull. The engine's message is kept, with
// the password cut out should a registry ever echo it.
func pullError(host string, auth *deployment.RegistryCredential, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("pull from %s: %w", host, err)
	}
	cause := err
	if auth != nil && auth.Password != "" && strings.Contains(err.Error(), auth.Password) {
		cause = errors.New(strings.ReplaceAll(err.Error(), auth.Password, "[REDACTED]"))
	}
	lower := strings.ToLower(cause.Error())
	switch {
	case cerrdefs.IsUnauthorized(err) || cerrdefs.IsPermissionDenied(err) || containsAny(lower,
		"unauthorized", "authentication required", "no basic auth credentials", "denied", "incorrect username or password"):
		who := "without credentials"
		if auth != nil {
			who = fmt.Sprintf("as user %q", auth.Username)
		}
		return fmt.Errorf("%w (registry %s, %s): %w", ErrUnauthorized, host, who, cause)
	case cerrdefs.IsNotFound(err) || containsAny(lower, "manifest unknown", "not found", "name unknown"):
		return fmt.Errorf("%w (registry %s): %w", ErrImageUnknown, host, cause)
	}
	return fmt.Errorf("pull from %s: %w", host, cause)
}

func containsAny(s string, subs ...string) bool {
	return slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(s, sub) })
}
