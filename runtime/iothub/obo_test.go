package iothub_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

type oboTopicView struct {
	Kind      string `json:"kind"`
	DeviceID  string `json:"deviceId"`
	ModuleID  string `json:"moduleId,omitempty"`
	RequestID string `json:"rid,omitempty"`
	Status    *int   `json:"status,omitempty"`
	Version   *int64 `json:"version,omitempty"`
	Method    string `json:"method,omitempty"`
	Canonical string `json:"canonical"`
}

type oboTopicEntry struct {
	Input  string        `json:"input"`
	Result *oboTopicView `json:"result,omitempty"`
	Error  string        `json:"error,omitempty"`
}

func isOBOResponse(k iothub.OBOKind) bool {
	switch k {
	case iothub.OBOAuthResponse, iothub.OBOIdentityResponse, iothub.OBOAttachResponse,
		iothub.OBODetachResponse, iothub.OBOTwinResponse, iothub.OBOMethodResponse:
		return true
	}
	return false
}

func TestParseOBOTopic_Golden(t *testing.T) {
	var entries []oboTopicEntry
	for _, in := range readInputs(t, "obo_topics") {
		e := oboTopicEntry{Input: in}
		tp, err := iothub.ParseOBOTopic(in)
		if err != nil {
			e.Error = err.Error()
		} else {
			v := &oboTopicView{Kind: tp.Kind.String(), DeviceID: tp.DeviceID, ModuleID: tp.ModuleID,
				RequestID: tp.RequestID, Method: tp.Method, Canonical: tp.String()}
			if isOBOResponse(tp.Kind) {
				v.Status = &tp.Status
			}
			if tp.HasVersion {
				v.Version = &tp.Version
			}
			e.Result = v
		}
		entries = append(entries, e)
	}
	checkGolden(t, filepath.Join("testdata", "parse", "obo_topics.golden"), marshalEntries(t, entries))
}

// TestOBOTopic_Build pins the exact bytes of every extension topic, as docs/upstream.md
// shows them.
func TestOBOTopic_Build(t *testing.T) {
	leaf := func(k iothub.OBOKind) iothub.OBOTopic {
		return iothub.OBOTopic{Kind: k, DeviceID: "leaf1", RequestID: "r1", Status: 200}
	}
	mod := func(k iothub.OBOKind) iothub.OBOTopic {
		return iothub.OBOTopic{Kind: k, DeviceID: "edge1", ModuleID: "filter", RequestID: "r1", Status: 200}
	}
	cases := []struct {
		name string
		t    iothub.OBOTopic
		want string
	}{
		{"auth", leaf(iothub.OBOAuth), "$edgehub/devices/leaf1/auth/?$rid=r1"},
		{"auth of a module", mod(iothub.OBOAuth), "$edgehub/devices/edge1/modules/filter/auth/?$rid=r1"},
		{"auth response", leaf(iothub.OBOAuthResponse), "$edgehub/devices/leaf1/auth/res/200/?$rid=r1"},
		{"identity get", leaf(iothub.OBOIdentityGet), "$edgehub/devices/leaf1/identity/GET/?$rid=r1"},
		{"identity response", leaf(iothub.OBOIdentityResponse), "$edgehub/devices/leaf1/identity/res/200/?$rid=r1"},
		{"attach", leaf(iothub.OBOAttach), "$edgehub/devices/leaf1/attach/?$rid=r1"},
		{"attach response", leaf(iothub.OBOAttachResponse), "$edgehub/devices/leaf1/attach/res/200/?$rid=r1"},
		{"detach", leaf(iothub.OBODetach), "$edgehub/devices/leaf1/detach/?$rid=r1"},
		{"detach response", leaf(iothub.OBODetachResponse), "$edgehub/devices/leaf1/detach/res/200/?$rid=r1"},
		{"twin get", mod(iothub.OBOTwinGet), "$edgehub/devices/edge1/modules/filter/twin/GET/?$rid=r1"},
		{"reported patch", mod(iothub.OBOTwinPatchReported), "$edgehub/devices/edge1/modules/filter/twin/PATCH/properties/reported/?$rid=r1"},
		{"twin response", mod(iothub.OBOTwinResponse), "$edgehub/devices/edge1/modules/filter/twin/res/200/?$rid=r1"},
		{"twin response with version", func() iothub.OBOTopic {
			x := mod(iothub.OBOTwinResponse)
			x.Status, x.Version, x.HasVersion = 204, 5, true
			return x
		}(), "$edgehub/devices/edge1/modules/filter/twin/res/204/?$rid=r1&$version=5"},
		{"desired patch", iothub.OBOTopic{Kind: iothub.OBOTwinPatchDesired, DeviceID: "leaf1", Version: 8},
			"$edgehub/devices/leaf1/twin/PATCH/properties/desired/?$version=8"},
		{"method request", iothub.OBOTopic{Kind: iothub.OBOMethodRequest, DeviceID: "leaf1", Method: "reboot", RequestID: "42"},
			"$edgehub/devices/leaf1/methods/POST/reboot/?$rid=42"},
		{"method response", leaf(iothub.OBOMethodResponse), "$edgehub/devices/leaf1/methods/res/200/?$rid=r1"},
		{"unknown kind", iothub.OBOTopic{Kind: 99, DeviceID: "leaf1"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.t.String(); got != c.want {
				t.Fatalf("String() = %q, want %q", got, c.want)
			}
			if c.want == "" {
				return
			}
			back, err := iothub.ParseOBOTopic(c.want)
			if err != nil {
				t.Fatal(err)
			}
			if back.Kind != c.t.Kind || back.DeviceID != c.t.DeviceID || back.ModuleID != c.t.ModuleID {
				t.Fatalf("parsed back as %+v", back)
			}
		})
	}
}

