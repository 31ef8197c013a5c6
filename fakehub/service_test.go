package fakehub

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/sas"
)

func TestService_Authorization(t *testing.T) {
	h := newSvcHarness(t)
	h.mustCreateDevice("leaf1", false)
	cs, err := sas.ParseConnectionString(h.s.ServiceConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	sign := func(resource, key, keyName string, expiry time.Time) string {
		t.Helper()
		tok, err := sas.Sign(resource, key, keyName, expiry)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	otherKey, err := sas.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	hour := time.Now().Add(time.Hour)

	tests := []struct {
		name   string
		req    svcReq
		status int
		reason string // substring of the error message
	}{
		{name: "no header", req: svcReq{noAuth: true}, status: 401, reason: "missing"},
		{name: "not a SAS token", req: svcReq{token: "Bearer abc"}, status: 401, reason: "not a valid SharedAccessSignature"},
		{name: "garbage SAS token", req: svcReq{token: "SharedAccessSignature sr=&sig"}, status: 401, reason: "not a valid SharedAccessSignature"},
		{name: "wrong key", req: svcReq{token: sign(h.host, otherKey, cs.SharedAccessKeyName, hour)}, status: 401, reason: "signature"},
		{name: "expired", req: svcReq{token: sign(h.host, cs.SharedAccessKey, cs.SharedAccessKeyName, time.Now().Add(-time.Hour))}, status: 401, reason: "expired"},
		{name: "other hub", req: svcReq{token: sign("other.azure-devices.net", cs.SharedAccessKey, cs.SharedAccessKeyName, hour)}, status: 401, reason: "does not match this hub"},
		{name: "unknown policy", req: svcReq{token: sign(h.host, cs.SharedAccessKey, "nosuchpolicy", hour)}, status: 401, reason: "nosuchpolicy"},
		{name: "device token on the registry", req: svcReq{token: h.deviceToken("leaf1", hour)}, status: 401, reason: "needs a shared access policy token"},
		{name: "valid policy token", req: svcReq{}, status: 200},
		{name: "valid policy token on a hub prefix", req: svcReq{token: sign(h.host+"/devices", cs.SharedAccessKey, cs.SharedAccessKeyName, hour)}, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.with(t)
			tt.req.method, tt.req.path = "GET", "/devices?api-version=2021-04-12"
			resp := h.send(tt.req)
			if tt.status == 200 {
				if resp.status != 200 {
					t.Fatalf("status = %d, want 200; body %s", resp.status, resp.body)
				}
				return
			}
			e := wantError(t, resp, 401, 401002, "IotHubUnauthorizedAccess")
			if !strings.Contains(e.message, tt.reason) {
				t.Errorf("message %q does not contain %q", e.message, tt.reason)
			}
			if tt.req.token != "" && strings.Contains(string(resp.body), tt.req.token) {
				t.Errorf("the error body repeats the token")
			}
		})
	}
}

func TestService_PolicyRights(t *testing.T) {
	tests := []struct {
		policy string
		route  route
		want   bool
	}{
		{"iothubowner", route{right: rightRegistryWrite}, true},
		{"iothubowner", route{right: rightServiceConnect}, true},
		{"registryRead", route{right: rightRegistryRead}, true},
		{"registryRead", route{right: rightRegistryWrite}, false},
		{"registryRead", route{right: rightTwinRead}, true},
		{"registryRead", route{right: rightServiceConnect}, false},
		{"registryReadWrite", route{right: rightRegistryWrite}, true},
		{"service", route{right: rightServiceConnect}, true},
		{"service", route{right: rightTwinRead}, true},
		{"service", route{right: rightRegistryRead}, false},
		{"device", route{right: rightRegistryRead}, false},
		{"device", route{right: rightServiceConnect}, false},
		{"somethingElse", route{right: rightRegistryRead}, false},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			if got := policyRights[tt.policy]&tt.route.right != 0; got != tt.want {
				t.Errorf("policy %s on right %b: allowed = %v, want %v", tt.policy, tt.route.right, got, tt.want)
			}
		})
	}
}

func TestService_UnknownRoutes(t *testing.T) {
	h := newSvcHarness(t)
	t.Run("unknown path", func(t *testing.T) {
		h := h.with(t)
		resp := h.call("GET", "/nothing/here", nil)
		wantError(t, resp, 404, 404000, "NotFound")
	})
	t.Run("wrong method", func(t *testing.T) {
		h := h.with(t)
		resp := h.call("POST", "/devices/d1", "{}")
		wantError(t, resp, 405, 405000, "MethodNotAllowed")
		if allow := resp.header.Get("Allow"); !strings.Contains(allow, "PUT") || !strings.Contains(allow, "GET") {
			t.Errorf("Allow = %q, want GET and PUT in it", allow)
		}
	})
}

