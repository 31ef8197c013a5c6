package fakehub

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func TestService_TwinGetPatchReplace(t *testing.T) {
	h := newSvcHarness(t)
	h.mustCreateDevice("dev1", false)
	h.call("PUT", "/devices/dev1/modules/mod1", `{}`)

	for _, base := range []string{"/twins/dev1", "/twins/dev1/modules/mod1"} {
		t.Run(base, func(t *testing.T) {
			h := h.with(t)
			resp := h.call("GET", base+"?api-version=2021-04-12", nil)
			if resp.status != 200 {
				t.Fatalf("GET: %d %s", resp.status, resp.body)
			}
			var tw map[string]any
			svcDecode(t, resp, &tw)
			if tw["deviceId"] != "dev1" {
				t.Errorf("deviceId = %v", tw["deviceId"])
			}
			if strings.Contains(base, "modules") != (tw["moduleId"] == "mod1") {
				t.Errorf("moduleId = %v", tw["moduleId"])
			}
			props, _ := tw["properties"].(map[string]any)
			desired, _ := props["desired"].(map[string]any)
			reported, _ := props["reported"].(map[string]any)
			if desired == nil || reported == nil || desired["$version"] == nil || reported["$version"] == nil {
				t.Fatalf("twin %s lacks properties.desired/reported with $version", resp.body)
			}
			etag, _ := tw["etag"].(string)
			if etag == "" || resp.header.Get("ETag") != `"`+etag+`"` {
				t.Errorf("etag %q, ETag header %q", etag, resp.header.Get("ETag"))
			}

			// PATCH merges and answers the whole twin.
			resp = h.call("PATCH", base, `{"tags":{"env":"test"},"properties":{"desired":{"a":1,"nested":{"b":"x"}}}}`)
			if resp.status != 200 {
				t.Fatalf("PATCH: %d %s", resp.status, resp.body)
			}
			var patched Twin
			svcDecode(t, resp, &patched)
			if patched.Tags["env"] != "test" || patched.Properties.Desired["a"] != float64(1) {
				t.Fatalf("patched twin = %s", resp.body)
			}
			resp = h.call("PATCH", base, `{"properties":{"desired":{"c":true}}}`)
			svcDecode(t, resp, &patched)
			if patched.Properties.Desired["a"] != float64(1) || patched.Properties.Desired["c"] != true {
				t.Fatalf("a second PATCH did not merge: %s", resp.body)
			}

			// Stale If-Match.
			resp = h.send(svcReq{method: "PATCH", path: base, body: `{"tags":{"x":1}}`, header: map[string]string{"If-Match": `"stale"`}})
			wantError(t, resp, 412, 412001, "PreconditionFailed")

			// PUT replaces desired and tags.
			resp = h.send(svcReq{method: "PUT", path: base, body: `{"tags":{"only":"this"},"properties":{"desired":{"z":2}}}`,
				header: map[string]string{"If-Match": `"` + patched.Etag + `"`}})
			if resp.status != 200 {
				t.Fatalf("PUT: %d %s", resp.status, resp.body)
			}
			var replaced Twin
			svcDecode(t, resp, &replaced)
			if _, still := replaced.Properties.Desired["a"]; still || replaced.Properties.Desired["z"] != float64(2) ||
				replaced.Tags["only"] != "this" || replaced.Tags["env"] != nil {
				t.Fatalf("replaced twin = %s", resp.body)
			}

			wantError(t, h.call("PATCH", base, `{"properties":{"desired":`), 400, 400004, "ArgumentInvalid")
		})
	}
	wantError(t, h.call("GET", "/twins/nodev", nil), 404, 404001, "DeviceNotFound")
	wantError(t, h.call("GET", "/twins/dev1/modules/nomod", nil), 404, 404010, "ModuleNotFound")
	wantError(t, h.call("PUT", "/twins/dev1", `{"deviceId":"other"}`), 400, 400004, "ArgumentInvalid")
}

func TestService_ApplyConfigurationContent(t *testing.T) {
	h := newSvcHarness(t)
	h.mustCreateDevice("edge1", true)
	content := `{"modulesContent":{
		"$edgeAgent":{"properties.desired":{"schemaVersion":"1.1","runtime":{"type":"docker","settings":{}},"systemModules":{},"modules":{}}},
		"$edgeHub":{"properties.desired":{"schemaVersion":"1.1","routes":{"r1":"FROM /messages/* INTO $upstream"},"storeAndForwardConfiguration":{"timeToLiveSecs":7200}}}
	}}`
	resp := h.call("POST", "/devices/edge1/applyConfigurationContent?api-version=2021-04-12", content)
	if resp.status != http.StatusNoContent || len(resp.body) != 0 {
		t.Fatalf("apply: %d %q, want 204 and no body", resp.status, resp.body)
	}
	var hub Twin
	svcDecode(t, h.call("GET", "/twins/edge1/modules/$edgeHub", nil), &hub)
	routes, _ := hub.Properties.Desired["routes"].(map[string]any)
	if routes["r1"] != "FROM /messages/* INTO $upstream" {
		t.Fatalf("$edgeHub desired = %s", svcString(hub.Properties.Desired))
	}
	var agent Twin
	svcDecode(t, h.call("GET", "/twins/edge1/modules/$edgeAgent", nil), &agent)
	if agent.Properties.Desired["schemaVersion"] != "1.1" {
		t.Fatalf("$edgeAgent desired = %s", svcString(agent.Properties.Desired))
	}

	wantError(t, h.call("POST", "/devices/edge1/applyConfigurationContent", `{}`), 400, 400004, "ArgumentInvalid")
	wantError(t, h.call("POST", "/devices/nodev/applyConfigurationContent", content), 404, 404001, "DeviceNotFound")
}

