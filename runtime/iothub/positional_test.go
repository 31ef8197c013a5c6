package iothub_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

// These tests replay the positional parsers of the SDKs (section 11, "Outbound topics") on the
// topics this package emits, with values chosen to break a careless encoder.

// nastyBag holds values with every character that has broken an SDK parser.
var nastyBag = iothub.Bag{
	{Key: "$.mid", Value: "id/with=odd&chars?#+ $"},
	{Key: "$.to", Value: iothub.C2DTo("dev1")},
	{Key: "$.ct", Value: "application/json; charset=utf-8"},
	{Key: "key with/slash", Value: "a=b&c=d/e"},
	{Key: "unicode", Value: "Grüße €"},
	{Key: "empty"},
}

func TestMethodRequestTopic_Positional(t *testing.T) {
	for _, c := range []struct{ name, method, rid string }{
		{"c decimal rid", "reboot", "1"},
		{"csharp guid rid", "getStatus", "0d1e8a8c-7c0e-4f33-9f4b-3a0b6c9d2e11"},
		{"embedded rid", "ping", "get_twin"},
		{"method with dots and dashes", "com.example-do_it", "ffff"},
	} {
		t.Run(c.name, func(t *testing.T) {
			topic := iothub.MethodRequestTopic(c.method, c.rid)
			tok := strings.Split(topic, "/")
			if len(tok) != 5 {
				t.Fatalf("%q has %d tokens, want 5", topic, len(tok))
			}
			// C# v1: token 3 is the name, token[4].Substring(6) the rid.
			if tok[3] != c.method {
				t.Errorf("token 3 = %q, want method %q", tok[3], c.method)
			}
			if !strings.HasPrefix(tok[4], "?$rid=") {
				t.Errorf("token 4 = %q, must start with ?$rid= (C SDK)", tok[4])
			}
			if got := tok[4][len("?$rid="):]; got != c.rid {
				t.Errorf("token 4 minus 6 bytes = %q, want rid %q (no other parameters allowed)", got, c.rid)
			}
			if err := iothub.ValidateMethodName(c.method); err != nil {
				t.Errorf("ValidateMethodName: %v", err)
			}
			if err := iothub.ValidateRequestID(c.rid); err != nil {
				t.Errorf("ValidateRequestID: %v", err)
			}
		})
	}
}

// csharpTwinResponse is the C# v1 SDK's twin response pattern.
var csharpTwinResponse = regexp.MustCompile(`^\$iothub/twin/res/(\d+)/(\?.+)$`)

func TestTwinResponseTopic_Positional(t *testing.T) {
	for _, c := range []struct {
		name        string
		status      int
		rid         string
		version     int64
		wantVersion bool
	}{
		{"get 200 without version", 200, "1", 0, false},
		{"patch 204 with version", 204, "reported_prop", 2, true},
		{"throttled", 429, "0d1e8a8c-7c0e-4f33-9f4b-3a0b6c9d2e11", 0, false},
		{"negative version is omitted", 500, "r", -1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			topic := iothub.TwinResponseTopic(c.status, c.rid, c.version)
			tok := strings.Split(topic, "/")
			if len(tok) != 5 || tok[3] != strconv.Itoa(c.status) {
				t.Fatalf("%q: token 3 must be the status %d (C SDK)", topic, c.status)
			}
			if !strings.HasPrefix(tok[4], "?$rid="+c.rid) {
				t.Errorf("%q: token 4 must start with ?$rid={rid}, $rid first", topic)
			}
			if !csharpTwinResponse.MatchString(topic) {
				t.Errorf("%q does not match the C# pattern %s", topic, csharpTwinResponse)
			}
			if got := strings.Contains(topic, "&$version="); got != c.wantVersion {
				t.Errorf("%q: has $version = %v, want %v", topic, got, c.wantVersion)
			}
			parsed, err := iothub.ParseTopic(topic)
			if err != nil {
				t.Fatal(err)
			}
			if parsed.Status != c.status || parsed.RequestID != c.rid || parsed.HasVersion != c.wantVersion {
				t.Errorf("ParseTopic(%q) = %+v", topic, parsed)
			}
		})
	}
}

