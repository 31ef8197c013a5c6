package mqttguard

import "errors"

var (
	// ErrNotConnect is returned by a guarded connection's Read when the first packet is
	// not a CONNECT.
	ErrNotConnect = errors.New("first MQTT packet is not a CONNECT")
	// ErrConnectTooLarge is returned when the CONNECT announces more than the gate allows,
	// or a malformed remaining length.
	ErrConnectTooLarge = errors.New("CONNECT remaining length too large")
)
