package sas

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ClockSkew is how far past its expiry a token is still accepted, because
// device clocks drift. edgeHub uses the same 5 minutes (MaxClockSkew).
const ClockSkew = 5 * time.Minute

// scheme is the literal that starts every token; it is followed by one space.
const scheme = "SharedAccessSignature"

// Token is a parsed SAS token.
type Token struct {
	// Resource is sr exactly as transmitted: still URL-encoded, with the
	// original case of its %xx escapes, because that is what was signed.
	Resource string
	// Signature is sig, URL-decoded: the base64 text of the HMAC.
	Signature string
	// Expiry is se, in seconds since the Unix epoch (UTC).
	Expiry int64
	// KeyName is skn, URL-decoded: the shared access policy that signed the
	// token, or "" for a token signed with a device or module key.
	KeyName string
}

// Parse parses a token: the literal "SharedAccessSignature", one space, then
// k=v pairs joined by '&' in any order. Keys are case-insensitive; sr, sig and
// se are required and skn is optional. sr is kept verbatim, the other values
// are URL-decoded. Unknown or repeated keys are errors. An empty skn counts as
// absent (some C SDK versions send "&skn=" on device tokens). Errors wrap
// ErrMalformedToken and never contain the signature.
func Parse(s string) (Token, error) {
	rest, ok := strings.CutPrefix(s, scheme+" ")
	if !ok {
		return Token{}, malformed("does not start with %q and one space", scheme)
	}
	// Raw whitespace can only come from a broken client, and edgeHub splits
	// the token on whitespace, so a value with a space in it is refused there too.
	if i := strings.IndexFunc(rest, isSpace); i >= 0 {
		return Token{}, malformed("whitespace at offset %d after %q", len(scheme)+1+i, scheme+" ")
	}
	var (
		t    Token
		seen = map[string]bool{}
		se   string
	)
	for i, pair := range strings.Split(rest, "&") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return Token{}, malformed("field %d has no '='", i+1)
		}
		name := strings.ToLower(k)
		switch name {
		case "sr", "sig", "se", "skn":
		default:
			return Token{}, malformed("unknown field %q", k)
		}
		if seen[name] {
			return Token{}, malformed("duplicate field %q", name)
		}
		seen[name] = true
		if name == "sr" {
			t.Resource = v
			continue
		}
		dec, err := unescape(v)
		if err != nil {
			return Token{}, malformed("field %q: bad URL encoding", name)
		}
		switch name {
		case "sig":
			t.Signature = dec
		case "se":
			se = dec
		case "skn":
			t.KeyName = dec
		}
	}
	for _, name := range []string{"sr", "sig", "se"} {
		if !seen[name] {
			return Token{}, malformed("missing field %q", name)
		}
	}
	if t.Resource == "" {
		return Token{}, malformed("empty field %q", "sr")
	}
	if t.Signature == "" {
		return Token{}, malformed("empty field %q", "sig")
	}
	exp, err := parseExpiry(se)
	if err != nil {
		return Token{}, err
	}
	t.Expiry = exp
	return t, nil
}

// parseExpiry accepts only the canonical decimal form (digits, no sign, no
// leading zeros) because the signature covers se as text: a token stores se as
// a number, so the text must be recoverable from the number.
func parseExpiry(se string) (int64, error) {
	if se == "" {
		return 0, malformed("empty field %q", "se")
	}
	for _, r := range se {
		if r < '0' || r > '9' {
			return 0, malformed("field %q: not a non-negative integer", "se")
		}
	}
	if len(se) > 1 && se[0] == '0' {
		return 0, malformed("field %q: leading zero", "se")
	}
	n, err := strconv.ParseInt(se, 10, 64)
	if err != nil {
		return 0, malformed("field %q: out of range", "se")
	}
	return n, nil
}

// String renders t in the order Python uses: sr, sig, se, then skn if set.
// sr is written verbatim; sig and skn are URL-encoded.
func (t Token) String() string {
	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString(" sr=")
	b.WriteString(t.Resource)
	b.WriteString("&sig=")
	b.WriteString(escape(t.Signature))
	b.WriteString("&se=")
	b.WriteString(strconv.FormatInt(t.Expiry, 10))
	if t.KeyName != "" {
		b.WriteString("&skn=")
		b.WriteString(escape(t.KeyName))
	}
	return b.String()
}

// ExpiresAt returns se as a UTC time.
func (t Token) ExpiresAt() time.Time {
	return time.Unix(t.Expiry, 0).UTC()
}

// Expired reports whether the token is no longer accepted at now: only when
// se + ClockSkew < now, so a token is still good exactly ClockSkew after se.
func (t Token) Expired(now time.Time) bool {
	skew := int64(ClockSkew / time.Second)
	if t.Expiry > (1<<63-1)-skew {
		return false // far future; computed in integers to avoid overflow
	}
	limit := t.Expiry + skew
	sec := now.Unix()
	return sec > limit || (sec == limit && now.Nanosecond() > 0)
}

// Audience says whom a token was issued for.
type Audience struct {
	// Host is the IoT Hub (or edge) host name.
	Host string
	// DeviceID is "" for a hub-level (policy) token.
	DeviceID string
	// ModuleID is "" unless the token is for a module.
	ModuleID string
}

// Audience decodes the resource URI. It URL-decodes the whole sr and splits it
// on '/': "host" and "host/devices" are hub-level (policy) audiences,
// "host/devices/{d}" a device and "host/devices/{d}/modules/{m}" a module.
// Each id is URL-decoded a second time, because the C# SDK encodes ids before
// it encodes the whole URI. Decoding follows .NET's lenient WebUtility.UrlDecode
// (edgeHub's), except that '+' stays '+', as ids may contain it: an invalid %
// escape is kept as it is. Any other shape is ErrMalformedToken.
func (t Token) Audience() (Audience, error) {
	parts := strings.Split(lenientUnescape(t.Resource), "/")
	if parts[0] == "" {
		return Audience{}, malformed("audience: empty host")
	}
	a := Audience{Host: parts[0]}
	if len(parts) > 1 && !strings.EqualFold(parts[1], "devices") {
		return Audience{}, malformed("audience: second segment is not %q", "devices")
	}
	switch len(parts) {
	case 1, 2:
		return a, nil
	case 3:
	case 5:
		if !strings.EqualFold(parts[3], "modules") {
			return Audience{}, malformed("audience: fourth segment is not %q", "modules")
		}
		a.ModuleID = lenientUnescape(parts[4])
		if a.ModuleID == "" {
			return Audience{}, malformed("audience: empty module id")
		}
	default:
		return Audience{}, malformed("audience: %d segments, want 1, 2, 3 or 5", len(parts))
	}
	a.DeviceID = lenientUnescape(parts[2])
	if a.DeviceID == "" {
		return Audience{}, malformed("audience: empty device id")
	}
	return a, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedToken, fmt.Sprintf(format, args...))
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
}

// escape URL-encodes a value the way url.QueryEscape does (uppercase hex),
// except that a space becomes %20 rather than '+', so that unescape, which
// keeps '+' literal, reverses it. Base64 text never contains a space, so for
// signatures the output is identical to url.QueryEscape.
func escape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// unescape decodes %xx escapes and keeps '+' literal: '+' is a base64 digit,
// and clients that forget to encode sig send it raw.
func unescape(s string) (string, error) {
	return url.PathUnescape(s)
}

// lenientUnescape decodes %xx escapes, keeping '+' and any invalid escape as
// they are, like .NET's WebUtility.UrlDecode (which edgeHub uses) apart from '+'.
func lenientUnescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
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
