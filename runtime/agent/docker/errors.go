package docker

import "errors"

// Sentinel errors of the Docker runtime, beside the agent's own
// (agent.ErrNotFound, agent.ErrExists, agent.ErrImageNotFound), which the
// runtime wraps where the Runtime interface asks for them.
var (
	// ErrUnauthorized: the registry refused the pull's credentials (or
	// demanded credentials that were not given). Not retryable until the
	// deployment's registryCredentials change.
	ErrUnauthorized = errors.New("registry refused authentication")
	// ErrImageUnknown: the registry has no such image (repository, tag or
	// digest).
	ErrImageUnknown = errors.New("image not found in registry")
	// ErrDigestMismatch: an image pinned by digest was pulled, but the local
	// image does not carry that digest.
	ErrDigestMismatch = errors.New("image digest mismatch")
	// ErrUnpinned: Options.RequireDigest is set and the image is not pinned
	// by digest (name@sha256:…).
	ErrUnpinned = errors.New("image not pinned by digest")
	// ErrInvalidImage: the image reference cannot be parsed.
	ErrInvalidImage = errors.New("invalid image reference")
	// ErrCreateOptions: a module's createOptions is not a Docker Engine
	// create request (not JSON, or a field of the wrong type).
	ErrCreateOptions = errors.New("invalid createOptions")
	// ErrRunning: Remove was asked to delete a container that is running
	// (or being removed already); stop it first.
	ErrRunning = errors.New("module is running")
)
