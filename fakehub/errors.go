package fakehub

import "errors"

// Sentinel errors returned by the Go API. The HTTP layer maps them onto status codes;
// callers match them with errors.Is (the wrapping message names the subject).
var (
	// ErrNotFound reports an unknown device, module or policy.
	ErrNotFound = errors.New("not found")
	// ErrConflict reports a create of an identity that already exists.
	ErrConflict = errors.New("already exists")
	// ErrPreconditionFailed reports an If-Match etag that does not match.
	ErrPreconditionFailed = errors.New("precondition failed")
	// ErrInvalid reports a request that is malformed or breaks a rule.
	ErrInvalid = errors.New("invalid request")
	// ErrTooLarge reports a message or payload over its limit.
	ErrTooLarge = errors.New("too large")
	// ErrQueueFull reports a device whose C2D queue already holds 50 messages.
	ErrQueueFull = errors.New("queue full")
	// ErrDeviceNotOnline reports a method target that is not connected and subscribed.
	ErrDeviceNotOnline = errors.New("device not online")
	// ErrTimeout reports a method the device did not answer in time.
	ErrTimeout = errors.New("timed out waiting for the device")
	// ErrThrottled reports a request refused because throttling is on (SetThrottle).
	ErrThrottled = errors.New("throttled")
)
