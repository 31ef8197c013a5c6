package fakehub

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/runtime/sas"
)

// Helpers of the HTTP layer tests. Their names start with "svc" so that they cannot
// collide with the core's test helpers in the same package.

// svcHarness is a started Server reached over real HTTPS, verifying the hub's CA.
type svcHarness struct {
	t      *testing.T
	s      *Server
	host   string // IoT Hub host name
	base   string // "https://127.0.0.1:port"
	client *http.Client
	tls    *tls.Config
}

// newSvcHarness starts a Server on random loopback ports in a temporary data directory.
func newSvcHarness(t *testing.T) *svcHarness {
	t.Helper()
	s := &Server{
		DataDir:  t.TempDir(),
		MQTTAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0",
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	pem, err := os.ReadFile(s.CAFile())
	if err != nil {
		t.Fatalf("reading the CA file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("CA file %s holds no PEM certificate", s.CAFile())
	}
	host := s.Hostname
	if host == "" {
		host = "localhost" // the documented default
	}
	tlsConf := &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}
	return &svcHarness{
		t:    t,
		s:    s,
		host: host,
		base: "https://" + s.HTTPAddress(),
		tls:  tlsConf,
		client: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: tlsConf},
		},
	}
}

// svcResp is a fully read response.
type svcResp struct {
	status int
	header http.Header
	body   []byte
}

// svcReq describes a request; the zero token means "a fresh iothubowner token".
type svcReq struct {
	method, path string
	body         any // nil, []byte/string sent raw, anything else as JSON
	header       map[string]string
	token        string // Authorization header; "" = service token
	noAuth       bool   // send no Authorization header at all
}

// send performs req and reads the whole response.
func (h *svcHarness) send(req svcReq) svcResp {
	h.t.Helper()
	var body io.Reader
	switch b := req.body.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(b)
	case string:
		body = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatalf("marshalling the request body: %v", err)
		}
		body = bytes.NewReader(j)
	}
	r, err := http.NewRequest(req.method, h.base+req.path, body)
	if err != nil {
		h.t.Fatalf("new request %s %s: %v", req.method, req.path, err)
	}
	if !req.noAuth {
		tok := req.token
		if tok == "" {
			tok = h.serviceToken()
		}
		r.Header.Set("Authorization", tok)
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	resp, err := h.client.Do(r)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: reading the body: %v", req.method, req.path, err)
	}
	return svcResp{status: resp.StatusCode, header: resp.Header, body: b}
}

// call sends a request with the service token.
func (h *svcHarness) call(method, path string, body any) svcResp {
	h.t.Helper()
	return h.send(svcReq{method: method, path: path, body: body})
}

// serviceToken signs an iothubowner token from the service connection string.
func (h *svcHarness) serviceToken() string {
	h.t.Helper()
	cs, err := sas.ParseConnectionString(h.s.ServiceConnectionString())
	if err != nil {
		h.t.Fatalf("parsing the service connection string: %v", err)
	}
	tok, err := cs.Token(time.Now(), time.Hour)
	if err != nil {
		h.t.Fatalf("service token: %v", err)
	}
	return tok
}

// deviceToken signs a device token with the device's primary key.
func (h *svcHarness) deviceToken(deviceID string, expiry time.Time) string {
	h.t.Helper()
	keys, err := h.s.IdentityKeys(sas.Identity{DeviceID: deviceID})
	if err != nil {
		h.t.Fatalf("keys of %q: %v", deviceID, err)
	}
	tok, err := sas.Sign(h.host+"/devices/"+deviceID, keys.Primary, "", expiry)
	if err != nil {
		h.t.Fatalf("signing a token for %q: %v", deviceID, err)
	}
	return tok
}

// mustCreateDevice creates a device through the REST API and returns it.
func (h *svcHarness) mustCreateDevice(id string, edge bool) Device {
	h.t.Helper()
	resp := h.call("PUT", "/devices/"+pathEscape(id)+"?api-version=2021-04-12",
		map[string]any{"deviceId": id, "capabilities": map[string]bool{"iotEdge": edge}})
	if resp.status != http.StatusOK {
		h.t.Fatalf("creating device %q: %d %s", id, resp.status, resp.body)
	}
	var d Device
	svcDecode(h.t, resp, &d)
	return d
}

// pathEscape escapes an id for one path segment.
func pathEscape(id string) string {
	return strings.NewReplacer("%", "%25", "/", "%2F", "?", "%3F", "#", "%23", " ", "%20").Replace(id)
}

