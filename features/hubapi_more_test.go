package features

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The parts of the fake hub's APIs the edge hub scenarios use: the
// identity registry, twins and direct methods of IoT Hub's service API, and
// the fake-only API (captured device-to-cloud messages, connections, fault
// controls). docs/fakehub.md describes them.

// registryDevice is the parts of a registry device or module the
// scenarios read. An update sends back the whole entry it read (device
// returns it raw too), so that nothing else changes.
type registryDevice struct {
	DeviceID       string   `json:"deviceId"`
	GenerationID   string   `json:"generationId"`
	Status         string   `json:"status"`
	DeviceScope    string   `json:"deviceScope"`
	ParentScopes   []string `json:"parentScopes"`
	Authentication struct {
		SymmetricKey struct {
			PrimaryKey string `json:"primaryKey"`
		} `json:"symmetricKey"`
	} `json:"authentication"`
}

// device reads a device of the registry, raw and decoded.
func (h *hubAPI) device(ctx context.Context, id string) (map[string]any, registryDevice, error) {
	var raw map[string]any
	if err := h.do(ctx, http.MethodGet, "/devices/"+url.PathEscape(id)+"?api-version=2021-04-12", nil, &raw); err != nil {
		return nil, registryDevice{}, err
	}
	var d registryDevice
	b, _ := json.Marshal(raw)
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, registryDevice{}, fmt.Errorf("device %q: %w", id, err)
	}
	return raw, d, nil
}

// createLeafDevice creates device id as a child of the edge device: its
// parentScopes name the edge device's deviceScope, as `az iot hub device-identity
// create --device-id leaf1 --pd edge1` does. It returns the primary key.
func (h *hubAPI) createLeafDevice(ctx context.Context, id, edge string) (string, error) {
	_, e, err := h.device(ctx, edge)
	if err != nil {
		return "", err
	}
	if e.DeviceScope == "" {
		return "", fmt.Errorf("the edge device %q has no deviceScope", edge)
	}
	var d registryDevice
	body := map[string]any{"deviceId": id, "parentScopes": []string{e.DeviceScope}}
	if err := h.do(ctx, http.MethodPut, "/devices/"+url.PathEscape(id)+"?api-version=2021-04-12", body, &d); err != nil {
		return "", err
	}
	return d.Authentication.SymmetricKey.PrimaryKey, nil
}

// createDevice creates a device with no parent.
func (h *hubAPI) createDevice(ctx context.Context, id string) (registryDevice, error) {
	var d registryDevice
	err := h.do(ctx, http.MethodPut, "/devices/"+url.PathEscape(id)+"?api-version=2021-04-12", map[string]any{"deviceId": id}, &d)
	return d, err
}

// createModule creates module identity module of device and returns its
// primary key, as `az iot hub module-identity create` does.
func (h *hubAPI) createModule(ctx context.Context, device, module string) (string, error) {
	var m registryDevice
	path := "/devices/" + url.PathEscape(device) + "/modules/" + url.PathEscape(module) + "?api-version=2021-04-12"
	if err := h.do(ctx, http.MethodPut, path, map[string]any{"deviceId": device, "moduleId": module}, &m); err != nil {
		return "", err
	}
	return m.Authentication.SymmetricKey.PrimaryKey, nil
}

// generationID returns the generation id of a device (module "") or module.
func (h *hubAPI) generationID(ctx context.Context, device, module string) (string, error) {
	path := "/devices/" + url.PathEscape(device)
	if module != "" {
		path += "/modules/" + url.PathEscape(module)
	}
	var d registryDevice
	if err := h.do(ctx, http.MethodGet, path+"?api-version=2021-04-12", nil, &d); err != nil {
		return "", err
	}
	if d.GenerationID == "" {
		return "", fmt.Errorf("%s has no generationId", path)
	}
	return d.GenerationID, nil
}

// setDeviceStatus sets a device "enabled" or "disabled", keeping the rest of
// its registry entry (its keys above all) as it is.
func (h *hubAPI) setDeviceStatus(ctx context.Context, id, status string) error {
	raw, _, err := h.device(ctx, id)
	if err != nil {
		return err
	}
	raw["status"] = status
	return h.doIfMatch(ctx, http.MethodPut, "/devices/"+url.PathEscape(id)+"?api-version=2021-04-12", raw)
}

