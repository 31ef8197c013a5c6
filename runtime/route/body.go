package route

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// pathSeg is one step of a $body path: a member name followed by zero or more array indexes.
type pathSeg struct {
	name    string
	indexes []int // -1 marks an index too large to exist
}

// parsePath parses the part after "$body." following Azure's JsonPath.g4:
// segment { "." segment }, segment = name { "[" digits "]" }, where a name is one or more
// characters other than ()<>@,;:\"/[]?={}. and whitespace. (Azure's grammar allows one
// index per segment and silently ignores anything after it; we accept a[0][1] and mean it.)
// It returns a message on error.
func parsePath(s string) ([]pathSeg, string) {
	if s == "" {
		return nil, "the path is empty"
	}
	var segs []pathSeg
	for _, part := range strings.Split(s, ".") {
		name := part
		if i := strings.IndexByte(part, '['); i >= 0 {
			name = part[:i]
		}
		if name == "" {
			return nil, "empty member name in " + quoteText(s)
		}
		for i := 0; i < len(name); i++ {
			if !isPathNameChar(name[i]) {
				return nil, "character " + quoteText(name[i:i+1]) + " not allowed in a member name"
			}
		}
		seg := pathSeg{name: name}
		rest := part[len(name):]
		for rest != "" {
			end := strings.IndexByte(rest, ']')
			if rest[0] != '[' || end < 0 {
				return nil, "malformed index in " + quoteText(part)
			}
			num := rest[1:end]
			if num == "" || digits(num) != len(num) {
				return nil, "array index " + quoteText(num) + " is not a non-negative integer"
			}
			idx, err := strconv.Atoi(num)
			if err != nil || idx > 1<<31 {
				idx = -1
			}
			seg.indexes = append(seg.indexes, idx)
			rest = rest[end+1:]
		}
		segs = append(segs, seg)
	}
	return segs, ""
}

func isPathNameChar(c byte) bool { return c != '.' && isIDChar(c) }

func formatPath(path []pathSeg) string {
	var b strings.Builder
	for i, s := range path {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.name)
		for _, x := range s.indexes {
			b.WriteString("[" + strconv.Itoa(x) + "]")
		}
	}
	return b.String()
}

// decodeBody returns the message body as a JSON object, or false when $body queries
// must be Undefined for this message. As in Azure (Message.cs,
// MessageQueryValueProviderFactory.cs, Constants.cs):
//   - contentType must be exactly application/json, ignoring case (no parameters);
//   - contentEncoding must be utf-8, utf-16 or utf-32, ignoring case; utf-16 and utf-32
//     are little-endian unless a byte-order mark says otherwise (Azure: Encoding.Unicode
//     and Encoding.UTF32); a leading BOM is skipped;
//   - the body must be one JSON object (JObject.Parse).
//
// Unlike Newtonsoft, the JSON must be strict RFC 8259 (no comments, no single quotes).
func decodeBody(m *Message) (map[string]any, bool) {
	ct, ok := lookupFold(m.System, SysContentType)
	if !ok || !strings.EqualFold(ct, "application/json") {
		return nil, false
	}
	enc, ok := lookupFold(m.System, SysContentEncoding)
	if !ok {
		return nil, false
	}
	var text []byte
	switch strings.ToLower(enc) {
	case "utf-8":
		text = bytes.TrimPrefix(m.Body, []byte{0xEF, 0xBB, 0xBF})
	case "utf-16":
		text = decodeUTF16(m.Body)
	case "utf-32":
		text = decodeUTF32(m.Body)
	default:
		return nil, false
	}
	var v any
	if err := json.Unmarshal(text, &v); err != nil {
		return nil, false
	}
	obj, ok := v.(map[string]any)
	return obj, ok
}

func decodeUTF16(b []byte) []byte {
	bigEndian := false
	switch {
	case len(b) >= 2 && b[0] == 0xFF && b[1] == 0xFE:
		b = b[2:]
	case len(b) >= 2 && b[0] == 0xFE && b[1] == 0xFF:
		b, bigEndian = b[2:], true
	}
	units := make([]uint16, len(b)/2)
	for i := range units {
		if bigEndian {
			units[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		} else {
			units[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
		}
	}
	out := make([]byte, 0, len(units))
	for _, r := range utf16.Decode(units) {
		out = utf8.AppendRune(out, r)
	}
	return out
}

func decodeUTF32(b []byte) []byte {
	bigEndian := false
	switch {
	case len(b) >= 4 && b[0] == 0xFF && b[1] == 0xFE && b[2] == 0 && b[3] == 0:
		b = b[4:]
	case len(b) >= 4 && b[0] == 0 && b[1] == 0 && b[2] == 0xFE && b[3] == 0xFF:
		b, bigEndian = b[4:], true
	}
	out := make([]byte, 0, len(b)/4)
	for i := 0; i+4 <= len(b); i += 4 {
		var u uint32
		if bigEndian {
			u = uint32(b[i])<<24 | uint32(b[i+1])<<16 | uint32(b[i+2])<<8 | uint32(b[i+3])
		} else {
			u = uint32(b[i]) | uint32(b[i+1])<<8 | uint32(b[i+2])<<16 | uint32(b[i+3])<<24
		}
		r := rune(u)
		if u > utf8.MaxRune || !utf8.ValidRune(r) {
			r = utf8.RuneError
		}
		out = utf8.AppendRune(out, r)
	}
	return out
}

// lookupPath walks path through a decoded JSON object. Member names are case-sensitive
// (Newtonsoft SelectTokens). It returns the JSON value and whether it exists.
func lookupPath(root map[string]any, path []pathSeg) (any, bool) {
	var cur any = root
	for _, seg := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[seg.name]; !ok {
			return nil, false
		}
		for _, idx := range seg.indexes {
			arr, ok := cur.([]any)
			if !ok || idx < 0 || idx >= len(arr) {
				return nil, false
			}
			cur = arr[idx]
		}
	}
	return cur, true
}

// jsonValue converts a JSON leaf to a Value; objects and arrays are Undefined (BodyQuery.cs).
func jsonValue(v any) Value {
	switch x := v.(type) {
	case nil:
		return NullValue()
	case bool:
		return BoolValue(x)
	case float64:
		return NumberValue(x)
	case string:
		return StringValue(x)
	}
	return Value{}
}
