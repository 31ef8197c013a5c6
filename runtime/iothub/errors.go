package iothub

import "errors"

// Sentinel errors. Every error returned by this package wraps exactly one of them (a topic
// whose property bag is malformed wraps both ErrMalformedTopic and ErrMalformedBag), so
// callers can branch with errors.Is.
var (
	// ErrUnknownTopic means no topic or filter template of the dialect matches.
	ErrUnknownTopic = errors.New("unknown topic")
	// ErrMalformedTopic means a template matches but one of its parts is invalid
	// (empty id, missing $rid, non-integer status or version, bad property bag, ...).
	ErrMalformedTopic = errors.New("malformed topic")
	// ErrMalformedBag means a property bag cannot be decoded.
	ErrMalformedBag = errors.New("malformed property bag")
	// ErrMalformedUsername means a CONNECT username does not follow the IoT Hub form.
	ErrMalformedUsername = errors.New("malformed username")
	// ErrMalformedClientID means a CONNECT client identifier is neither "{d}" nor "{d}/{m}".
	ErrMalformedClientID = errors.New("malformed client id")
	// ErrInvalidID means a device id, module id, method name or request id breaks the rules.
	ErrInvalidID = errors.New("invalid identifier")
)
