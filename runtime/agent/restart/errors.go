package restart

import "errors"

// ErrUnknownKind is returned by ParseKind for a restart policy name that is
// not never, on-failure, on-unhealthy or always.
var ErrUnknownKind = errors.New("unknown restart policy")
