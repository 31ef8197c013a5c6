package fakehub

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestService_DeviceCRUD(t *testing.T) {
	h := newSvcHarness(t)

	// Create: keys generated, an etag, 200 with the device.
	resp := h.call("PUT", "/devices/dev1?api-version=2021-04-12", `{"deviceId":"dev1"}`)
	if resp.status != http.StatusOK {
		t.Fatalf("create: %d %s", resp.status, resp.body)
	}
	var d Device
	svcDecode(t, resp, &d)
	if d.DeviceID != "dev1" || d.Etag == "" || d.GenerationID == "" {
		t.Fatalf("created device = %s, want deviceId, etag and generationId", svcString(d))
	}
	if resp.header.Get("ETag") != `"`+d.Etag+`"` {
		t.Errorf("ETag header = %q, want the quoted etag %q", resp.header.Get("ETag"), d.Etag)
	}
	if d.Authentication.Type != "sas" || d.Authentication.SymmetricKey == nil {
		t.Fatalf("authentication = %s, want generated sas keys", svcString(d.Authentication))
	}
	for _, k := range []string{d.Authentication.SymmetricKey.PrimaryKey, d.Authentication.SymmetricKey.SecondaryKey} {
		if b, err := base64.StdEncoding.DecodeString(k); err != nil || len(b) < 16 {
			t.Errorf("generated key %q is not base64 of at least 16 bytes (%v)", k, err)
		}
	}

	t.Run("create again is 409", func(t *testing.T) {
		h := h.with(t)
		wantError(t, h.call("PUT", "/devices/dev1", `{"deviceId":"dev1"}`), 409, 409001, "DeviceAlreadyExists")
	})
	t.Run("body id must match the path", func(t *testing.T) {
		h := h.with(t)
		e := wantError(t, h.call("PUT", "/devices/dev2", `{"deviceId":"dev1"}`), 400, 400004, "ArgumentInvalid")
		if !strings.Contains(e.message, "does not match") {
			t.Errorf("message %q", e.message)
		}
	})
	t.Run("get", func(t *testing.T) {
		h := h.with(t)
		resp := h.call("GET", "/devices/dev1", nil)
		var got Device
		svcDecode(t, resp, &got)
		if resp.status != 200 || got.DeviceID != "dev1" || got.Etag != d.Etag {
			t.Fatalf("GET = %d %s", resp.status, resp.body)
		}
	})
	t.Run("update with a stale etag is 412", func(t *testing.T) {
		h := h.with(t)
		resp := h.send(svcReq{method: "PUT", path: "/devices/dev1", body: `{"deviceId":"dev1","status":"disabled"}`,
			header: map[string]string{"If-Match": `"stale"`}})
		wantError(t, resp, 412, 412001, "PreconditionFailed")
	})
	var updated Device
	t.Run("update with the quoted etag", func(t *testing.T) {
		h := h.with(t)
		resp := h.send(svcReq{method: "PUT", path: "/devices/dev1", body: `{"deviceId":"dev1","status":"disabled","statusReason":"test"}`,
			header: map[string]string{"If-Match": `"` + d.Etag + `"`}})
		if resp.status != 200 {
			t.Fatalf("update: %d %s", resp.status, resp.body)
		}
		svcDecode(t, resp, &updated)
		if updated.Status != "disabled" || updated.Etag == d.Etag {
			t.Fatalf("updated = %s, want status disabled and a new etag", svcString(updated))
		}
	})
	t.Run("update with the bare etag and with *", func(t *testing.T) {
		h := h.with(t)
		for _, etag := range []string{updated.Etag, "*", `"*"`} {
			resp := h.send(svcReq{method: "PUT", path: "/devices/dev1", body: `{"deviceId":"dev1","status":"enabled"}`,
				header: map[string]string{"If-Match": etag}})
			if resp.status != 200 {
				t.Fatalf("update with If-Match %s: %d %s", etag, resp.status, resp.body)
			}
		}
	})
	t.Run("list with top", func(t *testing.T) {
		h := h.with(t)
		h.mustCreateDevice("dev2", false)
		h.mustCreateDevice("dev3", true)
		var all, two []Device
		svcDecode(t, h.call("GET", "/devices", nil), &all)
		svcDecode(t, h.call("GET", "/devices?top=2", nil), &two)
		if len(all) != 3 || len(two) != 2 {
			t.Fatalf("list = %d devices, top=2 = %d; want 3 and 2", len(all), len(two))
		}
		for _, bad := range []string{"0", "-1", "x", "1001"} {
			wantError(t, h.call("GET", "/devices?top="+bad, nil), 400, 400004, "ArgumentInvalid")
		}
	})
	t.Run("delete with a stale etag is 412", func(t *testing.T) {
		h := h.with(t)
		resp := h.send(svcReq{method: "DELETE", path: "/devices/dev2", header: map[string]string{"If-Match": `"stale"`}})
		wantError(t, resp, 412, 412001, "PreconditionFailed")
	})
	t.Run("delete", func(t *testing.T) {
		h := h.with(t)
		resp := h.send(svcReq{method: "DELETE", path: "/devices/dev2", header: map[string]string{"If-Match": "*"}})
		if resp.status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", resp.status, resp.body)
		}
		e := wantError(t, h.call("GET", "/devices/dev2", nil), 404, 404001, "DeviceNotFound")
		if !strings.Contains(e.message, `"dev2"`) {
			t.Errorf("message %q does not name the device", e.message)
		}
		wantError(t, h.call("DELETE", "/devices/dev2", nil), 404, 404001, "DeviceNotFound")
	})
}

