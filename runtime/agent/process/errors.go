package process

import "errors"

// Sentinel errors of this package. Runtime methods also return the agent's
// sentinels (agent.ErrNotFound, agent.ErrExists, agent.ErrImageNotFound),
// wrapped with the module or image they concern; match with errors.Is.
var (
	// ErrCreateOptions: a module's createOptions are not valid JSON or one of
	// the fields the process runtime reads (Cmd, Entrypoint, WorkingDir,
	// Healthcheck) is malformed. The wrapping error names the field.
	ErrCreateOptions = errors.New("invalid createOptions")

	// ErrName: a module name cannot be used as a file name ("", ".", "..",
	// or containing '/' or NUL). The deployment validator already accepts
	// only IoT Hub identity names, so the agent never triggers it except
	// with "." and "..".
	ErrName = errors.New("invalid module name")

	// ErrNotStopped: Remove was called on a running module; stop it first.
	ErrNotStopped = errors.New("module is running")

	// ErrStart: the module's process could not be started (executable
	// missing or not executable, working directory missing…). The module is
	// then exited with code 127 (not found) or 126 (any other reason), as
	// Docker reports such failures.
	ErrStart = errors.New("module failed to start")

	// ErrCorrupt: a module's state file cannot be read (bad JSON or an
	// unknown format version). The module is listed as agent.StateDead, so
	// the agent removes and recreates it.
	ErrCorrupt = errors.New("corrupt module state")

	// ErrRunning: Run was called while another call of Run is running.
	ErrRunning = errors.New("runtime already running")
)