func TestOBOKind_DirectionAndReply(t *testing.T) {
	cases := []struct {
		req      iothub.OBOKind
		fromEdge bool
		response iothub.OBOKind
	}{
		{iothub.OBOAuth, true, iothub.OBOAuthResponse},
		{iothub.OBOIdentityGet, true, iothub.OBOIdentityResponse},
		{iothub.OBOAttach, true, iothub.OBOAttachResponse},
		{iothub.OBODetach, true, iothub.OBODetachResponse},
		{iothub.OBOTwinGet, true, iothub.OBOTwinResponse},
		{iothub.OBOTwinPatchReported, true, iothub.OBOTwinResponse},
		{iothub.OBOMethodResponse, true, 0},
		{iothub.OBOAuthResponse, false, 0},
		{iothub.OBOTwinPatchDesired, false, 0},
		{iothub.OBOMethodRequest, false, 0},
	}
	for _, c := range cases {
		t.Run(c.req.String(), func(t *testing.T) {
			if got := c.req.FromEdge(); got != c.fromEdge {
				t.Errorf("FromEdge() = %v, want %v", got, c.fromEdge)
			}
			if got := c.req.Response(); got != c.response {
				t.Errorf("Response() = %v, want %v", got, c.response)
			}
			req := iothub.OBOTopic{Kind: c.req, DeviceID: "edge1", ModuleID: "m", RequestID: "9"}
			r := req.Reply(204, 3)
			if r.Kind != c.response || r.DeviceID != "edge1" || r.ModuleID != "m" || r.RequestID != "9" || r.Status != 204 {
				t.Errorf("Reply = %+v", r)
			}
			if wantVersion := c.response == iothub.OBOTwinResponse; r.HasVersion != wantVersion || (wantVersion && r.Version != 3) {
				t.Errorf("Reply version = %d (%v)", r.Version, r.HasVersion)
			}
		})
	}
	if got := iothub.OBOKind(0).String(); got != "OBOKind(0)" {
		t.Errorf("OBOKind(0).String() = %q", got)
	}
}