func TestService_Throttle(t *testing.T) {
	h := newSvcHarness(t)
	if resp := h.call("PUT", "/fake/control/throttle", `{"enabled":true}`); resp.status != 204 {
		t.Fatalf("enabling throttling: %d %s", resp.status, resp.body)
	}
	if !h.s.Throttled() {
		t.Fatal("Throttled() = false after PUT /fake/control/throttle {enabled:true}")
	}
	for _, path := range []string{"/devices", "/twins/d1", "/devices/d1/modules"} {
		wantError(t, h.call("GET", path, nil), 429, 429001, "ThrottlingException")
	}
	// A bad token is still a 401, not a 429: authorisation comes first.
	wantError(t, h.send(svcReq{method: "GET", path: "/devices", noAuth: true}), 401, 401002, "IotHubUnauthorizedAccess")
	// The fake-only API keeps working so that a test can observe and switch it off.
	if resp := h.call("GET", "/fake/events", nil); resp.status != 200 {
		t.Errorf("GET /fake/events while throttled: %d %s", resp.status, resp.body)
	}
	if resp := h.call("PUT", "/fake/control/throttle", `{"enabled":false}`); resp.status != 204 {
		t.Fatalf("disabling throttling: %d %s", resp.status, resp.body)
	}
	if resp := h.call("GET", "/devices", nil); resp.status != 200 {
		t.Errorf("GET /devices after throttling: %d %s", resp.status, resp.body)
	}
}

func TestService_MalformedJSON(t *testing.T) {
	h := newSvcHarness(t)
	tests := []struct {
		name, body, want string
	}{
		{name: "syntax error", body: "{\n  \"deviceId\": \"d1\",\n  oops\n}", want: "line 3, column 3"},
		{name: "truncated", body: `{"deviceId": "d1"`, want: "unexpected end"},
		{name: "wrong type", body: `{"deviceId": 42}`, want: "deviceId"},
		{name: "empty", body: "", want: "empty"},
		{name: "trailing garbage", body: `{"deviceId":"d1"} x`, want: "line 1, column 19"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.with(t)
			e := wantError(t, h.call("PUT", "/devices/d1", tt.body), 400, 400004, "ArgumentInvalid")
			if !strings.Contains(e.message, tt.want) {
				t.Errorf("message %q does not contain %q", e.message, tt.want)
			}
		})
	}
}

func TestService_BodyTooLarge(t *testing.T) {
	h := newSvcHarness(t)
	big := `{"deviceId":"d1","statusReason":"` + strings.Repeat("x", maxRequestBody) + `"}`
	wantError(t, h.call("PUT", "/devices/d1", big), http.StatusRequestEntityTooLarge, 413001, "MessageTooLarge")
	if resp := h.call("GET", "/devices/d1", nil); resp.status != 404 {
		t.Errorf("the too-large PUT created the device: GET = %d", resp.status)
	}
}

func TestService_APIVersionIsOptional(t *testing.T) {
	h := newSvcHarness(t)
	for _, q := range []string{"", "?api-version=2021-04-12", "?api-version=2016-11-14", "?api-version=anything"} {
		if resp := h.call("GET", "/devices"+q, nil); resp.status != 200 {
			t.Errorf("GET /devices%s = %d %s", q, resp.status, resp.body)
		}
	}
}

func TestJSONPosition(t *testing.T) {
	body := []byte("ab\ncde\n\nf")
	tests := []struct {
		offset int64
		want   string
	}{
		{0, "line 1, column 1 (byte 0)"},
		{2, "line 1, column 3 (byte 2)"},
		{3, "line 2, column 1 (byte 3)"},
		{5, "line 2, column 3 (byte 5)"},
		{8, "line 4, column 1 (byte 8)"},
		{99, "line 4, column 2 (byte 9)"},
		{-1, "line 1, column 1 (byte 0)"},
	}
	for _, tt := range tests {
		if got := jsonPosition(body, tt.offset); got != tt.want {
			t.Errorf("jsonPosition(%d) = %q, want %q", tt.offset, got, tt.want)
		}
	}
}

func TestUnquoteETag(t *testing.T) {
	tests := map[string]string{
		``:               ``,
		`*`:              `*`,
		`"*"`:            `*`,
		`AAAAAAAAAAc=`:   `AAAAAAAAAAc=`,
		`"AAAAAAAAAAc="`: `AAAAAAAAAAc=`,
		`W/"MA=="`:       `MA==`,
		` "MA==" `:       `MA==`,
		`"`:              `"`,
	}
	for in, want := range tests {
		if got := unquoteETag(in); got != want {
			t.Errorf("unquoteETag(%q) = %q, want %q", in, got, want)
		}
	}
}
