package iothub_test

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

func TestBag_GetSetDel(t *testing.T) {
	b, err := iothub.ParseBag("a=1&n&a=2&e=")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, key, want string
		ok              bool
	}{
		{"first of duplicates", "a", "1", true},
		{"null value", "n", "", true},
		{"empty value", "e", "", true},
		{"missing", "x", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got, ok := b.Get(c.key); got != c.want || ok != c.ok {
				t.Errorf("Get(%q) = %q, %v; want %q, %v", c.key, got, ok, c.want, c.ok)
			}
		})
	}
	b.Set("n", "now-set")
	b.Set("new", "appended")
	b.Set("a", "replaced")
	if got, want := b.Encode(), "a=replaced&n=now-set&a=2&e=&new=appended"; got != want {
		t.Errorf("after Set: %q, want %q", got, want)
	}
	b.Del("a")
	if got, want := b.Encode(), "n=now-set&e=&new=appended"; got != want {
		t.Errorf("after Del: %q, want %q", got, want)
	}
	var empty iothub.Bag
	empty.Del("x")
	empty.Set("k", "v")
	if got := empty.Encode(); got != "k=v" {
		t.Errorf("Set on nil bag: %q", got)
	}
}

func TestParseBag_Errors(t *testing.T) {
	for _, c := range []struct{ name, in, wantMsg string }{
		{"empty key with value", "=v", `"=v" has an empty key`},
		{"empty key after others", "a=1&=", `"=" has an empty key`},
		{"longer than a topic", strings.Repeat("a", iothub.MaxTopicLength+1), "longer than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := iothub.ParseBag(c.in)
			if !errors.Is(err, iothub.ErrMalformedBag) {
				t.Fatalf("err = %v, want ErrMalformedBag", err)
			}
			if !strings.Contains(err.Error(), c.wantMsg) {
				t.Errorf("err = %q, want it to mention %q", err, c.wantMsg)
			}
		})
	}
}

func TestMessageFromBag(t *testing.T) {
	b, err := iothub.ParseBag("%24.mid=1&$.mid=2&%24.ct=application/json&iothub-ack=full&$.weird=w&app=x&nullapp&iothub-creation-time-utc=t")
	if err != nil {
		t.Fatal(err)
	}
	m := iothub.MessageFromBag([]byte("body"), b)
	wantSys := map[string]string{"mid": "1", "ct": "application/json", "iothub-ack": "full", "weird": "w"}
	wantApp := map[string]string{"app": "x", "nullapp": "", "iothub-creation-time-utc": "t"}
	if !maps.Equal(m.System, wantSys) {
		t.Errorf("System = %v, want %v", m.System, wantSys)
	}
	if !maps.Equal(m.Properties, wantApp) {
		t.Errorf("Properties = %v, want %v", m.Properties, wantApp)
	}
	if string(m.Body) != "body" {
		t.Errorf("Body = %q", m.Body)
	}
	empty := iothub.MessageFromBag(nil, nil)
	if empty.System == nil || empty.Properties == nil {
		t.Error("MessageFromBag must return non-nil maps")
	}
}

func TestMessage_Bag(t *testing.T) {
	m := iothub.Message{
		System: map[string]string{
			iothub.SysOperation: "op", iothub.SysAck: "full", "zz": "2", "aa": "1",
			iothub.SysConnModuleID: "filter", iothub.SysConnDeviceID: "edge1", iothub.SysTo: "/devices/d/messages/devicebound",
			iothub.SysMessageID: "m1",
		},
		Properties: map[string]string{"b": "2", "a": "1"},
	}
	want := "%24.mid=m1&%24.to=%2Fdevices%2Fd%2Fmessages%2Fdevicebound&%24.cdid=edge1&%24.cmid=filter&" +
		"iothub-ack=full&iothub-operation=op&%24.aa=1&%24.zz=2&a=1&b=2"
	if got := m.Bag().Encode(); got != want {
		t.Errorf("Bag().Encode() =\n  %s\nwant\n  %s", got, want)
	}
	back := iothub.MessageFromBag(nil, m.Bag())
	if !maps.Equal(back.System, m.System) || !maps.Equal(back.Properties, m.Properties) {
		t.Errorf("round trip = %+v, want %+v", back, m)
	}
}

func TestMessage_Size(t *testing.T) {
	m := iothub.Message{
		Body:       make([]byte, 100),
		System:     map[string]string{"mid": "12345", "ct": "abc"}, // values only: 8
		Properties: map[string]string{"key": "value", "k2": ""},    // names and values: 8 + 2
	}
	if got, want := m.Size(), 100+8+10; got != want {
		t.Errorf("Size() = %d, want %d", got, want)
	}
}

