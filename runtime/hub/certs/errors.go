package certs

import "errors"

// Sentinel errors.
var (
	// ErrNoNames reports a call without any host name to put in the server certificate.
	ErrNoNames = errors.New("no host names for the server certificate")
	// ErrInvalidName reports a host name that cannot go into a certificate (empty after
	// trimming, or containing characters no DNS name or IP literal has).
	ErrInvalidName = errors.New("invalid host name")
)