// TestOBOTopic_SharesTheIotHubRules checks that the twin and method operations follow
// ParseTopic's rules exactly: the part after the identity path, put after "$iothub/", parses
// to the same rid, status, version and method.
func TestOBOTopic_SharesTheIotHubRules(t *testing.T) {
	for _, suffix := range []string{
		"twin/GET/?$rid=1", "twin/get?$rid=1", "twin/PATCH/properties/reported/?$rid=a&$version=3",
		"twin/res/204/?x=1&$rid=b&$version=9", "twin/PATCH/properties/desired/?$version=2",
		"methods/POST/reboot/?$rid=4", "methods/res/500/?$rid=5",
	} {
		t.Run(suffix, func(t *testing.T) {
			plain, err := iothub.ParseTopic("$iothub/" + suffix)
			if err != nil {
				t.Fatal(err)
			}
			obo, err := iothub.ParseOBOTopic(iothub.OBOPrefix("d", "m") + suffix)
			if err != nil {
				t.Fatal(err)
			}
			if obo.RequestID != plain.RequestID || obo.Status != plain.Status || obo.Version != plain.Version ||
				obo.HasVersion != plain.HasVersion || obo.Method != plain.Method {
				t.Fatalf("obo %+v, plain %+v", obo, plain)
			}
		})
	}
}

