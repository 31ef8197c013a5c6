package iothub

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Property is one entry of a property bag (section 2.2).
type Property struct {
	Key   string
	Value string
	// Null marks a key sent without '=' ("key"), which IoT Hub reads as a null value, as
	// opposed to "key=" (the empty string). Value is ignored when Null is set.
	Null bool
}

// Bag is a property bag: the "k1=v1&k2=v2" tail of telemetry, C2D and module input topics.
// Order and duplicates are preserved as received; a nil Bag is the empty bag.
type Bag []Property

// ParseBag decodes a property bag tolerantly, the way IoT Hub does (section 2.2):
//
//   - one leading '?' and one trailing '/' are stripped; "" is the empty (nil) bag;
//   - the rest is split on '&', then each item on its first '=';
//   - keys and values are percent-decoded with '+' kept literal, and a '%' not followed by
//     two hex digits is kept literally (the C SDK sends raw values);
//   - raw '/' is fine, so "%24.ct=application/json" decodes to "$.ct"="application/json";
//   - an item without '=' is a null value; empty items ("a=1&&b=2") are skipped.
//
// It fails, wrapping ErrMalformedBag, on an empty key with a value ("=v") and on input longer
// than MaxTopicLength.
func ParseBag(s string) (Bag, error) {
	if len(s) > MaxTopicLength {
		return nil, fmt.Errorf("%w: %d bytes, longer than the %d-byte topic limit", ErrMalformedBag, len(s), MaxTopicLength)
	}
	s = strings.TrimPrefix(s, "?")
	s = strings.TrimSuffix(s, "/")
	if s == "" {
		return nil, nil
	}
	var b Bag
	for item := range strings.SplitSeq(s, "&") {
		if item == "" {
			continue
		}
		rawKey, rawValue, hasValue := strings.Cut(item, "=")
		if rawKey == "" {
			return nil, fmt.Errorf("%w: item %q has an empty key", ErrMalformedBag, truncate(item))
		}
		p := Property{Key: percentDecode(rawKey), Null: !hasValue}
		if hasValue {
			p.Value = percentDecode(rawValue)
		}
		b = append(b, p)
	}
	return b, nil
}

// Encode returns the canonical wire form of the bag: items joined with '&', and every byte of
// keys and values outside A-Z a-z 0-9 - . _ ~ written as %XX with uppercase hex. So '$' is
// %24, and '/', '=', '&', '?', '+' and space are always escaped, which is what the positional
// SDK parsers need (section 3, emit rule 3). A Null property is written as its key alone, an
// empty value as "key=".
func (b Bag) Encode() string {
	var sb strings.Builder
	for i, p := range b {
		if i > 0 {
			sb.WriteByte('&')
		}
		percentEncode(&sb, p.Key)
		if !p.Null {
			sb.WriteByte('=')
			percentEncode(&sb, p.Value)
		}
	}
	return sb.String()
}

// Get returns the value of the first property named key. A Null property returns ("", true).
func (b Bag) Get(key string) (string, bool) {
	for _, p := range b {
		if p.Key == key {
			if p.Null {
				return "", true
			}
			return p.Value, true
		}
	}
	return "", false
}

// Set replaces the first property named key (clearing Null) or appends a new one.
func (b *Bag) Set(key, value string) {
	for i := range *b {
		if (*b)[i].Key == key {
			(*b)[i] = Property{Key: key, Value: value}
			return
		}
	}
	*b = append(*b, Property{Key: key, Value: value})
}

// Del removes every property named key.
func (b *Bag) Del(key string) {
	out := (*b)[:0]
	for _, p := range *b {
		if p.Key != key {
			out = append(out, p)
		}
	}
	clear((*b)[len(out):])
	*b = out
}

// Equal reports whether two bags hold the same properties in the same order. Nil and empty
// bags are equal, and the Value of Null properties is ignored.
func (b Bag) Equal(o Bag) bool {
	if len(b) != len(o) {
		return false
	}
	for i := range b {
		x, y := b[i], o[i]
		if x.Key != y.Key || x.Null != y.Null || (!x.Null && x.Value != y.Value) {
			return false
		}
	}
	return true
}

// percentDecode decodes %XX escapes. Unlike net/url it never fails: '+' stays '+', and a '%'
// that does not start a valid escape is kept as is, because the C SDK sends raw values such as
// "100%".
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return string(out)
}

// percentEncode writes s with every byte outside the RFC 3986 unreserved set escaped.
func percentEncode(sb *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hex[c>>4])
		sb.WriteByte(hex[c&0x0f])
	}
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// maxQuoted bounds how much of an offending input an error message repeats.
const maxQuoted = 200

// truncate shortens s for error messages so that a 64 KB topic does not end up in a log line.
// It cuts at a rune boundary when it can; %q may still expand each kept byte to 4 characters.
func truncate(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	n := maxQuoted
	for n > maxQuoted-utf8.UTFMax && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