func TestDesiredPatchTopic_Positional(t *testing.T) {
	topic := iothub.DesiredPatchTopic(8)
	tok := strings.Split(topic, "/")
	// The C SDK compares "PATCH" case-sensitively.
	if len(tok) != 6 || tok[2] != "PATCH" || tok[5] != "?$version=8" {
		t.Errorf("DesiredPatchTopic(8) = %q", topic)
	}
}

func TestC2DTopic_Positional(t *testing.T) {
	for _, c := range []struct {
		name string
		bag  iothub.Bag
	}{
		{"to only", iothub.Bag{{Key: "$.to", Value: iothub.C2DTo("dev1")}}},
		{"nasty values", nastyBag},
	} {
		t.Run(c.name, func(t *testing.T) {
			topic := iothub.C2DTopic("dev1", c.bag)
			// The C SDK skips exactly len("devices/{d}/messages/devicebound/").
			prefix := "devices/dev1/messages/devicebound/"
			if !strings.HasPrefix(topic, prefix) {
				t.Fatalf("%q lacks prefix %q", topic, prefix)
			}
			// C# v1 indexes segment 4 and throws when it is missing; Node and Python take
			// segment 4 as the whole bag, so there must be exactly 5 segments.
			tok := strings.Split(topic, "/")
			if len(tok) != 5 || tok[4] == "" {
				t.Fatalf("%q: want 5 segments with a non-empty 5th, got %q", topic, tok)
			}
			if tok[4] != topic[len(prefix):] {
				t.Errorf("segment 4 %q is not the whole bag", tok[4])
			}
			// The C SDK and amenzhinsky match system keys literally as "%24.".
			if !strings.Contains(tok[4], "%24.to=") {
				t.Errorf("bag %q lacks %%24.to", tok[4])
			}
			assertBagPositional(t, tok[4], c.bag)
		})
	}
}

func TestInputTopic_Positional(t *testing.T) {
	for _, c := range []struct {
		name string
		bag  iothub.Bag
	}{
		{"from a leaf device", iothub.Bag{{Key: "$.cdid", Value: "leaf1"}}},
		{"from a module", iothub.Bag{{Key: "$.cdid", Value: "edge1"}, {Key: "$.cmid", Value: "filter"}}},
		{"nasty values", append(iothub.Bag{{Key: "$.cdid", Value: "edge1"}}, nastyBag...)},
	} {
		t.Run(c.name, func(t *testing.T) {
			topic := iothub.InputTopic("edge1", "sink", "input1", c.bag)
			tok := strings.Split(topic, "/")
			// C#, Python and Node: segment 5 is the input name and segment 6 the bag; the C SDK
			// needs the '/' after the name.
			if len(tok) != 7 || tok[5] != "input1" || tok[6] == "" {
				t.Fatalf("%q: want 7 segments, input name at 5 and a non-empty bag at 6, got %q", topic, tok)
			}
			if !strings.HasPrefix(tok[6], "%24.cdid=") {
				t.Errorf("bag %q does not carry %%24.cdid", tok[6])
			}
			assertBagPositional(t, tok[6], c.bag)
		})
	}
}

func TestBagEncode_NoRawSeparators(t *testing.T) {
	assertBagPositional(t, nastyBag.Encode(), nastyBag)
}

// assertBagPositional checks that an encoded bag splits back into exactly its properties and
// that no key or value leaks a raw separator.
func assertBagPositional(t *testing.T, encoded string, b iothub.Bag) {
	t.Helper()
	if strings.ContainsAny(encoded, "/?#+$ ") {
		t.Errorf("encoded bag %q contains a raw / ? # + $ or space", encoded)
	}
	items := strings.Split(encoded, "&")
	if len(items) != len(b) {
		t.Fatalf("encoded bag %q splits into %d items, want %d", encoded, len(items), len(b))
	}
	for i, item := range items {
		want := 1
		if b[i].Null {
			want = 0
		}
		if n := strings.Count(item, "="); n != want {
			t.Errorf("item %q has %d '=', want %d (C# rejects a raw '=' in a value)", item, n, want)
		}
	}
	got, err := iothub.ParseBag(encoded)
	if err != nil || !got.Equal(b) {
		t.Errorf("ParseBag(%q) = %v, %v; want %v", encoded, got, err, b)
	}
}