func TestParseOBOCredentials(t *testing.T) {
	cases := []struct {
		name, body string
		want       iothub.OBOCredentials
		ok         bool
	}{
		{"password", `{"password":"SharedAccessSignature sr=x&sig=y&se=1"}`, iothub.OBOCredentials{Password: "SharedAccessSignature sr=x&sig=y&se=1"}, true},
		{"thumbprint", `{"x509Thumbprint":"AB"}`, iothub.OBOCredentials{X509Thumbprint: "AB"}, true},
		{"unknown fields ignored", `{"password":"p","other":1}`, iothub.OBOCredentials{Password: "p"}, true},
		{"both", `{"password":"p","x509Thumbprint":"AB"}`, iothub.OBOCredentials{}, false},
		{"neither", `{}`, iothub.OBOCredentials{}, false},
		{"empty body", ``, iothub.OBOCredentials{}, false},
		{"array", `["p"]`, iothub.OBOCredentials{}, false},
		{"wrong type", `{"password":1}`, iothub.OBOCredentials{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := iothub.ParseOBOCredentials([]byte(c.body))
			if c.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if err != nil && !errors.Is(err, iothub.ErrMalformedBody) {
				t.Fatalf("error %v does not wrap ErrMalformedBody", err)
			}
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

const goodRecord = `{"deviceId":"leaf1","generationId":"637587365431251327","status":"enabled",
"authentication":{"type":"sas","symmetricKey":{"primaryKey":"cHJpbWFyeQ==","secondaryKey":"c2Vjb25kYXJ5"}},
"deviceScope":"ms-azure-iot-edge://edge1-1","parentScopes":["ms-azure-iot-edge://edge1-1"],"etag":"MQ=="}`

func TestParseOBOIdentity(t *testing.T) {
	r, err := iothub.ParseOBOIdentity([]byte(goodRecord))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Enabled() || r.DeviceID != "leaf1" || r.Authentication.SymmetricKey.PrimaryKey != "cHJpbWFyeQ==" ||
		r.ParentScopes[0] != "ms-azure-iot-edge://edge1-1" || r.GenerationID != "637587365431251327" {
		t.Fatalf("record %+v", r)
	}
	bad := []struct{ name, body string }{
		{"not an object", `"leaf1"`},
		{"no device id", `{"status":"enabled","authentication":{"type":"none"}}`},
		{"device id with a slash", `{"deviceId":"a/b","status":"enabled","authentication":{"type":"none"}}`},
		{"bad module id", `{"deviceId":"a","moduleId":"x y","status":"enabled","authentication":{"type":"none"}}`},
		{"unknown status", `{"deviceId":"a","status":"Enabled","authentication":{"type":"none"}}`},
		{"unknown auth type", `{"deviceId":"a","status":"enabled","authentication":{"type":"password"}}`},
		{"sas without keys", `{"deviceId":"a","status":"enabled","authentication":{"type":"sas"}}`},
		{"sas with a bad key", `{"deviceId":"a","status":"enabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"!!"}}}`},
		{"selfSigned without thumbprint", `{"deviceId":"a","status":"enabled","authentication":{"type":"selfSigned"}}`},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			if _, err := iothub.ParseOBOIdentity([]byte(c.body)); !errors.Is(err, iothub.ErrMalformedBody) {
				t.Fatalf("err = %v, want ErrMalformedBody", err)
			}
		})
	}
	disabled := strings.Replace(goodRecord, `"enabled"`, `"disabled"`, 1)
	if r, err := iothub.ParseOBOIdentity([]byte(disabled)); err != nil || r.Enabled() {
		t.Fatalf("disabled record: %+v, %v", r, err)
	}
}

func TestParseOBOAttachment(t *testing.T) {
	cases := []struct {
		name, body string
		want       []string
		ok         bool
	}{
		{"all three", `{"subscriptions":["desired","methods","c2d"]}`, []string{"desired", "methods", "c2d"}, true},
		{"none", `{"subscriptions":[]}`, []string{}, true},
		{"empty body", ``, nil, true},
		{"blank body", ` `, nil, true},
		{"unknown name", `{"subscriptions":["inputs"]}`, nil, false},
		{"not an object", `["desired"]`, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := iothub.ParseOBOAttachment([]byte(c.body))
			if c.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if err != nil {
				if !errors.Is(err, iothub.ErrMalformedBody) {
					t.Fatalf("error %v does not wrap ErrMalformedBody", err)
				}
				return
			}
			if !reflect.DeepEqual(got.Subscriptions, c.want) {
				t.Fatalf("subscriptions %v, want %v", got.Subscriptions, c.want)
			}
			for _, s := range c.want {
				if !got.Has(s) {
					t.Errorf("Has(%q) = false", s)
				}
			}
		})
	}
}

func FuzzParseOBOTopic(f *testing.F) {
	for _, in := range readInputs(f, "obo_topics") {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := iothub.ParseOBOTopic(s)
		if err != nil {
			if !errors.Is(err, iothub.ErrUnknownTopic) && !errors.Is(err, iothub.ErrMalformedTopic) {
				t.Fatalf("error %v wraps neither ErrUnknownTopic nor ErrMalformedTopic", err)
			}
			if len(err.Error()) > 4*200+200 {
				t.Fatalf("error message is %d bytes long", len(err.Error()))
			}
			return
		}
		// Invariants of a parsed topic.
		if tp.DeviceID == "" || strings.Contains(tp.DeviceID, "/") || strings.Contains(tp.ModuleID, "/") {
			t.Fatalf("%q: bad identity %q/%q", s, tp.DeviceID, tp.ModuleID)
		}
		if (tp.Kind == iothub.OBOTwinPatchDesired) != (tp.RequestID == "") {
			t.Fatalf("%q: kind %v with rid %q", s, tp.Kind, tp.RequestID)
		}
		// Round trip through the canonical form.
		canon := tp.String()
		if len(canon) > iothub.MaxTopicLength {
			return
		}
		again, err := iothub.ParseOBOTopic(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, s, err)
		}
		if !reflect.DeepEqual(tp, again) {
			t.Fatalf("%q -> %+v\ncanonical %q -> %+v", s, tp, canon, again)
		}
		if again.String() != canon {
			t.Fatalf("String is not stable: %q then %q", canon, again.String())
		}
		// The extension never collides with the plain dialect.
		if _, err := iothub.ParseTopic(canon); !errors.Is(err, iothub.ErrUnknownTopic) {
			t.Fatalf("canonical %q also parses as a plain topic (%v)", canon, err)
		}
	})
}

func FuzzParseOBOIdentity(f *testing.F) {
	f.Add([]byte(goodRecord))
	f.Add([]byte(`{"deviceId":"edge1","moduleId":"$edgeAgent","status":"disabled","authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"AB"}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := iothub.ParseOBOIdentity(body)
		if err != nil {
			if !errors.Is(err, iothub.ErrMalformedBody) {
				t.Fatalf("error %v does not wrap ErrMalformedBody", err)
			}
			return
		}
		// A record that parsed survives a marshal and parse unchanged.
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		again, err := iothub.ParseOBOIdentity(b)
		if err != nil {
			t.Fatalf("re-encoded record %s does not parse: %v", b, err)
		}
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("%+v\nre-parsed as %+v", r, again)
		}
	})
}
