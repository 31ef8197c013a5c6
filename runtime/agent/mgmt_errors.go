package agent

import "errors"

// Sentinel errors of the management API (ManagementServer). They sit here
// rather than in errors.go to keep the management API in files of its own.
var (
	// ErrModuleNotRunning: a restart was asked for a module that is not running
	// (RestartModule's rule: only running modules are restarted).
	ErrModuleNotRunning = errors.New("module is not running")
	// ErrSocketInUse: another process answers on the management socket.
	ErrSocketInUse = errors.New("management socket in use")
	// ErrBadRequest: a management API request the server cannot read (a bad
	// query parameter); the wrapping error names it.
	ErrBadRequest = errors.New("bad request")
)
