package agent

import "errors"

// Sentinel errors. Runtime implementations wrap the first three so that
// commands and the agent can tell the cases apart with errors.Is.
var (
	// ErrNotFound: the runtime has no module of that name. Stop and Remove
	// treat it as success (the module is already gone).
	ErrNotFound = errors.New("module not found")
	// ErrExists: Create found a module (container) of that name already.
	ErrExists = errors.New("module already exists")
	// ErrImageNotFound: Create found no local image; with imagePullPolicy
	// "never" the image must be provisioned on the device beforehand.
	ErrImageNotFound = errors.New("image not found locally")

	// ErrInvalidCommand: Execute was given a command it cannot run (zero
	// Kind, no module name, a Create without a Spec, a Pull without an image).
	ErrInvalidCommand = errors.New("invalid command")
	// ErrSkipped: Apply did not run a command because an earlier command for
	// the same module failed. Record.Update ignores it.
	ErrSkipped = errors.New("skipped after an earlier failure")

	// ErrRunning: Agent.Run was called a second time (Run may be called
	// once per Agent).
	ErrRunning = errors.New("agent already running")
	// ErrStateDB: the agent's state database cannot be used (written by a
	// newer agent, or damaged). The wrapping error names the file.
	ErrStateDB = errors.New("unusable state database")
	// ErrRejected: the hub refused an identity request (a 4xx answer other
	// than the ones EnsureModule handles itself); retrying the same request
	// will not help until something changes upstream.
	ErrRejected = errors.New("rejected by the hub")
	// ErrMethodPayload: a direct method call carried a payload the agent
	// cannot read; the caller gets status 400 with the reason.
	ErrMethodPayload = errors.New("invalid method payload")
)
