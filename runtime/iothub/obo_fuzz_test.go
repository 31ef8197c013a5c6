package iothub_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

// Fuzz targets of the extension's request bodies (obo_body.go) and of CONNECT client ids,
// seeded from the bodies of the table tests and docs/upstream.md and from the client ids of
// the golden usernames.

// credentialBodies are auth request bodies: TestParseOBOCredentials's and docs/upstream.md's.
var credentialBodies = []string{
	`{"password":"SharedAccessSignature sr=x&sig=y&se=1"}`,
	`{"x509Thumbprint":"AB"}`,
	`{"password":"p","other":1}`,
	`{"password":"p","x509Thumbprint":"AB"}`,
	`{}`, ``, `["p"]`, `{"password":1}`,
	`{"password":"SharedAccessSignature sr=...&sig=...&se=..."}`,
	`{"x509Thumbprint":"0123...CDEF"}`,
	` {"PASSWORD":"p\u00e9"} `,
}

func FuzzParseOBOCredentials(f *testing.F) {
	for _, b := range credentialBodies {
		f.Add([]byte(b), "SharedAccessSignature sr=h%2Fdevices%2Fd&sig=c2ln&se=1", false)
	}
	f.Add([]byte(`{"x509Thumbprint":""}`), "0123456789ABCDEF", true)
	f.Fuzz(func(t *testing.T, body []byte, secret string, thumbprint bool) {
		// Property 1: errors wrap ErrMalformedBody; what parses has exactly one credential and
		// survives a marshal and parse unchanged.
		c, err := iothub.ParseOBOCredentials(body)
		if err != nil {
			if !errors.Is(err, iothub.ErrMalformedBody) {
				t.Fatalf("error %v does not wrap ErrMalformedBody", err)
			}
		} else {
			if (c.Password == "") == (c.X509Thumbprint == "") {
				t.Fatalf("%q parsed to %+v: want exactly one credential", body, c)
			}
			assertCredentialsRoundTrip(t, c)
		}

		// Property 2: credentials built by the edge hub (json.Marshal of one non-empty,
		// valid UTF-8 field, as package uplink sends them) parse back to themselves.
		if secret == "" || !utf8.ValidString(secret) {
			return
		}
		built := iothub.OBOCredentials{Password: secret}
		if thumbprint {
			built = iothub.OBOCredentials{X509Thumbprint: secret}
		}
		assertCredentialsRoundTrip(t, built)
	})
}

func assertCredentialsRoundTrip(t *testing.T, c iothub.OBOCredentials) {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	again, err := iothub.ParseOBOCredentials(b)
	if err != nil {
		t.Fatalf("marshalled credentials %s do not parse: %v", b, err)
	}
	if again != c {
		t.Fatalf("%+v\nmarshalled as %s, parsed as %+v", c, b, again)
	}
}

// attachmentBodies are attach request bodies: TestParseOBOAttachment's and docs/upstream.md's.
var attachmentBodies = []string{
	`{"subscriptions":["desired","methods","c2d"]}`,
	`{"subscriptions":[]}`, ``, ` `,
	`{"subscriptions":["inputs"]}`,
	`["desired"]`,
	`{"subscriptions":null}`,
	`{"Subscriptions":["c2d","c2d"],"x":{}}`,
	`{"subscriptions":"desired"}`,
}

func FuzzParseOBOAttachment(f *testing.F) {
	for i, b := range attachmentBodies {
		f.Add([]byte(b), uint8(i))
	}
	known := []string{iothub.OBOSubDesired, iothub.OBOSubMethods, iothub.OBOSubC2D}
	f.Fuzz(func(t *testing.T, body []byte, mask uint8) {
		// Property 1: errors wrap ErrMalformedBody; what parses names only known
		// subscriptions, Has agrees, and it survives a marshal and parse unchanged.
		a, err := iothub.ParseOBOAttachment(body)
		if err != nil {
			if !errors.Is(err, iothub.ErrMalformedBody) {
				t.Fatalf("error %v does not wrap ErrMalformedBody", err)
			}
		} else {
			if len(bytes.TrimSpace(body)) == 0 && a.Subscriptions != nil {
				t.Fatalf("empty body parsed to %+v", a)
			}
			for _, s := range a.Subscriptions {
				if !slices.Contains(known, s) || !a.Has(s) {
					t.Fatalf("%q parsed to %+v: subscription %q", body, a, s)
				}
			}
			assertAttachmentRoundTrip(t, a)
		}

		// Property 2: an attachment built from known names (mask picks them, its high bits
		// repeat one) parses back to itself.
		var built iothub.OBOAttachment
		for i, name := range known {
			if mask&(1<<i) != 0 {
				built.Subscriptions = append(built.Subscriptions, name)
			}
		}
		if mask&0x80 != 0 && len(built.Subscriptions) > 0 {
			built.Subscriptions = append(built.Subscriptions, built.Subscriptions[0])
		}
		for _, name := range known {
			if built.Has(name) != (strings.Contains(strings.Join(built.Subscriptions, ","), name)) {
				t.Fatalf("%+v: Has(%q) = %v", built, name, built.Has(name))
			}
		}
		assertAttachmentRoundTrip(t, built)
	})
}

func assertAttachmentRoundTrip(t *testing.T, a iothub.OBOAttachment) {
	t.Helper()
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	again, err := iothub.ParseOBOAttachment(b)
	if err != nil {
		t.Fatalf("marshalled attachment %s does not parse: %v", b, err)
	}
	if !reflect.DeepEqual(again, a) {
		t.Fatalf("%#v\nmarshalled as %s, parsed as %#v", a, b, again)
	}
}

func FuzzParseClientID(f *testing.F) {
	// The identities of the golden usernames, and the usernames themselves (not client ids:
	// mostly errors).
	for _, in := range readInputs(f, "usernames") {
		f.Add(in)
		if u, err := iothub.ParseUsername(in); err == nil {
			f.Add(iothub.ClientID(u.DeviceID, u.ModuleID))
		}
	}
	for _, in := range []string{"dev1", "edge1/$edgeHub", "d%2F1/m", "", "/m", "d/", "d/m/x", "/", "//", " d / m "} {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, m, err := iothub.ParseClientID(s)
		if err != nil {
			if !errors.Is(err, iothub.ErrMalformedClientID) {
				t.Fatalf("error %v does not wrap ErrMalformedClientID", err)
			}
			if d != "" || m != "" {
				t.Fatalf("ParseClientID(%q) = %q, %q with error %v", s, d, m, err)
			}
			// At most 200 bytes of the id are quoted, 4 characters per byte at worst.
			if len(err.Error()) > 4*200+200 {
				t.Fatalf("error message is %d bytes long", len(err.Error()))
			}
			// The only refusals: an empty segment, or more than two.
			if parts := strings.Split(s, "/"); len(parts) <= 2 && !slices.Contains(parts, "") {
				t.Fatalf("ParseClientID(%q) refused a well-formed id: %v", s, err)
			}
			return
		}
		// Ids are verbatim, so the id is rebuilt exactly, and neither part is empty or
		// holds a '/'.
		if d == "" || strings.Contains(d, "/") || strings.Contains(m, "/") {
			t.Fatalf("ParseClientID(%q) = %q, %q", s, d, m)
		}
		if got := iothub.ClientID(d, m); got != s {
			t.Fatalf("ClientID(ParseClientID(%q)) = %q", s, got)
		}
		if strings.Contains(s, "/") == (m == "") {
			t.Fatalf("ParseClientID(%q) = %q, %q: module id and '/' disagree", s, d, m)
		}
	})
}
