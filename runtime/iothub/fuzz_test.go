package iothub_test

import (
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

func FuzzParseTopic(f *testing.F) {
	for _, in := range readInputs(f, "topics") {
		f.Add(in)
	}
	f.Add(iothub.C2DTopic("dev1", nastyBag))
	f.Add(iothub.InputTopic("e", "m", "in", nastyBag))
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := iothub.ParseTopic(s)
		if err != nil {
			if !errors.Is(err, iothub.ErrUnknownTopic) && !errors.Is(err, iothub.ErrMalformedTopic) {
				t.Fatalf("error %v wraps neither ErrUnknownTopic nor ErrMalformedTopic", err)
			}
			// At most 200 bytes of the topic are quoted, 4 characters per byte at worst.
			if len(err.Error()) > 4*200+200 {
				t.Fatalf("error message is %d bytes long", len(err.Error()))
			}
			return
		}
		canon := tp.String()
		if len(canon) > iothub.MaxTopicLength {
			return // re-encoding a raw bag may legitimately outgrow the limit
		}
		again, err := iothub.ParseTopic(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, s, err)
		}
		if !reflect.DeepEqual(tp, again) {
			t.Fatalf("%q -> %+v\ncanonical %q -> %+v", s, tp, canon, again)
		}
		if again.String() != canon {
			t.Fatalf("String is not stable: %q then %q", canon, again.String())
		}
	})
}

func FuzzBag(f *testing.F) {
	for _, in := range readInputs(f, "bags") {
		f.Add(in, "key", "value", false)
	}
	f.Add("", "$.mid", "a/b=c&d", false)
	f.Add("a=1", "n", "", true)
	f.Fuzz(func(t *testing.T, s, key, value string, null bool) {
		// Property 1: whatever parses re-encodes to something that parses to the same bag.
		b, err := iothub.ParseBag(s)
		if err != nil {
			if !errors.Is(err, iothub.ErrMalformedBag) {
				t.Fatalf("error %v does not wrap ErrMalformedBag", err)
			}
		} else {
			assertBagRoundTrip(t, b)
		}

		// Property 2: any bag with non-empty keys survives Encode then ParseBag. Build one from
		// the fuzzed key and value plus whatever parsed above.
		if key == "" {
			key = "k"
		}
		if null {
			value = ""
		}
		arb := append(iothub.Bag{{Key: key, Value: value, Null: null}}, b...)
		arb = append(arb, iothub.Property{Key: value + "x", Value: key})
		assertBagRoundTrip(t, arb)

		// Property 3: a message built from a bag survives Bag then MessageFromBag.
		m := iothub.MessageFromBag(nil, arb)
		back := iothub.MessageFromBag(nil, m.Bag())
		if !maps.Equal(m.System, back.System) || !maps.Equal(m.Properties, back.Properties) {
			t.Fatalf("message round trip: %+v -> %+v", m, back)
		}
	})
}

func assertBagRoundTrip(t *testing.T, b iothub.Bag) {
	t.Helper()
	enc := b.Encode()
	if len(enc) > iothub.MaxTopicLength {
		return
	}
	for i := 0; i < len(enc); i++ {
		if c := enc[i]; !isUnreservedOrSeparator(c) {
			t.Fatalf("Encode produced raw byte %q in %q", c, enc)
		}
	}
	got, err := iothub.ParseBag(enc)
	if err != nil {
		t.Fatalf("ParseBag(Encode(%v)) = %v", b, err)
	}
	if !got.Equal(b) {
		t.Fatalf("ParseBag(%q) = %v, want %v", enc, got, b)
	}
}

func isUnreservedOrSeparator(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		strings.IndexByte("-._~%&=", c) >= 0
}

func FuzzParseUsername(f *testing.F) {
	for _, in := range readInputs(f, "usernames") {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := iothub.ParseUsername(s)
		if err != nil {
			if !errors.Is(err, iothub.ErrMalformedUsername) {
				t.Fatalf("error %v does not wrap ErrMalformedUsername", err)
			}
			return
		}
		if strings.TrimSpace(u.APIVersion()) == "" || u.DeviceID == "" || u.DeviceID != strings.TrimSpace(u.DeviceID) {
			t.Fatalf("%q parsed to an invalid %+v", s, u)
		}
		for k := range u.Params {
			if !isPlainKey(k) {
				return // keys are not decoded (as in edgeHub), so only plain keys round-trip
			}
		}
		formatted := iothub.FormatUsername(u.Host, u.DeviceID, u.ModuleID, u.Params)
		again, err := iothub.ParseUsername(formatted)
		if err != nil {
			t.Fatalf("FormatUsername of %q gave %q, which does not parse: %v", s, formatted, err)
		}
		if again.Host != u.Host || again.DeviceID != u.DeviceID || again.ModuleID != u.ModuleID ||
			!maps.Equal(again.Params, u.Params) || again.Legacy {
			t.Fatalf("%q -> %+v\nformatted %q -> %+v", s, u, formatted, again)
		}
	})
}

func isPlainKey(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0) {
			return false
		}
	}
	return true
}

func FuzzParseFilter(f *testing.F) {
	for _, in := range readInputs(f, "filters") {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sub, err := iothub.ParseFilter(s)
		if err != nil {
			if !errors.Is(err, iothub.ErrUnknownTopic) {
				t.Fatalf("error %v does not wrap ErrUnknownTopic", err)
			}
			return
		}
		canon := sub.Filter()
		again, err := iothub.ParseFilter(canon)
		if err != nil || again != sub {
			t.Fatalf("%q -> %+v; canonical %q -> %+v, %v", s, sub, canon, again, err)
		}
		if !strings.HasSuffix(s, "#") {
			t.Fatalf("accepted filter %q does not end in #", s)
		}
	})
}