func TestService_IDsArePercentDecodedOnce(t *testing.T) {
	h := newSvcHarness(t)
	for _, id := range []string{"a%41b", "we?ird#id", "dollar$id", "plus+id", "eq=(it's)"} {
		t.Run(id, func(t *testing.T) {
			h := h.with(t)
			resp := h.call("PUT", "/devices/"+pathEscape(id), `{}`)
			if resp.status != 200 {
				t.Fatalf("PUT %q = %d %s", id, resp.status, resp.body)
			}
			resp = h.call("GET", "/devices/"+pathEscape(id), nil)
			var d Device
			svcDecode(t, resp, &d)
			if resp.status != 200 || d.DeviceID != id {
				t.Fatalf("GET %q = %d %s", id, resp.status, resp.body)
			}
			if _, err := h.s.GetDevice(id); err != nil {
				t.Fatalf("the registry does not hold %q: %v", id, err)
			}
		})
	}
}

func TestService_ModuleCRUD(t *testing.T) {
	h := newSvcHarness(t)
	h.mustCreateDevice("dev1", false)

	resp := h.call("PUT", "/devices/dev1/modules/mod1", `{"moduleId":"mod1","deviceId":"dev1","managedBy":"test"}`)
	if resp.status != 200 {
		t.Fatalf("create module: %d %s", resp.status, resp.body)
	}
	var m Module
	svcDecode(t, resp, &m)
	if m.ModuleID != "mod1" || m.DeviceID != "dev1" || m.Etag == "" || m.Authentication.SymmetricKey == nil ||
		m.Authentication.SymmetricKey.PrimaryKey == "" {
		t.Fatalf("module = %s, want ids, etag and generated keys", svcString(m))
	}

	wantError(t, h.call("PUT", "/devices/dev1/modules/mod1", `{}`), 409, 409301, "ModuleAlreadyExistsOnDevice")
	resp = h.send(svcReq{method: "PUT", path: "/devices/dev1/modules/mod1", body: `{}`, header: map[string]string{"If-Match": "stale"}})
	wantError(t, resp, 412, 412001, "PreconditionFailed")
	resp = h.send(svcReq{method: "PUT", path: "/devices/dev1/modules/mod1", body: `{"managedBy":"other"}`, header: map[string]string{"If-Match": m.Etag}})
	if resp.status != 200 {
		t.Fatalf("update module: %d %s", resp.status, resp.body)
	}
	wantError(t, h.call("PUT", "/devices/dev1/modules/mod1", `{"moduleId":"other"}`), 400, 400004, "ArgumentInvalid")

	var list []Module
	resp = h.call("GET", "/devices/dev1/modules", nil)
	svcDecode(t, resp, &list)
	names := map[string]bool{}
	for _, m := range list {
		names[m.ModuleID] = true
	}
	if resp.status != 200 || !names["mod1"] {
		t.Fatalf("list modules = %d %s", resp.status, resp.body)
	}
	resp = h.call("GET", "/devices/dev1/modules/mod1", nil)
	if resp.status != 200 {
		t.Fatalf("get module: %d %s", resp.status, resp.body)
	}

	wantError(t, h.call("GET", "/devices/dev1/modules/nope", nil), 404, 404010, "ModuleNotFound")
	wantError(t, h.call("GET", "/devices/nodev/modules/mod1", nil), 404, 404001, "DeviceNotFound")
	wantError(t, h.call("GET", "/devices/nodev/modules", nil), 404, 404001, "DeviceNotFound")
	wantError(t, h.call("PUT", "/devices/nodev/modules/mod1", `{}`), 404, 404001, "DeviceNotFound")

	if resp := h.call("DELETE", "/devices/dev1/modules/mod1", nil); resp.status != 204 {
		t.Fatalf("delete module: %d %s", resp.status, resp.body)
	}
	wantError(t, h.call("GET", "/devices/dev1/modules/mod1", nil), 404, 404010, "ModuleNotFound")
}

