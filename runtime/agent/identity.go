package agent

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// Identities manages the module identities of the edge device in the hub.
// The agent owns the interface; HubIdentities implements it over the IoT
// Hub service API, and tests use a fake.
//
// Module keys are derived from the edge device's key (DeriveModuleKey), as
// Azure's identity service derives them from the device's master key, so
// the agent can compute every module's connection string without the
// network: a device that boots offline starts its modules with the same
// environment as before, and no module key is ever stored on disk.
type Identities interface {
	// ModuleKey returns the SAS key of the edge device's module identity
	// id ("$edgeAgent", "$edgeHub" or a module name). It never uses the
	// network. Called for every desired module at every reconcile.
	ModuleKey(id string) (string, error)

	// EnsureModule makes sure module identity id exists in the hub and
	// accepts ModuleKey(id), creating or updating it as needed, and returns
	// its generation id. Called by the agent before it first connects (for
	// "$edgeAgent") and once per module and agent run, with back-off while
	// it fails.
	EnsureModule(ctx context.Context, id string) (generationID string, err error)
}

// IdentityOf returns the hub identity of module name: "$edgeAgent" and
// "$edgeHub" for the system modules, the module name otherwise.
func IdentityOf(name string) string {
	switch name {
	case deployment.EdgeAgentName, deployment.EdgeHubName:
		return "$" + name
	}
	return name
}

// DeriveModuleKey returns the primary SAS key of module identity id: the
// base64 HMAC-SHA256 of id keyed with the (base64) device key.
func DeriveModuleKey(deviceKey, id string) (string, error) {
	return deriveKey(deviceKey, id)
}

// deriveSecondaryKey is the module's secondary key. The agent never hands
// it out; it is set so that the hub does not invent one we cannot
// recompute.
func deriveSecondaryKey(deviceKey, id string) (string, error) {
	return deriveKey(deviceKey, id+"\x00secondary")
}

