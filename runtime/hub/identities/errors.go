package identities

import "errors"

// Sentinel errors. Keys returns the first two wrapped with the identity, so the hub's
// authentication log line says why a client was refused.
var (
	// ErrNotFound reports an identity the cache does not hold.
	ErrNotFound = errors.New("identity not in cache")
	// ErrDisabled reports an identity whose registry status is disabled.
	ErrDisabled = errors.New("identity disabled")
	// ErrInvalid reports a record that cannot be stored: empty or malformed ids, or no key.
	ErrInvalid = errors.New("invalid identity record")
	// ErrVersion reports a cache file written by a schema version this package does not know.
	ErrVersion = errors.New("unsupported identity cache version")
	// ErrClosed reports a call on a closed cache.
	ErrClosed = errors.New("identity cache closed")
)