// svcDecode decodes a JSON response body.
func svcDecode(t *testing.T, resp svcResp, v any) {
	t.Helper()
	if err := json.Unmarshal(resp.body, v); err != nil {
		t.Fatalf("decoding %q: %v", resp.body, err)
	}
}

// svcErr is a decoded error response.
type svcErr struct {
	status     int
	header     string // iothub-errorcode
	code       int
	message    string
	info       map[string]any
	exception  string
	trackingID string
}

// svcError decodes an IoT Hub style error response, failing the test if the shape is wrong.
func svcError(t *testing.T, resp svcResp) svcErr {
	t.Helper()
	var outer struct {
		Message          *string `json:"Message"`
		ExceptionMessage *string `json:"ExceptionMessage"`
	}
	if err := json.Unmarshal(resp.body, &outer); err != nil || outer.Message == nil || outer.ExceptionMessage == nil {
		t.Fatalf("error body %q is not {\"Message\":...,\"ExceptionMessage\":...} (%v)", resp.body, err)
	}
	var inner struct {
		ErrorCode    int            `json:"errorCode"`
		TrackingID   string         `json:"trackingId"`
		Message      string         `json:"message"`
		Info         map[string]any `json:"info"`
		TimestampUTC string         `json:"timestampUtc"`
	}
	if err := json.Unmarshal([]byte(*outer.Message), &inner); err != nil {
		t.Fatalf("error Message %q is not a JSON document: %v", *outer.Message, err)
	}
	if _, err := time.Parse(time.RFC3339Nano, inner.TimestampUTC); err != nil {
		t.Errorf("timestampUtc %q: %v", inner.TimestampUTC, err)
	}
	if len(inner.TrackingID) != 32 {
		t.Errorf("trackingId %q: want 32 hex digits", inner.TrackingID)
	}
	if got := resp.header.Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
		t.Errorf("error Content-Type = %q, want application/json", got)
	}
	name := resp.header.Get("iothub-errorcode")
	if want := "ErrorCode:" + name + ";"; !strings.HasPrefix(*outer.ExceptionMessage, want) {
		t.Errorf("ExceptionMessage %q does not start with %q", *outer.ExceptionMessage, want)
	}
	return svcErr{
		status: resp.status, header: name, code: inner.ErrorCode, message: inner.Message,
		info: inner.Info, exception: *outer.ExceptionMessage, trackingID: inner.TrackingID,
	}
}

// wantError checks that resp is the error (status, errorCode, name) and returns it.
func wantError(t *testing.T, resp svcResp, status, code int, name string) svcErr {
	t.Helper()
	if resp.status != status {
		t.Fatalf("status = %d, want %d; body %s", resp.status, status, resp.body)
	}
	e := svcError(t, resp)
	if e.code != code || e.header != name {
		t.Fatalf("error = %d %s, want %d %s; message %q", e.code, e.header, code, name, e.message)
	}
	return e
}

// svcCheckFor polls cond until it returns nil or the deadline passes (nats' checkFor).
func svcCheckFor(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", timeout, err)
		}
		time.Sleep(interval) // polling, not synchronisation: cond decides
		if interval < 100*time.Millisecond {
			interval *= 2
		}
	}
}

// svcMQTT connects a paho client as a device over MQTT/TLS with a SAS token.
func (h *svcHarness) svcMQTT(deviceID string) mqtt.Client {
	h.t.Helper()
	opts := mqtt.NewClientOptions().
		AddBroker("ssl://" + h.s.MQTTAddress()).
		SetClientID(deviceID).
		SetUsername(h.host + "/" + deviceID + "/?api-version=2021-04-12").
		SetPassword(h.deviceToken(deviceID, time.Now().Add(time.Hour))).
		SetTLSConfig(h.tls.Clone()).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(10 * time.Second)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		h.t.Fatalf("MQTT connect as %q: %v", deviceID, tok.Error())
	}
	h.t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// svcWait waits for a paho token.
func svcWait(t *testing.T, tok mqtt.Token, what string) {
	t.Helper()
	if !tok.WaitTimeout(15 * time.Second) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// svcString renders a value for failure messages.
func svcString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// with returns a copy of h that reports to t, for use inside subtests: calling Fatal on
// the parent test from a subtest is not allowed.
func (h *svcHarness) with(t *testing.T) *svcHarness {
	c := *h
	c.t = t
	return &c
}
