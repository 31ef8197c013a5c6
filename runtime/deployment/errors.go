package deployment

import (
	"errors"
	"unicode/utf8"
)

// Status codes reported in lastDesiredStatus.code (Azure's DeploymentStatusCode).
const (
	CodeOK            = 200 // the deployment was applied
	CodeInvalid       = 400 // the configuration is malformed
	CodeNotRunning    = 406 // the agent is not connected yet, or shutting down
	CodeSchemaVersion = 412 // the $edgeAgent schemaVersion is missing or unsupported
	CodeEmpty         = 417 // no deployment has been set
	CodeFailed        = 500 // applying the deployment failed
)

// Sentinels: every *Error unwraps to the one matching its Code, so callers can
// test categories with errors.Is while the *Error carries the details.
var (
	ErrInvalid       = errors.New("configuration format is invalid")
	ErrNotRunning    = errors.New("Agent is not running") //nolint:staticcheck // Azure's exact wording, shown in lastDesiredStatus
	ErrSchemaVersion = errors.New("unsupported schema version")
	ErrEmpty         = errors.New("This device has an empty configuration for the edge agent. Please set a deployment manifest.") //nolint:staticcheck // Azure's exact wording
)

// Error is a rejected configuration: the lastDesiredStatus code and a
// description naming the offending field. Reasons never quote registry
// passwords.
type Error struct {
	Code   int
	Field  string // JSON path, e.g. "modules.tempSensor.settings.image"; "" for the whole document
	Reason string
}

// Error returns "field: reason", or just the reason for the whole document.
func (e *Error) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Unwrap returns the sentinel for e.Code (nil for codes without one).
func (e *Error) Unwrap() error {
	switch e.Code {
	case CodeInvalid:
		return ErrInvalid
	case CodeNotRunning:
		return ErrNotRunning
	case CodeSchemaVersion:
		return ErrSchemaVersion
	case CodeEmpty:
		return ErrEmpty
	}
	return nil
}

// withPrefix returns a copy of e whose Field is nested under prefix.
func (e *Error) withPrefix(prefix path) *Error {
	c := *e
	full := prefix.String()
	switch {
	case e.Field == "":
		c.Field = full
	case e.Field[0] == '[':
		c.Field = full + e.Field
	default:
		c.Field = full + "." + e.Field
	}
	return &c
}

// StatusCode maps err to a lastDesiredStatus code: nil is 200, an *Error (found
// with errors.As) gives its Code, a bare sentinel gives its code, anything
// else (plan execution failures) is 500.
func StatusCode(err error) int {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	switch {
	case errors.Is(err, ErrInvalid):
		return CodeInvalid
	case errors.Is(err, ErrNotRunning):
		return CodeNotRunning
	case errors.Is(err, ErrSchemaVersion):
		return CodeSchemaVersion
	case errors.Is(err, ErrEmpty):
		return CodeEmpty
	}
	return CodeFailed
}

// maxDescription caps lastDesiredStatus.description so that one long error
// cannot push the reported properties past the twin size limits.
const maxDescription = 512

// Description returns the text for lastDesiredStatus.description ("" for nil).
// Errors from this package never contain registry passwords; for other errors
// (for example a failed pull) use AgentConfig.RedactText on the result when
// the message may echo configuration.
func Description(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	s := err.Error()
	if errors.As(err, &e) {
		s = e.Error()
	}
	if utf8.RuneCountInString(s) > maxDescription {
		r := []rune(s)
		s = string(r[:maxDescription-1]) + "…"
	}
	return s
}
