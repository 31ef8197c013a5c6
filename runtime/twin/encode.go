package twin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"unicode/utf8"
)

// DecodePatch decodes a patch or document body. It must be exactly one JSON
// object (surrounding whitespace allowed); anything else, including null,
// an array or trailing data, wraps ErrMalformed together with the JSON error.
// Numbers are decoded as json.Number so integers keep their exact text and
// Validate can tell them from floats.
//
// DecodePatch checks syntax only; call Validate for IoT Hub's limits.
func DecodePatch(data []byte) (map[string]any, error) {
	v, err := decodeValue(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	m, ok := v.(map[string]any)
	if !ok || m == nil {
		return nil, fmt.Errorf("%w: body is %s, not a JSON object", ErrMalformed, kindOf(v))
	}
	return m, nil
}

// decodeValue decodes exactly one JSON value with json.Number numbers.
func decodeValue(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	// A second Decode must hit a clean end of input: anything else is
	// trailing data ("{} {}", "{}x").
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("trailing data after the JSON value at offset %d", dec.InputOffset())
	}
	return v, nil
}

// kindOf names the JSON kind of a decoded value for error messages.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// Size returns the length in bytes of the compact UTF-8 JSON encoding of m,
// which is how edgeHub measures a twin section against its size limit
// (read-only "$version" and "$metadata" are not part of the maps this
// package keeps, so they never count). Strings are escaped minimally, as
// Newtonsoft.Json does, not HTML-escaped as encoding/json does. A nil map
// measures as "{}". For values Validate rejects as "type" the result is only
// approximate.
func Size(m map[string]any) int {
	var e encoder
	e.object(m, "", 0)
	return e.buf.Len()
}

// encode returns the compact JSON encoding of m with keys in byte order and,
// when withVersion is set, a trailing "$version" member.
func encode(m map[string]any, withVersion bool, version int64) []byte {
	var e encoder
	if withVersion {
		e.object(m, "$version", version)
	} else {
		e.object(m, "", 0)
	}
	return e.buf.Bytes()
}

// encoder writes compact, deterministic JSON: object keys sorted, no HTML
// escaping, no insignificant whitespace. It never fails, so Size and
// DeviceJSON need no error path; values that cannot be encoded become null
// (Validate rejects them before they reach a twin).
type encoder struct {
	buf bytes.Buffer
}

// object writes m. If versionKey is not empty it is appended as the last
// member with the value version, replacing any member of that name in m.
func (e *encoder) object(m map[string]any, versionKey string, version int64) {
	keys := make([]string, 0, len(m))
	for k := range m {
		if versionKey != "" && k == versionKey {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			e.buf.WriteByte(',')
		}
		e.string(k)
		e.buf.WriteByte(':')
		e.value(m[k])
	}
	if versionKey != "" {
		if len(keys) > 0 {
			e.buf.WriteByte(',')
		}
		e.string(versionKey)
		e.buf.WriteByte(':')
		e.buf.WriteString(strconv.FormatInt(version, 10))
	}
	e.buf.WriteByte('}')
}

func (e *encoder) value(v any) {
	switch x := v.(type) {
	case nil:
		e.buf.WriteString("null")
	case map[string]any:
		e.object(x, "", 0)
	case []any:
		e.buf.WriteByte('[')
		for i, el := range x {
			if i > 0 {
				e.buf.WriteByte(',')
			}
			e.value(el)
		}
		e.buf.WriteByte(']')
	case string:
		e.string(x)
	case bool:
		if x {
			e.buf.WriteString("true")
		} else {
			e.buf.WriteString("false")
		}
	default:
		if text, ok := numberText(v); ok {
			e.buf.WriteString(text)
			return
		}
		// Unsupported type: fall back to encoding/json; what cannot be
		// encoded at all is written as null.
		b, err := json.Marshal(v)
		if err != nil {
			e.buf.WriteString("null")
			return
		}
		e.buf.Write(b)
	}
}

const hexDigits = "0123456789abcdef"

// string writes s as a JSON string, escaping only what JSON requires
// (quote, backslash, control characters). Invalid UTF-8 becomes \ufffd, as
// in encoding/json.
func (e *encoder) string(s string) {
	e.buf.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			e.buf.WriteString(s[start:i])
			switch c {
			case '"', '\\':
				e.buf.WriteByte('\\')
				e.buf.WriteByte(c)
			case '\n':
				e.buf.WriteString(`\n`)
			case '\r':
				e.buf.WriteString(`\r`)
			case '\t':
				e.buf.WriteString(`\t`)
			case '\b':
				e.buf.WriteString(`\b`)
			case '\f':
				e.buf.WriteString(`\f`)
			default:
				e.buf.WriteString(`\u00`)
				e.buf.WriteByte(hexDigits[c>>4])
				e.buf.WriteByte(hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			e.buf.WriteString(s[start:i])
			e.buf.WriteString(`\ufffd`)
			i += size
			start = i
			continue
		}
		i += size
	}
	e.buf.WriteString(s[start:])
	e.buf.WriteByte('"')
}

// numberText returns the JSON text of a Go number (as encoding/json writes
// it) and whether v is a number that JSON can represent. A json.Number is
// returned verbatim if it is a valid JSON number.
func numberText(v any) (string, bool) {
	switch x := v.(type) {
	case json.Number:
		if !validNumber(string(x)) {
			return "", false
		}
		return string(x), true
	case int:
		return strconv.FormatInt(int64(x), 10), true
	case int8:
		return strconv.FormatInt(int64(x), 10), true
	case int16:
		return strconv.FormatInt(int64(x), 10), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case uint:
		return strconv.FormatUint(uint64(x), 10), true
	case uint8:
		return strconv.FormatUint(uint64(x), 10), true
	case uint16:
		return strconv.FormatUint(uint64(x), 10), true
	case uint32:
		return strconv.FormatUint(uint64(x), 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case uintptr:
		return strconv.FormatUint(uint64(x), 10), true
	case float32, float64:
		// encoding/json's float formatting (shortest repr, exponent only
		// for very large or small values) decides whether the wire sees an
		// integer, so reuse it; NaN and infinities fail.
		b, err := json.Marshal(x)
		if err != nil {
			return "", false
		}
		return string(b), true
	}
	return "", false
}

// validNumber reports whether s matches the JSON number grammar
// (RFC 8259 §6): -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return i == len(s)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isIntegerText reports whether a valid JSON number text is an integer
// literal (no fraction, no exponent), which is how IoT Hub and
// Newtonsoft.Json classify it.
func isIntegerText(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '.', 'e', 'E':
			return false
		}
	}
	return true
}
