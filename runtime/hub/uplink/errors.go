package uplink

import "errors"

// ErrNoKeys reports an identity IoT Hub knows without symmetric keys (an X.509 identity):
// the hub verifies SAS tokens only, so it cannot cache it.
var ErrNoKeys = errors.New("identity has no symmetric keys")