func TestRoutingName(t *testing.T) {
	for wire, want := range map[string]string{
		"mid": "messageId", "cid": "correlationId", "uid": "userId", "to": "to",
		"exp": "absoluteExpiryTime", "ct": "contentType", "ce": "contentEncoding",
		"ctime": "creationTime", "on": "outputName", "cdid": "connectionDeviceId",
		"cmid": "connectionModuleId", "schema": "messageSchema", "ifid": "iothub-interface-id",
		"sub": "dt-subject", "iothub-ack": "ack", "iothub-operation": "iothub-operation",
	} {
		t.Run(wire, func(t *testing.T) {
			if got, ok := iothub.RoutingName(wire); !ok || got != want {
				t.Errorf("RoutingName(%q) = %q, %v; want %q", wire, got, ok, want)
			}
		})
	}
	for _, wire := range []string{"diagid", "diagctx", "unknown", "$.mid"} {
		t.Run(wire, func(t *testing.T) {
			if got, ok := iothub.RoutingName(wire); ok {
				t.Errorf("RoutingName(%q) = %q, true; want false", wire, got)
			}
		})
	}
}

func TestValidateDeviceID(t *testing.T) {
	for _, c := range []struct {
		name, id string
		ok       bool
	}{
		{"simple", "dev1", true},
		{"every allowed special", "a-.+%_#*?!(),=@$'z", true},
		{"128 chars", strings.Repeat("x", 128), true},
		{"empty", "", false},
		{"129 chars", strings.Repeat("x", 129), false},
		{"slash", "a/b", false},
		{"space", "a b", false},
		{"colon", "a:b", false},
		{"non-ascii", "gerät", false},
		{"control", "a\x00", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			for fn, validate := range map[string]func(string) error{"device": iothub.ValidateDeviceID, "module": iothub.ValidateModuleID} {
				err := validate(c.id)
				if (err == nil) != c.ok {
					t.Errorf("%s: err = %v, want ok = %v", fn, err, c.ok)
				}
				if err != nil && !errors.Is(err, iothub.ErrInvalidID) {
					t.Errorf("%s: err = %v, want ErrInvalidID", fn, err)
				}
			}
		})
	}
}

func TestValidateMethodName(t *testing.T) {
	for _, c := range []struct {
		name, method string
		ok           bool
	}{
		{"simple", "reboot", true},
		{"dots dashes underscores", "com.example-do_it", true},
		{"128 bytes", strings.Repeat("m", 128), true},
		{"empty", "", false},
		{"129 bytes", strings.Repeat("m", 129), false},
		{"slash breaks token 3", "a/b", false},
		{"question mark", "a?b", false},
		{"dollar", "$m", false},
		{"space", "a b", false},
		{"tab", "a\tb", false},
		{"braces", "{m}", false},
		{"mqtt plus", "a+b", false},
		{"mqtt hash", "a#b", false},
		{"control", "a\x01", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := iothub.ValidateMethodName(c.method)
			if (err == nil) != c.ok || (err != nil && !errors.Is(err, iothub.ErrInvalidID)) {
				t.Errorf("err = %v, want ok = %v", err, c.ok)
			}
		})
	}
}

func TestValidateRequestID(t *testing.T) {
	for _, c := range []struct {
		name, rid string
		ok        bool
	}{
		{"c decimal", "65535", true},
		{"guid", "0d1e8a8c-7c0e-4f33-9f4b-3a0b6c9d2e11", true},
		{"embedded", "get_twin", true},
		{"128 bytes", strings.Repeat("r", 128), true},
		{"empty", "", false},
		{"129 bytes", strings.Repeat("r", 129), false},
		{"slash", "a/b", false},
		{"ampersand", "a&b", false},
		{"hash", "a#b", false},
		{"plus", "a+b", false},
		{"newline", "a\nb", false},
		{"del", "a\x7f", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := iothub.ValidateRequestID(c.rid)
			if (err == nil) != c.ok || (err != nil && !errors.Is(err, iothub.ErrInvalidID)) {
				t.Errorf("err = %v, want ok = %v", err, c.ok)
			}
		})
	}
}

func TestParseClientID(t *testing.T) {
	for _, c := range []struct {
		name, id, device, module string
		ok                       bool
	}{
		{"device", "dev1", "dev1", "", true},
		{"module", "edge1/$edgeHub", "edge1", "$edgeHub", true},
		{"percent kept", "d%2F1/m", "d%2F1", "m", true},
		{"empty", "", "", "", false},
		{"empty device", "/m", "", "", false},
		{"empty module", "d/", "", "", false},
		{"three segments", "d/m/x", "", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, m, err := iothub.ParseClientID(c.id)
			if (err == nil) != c.ok || d != c.device || m != c.module {
				t.Fatalf("ParseClientID(%q) = %q, %q, %v", c.id, d, m, err)
			}
			if err != nil {
				if !errors.Is(err, iothub.ErrMalformedClientID) {
					t.Errorf("err = %v, want ErrMalformedClientID", err)
				}
				return
			}
			if got := iothub.ClientID(d, m); got != c.id {
				t.Errorf("ClientID(%q, %q) = %q, want %q", d, m, got, c.id)
			}
		})
	}
}