func deriveKey(deviceKey, data string) (string, error) {
	k, err := base64.StdEncoding.DecodeString(deviceKey)
	if err != nil || len(k) == 0 {
		return "", fmt.Errorf("device key: %w", sas.ErrInvalidKey)
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(data))
	return base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

// ServiceAPIVersion is the api-version HubIdentities sends.
const ServiceAPIVersion = "2021-04-12"

// managedBy marks module identities created by the edge runtime, as Azure's
// edge runtime marks them.
const managedBy = "iotEdge"

// identityTokenTTL is the lifetime of the device tokens HubIdentities signs;
// one is signed for every request.
const identityTokenTTL = time.Hour

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// HubIdentities implements Identities over the IoT Hub service API, the
// way Azure's edge runtime does: GET and PUT /devices/{edge}/modules/{id},
// authorised by a SAS token of the edge device itself (IoT Hub and the fake
// hub accept an edge device's token for managing its own modules).
type HubIdentities struct {
	device  sas.ConnectionString
	baseURL *url.URL
	client  *http.Client
	now     func() time.Time
}

// NewHubIdentities returns Identities for the edge device of device (a
// device connection string with SharedAccessKey) on the service API at
// serviceURL ("https://myhub.azure-devices.net", or the fake hub's HTTP
// address). client carries the TLS settings (nil: http.DefaultClient); now
// is the clock for tokens (nil: time.Now).
func NewHubIdentities(device sas.ConnectionString, serviceURL string, client *http.Client, now func() time.Time) (*HubIdentities, error) {
	switch {
	case device.DeviceID == "" || device.ModuleID != "":
		return nil, fmt.Errorf("identities: %w: need an edge device connection string (DeviceId, no ModuleId)", sas.ErrMalformedConnectionString)
	case device.SharedAccessKey == "":
		return nil, fmt.Errorf("identities: device %q: %w: module keys are derived from the device's SharedAccessKey", device.DeviceID, sas.ErrNoKey)
	}
	if _, err := deriveKey(device.SharedAccessKey, "check"); err != nil {
		return nil, fmt.Errorf("identities: device %q: %w", device.DeviceID, err)
	}
	u, err := url.Parse(strings.TrimRight(serviceURL, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("identities: service URL %q: want http(s)://host[:port]", serviceURL)
	}
	if client == nil {
		client = http.DefaultClient
	}
	if now == nil {
		now = time.Now
	}
	return &HubIdentities{device: device, baseURL: u, client: client, now: now}, nil
}

var _ Identities = (*HubIdentities)(nil)

// ModuleKey implements Identities.
func (h *HubIdentities) ModuleKey(id string) (string, error) {
	return DeriveModuleKey(h.device.SharedAccessKey, id)
}

// ConnectionString returns the connection string of module identity id:
// HostName, DeviceId, ModuleId, the derived SharedAccessKey and, when not
// empty, GatewayHostName. It holds a secret: never log it.
func (h *HubIdentities) ConnectionString(id, gateway string) (sas.ConnectionString, error) {
	key, err := h.ModuleKey(id)
	if err != nil {
		return sas.ConnectionString{}, err
	}
	return sas.ConnectionString{HostName: h.device.HostName, DeviceID: h.device.DeviceID, ModuleID: id,
		SharedAccessKey: key, GatewayHostName: gateway}, nil
}

// hubModule is the part of the service API's module JSON the agent uses.
type hubModule struct {
	DeviceID       string `json:"deviceId"`
	ModuleID       string `json:"moduleId"`
	GenerationID   string `json:"generationId,omitempty"`
	Etag           string `json:"etag,omitempty"`
	ManagedBy      string `json:"managedBy,omitempty"`
	Authentication struct {
		Type         string `json:"type"`
		SymmetricKey *struct {
			PrimaryKey   string `json:"primaryKey"`
			SecondaryKey string `json:"secondaryKey"`
		} `json:"symmetricKey,omitempty"`
	} `json:"authentication"`
}

// EnsureModule implements Identities: it reads the module identity and, if
// it is missing or does not accept the derived key, creates or updates it
// (If-Match on the etag read, so that a concurrent change is not
// overwritten blindly; one such conflict is retried).
func (h *HubIdentities) EnsureModule(ctx context.Context, id string) (string, error) {
	primary, err := h.ModuleKey(id)
	if err != nil {
		return "", fmt.Errorf("module identity %q: %w", id, err)
	}
	secondary, err := deriveSecondaryKey(h.device.SharedAccessKey, id)
	if err != nil {
		return "", fmt.Errorf("module identity %q: %w", id, err)
	}
	for attempt := 0; ; attempt++ {
		cur, status, err := h.get(ctx, id)
		if err != nil {
			return "", err
		}
		ifMatch := ""
		if status == http.StatusOK {
			k := cur.Authentication.SymmetricKey
			if cur.Authentication.Type == "sas" && k != nil && k.PrimaryKey == primary {
				return cur.GenerationID, nil
			}
			ifMatch = cur.Etag
			if ifMatch == "" {
				ifMatch = "*"
			}
		}
		var want hubModule
		want.DeviceID, want.ModuleID, want.ManagedBy = h.device.DeviceID, id, managedBy
		want.Authentication.Type = "sas"
		want.Authentication.SymmetricKey = &struct {
			PrimaryKey   string `json:"primaryKey"`
			SecondaryKey string `json:"secondaryKey"`
		}{primary, secondary}
		out, status, err := h.put(ctx, id, want, ifMatch)
		switch {
		case err != nil:
			return "", err
		case (status == http.StatusConflict || status == http.StatusPreconditionFailed) && attempt == 0:
			continue // created or changed meanwhile: read it again
		case status != http.StatusOK:
			return "", fmt.Errorf("module identity %q: PUT answered %d: %w", id, status, ErrRejected)
		}
		return out.GenerationID, nil
	}
}

// get reads module identity id; status is 200 or 404 (ModuleNotFound) when
// err is nil.
func (h *HubIdentities) get(ctx context.Context, id string) (hubModule, int, error) {
	var m hubModule
	resp, err := h.do(ctx, http.MethodGet, id, nil, "")
	if err != nil {
		return m, 0, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&m); err != nil {
			return m, 0, fmt.Errorf("module identity %q: GET answer: %w", id, err)
		}
		return m, http.StatusOK, nil
	case http.StatusNotFound:
		if code := errorName(resp); code == "DeviceNotFound" {
			return m, 0, fmt.Errorf("module identity %q: the edge device %q is not registered: %w", id, h.device.DeviceID, ErrRejected)
		}
		return m, http.StatusNotFound, nil
	}
	return m, 0, h.answerError(http.MethodGet, id, resp)
}

// put writes module identity id; status is 200, 409 or 412 when err is nil.
func (h *HubIdentities) put(ctx context.Context, id string, m hubModule, ifMatch string) (hubModule, int, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return hubModule{}, 0, fmt.Errorf("module identity %q: %w", id, err)
	}
	resp, err := h.do(ctx, http.MethodPut, id, body, ifMatch)
	if err != nil {
		return hubModule{}, 0, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated:
		var out hubModule
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
			return hubModule{}, 0, fmt.Errorf("module identity %q: PUT answer: %w", id, err)
		}
		return out, http.StatusOK, nil
	case http.StatusConflict, http.StatusPreconditionFailed:
		return hubModule{}, resp.StatusCode, nil
	}
	return hubModule{}, 0, h.answerError(http.MethodPut, id, resp)
}

