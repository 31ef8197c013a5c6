package iothub

import "errors"

// ErrMalformedBody means a body of the on-behalf-of extension (obo_body.go) cannot be
// decoded or breaks a rule of its shape. It lives here rather than in errors.go because the
// extension is self-contained in the obo*.go files.
var ErrMalformedBody = errors.New("malformed extension body")
