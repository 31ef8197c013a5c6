package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
	"github.com/outpost-edge/outpost/cmd/internal/modulemain/modulemaintest"
	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/iothub"
)

// These tests run the module against the fake IoT Hub over MQTT/TLS on loopback. The fake
// hub, like IoT Hub, has no module inputs: the input path (routing tempsensor's output to
// input1) needs an edge hub. TestFilter_ForwardsAlertsThroughTheHub therefore calls the input
// handler directly, with a client connected to the hub, to check what reaches the wire.

func TestRun_ThresholdFromTwin(t *testing.T) {
	s := fakehubtest.New(t)
	env := modulemaintest.Env(t, s, "edge1", "filter")
	m := modulemaintest.Start(t, run, env)
	waitThreshold(t, s, 25)

	patch := func(v any) {
		t.Helper()
		var p fakehub.TwinPatch
		p.Properties.Desired = map[string]any{"TemperatureThreshold": v}
		if _, err := s.PatchTwin("edge1", "filter", p, ""); err != nil {
			t.Fatal(err)
		}
	}
	patch(30.5)
	waitThreshold(t, s, 30.5)
	patch("hot")
	modulemaintest.WaitFor(t, "the bad threshold to be logged", func() bool {
		return modulemaintest.HasLogLine(m.Stderr(), "WARN", "desired threshold ignored")
	})
	waitThreshold(t, s, 30.5)
	patch(nil)
	waitThreshold(t, s, 25)

	if code := m.Stop(); code != modulemain.ExitOK {
		t.Errorf("exit code %d, want 0", code)
	}
	modulemaintest.RequireLogLine(t, m.Stderr(), "INFO", "filter stopped")
}

func TestRun_ThresholdSetBeforeStart(t *testing.T) {
	s := fakehubtest.New(t)
	env := modulemaintest.Env(t, s, "edge1", "filter")
	var p fakehub.TwinPatch
	p.Properties.Desired = map[string]any{"TemperatureThreshold": 19}
	if _, err := s.PatchTwin("edge1", "filter", p, ""); err != nil {
		t.Fatal(err)
	}
	m := modulemaintest.Start(t, run, env)
	waitThreshold(t, s, 19)
	m.Stop()
}

func TestFilter_ForwardsAlertsThroughTheHub(t *testing.T) {
	s := fakehubtest.New(t)
	env := modulemaintest.Env(t, s, "edge1", "filter")
	c, err := modulemain.NewClient(modulemaintest.Getenv(env), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	f := newFilter(c, slog.New(slog.DiscardHandler))
	msg := func(body string) iothub.Message {
		return iothub.Message{
			Body:       []byte(body),
			Properties: map[string]string{"sequenceNumber": "1", "batchId": "b"},
			System:     map[string]string{iothub.SysContentType: "application/json", iothub.SysContentEncoding: "utf-8"},
		}
	}
	// The dropped messages go first: the first event the hub captures must be the alert.
	for _, body := range []string{`{"machine":{"temperature":20}}`, `not json`, `{"ambient":{}}`} {
		if err := f.handle(t.Context(), "input1", msg(body)); err != nil {
			t.Fatal(err)
		}
	}
	alert := `{"machine":{"temperature":42.5,"pressure":3},"ambient":{"temperature":21,"humidity":25},"timeCreated":"2025-01-01T00:00:00Z"}`
	if err := f.handle(t.Context(), "input1", msg(alert)); err != nil {
		t.Fatal(err)
	}
	ev := modulemaintest.Events(t, s, "edge1", "filter", 0, 1)[0]
	if string(ev.Body) != alert {
		t.Errorf("captured body %s, want the alert %s", ev.Body, alert)
	}
	if ev.SystemProperties["$.on"] != "alertOutput" {
		t.Errorf("output %q, want alertOutput", ev.SystemProperties["$.on"])
	}
	if ev.Properties["MessageType"] != "Alert" || ev.Properties["sequenceNumber"] != "1" || ev.Properties["batchId"] != "b" {
		t.Errorf("properties %v", ev.Properties)
	}
	if ev.SystemProperties["content-type"] != "application/json" || ev.SystemProperties["content-encoding"] != "utf-8" {
		t.Errorf("system properties %v", ev.SystemProperties)
	}
	if f.forwarded.Load() != 1 || f.below.Load() != 1 || f.dropped.Load() != 2 {
		t.Errorf("counts: forwarded %d, below %d, dropped %d", f.forwarded.Load(), f.below.Load(), f.dropped.Load())
	}
}

func TestBinary_StaticAndStopsOnSIGTERM(t *testing.T) {
	bin := modulemaintest.BuildStatic(t)
	s := fakehubtest.New(t)
	env := modulemaintest.Env(t, s, "edge1", "filter")
	p := modulemaintest.StartProcess(t, bin, env)
	waitThreshold(t, s, 25)
	if code := p.Terminate(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	modulemaintest.RequireLogLine(t, p.Stderr(), "INFO", "filter stopped")
}

func TestBinary_BadConfigurationExits2(t *testing.T) {
	bin := modulemaintest.BuildStatic(t)
	p := modulemaintest.StartProcess(t, bin, map[string]string{"RuntimeLogLevel": "info"})
	if code := p.Wait(t); code != modulemain.ExitConfig {
		t.Errorf("exit code %d without a connection string, want %d", code, modulemain.ExitConfig)
	}
	modulemaintest.RequireLogLine(t, p.Stderr(), "ERROR", "EdgeHubConnectionString")
}

// waitThreshold waits until the module reports threshold as TemperatureThreshold.
func waitThreshold(t *testing.T, s *fakehub.Server, threshold float64) {
	t.Helper()
	modulemaintest.WaitReported(t, s, "edge1", "filter", "TemperatureThreshold", func(r map[string]any) bool {
		n, ok := r["TemperatureThreshold"].(json.Number)
		if !ok {
			f, ok := r["TemperatureThreshold"].(float64)
			return ok && f == threshold
		}
		f, err := n.Float64()
		return err == nil && f == threshold
	})
}