func TestParseTopic_ErrorCategories(t *testing.T) {
	long := "devices/d/messages/events/" + strings.Repeat("x", iothub.MaxTopicLength)
	for _, c := range []struct {
		name, topic string
		want        []error
	}{
		{"unknown", "foo/bar", []error{iothub.ErrUnknownTopic}},
		{"malformed id", "devices//messages/events", []error{iothub.ErrMalformedTopic}},
		{"malformed bag", "devices/d/messages/events/=v", []error{iothub.ErrMalformedTopic, iothub.ErrMalformedBag}},
		{"missing rid", "$iothub/twin/GET/", []error{iothub.ErrMalformedTopic}},
		{"too long", long, []error{iothub.ErrMalformedTopic}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := iothub.ParseTopic(c.topic)
			for _, want := range c.want {
				if !errors.Is(err, want) {
					t.Errorf("err = %v, want it to wrap %v", err, want)
				}
			}
			if err != nil && len(err.Error()) > 400 {
				t.Errorf("error message is %d bytes; the topic must be truncated", len(err.Error()))
			}
		})
	}
}

func TestKind_String(t *testing.T) {
	seen := map[string]bool{}
	for k := iothub.KindTelemetry; k <= iothub.KindMethodResponse; k++ {
		s := k.String()
		if s == "" || strings.HasPrefix(s, "Kind(") || seen[s] {
			t.Errorf("Kind %d has name %q", int(k), s)
		}
		seen[s] = true
	}
	if got := iothub.Kind(0).String(); got != "Kind(0)" {
		t.Errorf("Kind(0).String() = %q", got)
	}
}

func TestSubscription_Matches(t *testing.T) {
	c2d := iothub.C2DTopic("dev1", iothub.Bag{{Key: "$.to", Value: iothub.C2DTo("dev1")}})
	input := iothub.InputTopic("edge1", "sink", "in1", iothub.Bag{{Key: "$.cdid", Value: "edge1"}})
	for _, c := range []struct {
		name, filter, topic string
		want                bool
	}{
		{"own c2d", iothub.C2DFilter("dev1"), c2d, true},
		{"other device c2d", iothub.C2DFilter("dev2"), c2d, false},
		{"any device c2d", "devices/+/messages/devicebound/#", c2d, true},
		{"input, python form", iothub.InputFilter("edge1", "sink"), input, true},
		{"input, c form", "devices/edge1/modules/sink/#", input, true},
		{"input, other module", iothub.InputFilter("edge1", "other"), input, false},
		{"twin response", iothub.TwinResponseFilter, iothub.TwinResponseTopic(200, "1", 0), true},
		{"desired patch", iothub.DesiredPatchFilter, iothub.DesiredPatchTopic(3), true},
		{"method request", iothub.MethodRequestFilter, iothub.MethodRequestTopic("m", "1"), true},
		{"twin filter does not get methods", iothub.TwinResponseFilter, iothub.MethodRequestTopic("m", "1"), false},
		{"c2d filter does not get inputs", iothub.C2DFilter("edge1"), input, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := iothub.ParseFilter(c.filter)
			if err != nil {
				t.Fatal(err)
			}
			tp, err := iothub.ParseTopic(c.topic)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Matches(tp); got != c.want {
				t.Errorf("Matches = %v, want %v", got, c.want)
			}
		})
	}
}

func TestFormatUsername(t *testing.T) {
	for _, c := range []struct {
		name, host, device, module string
		params                     map[string]string
		want                       string
	}{
		{"device, no params", "h", "d", "", nil, "h/d/?api-version=" + iothub.DefaultAPIVersion},
		{"module, sorted params", "h", "d", "m", map[string]string{"z": "1", "api-version": "v", "DeviceClientType": "a b+c"},
			"h/d/m/?api-version=v&DeviceClientType=a%20b%2Bc&z=1"},
		{"empty api-version gets the default", "h", "d", "", map[string]string{"api-version": ""}, "h/d/?api-version=" + iothub.DefaultAPIVersion},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := iothub.FormatUsername(c.host, c.device, c.module, c.params)
			if got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
			u, err := iothub.ParseUsername(got)
			if err != nil {
				t.Fatal(err)
			}
			if u.Host != c.host || u.DeviceID != c.device || u.ModuleID != c.module || u.Legacy {
				t.Errorf("ParseUsername(%q) = %+v", got, u)
			}
		})
	}
}
