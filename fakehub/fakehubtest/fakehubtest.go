// Package fakehubtest starts fake IoT Hubs for tests, like httptest does for HTTP servers:
// New gives a running fakehub.Server on random loopback ports with its data in t.TempDir(),
// closed by t.Cleanup; MustDevice and MustModule register identities and return their
// connection strings.
package fakehubtest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
)

// Option adjusts the Server before New starts it.
type Option func(*fakehub.Server)

// WithHostname sets Server.Hostname (default "localhost").
func WithHostname(h string) Option { return func(s *fakehub.Server) { s.Hostname = h } }

// WithDataDir sets Server.DataDir instead of a fresh t.TempDir(), for restart tests.
func WithDataDir(dir string) Option { return func(s *fakehub.Server) { s.DataDir = dir } }

// WithLogger sets Server.Logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *fakehub.Server) { s.Logger = l } }

// WithNow sets Server.Now.
func WithNow(now func() time.Time) Option { return func(s *fakehub.Server) { s.Now = now } }

// New starts a fake hub on 127.0.0.1 random ports: MQTT over TLS and plain MQTT, HTTPS and
// plain HTTP. It fails the test if the hub does not start and closes it on cleanup.
func New(t testing.TB, opts ...Option) *fakehub.Server {
	t.Helper()
	s := &fakehub.Server{
		DataDir:       t.TempDir(),
		MQTTAddr:      "127.0.0.1:0",
		PlainMQTTAddr: "127.0.0.1:0",
		HTTPAddr:      "127.0.0.1:0",
		PlainHTTPAddr: "127.0.0.1:0",
	}
	for _, o := range opts {
		o(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("fakehubtest: start fake hub: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("fakehubtest: close fake hub: %v", err)
		}
	})
	return s
}

// DeviceOption adjusts the device MustDevice registers.
type DeviceOption func(*fakehub.Device)

// Edge makes the device an IoT Edge device (capabilities.iotEdge); the hub then also creates
// its $edgeAgent and $edgeHub module identities.
func Edge() DeviceOption { return func(d *fakehub.Device) { d.Capabilities.IoTEdge = true } }

// Parent makes the device a child (leaf) of an edge device, given the edge device as
// MustDevice returned it.
func Parent(edge fakehub.Device) DeviceOption {
	return func(d *fakehub.Device) { d.ParentScopes = []string{edge.DeviceScope} }
}

// Disabled registers the device disabled.
func Disabled() DeviceOption { return func(d *fakehub.Device) { d.Status = "disabled" } }

// MustDevice registers a symmetric-key device and returns it with its connection string. It
// fails the test on error.
func MustDevice(t testing.TB, s *fakehub.Server, id string, opts ...DeviceOption) (fakehub.Device, string) {
	t.Helper()
	d := fakehub.Device{DeviceID: id}
	for _, o := range opts {
		o(&d)
	}
	d, err := s.PutDevice(d, "")
	if err != nil {
		t.Fatalf("fakehubtest: register device %q: %v", id, err)
	}
	cs, err := s.DeviceConnectionString(id)
	if err != nil {
		t.Fatalf("fakehubtest: connection string of %q: %v", id, err)
	}
	return d, cs
}

// MustModule registers a symmetric-key module of an existing device and returns it with its
// connection string. It fails the test on error.
func MustModule(t testing.TB, s *fakehub.Server, deviceID, moduleID string) (fakehub.Module, string) {
	t.Helper()
	m, err := s.PutModule(fakehub.Module{DeviceID: deviceID, ModuleID: moduleID}, "")
	if err != nil {
		t.Fatalf("fakehubtest: register module %q/%q: %v", deviceID, moduleID, err)
	}
	cs, err := s.ModuleConnectionString(deviceID, moduleID)
	if err != nil {
		t.Fatalf("fakehubtest: connection string of %q/%q: %v", deviceID, moduleID, err)
	}
	return m, cs
}
