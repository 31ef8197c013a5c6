package upstream

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors. Callers match them with errors.Is; the wrapping message names the identity
// and the operation.
//
// Retrying: ErrOffline, ErrTimeout and ErrThrottled are transient (try again later, the
// message stays stored). Every error of Send that wraps ErrRejected is permanent for that
// message: IoT Hub will never take it (the identity was deleted, left the scope or is
// disabled, or the message is too large or names another sender), so the caller should
// dead-letter it rather than retry it forever. The hub's adapter maps ErrRejected onto
// hub.ErrRejected.
var (
	// ErrOffline reports that the link is down (or went down before the answer came): the
	// operation was not done, or may not have been. Requests never wait for a reconnection,
	// except across a planned token renewal.
	ErrOffline = errors.New("upstream link offline")
	// ErrTimeout reports a request IoT Hub did not answer within Options.RequestTimeout.
	ErrTimeout = errors.New("no answer from IoT Hub in time")
	// ErrUnauthorized is status 401: the credentials given to Authenticate do not verify.
	ErrUnauthorized = errors.New("not authorized")
	// ErrOutOfScope is status 403: the identity is not in the edge device's scope (neither a
	// module of the edge device nor a leaf device whose parent it is).
	ErrOutOfScope = errors.New("identity outside the edge device's scope")
	// ErrNotFound is status 404: the identity (or its twin) does not exist.
	ErrNotFound = errors.New("identity not found")
	// ErrThrottled is status 429: IoT Hub is throttling; retry later.
	ErrThrottled = errors.New("throttled")
	// ErrDisabled reports a message for an identity whose device is disabled (Send).
	ErrDisabled = errors.New("identity disabled")
	// ErrRejected marks a Send failure that is permanent for the message (see above).
	ErrRejected = errors.New("rejected upstream")
	// ErrTooLarge reports a message over iothub.MaxMessageSize (256 KB as iothub.Message.Size
	// counts) or a topic over the MQTT limit, or a method payload over 128 KB.
	ErrTooLarge = errors.New("too large")
	// ErrInvalidArgument reports an argument that cannot go on the wire: an empty or invalid
	// id, a C2D subscription for a module, a bad request id, $.cdid/$.cmid naming another
	// sender.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrInvalidConfig reports Options that cannot work (not a {edge}/$edgeHub module
	// connection string, no key, an unreadable CA file).
	ErrInvalidConfig = errors.New("invalid upstream configuration")
	// ErrConnectRefused reports a CONNACK with a non-zero return code (0x05 not authorized,
	// 0x03 server unavailable, ...). Run logs it and keeps retrying with back-off.
	ErrConnectRefused = errors.New("connection refused by IoT Hub")
	// ErrProtocol reports an answer that does not follow the extension (an unparsable
	// identity record, a refused subscription).
	ErrProtocol = errors.New("protocol error")
	// ErrRunning reports a second concurrent call to Run.
	ErrRunning = errors.New("upstream client already running")
)

// StatusError is an answer with a status the operation did not expect. It matches (errors.Is)
// ErrUnauthorized for 401, ErrOutOfScope for 403, ErrNotFound for 404 and ErrThrottled for
// 429, so callers can branch on the sentinel and still read the status and body with
// errors.As.
type StatusError struct {
	// Status is the status from the topic ".../res/{status}/".
	Status int
	// Body is the raw answer body, IoT Hub's {"errorCode":...,"message":...} for errors.
	Body []byte
}

// Error implements error.
func (e *StatusError) Error() string {
	const max = 200
	body := string(e.Body)
	if len(body) > max {
		body = body[:max] + "..."
	}
	s := fmt.Sprintf("IoT Hub answered %d", e.Status)
	if t := http.StatusText(e.Status); t != "" {
		s += " " + t
	}
	if body != "" {
		s += ": " + body
	}
	return s
}

// Is maps the status onto the package's sentinels.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrOutOfScope:
		return e.Status == http.StatusForbidden
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrThrottled:
		return e.Status == http.StatusTooManyRequests
	}
	return false
}

// Retryable reports whether the request may succeed if repeated later: 429 and 5xx.
func (e *StatusError) Retryable() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}
