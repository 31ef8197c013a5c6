package store

import "errors"

// Sentinel errors. Every error returned by this package wraps one of them (or is a
// context error from the caller's ctx), so callers branch with errors.Is.
var (
	// ErrClosed means the store is closed, or Run has returned, so nothing can be committed.
	ErrClosed = errors.New("store: closed")
	// ErrRunning means Run was called while another Run is active.
	ErrRunning = errors.New("store: already running")
	// ErrFull means the byte cap is reached under the RejectNew policy; nothing was stored.
	// The condition is transient: delivery, TTL expiry or DeleteQueue free space.
	ErrFull = errors.New("store: full")
	// ErrTooLarge means one message costs more than Options.MaxBytes (or more than bbolt can
	// hold in one value), so it can never be stored.
	ErrTooLarge = errors.New("store: message too large")
	// ErrDisk means a bbolt transaction failed (ENOSPC, EIO, ...). The transaction was rolled
	// back: nothing of it is visible, and the store stays usable once the cause is gone.
	// The underlying error is wrapped as well.
	ErrDisk = errors.New("store: disk error")
	// ErrSchema means the file's schema version is newer than this code knows.
	ErrSchema = errors.New("store: unknown schema version")
	// ErrCorrupt means a stored record does not have the layout documented in doc.go.
	ErrCorrupt = errors.New("store: corrupt record")
	// ErrInvalid means an argument or option is out of range; the message says which.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrNotFound means the named queue lane or item does not exist.
	ErrNotFound = errors.New("store: not found")
)
