package route

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind is the runtime kind of a Value.
type Kind uint8

// Value kinds. Object and array body results have no kind of their own: as in Azure
// (BodyQuery.cs), a $body query that lands on an object or array is Undefined.
const (
	KindUndefined Kind = iota
	KindNull
	KindBool
	KindNumber
	KindString
)

var kindNames = [...]string{"undefined", "null", "bool", "number", "string"}

// String returns "undefined", "null", "bool", "number" or "string".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is the result of evaluating a condition or sub-expression. The zero Value is
// Undefined. Values are comparable with ==; a number is never NaN (NaN results are
// Undefined, as Azure represents undefined numbers by NaN).
type Value struct {
	kind Kind
	b    bool
	n    float64
	s    string
}

// NullValue returns null.
func NullValue() Value { return Value{kind: KindNull} }

// BoolValue returns b as a Value.
func BoolValue(b bool) Value { return Value{kind: KindBool, b: b} }

// NumberValue returns f as a Value; NaN becomes Undefined.
func NumberValue(f float64) Value {
	if math.IsNaN(f) {
		return Value{}
	}
	return Value{kind: KindNumber, n: f}
}

// StringValue returns s as a Value.
func StringValue(s string) Value { return Value{kind: KindString, s: s} }

// Kind reports the kind of v.
func (v Value) Kind() Kind { return v.kind }

// AsBool returns the boolean and true if v is a Bool.
func (v Value) AsBool() (bool, bool) { return v.b, v.kind == KindBool }

// AsNumber returns the number and true if v is a Number.
func (v Value) AsNumber() (float64, bool) { return v.n, v.kind == KindNumber }

// AsString returns the string and true if v is a String.
func (v Value) AsString() (string, bool) { return v.s, v.kind == KindString }

// IsTrue reports whether v is the boolean true: the only value that makes a route match.
// Undefined, null, false and non-booleans all route as false (Azure Bool.cs).
func (v Value) IsTrue() bool { return v.kind == KindBool && v.b }

// String renders v in condition-literal syntax: undefined, null, true, false, numbers in
// shortest form (30, 2.5, 1e+21, +Inf), strings double-quoted with \" \\ and \uXXXX escapes.
func (v Value) String() string {
	switch v.kind {
	case KindNull:
		return "null"
	case KindBool:
		return strconv.FormatBool(v.b)
	case KindNumber:
		return strconv.FormatFloat(v.n, 'g', -1, 64)
	case KindString:
		return quoteString(v.s)
	}
	return "undefined"
}

// quoteString quotes s so that the condition lexer reads it back as the same string.
func quoteString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\ufffd`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&0xf])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	b.WriteByte('"')
	return b.String()
}
