package deployment

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The desired documents are read into a small ordered tree rather than into
// structs: validation needs the JSON type of every field (to name it in the
// error), member order and duplicates (for routes), and case-insensitive keys
// (Newtonsoft, which the Azure runtime uses, matches property names that way).

type kind int

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindObject
	kindArray
)

func (k kind) String() string {
	switch k {
	case kindNull:
		return "null"
	case kindBool:
		return "boolean"
	case kindNumber:
		return "number"
	case kindString:
		return "string"
	case kindObject:
		return "object"
	default:
		return "array"
	}
}

// maxDepth bounds nesting so that a hostile document cannot exhaust the stack.
const maxDepth = 512

type value struct {
	kind    kind
	str     string // string value, or the literal text of a number
	b       bool
	members []member // object members in document order, duplicates kept
	elems   []*value
}

type member struct {
	key string
	val *value
}

// parseDocument parses data as exactly one JSON value.
func parseDocument(data []byte) (*value, *Error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, syntaxError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("unexpected data after the top-level value")
		}
		return nil, syntaxError(err)
	}
	return v, nil
}

func syntaxError(err error) *Error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &Error{Code: CodeInvalid, Reason: fmt.Sprintf("invalid JSON at offset %d: %v", se.Offset, se)}
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &Error{Code: CodeInvalid, Reason: "invalid JSON: unexpected end of input"}
	}
	return &Error{Code: CodeInvalid, Reason: "invalid JSON: " + err.Error()}
}

func decodeValue(dec *json.Decoder, depth int) (*value, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case nil:
		return &value{kind: kindNull}, nil
	case bool:
		return &value{kind: kindBool, b: t}, nil
	case json.Number:
		return &value{kind: kindNumber, str: t.String()}, nil
	case string:
		return &value{kind: kindString, str: t}, nil
	case json.Delim:
		if depth >= maxDepth {
			return nil, fmt.Errorf("nesting deeper than %d levels", maxDepth)
		}
		switch t {
		case '{':
			v := &value{kind: kindObject}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := kt.(string)
				if !ok {
					return nil, errors.New("object key is not a string")
				}
				mv, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				v.members = append(v.members, member{key: key, val: mv})
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, err
			}
			return v, nil
		case '[':
			v := &value{kind: kindArray}
			for dec.More() {
				ev, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				v.elems = append(v.elems, ev)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, err
			}
			return v, nil
		}
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

// get returns the member named key: the last exact match, else the last
// case-insensitive match, else nil. Last-wins matches both Newtonsoft and
// encoding/json on duplicate keys.
func (v *value) get(key string) *value {
	if v == nil || v.kind != kindObject {
		return nil
	}
	var fold *value
	for i := len(v.members) - 1; i >= 0; i-- {
		m := v.members[i]
		if m.key == key {
			return m.val
		}
		if fold == nil && strings.EqualFold(m.key, key) {
			fold = m.val
		}
	}
	return fold
}

// present reports whether v holds a non-null value.
func (v *value) present() bool { return v != nil && v.kind != kindNull }

// text renders v back to compact JSON.
func (v *value) text() string {
	var b strings.Builder
	v.write(&b)
	return b.String()
}

func (v *value) write(b *strings.Builder) {
	switch v.kind {
	case kindNull:
		b.WriteString("null")
	case kindBool:
		b.WriteString(strconv.FormatBool(v.b))
	case kindNumber:
		b.WriteString(v.str)
	case kindString:
		enc, _ := json.Marshal(v.str)
		b.Write(enc)
	case kindObject:
		b.WriteByte('{')
		for i, m := range v.members {
			if i > 0 {
				b.WriteByte(',')
			}
			enc, _ := json.Marshal(m.key)
			b.Write(enc)
			b.WriteByte(':')
			m.val.write(b)
		}
		b.WriteByte('}')
	case kindArray:
		b.WriteByte('[')
		for i, e := range v.elems {
			if i > 0 {
				b.WriteByte(',')
			}
			e.write(b)
		}
		b.WriteByte(']')
	}
}

