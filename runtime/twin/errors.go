package twin

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Sentinel errors. Callers branch on them with errors.Is.
var (
	// ErrMalformed means a patch body is not a single JSON object.
	ErrMalformed = errors.New("malformed twin patch")
	// ErrLimit means a document or patch breaks one of IoT Hub's twin limits.
	// Every *LimitError unwraps to it.
	ErrLimit = errors.New("twin limit exceeded")
	// ErrSection means a Section value is none of Desired, Reported, Tags.
	ErrSection = errors.New("unknown twin section")
)

// Limit names used in LimitError.Limit.
const (
	LimitSize          = "size"
	LimitDepth         = "depth"
	LimitKeyLength     = "key-length"
	LimitKeyCharacters = "key-characters"
	LimitStringLength  = "string-length"
	LimitIntegerRange  = "integer-range"
	LimitNullInArray   = "null-in-array"
	LimitType          = "type"
)

// LimitError says which IoT Hub limit a document or patch breaks.
type LimitError struct {
	Section Section
	// Limit is one of "size", "depth", "key-length", "key-characters",
	// "string-length", "integer-range", "null-in-array", "type".
	Limit string
	// Path is the dotted path of the offending property, with array
	// elements as "[i]" (for example "a.b[2].c"); "" for the whole section.
	Path string
	// Detail is a human-readable sentence naming the property and the limit.
	Detail string
}

// Error returns "section: limit: detail", e.g.
// `reported: depth: property "a.b.c.d.e.f.g.h.i.j.k" is nested 11 levels deep, maximum is 10`.
func (e *LimitError) Error() string {
	detail := e.Detail
	if detail == "" {
		if e.Path == "" {
			detail = "section exceeds the limit"
		} else {
			detail = "property " + quotePath(e.Path) + " exceeds the limit"
		}
	}
	return e.Section.String() + ": " + e.Limit + ": " + detail
}

// Unwrap returns ErrLimit.
func (e *LimitError) Unwrap() error { return ErrLimit }

// maxQuotedPath bounds how much of a path goes into an error message: a
// 1025-byte key would otherwise drown the message.
const maxQuotedPath = 80

// quotePath quotes p for an error message, cutting it (on a rune boundary) if it is long.
func quotePath(p string) string {
	if len(p) <= maxQuotedPath {
		return strconv.Quote(p)
	}
	cut := maxQuotedPath
	for cut > 0 && !utf8.RuneStart(p[cut]) {
		cut--
	}
	return strconv.Quote(p[:cut]) + fmt.Sprintf("... (%d bytes)", len(p))
}
