package twincache

import "errors"

// Sentinel errors; match with errors.Is. Limit breaches of a reported patch come back as a
// *twin.LimitError (errors.Is twin.ErrLimit).
var (
	// ErrVersion reports a file written by a schema version this package does not know.
	ErrVersion = errors.New("unsupported twin cache version")
	// ErrClosed reports a call on a closed cache.
	ErrClosed = errors.New("twin cache closed")
	// ErrFull reports a reported patch refused because MaxPending patches of the identity
	// are already waiting for IoT Hub.
	ErrFull = errors.New("too many pending reported patches")
	// ErrCorrupt reports a record that cannot be decoded.
	ErrCorrupt = errors.New("corrupt twin cache record")
)