func (h *HubIdentities) do(ctx context.Context, method, id string, body []byte, ifMatch string) (*http.Response, error) {
	u := *h.baseURL
	u.Path += "/devices/" + url.PathEscape(h.device.DeviceID) + "/modules/" + url.PathEscape(id)
	u.RawPath = ""
	u.RawQuery = "api-version=" + ServiceAPIVersion
	// The token names the device, not a module: an edge device's own token
	// is what the hub accepts for its modules.
	dev := h.device
	dev.ModuleID, dev.SharedAccessKeyName, dev.SharedAccessSignature = "", "", ""
	tok, err := dev.Token(h.now(), identityTokenTTL)
	if err != nil {
		return nil, fmt.Errorf("module identity %q: %w", id, err)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("module identity %q: %w", id, err)
	}
	req.Header.Set("Authorization", tok)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	if ifMatch != "" {
		if ifMatch != "*" && !strings.HasPrefix(ifMatch, `"`) {
			ifMatch = `"` + ifMatch + `"`
		}
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		// url.Error quotes the URL, which holds no secret (the token is a header).
		return nil, fmt.Errorf("module identity %q: %s: %w", id, method, err)
	}
	return resp, nil
}

// answerError describes an unexpected answer by its status and IoT Hub's
// error name and message. A 4xx wraps ErrRejected; a 5xx (or 429) is left
// transient.
func (h *HubIdentities) answerError(method, id string, resp *http.Response) error {
	name, msg := errorDetails(resp)
	text := fmt.Sprintf("module identity %q: %s answered %d", id, method, resp.StatusCode)
	if name != "" {
		text += " " + name
	}
	if msg != "" {
		text += ": " + msg
	}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
		return fmt.Errorf("%s: %w", text, ErrRejected)
	}
	return errors.New(text)
}

// errorName is the iothub-errorcode of an error answer.
func errorName(resp *http.Response) string {
	name, _ := errorDetails(resp)
	return name
}

// errorDetails reads IoT Hub's error shape: the name in the
// iothub-errorcode header, the text in ExceptionMessage (or Message).
func errorDetails(resp *http.Response) (name, message string) {
	name = resp.Header.Get("iothub-errorcode")
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var e struct{ Message, ExceptionMessage string }
	if json.Unmarshal(b, &e) == nil {
		message = e.ExceptionMessage
		if message == "" {
			message = e.Message
		}
	}
	if len(message) > 300 {
		message = message[:300] + "…"
	}
	return name, message
}
