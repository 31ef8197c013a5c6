package conformance

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of them; match with errors.Is.
var (
	// ErrSpec reports a spec file that cannot be used: malformed JSON, an unknown field, a
	// bad name or a negative limit. The wrapped message names the field.
	ErrSpec = errors.New("invalid conformance spec")

	// ErrTarget reports a module that cannot be started: no such executable, an empty image
	// reference, no container engine.
	ErrTarget = errors.New("cannot start the module")

	// ErrHarness reports a failure of the harness itself (the fake IoT Hub, the edge hub or
	// the probe client would not start). It says nothing about the module: no report is
	// produced.
	ErrHarness = errors.New("conformance harness failed")

	// ErrImageNotFound reports an image reference the Docker Engine does not hold (the kit
	// does not pull). It wraps ErrTarget.
	ErrImageNotFound = fmt.Errorf("%w: image not found in the Docker Engine", ErrTarget)

	// errNotRunning is a stats sample of a container that is not running.
	errNotRunning = errors.New("the container is not running")

	// errStaleStats is a stats sample the engine had given already.
	errStaleStats = errors.New("docker stats: no new sample")
)
