package main

import (
	"errors"
	"fmt"
)

// Exit codes, documented in the package comment, every command's help and
// docs/edgectl.md.
const (
	exitOK          = 0
	exitFailed      = 1 // the command ran and failed
	exitUsage       = 2 // bad flags or arguments
	exitTimeout     = 3 // deploy: the modules did not all run in time
	exitUnavailable = 4 // the agent is not running or cannot be reached
	// exitRefused: setup found the device set up with other settings and
	// --force was not given; nothing was written.
	exitRefused = 5
)

// exitHelp is the part of every command's help that lists the exit codes.
const exitHelp = `
Exit status: 0 success, 1 failure, 2 bad usage, 3 timeout (deploy),
4 the agent is not running or its socket cannot be used, 5 already set up
with other settings (setup; nothing written, use --force).`

// exitError carries a command's exit code and what to print on stderr.
type exitError struct {
	code int
	err  error // nil: print nothing (the command already printed)
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// failed wraps err with exit code 1.
func failed(err error) error { return &exitError{code: exitFailed, err: err} }

// usage wraps err with exit code 2.
func usage(err error) error { return &exitError{code: exitUsage, err: err} }

// silent returns an exit code with nothing more to print.
func silent(code int) error { return &exitError{code: code} }

// codeOf maps an error returned by a command to the exit code and the
// message to print ("" for none). Errors that are not *exitError come from
// cobra's own parsing: usage errors.
func codeOf(err error) (int, string) {
	if err == nil {
		return exitOK, ""
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err == nil {
			return ee.code, ""
		}
		return ee.code, ee.err.Error()
	}
	var ue *unavailableError
	if errors.As(err, &ue) {
		return exitUnavailable, ue.Error()
	}
	return exitUsage, err.Error() + "\nRun 'edgectl --help' for usage."
}
