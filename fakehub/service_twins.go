package fakehub

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

// Twin, method and deployment endpoints (protocol notes sections 6.2 and 7):
//
//	GET|PATCH|PUT /twins/{d}               and /twins/{d}/modules/{m}
//	POST          /twins/{d}/methods       and /twins/{d}/modules/{m}/methods
//	POST          /devices/{d}/applyConfigurationContent

// Direct method timeouts, in seconds (protocol notes section 6.2).
const (
	defaultMethodResponseTimeout = 30
	minMethodResponseTimeout     = 5
	maxMethodTimeout             = 300
)

func (a *restAPI) getTwin(w http.ResponseWriter, r *http.Request) {
	deviceID, moduleID := r.PathValue("d"), r.PathValue("m")
	t, err := a.s.GetTwin(deviceID, moduleID)
	if err != nil {
		a.writeError(w, r, a.coreError(err, deviceID, moduleID))
		return
	}
	a.writeTwin(w, t)
}

// patchTwin merges tags and desired properties ({"tags":{},"properties":{"desired":{}}})
// and answers the whole twin.
func (a *restAPI) patchTwin(w http.ResponseWriter, r *http.Request) {
	deviceID, moduleID := r.PathValue("d"), r.PathValue("m")
	var patch TwinPatch
	if err := decodeJSON(w, r, &patch); err != nil {
		a.writeError(w, r, err)
		return
	}
	t, err := a.s.PatchTwin(deviceID, moduleID, patch, ifMatch(r))
	if err != nil {
		a.writeError(w, r, a.coreError(err, deviceID, moduleID))
		return
	}
	a.writeTwin(w, t)
}

// replaceTwin replaces tags and desired properties with the body's and answers the twin.
func (a *restAPI) replaceTwin(w http.ResponseWriter, r *http.Request) {
	deviceID, moduleID := r.PathValue("d"), r.PathValue("m")
	var t Twin
	if err := decodeJSON(w, r, &t); err != nil {
		a.writeError(w, r, err)
		return
	}
	if (t.DeviceID != "" && t.DeviceID != deviceID) || (t.ModuleID != "" && t.ModuleID != moduleID) {
		a.writeError(w, r, argumentInvalid(fmt.Sprintf("deviceId/moduleId %q/%q in the body do not match %q/%q in the path",
			t.DeviceID, t.ModuleID, deviceID, moduleID)))
		return
	}
	t.DeviceID, t.ModuleID = deviceID, moduleID
	out, err := a.s.ReplaceTwin(deviceID, moduleID, t, ifMatch(r))
	if err != nil {
		a.writeError(w, r, a.coreError(err, deviceID, moduleID))
		return
	}
	a.writeTwin(w, out)
}

func (a *restAPI) writeTwin(w http.ResponseWriter, t Twin) {
	setETag(w, t.Etag)
	a.writeJSON(w, http.StatusOK, t)
}

// invokeMethod calls a direct method and waits for the device's answer. The HTTP status
// is 200 whatever status the device chose; offline targets get 404 DeviceNotOnline and
// unanswered calls 504 GatewayTimeout, both with the "info" IoT Hub sends.
func (a *restAPI) invokeMethod(w http.ResponseWriter, r *http.Request) {
	deviceID, moduleID := r.PathValue("d"), r.PathValue("m")
	var req MethodRequest
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := checkMethodRequest(&req); err != nil {
		a.writeError(w, r, err)
		return
	}
	resp, err := a.s.InvokeMethod(r.Context(), deviceID, moduleID, req)
	if err != nil {
		mapped := a.coreError(err, deviceID, moduleID)
		if ae, ok := mapped.(apiError); ok {
			switch ae.code {
			case 404103:
				ae.info = map[string]any{"timeout": timeSpan(time.Duration(req.ConnectTimeoutInSeconds) * time.Second)}
			case 504101:
				ae.info = map[string]any{"timeout": timeSpan(time.Duration(req.ResponseTimeoutInSeconds) * time.Second)}
			}
			mapped = ae
		}
		a.writeError(w, r, mapped)
		return
	}
	if len(resp.Payload) == 0 {
		resp.Payload = json.RawMessage("null")
	}
	a.writeJSON(w, http.StatusOK, resp)
}

// checkMethodRequest validates a method request and fills in IoT Hub's defaults.
func checkMethodRequest(req *MethodRequest) error {
	if req.MethodName == "" {
		return argumentInvalid("methodName is required")
	}
	if req.ResponseTimeoutInSeconds == 0 {
		req.ResponseTimeoutInSeconds = defaultMethodResponseTimeout
	}
	if req.ResponseTimeoutInSeconds < minMethodResponseTimeout || req.ResponseTimeoutInSeconds > maxMethodTimeout {
		return argumentInvalid(fmt.Sprintf("responseTimeoutInSeconds is %d; want %d to %d (0 means %d)",
			req.ResponseTimeoutInSeconds, minMethodResponseTimeout, maxMethodTimeout, defaultMethodResponseTimeout))
	}
	if req.ConnectTimeoutInSeconds < 0 || req.ConnectTimeoutInSeconds > maxMethodTimeout {
		return argumentInvalid(fmt.Sprintf("connectTimeoutInSeconds is %d; want 0 to %d", req.ConnectTimeoutInSeconds, maxMethodTimeout))
	}
	if len(req.Payload) > iothub.MaxMethodPayloadSize {
		return apiError{status: http.StatusRequestEntityTooLarge, code: 413001, name: "MessageTooLarge",
			message: fmt.Sprintf("method payload is %d bytes; the limit is %d", len(req.Payload), iothub.MaxMethodPayloadSize)}
	}
	if len(req.Payload) == 0 {
		req.Payload = json.RawMessage("null")
	}
	return nil
}

// timeSpan formats d as a .NET TimeSpan ("00:00:30"), the form IoT Hub uses in "info".
func timeSpan(d time.Duration) string {
	s := int64(d / time.Second)
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

// configurationContent is the body of applyConfigurationContent.
type configurationContent struct {
	ModulesContent map[string]json.RawMessage `json:"modulesContent"`
}

// applyConfigurationContent sets an edge deployment: each entry of modulesContent
// ({"$edgeAgent":{"properties.desired":{...}}, ...}) replaces that module twin's desired
// properties. IoT Hub answers 204 No Content.
func (a *restAPI) applyConfigurationContent(w http.ResponseWriter, r *http.Request) {
	deviceID := r.PathValue("d")
	var cc configurationContent
	if err := decodeJSON(w, r, &cc); err != nil {
		a.writeError(w, r, err)
		return
	}
	if len(cc.ModulesContent) == 0 {
		a.writeError(w, r, argumentInvalid(`modulesContent is missing or empty; want {"modulesContent":{"$edgeAgent":{"properties.desired":{...}},...}}`))
		return
	}
	if err := a.s.ApplyConfigurationContent(deviceID, cc.ModulesContent); err != nil {
		a.writeError(w, r, a.coreError(err, deviceID, ""))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
