package main

import "errors"

// Sentinel errors of the lifecycle commands.
var (
	// errNotSetUp says that the data directory has no setup file: edgectl
	// setup has not run there.
	errNotSetUp = errors.New("not set up")
	// errCancelled says the operator did not confirm uninstall.
	errCancelled = errors.New("cancelled: nothing was changed")
)
