package route

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by Parse, CompileCondition and Compile is an *Error
// (or, from Compile, several joined) that wraps exactly one of them; match with errors.Is.
var (
	// ErrSyntax reports text that does not follow the route grammar: an unexpected or
	// unknown token, an unterminated string, a missing parenthesis, an unsupported sink,
	// a malformed $body or twin_change_includes path.
	ErrSyntax = errors.New("syntax error")
	// ErrType reports a condition that parses but does not type-check: operands of the
	// wrong static type (`temperature > 30`), an unknown built-in function, or built-in
	// arguments of the wrong number or type. Azure rejects these at deployment time, and so
	// do we.
	ErrType = errors.New("type error")
	// ErrSpec reports a route Spec that is invalid apart from its text: an empty or
	// duplicate name, a priority outside 0..9 that is not DefaultPriority, a negative TTL.
	ErrSpec = errors.New("invalid route spec")
)

// Error describes one problem in a route or condition.
type Error struct {
	// Route is the route name ("" for CompileCondition).
	Route string
	// Pos is the 1-based byte position in the text passed to Parse or CompileCondition
	// (for a route, positions inside the WHERE clause count from the start of the
	// route); 0 when the problem has no position (spec errors).
	Pos int
	// Msg says what is wrong, e.g. "invalid operands to binary operator '>': string and number".
	Msg string
	// Err is ErrSyntax, ErrType or ErrSpec.
	Err error
}

// Error renders e as `route "r1" at 24: type error: invalid operands ...`.
func (e *Error) Error() string {
	subject := "condition"
	if e.Route != "" {
		subject = fmt.Sprintf("route %q", e.Route)
	}
	if e.Pos > 0 {
		return fmt.Sprintf("%s at %d: %v: %s", subject, e.Pos, e.Err, e.Msg)
	}
	return fmt.Sprintf("%s: %v: %s", subject, e.Err, e.Msg)
}

// Unwrap returns the sentinel (ErrSyntax, ErrType or ErrSpec).
func (e *Error) Unwrap() error { return e.Err }

// syntaxErr builds a syntax error at byte offset off (0-based).
func syntaxErr(off int, format string, args ...any) *Error {
	return &Error{Pos: off + 1, Msg: fmt.Sprintf(format, args...), Err: ErrSyntax}
}

// typeErr builds a type error at byte offset off (0-based).
func typeErr(off int, format string, args ...any) *Error {
	return &Error{Pos: off + 1, Msg: fmt.Sprintf(format, args...), Err: ErrType}
}
