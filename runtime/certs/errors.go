package certs

import "errors"

// Sentinel errors.
var (
	// ErrNoNames reports options without any host name for the server certificate.
	ErrNoNames = errors.New("no host names for the server certificate")
	// ErrInvalidName reports a host name that cannot go into a certificate (empty, or
	// containing characters no DNS name or IP literal has).
	ErrInvalidName = errors.New("invalid host name")
	// ErrInvalidOptions reports other unusable options: no directory, a file name with a
	// path in it or used twice, a negative lifetime, or RenewBefore not shorter than both
	// lifetimes.
	ErrInvalidOptions = errors.New("invalid certificate options")
	// ErrNoCertificate reports a file given to Inspect that holds no PEM certificate.
	ErrNoCertificate = errors.New("no PEM certificate")
)

// errUnreadable marks a certificate or key file that exists but cannot be read. It is
// returned, never "repaired": replacing a CA because of a passing I/O error would cut off
// every client that trusts it.
var errUnreadable = errors.New("unreadable")