// path is a JSON path, one element per object key.
type path []string

func (p path) child(key string) path {
	c := make(path, len(p), len(p)+1)
	copy(c, p)
	return append(c, key)
}

// String renders the path with dots, quoting keys that would be ambiguous
// (dots, brackets, quotes, spaces, empty), e.g. modules["my.module"].status.
func (p path) String() string {
	var b strings.Builder
	for i, k := range p {
		if k == "" || strings.ContainsAny(k, ".[]\" \t\r\n") {
			b.WriteString("[")
			b.WriteString(strconv.Quote(k))
			b.WriteString("]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(k)
	}
	return b.String()
}

func invalidf(p path, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: p.String(), Reason: fmt.Sprintf(format, args...)}
}

// quoteValue quotes a user-supplied value for a reason text, shortened so a
// description stays readable and within twin value limits.
func quoteValue(s string) string {
	const max = 64
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = string(r[:max]) + "…"
	}
	return strconv.Quote(s)
}

func wrongType(p path, want string, got *value) *Error {
	k := kindNull
	if got != nil {
		k = got.kind
	}
	return invalidf(p, "must be %s (got %s)", want, k)
}

// objectAt returns v as an object; absent or null gives (nil, nil).
func objectAt(v *value, p path) (*value, *Error) {
	if !v.present() {
		return nil, nil
	}
	if v.kind != kindObject {
		return nil, wrongType(p, "an object", v)
	}
	return v, nil
}

// requiredObject is objectAt for a field that must be present.
func requiredObject(v *value, p path) (*value, *Error) {
	if !v.present() {
		return nil, invalidf(p, "required")
	}
	return objectAt(v, p)
}

// stringAt returns v as a string; absent or null gives ("", false, nil).
func stringAt(v *value, p path) (string, bool, *Error) {
	if !v.present() {
		return "", false, nil
	}
	if v.kind != kindString {
		return "", false, wrongType(p, "a string", v)
	}
	return v.str, true, nil
}

// requiredString is stringAt for a field that must be a non-blank string.
func requiredString(v *value, p path) (string, *Error) {
	s, ok, err := stringAt(v, p)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", invalidf(p, "required")
	}
	if strings.TrimSpace(s) == "" {
		return "", invalidf(p, "must not be empty")
	}
	return s, nil
}

// integerAt parses v as an integer in [min, max]. Integral values written with
// a fraction or exponent ("1.0", "1e3") are accepted, as Newtonsoft does.
func integerAt(v *value, p path, min, max int64) (int64, *Error) {
	if v == nil || v.kind != kindNumber {
		return 0, wrongType(p, "an integer", v)
	}
	n, err := strconv.ParseInt(v.str, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(v.str, 64)
		const exact = 1 << 53
		if ferr != nil || f != math.Trunc(f) || f < -exact || f > exact {
			return 0, invalidf(p, "must be an integer between %d and %d (got %s)", min, max, quoteValue(v.str))
		}
		n = int64(f)
	}
	if n < min || n > max {
		return 0, invalidf(p, "must be an integer between %d and %d (got %s)", min, max, v.str)
	}
	return n, nil
}

// enumAt matches a string against allowed values case-insensitively, as
// Newtonsoft's StringEnumConverter does, and returns the canonical spelling.
func enumAt(v *value, p path, allowed []string) (string, *Error) {
	if !v.present() {
		return "", invalidf(p, "must be one of %s (got null)", strings.Join(allowed, ", "))
	}
	s, _, err := stringAt(v, p)
	if err != nil {
		return "", err
	}
	for _, a := range allowed {
		if strings.EqualFold(s, a) {
			return a, nil
		}
	}
	return "", invalidf(p, "must be one of %s (got %s)", strings.Join(allowed, ", "), quoteValue(s))
}

// versionField reads the "$version" twin metadata (0 when absent).
func versionField(root *value) (int64, *Error) {
	v := root.get("$version")
	if !v.present() {
		return 0, nil
	}
	return integerAt(v, path{"$version"}, math.MinInt64, math.MaxInt64)
}
