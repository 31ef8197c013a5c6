package modulemain

import "errors"

// ErrConfig marks every configuration error: a missing or malformed environment variable.
// Modules exit with ExitConfig when an error wraps it.
var ErrConfig = errors.New("bad configuration")
