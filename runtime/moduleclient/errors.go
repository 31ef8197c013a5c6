package moduleclient

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers match them with errors.Is; the wrapping message names the subject
// (host, identity, method, ...).
//
// The CONNACK refusals (ErrProtocolVersion ... ErrNotAuthorized) are what Connect returns when
// the hub answers the CONNECT with a non-zero return code. IoT Hub and edgeHub answer 0x05
// (ErrNotAuthorized) for every authentication or authorization failure (protocol notes 1.8).
// After the first connection the client keeps retrying with back-off whatever the refusal, and
// reports each failure through OnConnectionChange: a refusal may be transient (a hub restarting,
// a token racing a clock) and giving up would leave a module dead until restarted.
var (
	// ErrProtocolVersion is CONNACK 0x01 (unacceptable protocol version).
	ErrProtocolVersion = errors.New("connection refused: unacceptable protocol version")
	// ErrIdentifierRejected is CONNACK 0x02 (identifier rejected).
	ErrIdentifierRejected = errors.New("connection refused: identifier rejected")
	// ErrServerUnavailable is CONNACK 0x03 (server unavailable; IoT Hub may use it for a
	// disabled device or while throttling).
	ErrServerUnavailable = errors.New("connection refused: server unavailable")
	// ErrBadCredentials is CONNACK 0x04 (bad user name or password).
	ErrBadCredentials = errors.New("connection refused: bad user name or password")
	// ErrNotAuthorized is CONNACK 0x05 (not authorized): a bad or expired SAS token, an
	// unknown or disabled identity, a client id that does not match the token.
	ErrNotAuthorized = errors.New("connection refused: not authorized")
	// ErrRefused is any other non-zero CONNACK return code.
	ErrRefused = errors.New("connection refused")

	// ErrConnectionLost reports that the connection dropped; OnConnectionChange receives it
	// wrapped around the network error.
	ErrConnectionLost = errors.New("connection lost")
	// ErrNotConnected reports an operation on a client whose Connect has not succeeded yet.
	// Once connected, operations wait for a reconnection instead of failing with it.
	ErrNotConnected = errors.New("client not connected")
	// ErrClosed reports an operation on a closed client, or one interrupted by Close.
	ErrClosed = errors.New("client closed")
	// ErrTooLarge reports a message bigger than iothub.MaxMessageSize (256 KB, counted as
	// iothub.Message.Size does) or a topic longer than the MQTT limit. It is returned before
	// anything is sent.
	ErrTooLarge = errors.New("message too large")
	// ErrNotModule reports a module-only operation (SendOutput) on a device client.
	ErrNotModule = errors.New("operation needs a module identity")
	// ErrInvalidConfig reports a connection string or Options that cannot work (no device
	// id, a service string, an unreadable CA file, X.509 without a client certificate, ...).
	ErrInvalidConfig = errors.New("invalid client configuration")
	// ErrInvalidArgument reports a bad argument to a method, such as an empty output name.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrEnvironment reports that NewFromEnvironment found no usable configuration in the
	// environment; the message names the variables that are missing.
	ErrEnvironment = errors.New("edge module environment incomplete")
	// ErrUnsupported reports a configuration this SDK deliberately does not implement, such as
	// signing tokens through the IoT Edge workload API (IOTEDGE_WORKLOADURI).
	ErrUnsupported = errors.New("not supported")
	// ErrSubscriptionRefused reports a SUBACK that refused a filter (return code 0x80).
	ErrSubscriptionRefused = errors.New("subscription refused")
	// ErrProtocol reports a response from the hub that does not follow the dialect (an
	// unparsable twin document, for instance).
	ErrProtocol = errors.New("protocol error")
)

// StatusError is a twin request answered with an unexpected status: anything but 200 for a
// GET and anything but 2xx for a reported-properties patch. Body is the response body, which
// IoT Hub may fill with {"errorCode":...,"message":...}.
type StatusError struct {
	// Status is the status from $iothub/twin/res/{status}/.
	Status int
	// Body is the raw response body, possibly empty.
	Body []byte
}

// Error implements error.
func (e *StatusError) Error() string {
	if len(e.Body) == 0 {
		return fmt.Sprintf("twin request failed with status %d", e.Status)
	}
	const max = 200
	body := string(e.Body)
	if len(body) > max {
		body = body[:max] + "..."
	}
	return fmt.Sprintf("twin request failed with status %d: %s", e.Status, body)
}

// Retryable reports whether the request may succeed if repeated later: 429 (throttled) and
// 5xx answers are, 4xx validation failures are not.
func (e *StatusError) Retryable() bool {
	return e.Status == 429 || e.Status >= 500
}
