package perclient

import (
	"errors"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// Sentinel errors. Errors returned by this package wrap one of them, or one of the hub's
// and package upstream's sentinels (see offlineError, rejectedError); match with errors.Is.
var (
	// ErrConfig reports Options that cannot work: no IoT Hub host name, a hub connection
	// string that is not the edge hub's module identity with a key, an unreadable CA file.
	ErrConfig = errors.New("invalid per-client upstream configuration")

	// ErrNoSession reports, from Keys, an identity for which the link holds no usable token:
	// never authenticated upstream in this run, refused by IoT Hub, expired, or due for
	// renewal. The hub then calls Resolve with the token the client presents.
	ErrNoSession = errors.New("no upstream session for the identity")

	// ErrNoKeys reports, from Resolve, a client whose token the identity cache cannot
	// verify: the hub verifies every token against the cached keys after Resolve, so a
	// client without keys there would be refused anyway (see the package documentation,
	// "Authentication").
	ErrNoKeys = errors.New("the identity cache cannot verify the client's token")

	// ErrRefused reports a token IoT Hub refused (CONNACK 0x04 or 0x05): a bad or revoked
	// token, a disabled or deleted identity.
	ErrRefused = errors.New("IoT Hub refused the client's token")

	// ErrExpired reports an identity whose token expired while its client was away: its
	// connection stays closed until the client connects again with a fresh token.
	ErrExpired = errors.New("the client's token expired")
)

// offlineError reports that an identity's connection is down (or absent, or was lost before
// the answer came). It matches hub.ErrOffline, on which the $upstream pump waits for
// LinkState, and upstream.ErrOffline, on which the hub's twin relay falls back to its
// cache, so that one value serves both interfaces.
type offlineError struct {
	msg   string
	cause error // why, or nil
}

func (e *offlineError) Error() string {
	if e.cause == nil {
		return e.msg
	}
	return e.msg + ": " + e.cause.Error()
}

func (e *offlineError) Unwrap() []error {
	errs := []error{hub.ErrOffline, upstream.ErrOffline}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// rejectedError reports a message IoT Hub will never take (too large, no longer a known
// identity): it matches hub.ErrRejected, which dead-letters it, and upstream.ErrRejected.
type rejectedError struct{ err error }

func (e *rejectedError) Error() string { return e.err.Error() }
func (e *rejectedError) Unwrap() []error {
	return []error{hub.ErrRejected, upstream.ErrRejected, e.err}
}