// The edge agent creates its modules' identities with the edge device's own SAS token
// (design.md section 3); that token must not reach anything else.
func TestService_EdgeDeviceManagesItsOwnModules(t *testing.T) {
	h := newSvcHarness(t)
	h.mustCreateDevice("edge1", true)
	h.mustCreateDevice("edge2", true)
	h.mustCreateDevice("leaf1", false)
	tok := h.deviceToken("edge1", time.Now().Add(time.Hour))
	as := func(t *testing.T, method, path, body string) svcResp {
		t.Helper()
		return h.with(t).send(svcReq{method: method, path: path, body: body, token: tok})
	}

	resp := as(t, "PUT", "/devices/edge1/modules/filter?api-version=2021-04-12", `{"moduleId":"filter","deviceId":"edge1","managedBy":"IotEdge"}`)
	if resp.status != 200 {
		t.Fatalf("edge1 creating its module: %d %s", resp.status, resp.body)
	}
	var m Module
	svcDecode(t, resp, &m)
	if m.Authentication.SymmetricKey == nil || m.Authentication.SymmetricKey.PrimaryKey == "" || m.ManagedBy != "IotEdge" {
		t.Fatalf("module = %s, want generated keys and managedBy IotEdge", svcString(m))
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/devices/edge1/modules"},
		{"GET", "/devices/edge1/modules/filter"},
		{"GET", "/twins/edge1/modules/filter"},
		{"GET", "/twins/edge1/modules/$edgeAgent"},
	} {
		if resp := as(t, c.method, c.path, ""); resp.status != 200 {
			t.Errorf("edge1 %s %s = %d %s", c.method, c.path, resp.status, resp.body)
		}
	}

	refused := []struct{ method, path, body string }{
		{"PUT", "/devices/edge2/modules/filter", `{}`},
		{"GET", "/devices/edge2/modules", ""},
		{"GET", "/twins/edge2/modules/$edgeAgent", ""},
		{"GET", "/devices/edge1", ""},
		{"PUT", "/devices/edge3", `{}`},
		{"DELETE", "/devices/edge2", ""},
		{"GET", "/devices", ""},
		{"GET", "/twins/edge1", ""},
		{"PATCH", "/twins/edge1/modules/filter", `{"properties":{"desired":{"x":1}}}`},
		{"POST", "/twins/edge1/modules/filter/methods", `{"methodName":"m"}`},
		{"POST", "/devices/edge1/applyConfigurationContent", `{"modulesContent":{}}`},
		{"POST", "/devices/query", `{"query":"SELECT * FROM devices"}`},
		{"GET", "/fake/events", ""},
		{"PUT", "/fake/control/throttle", `{"enabled":true}`},
	}
	for _, c := range refused {
		t.Run("refused "+c.method+" "+c.path, func(t *testing.T) {
			wantError(t, as(t, c.method, c.path, c.body), 401, 401002, "IotHubUnauthorizedAccess")
		})
	}
	if _, err := h.s.GetDevice("edge3"); err == nil {
		t.Error("edge1's token created device edge3")
	}

	t.Run("a leaf device cannot manage modules", func(t *testing.T) {
		h := h.with(t)
		leaf := h.deviceToken("leaf1", time.Now().Add(time.Hour))
		resp := h.send(svcReq{method: "PUT", path: "/devices/leaf1/modules/m", body: `{}`, token: leaf})
		e := wantError(t, resp, 401, 401002, "IotHubUnauthorizedAccess")
		if !strings.Contains(e.message, "not an IoT Edge device") {
			t.Errorf("message %q", e.message)
		}
	})
	t.Run("an expired edge token is refused", func(t *testing.T) {
		h := h.with(t)
		old := h.deviceToken("edge1", time.Now().Add(-time.Hour))
		resp := h.send(svcReq{method: "GET", path: "/devices/edge1/modules", token: old})
		e := wantError(t, resp, 401, 401002, "IotHubUnauthorizedAccess")
		if !strings.Contains(e.message, "expired") {
			t.Errorf("message %q", e.message)
		}
	})

	if resp := as(t, "DELETE", "/devices/edge1/modules/filter", ""); resp.status != 204 {
		t.Fatalf("edge1 deleting its module: %d %s", resp.status, resp.body)
	}
}
