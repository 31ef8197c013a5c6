package hub

import "errors"

// Sentinel errors. Errors returned by this package wrap one of them (or a *deployment.Error
// from ApplyConfig); match with errors.Is.
var (
	// ErrNotAuthorized reports a CONNECT that failed authentication: bad client id or
	// username, no or bad SAS token, unknown or disabled identity. The client got CONNACK
	// 0x05. The wrapped error says which rule failed (never the token itself).
	ErrNotAuthorized = errors.New("not authorized")

	// ErrRefused reports a PUBLISH the hub refused: oversized, malformed topic or bag,
	// QoS 2, or not the sender's own topic. The connection is closed (see the package
	// documentation, "Refusals").
	ErrRefused = errors.New("publish refused")

	// ErrStoreUnavailable reports a PUBLISH that could not be stored: the store is full,
	// failed, or did not commit within Options.StoreTimeout. No PUBACK is sent and the
	// connection is closed, so the client resends after reconnecting.
	ErrStoreUnavailable = errors.New("store unavailable")

	// ErrNotConnected reports a module input delivery while the module is not connected,
	// or is connected but not subscribed to its inputs. The pump waits for it; this never
	// counts as a failed attempt.
	ErrNotConnected = errors.New("module not connected or not subscribed")

	// ErrNoAck reports a delivery the module did not acknowledge: no PUBACK within
	// Options.AckTimeout, or the connection closed first. The pump retries; after
	// Options.MaxDeliveryAttempts of these the message is dead-lettered.
	ErrNoAck = errors.New("delivery not acknowledged")

	// ErrRejected reports a message an endpoint will never accept, so the pump
	// dead-letters it instead of retrying: an Upstream wraps it when the cloud refused a
	// message for good (for example its identity was deleted; any other Send error is
	// retried), and the module pump when the input topic would exceed MQTT's topic limit.
	ErrRejected = errors.New("rejected upstream")

	// ErrOffline reports that the upstream link is down. An Upstream wraps it so that the
	// $upstream pump waits for the link to come back (PipelinedUpstream.LinkState) instead of
	// counting failed attempts; an IdentityResolver wraps it when it could not ask the cloud
	// about an identity it does not know (the client is refused).
	ErrOffline = errors.New("upstream link offline")

	// ErrCorrupt reports a stored message that cannot be decoded. The pump dead-letters it.
	ErrCorrupt = errors.New("corrupt stored message")

	// ErrConfig reports Options or Deps that cannot work (missing host name, no listener,
	// no store, ...).
	ErrConfig = errors.New("invalid hub configuration")

	// ErrRunning reports a call to Run after Run or Close, or to Close after Run.
	ErrRunning = errors.New("hub already running or closed")

	// ErrTimeout reports a direct method call the local client did not answer in time
	// (504 to the caller).
	ErrTimeout = errors.New("no answer in time")
)