// doIfMatch is do with "If-Match: *": an unconditional update.
func (h *hubAPI) doIfMatch(ctx context.Context, method, path string, body any) error {
	return h.doHeader(ctx, method, path, body, nil, map[string]string{"If-Match": "*"})
}

// patchModuleDesired merges patch into a module twin's desired properties,
// as a solution back end does with the service SDK's UpdateTwin.
func (h *hubAPI) patchModuleDesired(ctx context.Context, device, module string, patch map[string]any) error {
	path := "/twins/" + url.PathEscape(device) + "/modules/" + url.PathEscape(module) + "?api-version=2021-04-12"
	return h.do(ctx, http.MethodPatch, path, map[string]any{"properties": map[string]any{"desired": patch}}, nil)
}

// methodResult is the answer of a direct method: the status and payload the
// target chose.
type methodResult struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// invokeModuleMethod invokes a direct method on a module, as the service
// SDK's InvokeDeviceMethodAsync(device, module, ...) does.
func (h *hubAPI) invokeModuleMethod(ctx context.Context, device, module, name string, payload any, timeout time.Duration) (methodResult, error) {
	var r methodResult
	path := "/twins/" + url.PathEscape(device) + "/modules/" + url.PathEscape(module) + "/methods?api-version=2021-04-12"
	body := map[string]any{"methodName": name, "payload": payload, "responseTimeoutInSeconds": int(timeout / time.Second)}
	err := h.do(ctx, http.MethodPost, path, body, &r)
	return r, err
}

// hubEvent is a device-to-cloud message IoT Hub received, as the fake
// hub's /fake/events shows it.
type hubEvent struct {
	Seq              int64             `json:"seq"`
	DeviceID         string            `json:"deviceId"`
	ModuleID         string            `json:"moduleId"`
	Body             []byte            `json:"body"`
	Properties       map[string]string `json:"properties"`
	SystemProperties map[string]string `json:"systemProperties"`
}

// sender is "device" or "device/module".
func (e hubEvent) sender() string {
	if e.ModuleID == "" {
		return e.DeviceID
	}
	return e.DeviceID + "/" + e.ModuleID
}

// events returns the messages received after seq after, at most 1000.
func (h *hubAPI) events(ctx context.Context, after int64) ([]hubEvent, error) {
	var evs []hubEvent
	err := h.do(ctx, http.MethodGet, "/fake/events?limit=1000&after="+strconv.FormatInt(after, 10), nil, &evs)
	return evs, err
}

// hubConnection is one physical MQTT connection to IoT Hub and the
// identities it carries.
type hubConnection struct {
	ClientID   string   `json:"clientId"`
	Identities []string `json:"identities"`
	RemoteAddr string   `json:"remoteAddr"`
}

// connections lists IoT Hub's MQTT connections.
func (h *hubAPI) connections(ctx context.Context) ([]hubConnection, error) {
	var cs []hubConnection
	err := h.do(ctx, http.MethodGet, "/fake/connections", nil, &cs)
	return cs, err
}

// cutNetwork drops every MQTT connection to IoT Hub and refuses new ones
// until restoreNetwork: the device's route to the cloud is gone.
func (h *hubAPI) cutNetwork(ctx context.Context) error {
	return h.do(ctx, http.MethodPost, "/fake/control/network/cut", nil, nil)
}

// restoreNetwork accepts MQTT connections again.
func (h *hubAPI) restoreNetwork(ctx context.Context) error {
	return h.do(ctx, http.MethodPost, "/fake/control/network/restore", nil, nil)
}

// setRefuseAuth makes IoT Hub refuse every new MQTT CONNECT with CONNACK 5
// (not authorized), or accept them again. Established connections stay.
func (h *hubAPI) setRefuseAuth(ctx context.Context, refuse bool) error {
	return h.do(ctx, http.MethodPut, "/fake/control/auth", map[string]any{"refuse": refuse}, nil)
}
