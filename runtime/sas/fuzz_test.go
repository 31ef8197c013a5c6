package sas

import (
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
			if err == nil {
				t.Fatalf("Token for an x509 string = %q, want an error", tok)
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
