package sas

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func FuzzParse(f *testing.F) {
	for _, s := range readInputs(f, "tokens.txt") {
		f.Add(s)
	}
	for _, s := range []string{tokDev1, tokFilter, tokOwner, tokLower, tokDouble, tokDev1K2,
		"SharedAccessSignature sr=h&sig=%20&se=1&skn=a%2Bb+c", "SharedAccessSignature sr=%&sig=x&se=9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err != nil {
			// Documented: every error wraps ErrMalformedToken and never shows the signature.
			if !errors.Is(err, ErrMalformedToken) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrMalformedToken", s, err)
			}
			if sig, ok := tokenField(s, "sig"); ok && leaksSecret(s, err, sig) {
				t.Fatalf("Parse(%q): error %q shows the signature", s, err)
			}
			return
		}
		out := tok.String()
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but Parse(String() = %q): %v", s, out, err)
		}
		if back != tok {
			t.Fatalf("Parse(String()) = %+v, want %+v", back, tok)
		}
		if again := back.String(); again != out {
			t.Fatalf("String not stable: %q then %q", out, again)
		}
		// The rest must not panic, whatever the token holds.
		if a, err := tok.Audience(); err == nil && a.Host == "" {
			t.Fatalf("Audience of %q has an empty host", tok.Resource)
		} else if err != nil && !errors.Is(err, ErrMalformedToken) {
			t.Fatalf("Audience of %q: error %v does not wrap ErrMalformedToken", tok.Resource, err)
		}
		_ = tok.Expired(time.Unix(se1700, 0))
		_ = tok.VerifySignature(Keys{Primary: keyK})
	})
}

func FuzzParseConnectionString(f *testing.F) {
	for _, s := range readInputs(f, "connstrings.txt") {
		f.Add(s)
	}
	for _, s := range []string{"HostName=h;DeviceId=d;x509=false;SharedAccessKey=" + keyK, ";;HostName= h ;DeviceId=d;X509CERT=TRUE;",
		"HostName=h;DeviceId=d;SharedAccessSignature=" + tokDouble + ";GatewayHostName=g"} {
		f.Add(s)
	}
	now := time.Unix(se1700, 0)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConnectionString(s)
		if err != nil {
			// Documented: every error wraps ErrMalformedConnectionString (a bad key or
			// signature wraps ErrInvalidKey or ErrMalformedToken too) and never shows a key
			// or signature.
			if !errors.Is(err, ErrMalformedConnectionString) {
				t.Fatalf("ParseConnectionString(%q): error %v does not wrap ErrMalformedConnectionString", s, err)
			}
			for _, secret := range connStringSecrets(s) {
				if leaksSecret(s, err, secret) {
					t.Fatalf("ParseConnectionString(%q): error %q shows the secret %q", s, err, secret)
				}
			}
			return
		}
		out := c.String()
		back, err := ParseConnectionString(out)
		if err != nil {
			t.Fatalf("ParseConnectionString(%q) ok, but ParseConnectionString(String() = %q): %v", s, out, err)
		}
		if back != c {
			t.Fatalf("ParseConnectionString(String()) = %+v, want %+v", back, c)
		}
		if again := back.String(); again != out {
			t.Fatalf("String not stable: %q then %q", out, again)
		}
		if r := c.Redacted(); c.SharedAccessKey != "" && strings.Contains(r, "SharedAccessKey="+c.SharedAccessKey) {
			t.Fatalf("Redacted %q shows the key", r)
		}
		// A parsed string can always produce a token, unless it is X.509.
		tok, err := c.Token(now, time.Hour)
		if c.X509 {
			if !errors.Is(err, ErrNoKey) {
				t.Fatalf("Token for an x509 string = %q, %v; want ErrNoKey", tok, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Token: %v", err)
		}
		parsed, err := Parse(tok)
		if err != nil {
			t.Fatalf("Token %q does not parse: %v", tok, err)
		}
		if c.SharedAccessKey != "" {
			if err := parsed.VerifySignature(Keys{Primary: c.SharedAccessKey}); err != nil {
				t.Fatalf("own token does not verify: %v", err)
			}
		}
	})
}

// tokenField returns the raw value of the first field name (in any case) of a token's
// k=v pairs, as Parse splits them.
func tokenField(s, name string) (string, bool) {
	_, rest, ok := strings.Cut(s, " ")
	if !ok {
		return "", false
	}
	for _, pair := range strings.Split(rest, "&") {
		if k, v, ok := strings.Cut(pair, "="); ok && strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// connStringSecrets returns the values of a connection string's SharedAccessKey parts and
// the signatures of its SharedAccessSignature parts, as ParseConnectionString splits them.
func connStringSecrets(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		switch k, v = strings.TrimSpace(k), strings.TrimSpace(v); {
		case strings.EqualFold(k, keySharedAccessKey):
			out = append(out, v)
		case strings.EqualFold(k, keySharedAccessSignature):
			if sig, ok := tokenField(v, "sig"); ok {
				out = append(out, sig)
			}
		}
	}
	return out
}

// leaksSecret reports whether err's message shows secret, raw or URL-decoded, where secret
// looks like key material: 12 or more base64 characters with a digit among them. Shorter or
// other values could appear in the message's own words, and a secret that the input also
// holds elsewhere (as a key name, say) may be quoted legitimately, so neither counts.
func leaksSecret(input string, err error, secret string) bool {
	msg := err.Error()
	for i, v := range []string{secret, pathUnescape(secret)} {
		if i == 1 && v == secret {
			break
		}
		// The raw secret is in the input once (as the value); its decoded form not at all.
		if strings.Count(input, v) > 1-i {
			continue
		}
		if len(v) >= 12 && isBase64Text(v) && strings.ContainsAny(v, "0123456789") && strings.Contains(msg, v) {
			return true
		}
	}
	return false
}

func pathUnescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

func isBase64Text(s string) bool {
	for _, r := range s {
		if !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '+' || r == '/' || r == '=') {
			return false
		}
	}
	return true
}