func TestService_MethodOffline(t *testing.T) {
	h := newSvcHarness(t)
	h.mustCreateDevice("dev1", true)
	h.call("PUT", "/devices/dev1/modules/mod1", `{}`)

	for _, path := range []string{"/twins/dev1/methods", "/twins/dev1/modules/mod1/methods"} {
		t.Run(path, func(t *testing.T) {
			h := h.with(t)
			resp := h.call("POST", path+"?api-version=2021-04-12", `{"methodName":"reboot","payload":{"delay":1},"responseTimeoutInSeconds":5}`)
			e := wantError(t, resp, 404, 404103, "DeviceNotOnline")
			if e.message != "Timed out waiting for device to connect." {
				t.Errorf("message = %q", e.message)
			}
			if e.info["timeout"] != "00:00:00" {
				t.Errorf("info = %v, want timeout 00:00:00", e.info)
			}
		})
	}
	// The exact outer shape of section 6.2: Message is a JSON string.
	resp := h.call("POST", "/twins/dev1/methods", `{"methodName":"reboot","connectTimeoutInSeconds":0}`)
	var outer map[string]json.RawMessage
	svcDecode(t, resp, &outer)
	if len(outer) != 2 || outer["Message"] == nil || outer["ExceptionMessage"] == nil || outer["Message"][0] != '"' {
		t.Errorf("body %s is not {\"Message\":\"<json>\",\"ExceptionMessage\":...}", resp.body)
	}
	if resp.header.Get("iothub-errorcode") != "DeviceNotOnline" {
		t.Errorf("iothub-errorcode = %q", resp.header.Get("iothub-errorcode"))
	}
}

func TestService_MethodRequestValidation(t *testing.T) {
	h := newSvcHarness(t)
	h.mustCreateDevice("dev1", false)
	tests := []struct{ name, body, want string }{
		{"no method name", `{"payload":1}`, "methodName"},
		{"response timeout below 5", `{"methodName":"m","responseTimeoutInSeconds":4}`, "responseTimeoutInSeconds"},
		{"response timeout above 300", `{"methodName":"m","responseTimeoutInSeconds":301}`, "responseTimeoutInSeconds"},
		{"negative connect timeout", `{"methodName":"m","connectTimeoutInSeconds":-1}`, "connectTimeoutInSeconds"},
		{"payload over 128 KB", `{"methodName":"m","payload":"` + strings.Repeat("x", 128*1024) + `"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.with(t)
			resp := h.call("POST", "/twins/dev1/methods", tt.body)
			if tt.want == "" {
				wantError(t, resp, 413, 413001, "MessageTooLarge")
				return
			}
			e := wantError(t, resp, 400, 400004, "ArgumentInvalid")
			if !strings.Contains(e.message, tt.want) {
				t.Errorf("message %q does not name %s", e.message, tt.want)
			}
		})
	}
	wantError(t, h.call("POST", "/twins/nodev/methods", `{"methodName":"m"}`), 404, 404001, "DeviceNotFound")
}

// TestService_MethodRoundTrip invokes a method on a device connected with paho: 200 with
// the device's own status and payload, then 504 when the device does not answer.
func TestService_MethodRoundTrip(t *testing.T) {
	h := newSvcHarness(t)
	h.mustCreateDevice("dev1", false)
	c := h.svcMQTT("dev1")
	var respond atomic.Bool // whether the device answers requests
	respond.Store(true)
	svcWait(t, c.Subscribe("$iothub/methods/POST/#", 0, func(c mqtt.Client, m mqtt.Message) {
		// $iothub/methods/POST/{name}/?$rid={rid}
		parts := strings.Split(m.Topic(), "/")
		if len(parts) != 5 || !respond.Load() {
			return
		}
		rid := strings.TrimPrefix(parts[4], "?$rid=")
		body := fmt.Sprintf(`{"got":%s,"method":%q}`, m.Payload(), parts[3])
		c.Publish("$iothub/methods/res/201/?$rid="+rid, 0, false, body)
	}), "subscribe to methods")

	var resp svcResp
	svcCheckFor(t, 10*time.Second, func() error {
		// SUBACK may reach us before the hub counts the device as online for methods.
		resp = h.call("POST", "/twins/dev1/methods", `{"methodName":"ping","payload":{"n":1},"responseTimeoutInSeconds":10}`)
		if resp.status == 404 {
			return fmt.Errorf("still offline: %s", resp.body)
		}
		return nil
	})
	if resp.status != 200 {
		t.Fatalf("invoke: %d %s", resp.status, resp.body)
	}
	var mr struct {
		Status  int             `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}
	svcDecode(t, resp, &mr)
	var payload map[string]any
	if err := json.Unmarshal(mr.Payload, &payload); err != nil {
		t.Fatalf("payload %s: %v", mr.Payload, err)
	}
	if mr.Status != 201 || payload["method"] != "ping" || svcString(payload["got"]) != `{"n":1}` {
		t.Fatalf("method response = %s", resp.body)
	}

	respond.Store(false)
	resp = h.call("POST", "/twins/dev1/methods", `{"methodName":"slow","responseTimeoutInSeconds":5}`)
	e := wantError(t, resp, 504, 504101, "GatewayTimeout")
	if e.info["timeout"] != "00:00:05" {
		t.Errorf("info = %v, want timeout 00:00:05", e.info)
	}
}
