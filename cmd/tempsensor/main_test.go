package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
	"github.com/outpost-edge/outpost/cmd/internal/modulemain/modulemaintest"
	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
)

// These tests run the module against the fake IoT Hub over MQTT/TLS on loopback.

func TestRun_SendsReadingsAndReportsRunning(t *testing.T) {
	s := fakehubtest.New(t)
	env := modulemaintest.Env(t, s, "edge1", "tempsensor")
	env["MessageCount"] = "3"
	env["SendInterval"] = "10ms"
	env["Seed"] = "1"
	m := modulemaintest.Start(t, run, env)

	evs := modulemaintest.Events(t, s, "edge1", "tempsensor", 0, 3)
	batch := evs[0].Properties["batchId"]
	if len(batch) != 36 {
		t.Errorf("batchId %q, want a UUID", batch)
	}
	for i, ev := range evs {
		if got := ev.SystemProperties["$.on"]; got != "temperatureOutput" {
			t.Errorf("event %d on output %q, want temperatureOutput", i, got)
		}
		if ev.SystemProperties["content-type"] != "application/json" || ev.SystemProperties["content-encoding"] != "utf-8" {
			t.Errorf("event %d system properties %v", i, ev.SystemProperties)
		}
		if ev.Properties["sequenceNumber"] != strconv.Itoa(i+1) || ev.Properties["batchId"] != batch {
			t.Errorf("event %d properties %v", i, ev.Properties)
		}
		var body struct {
			Machine     struct{ Temperature, Pressure *float64 }
			Ambient     struct{ Temperature, Humidity *float64 }
			TimeCreated string `json:"timeCreated"`
		}
		if err := json.Unmarshal(ev.Body, &body); err != nil {
			t.Fatalf("event %d body %s: %v", i, ev.Body, err)
		}
		if body.Machine.Temperature == nil || body.Machine.Pressure == nil || body.Ambient.Temperature == nil || body.Ambient.Humidity == nil {
			t.Errorf("event %d body %s misses a field", i, ev.Body)
		}
		if _, err := time.Parse(time.RFC3339, body.TimeCreated); err != nil {
			t.Errorf("event %d timeCreated: %v", i, err)
		}
	}
	modulemaintest.WaitReported(t, s, "edge1", "tempsensor", `status "running"`, func(r map[string]any) bool {
		return r["status"] == "running" && r["SendData"] == true
	})
	select {
	case <-m.Done():
		t.Fatal("the module exited after its last message; it should wait to be stopped")
	default:
	}
	if code := m.Stop(); code != modulemain.ExitOK {
		t.Errorf("exit code %d, want 0", code)
	}
	if extra := s.Events(evs[2].Seq, 0); len(extra) > 0 {
		t.Errorf("%d events after MessageCount=3", len(extra))
	}
}

func TestRun_ResetMethod(t *testing.T) {
	s := fakehubtest.New(t)
	env := modulemaintest.Env(t, s, "edge1", "tempsensor")
	env["MessageCount"] = "-1"
	env["SendInterval"] = "5ms"
	env["Seed"] = "2"
	m := modulemaintest.Start(t, run, env)

	// Wait for the machine to warm up well above its 21 °C baseline.
	var after int64
	for warm := false; !warm; {
		ev := modulemaintest.Events(t, s, "edge1", "tempsensor", after, 1)[0]
		after = ev.Seq
		warm = temperature(t, ev) > 27
	}
	ctx, cancel := context.WithTimeout(context.Background(), modulemaintest.WaitTimeout)
	defer cancel()
	resp, err := s.InvokeMethod(ctx, "edge1", "tempsensor", fakehub.MethodRequest{MethodName: "reset", Payload: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || string(resp.Payload) != `{"message":"reset"}` {
		t.Errorf("reset answered %d %s", resp.Status, resp.Payload)
	}
	// Readings sent before the answer are behind the watermark. One taken just before the
	// reset may still be on its way; the one after it is back at the baseline.
	if evs := s.Events(0, 0); len(evs) > 0 {
		after = evs[len(evs)-1].Seq
	}
	var last int64
	for _, ev := range modulemaintest.Events(t, s, "edge1", "tempsensor", after, 2) {
		if temperature(t, ev) < 21+1.25 {
			last = ev.Seq
		}
	}
	if last == 0 {
		t.Error("no reading back near 21 °C after reset")
	}
	if code := m.Stop(); code != modulemain.ExitOK {
		t.Errorf("exit code %d, want 0", code)
	}
}

func TestRun_DesiredIntervalAppliesLive(t *testing.T) {
	s := fakehubtest.New(t)
	env := modulemaintest.Env(t, s, "edge1", "tempsensor")
	env["MessageCount"] = "-1"
	env["SendInterval"] = "1h"
	m := modulemaintest.Start(t, run, env)
	first := modulemaintest.Events(t, s, "edge1", "tempsensor", 0, 1)[0]
	modulemaintest.WaitReported(t, s, "edge1", "tempsensor", "SendInterval 3600", func(r map[string]any) bool {
		return number(r["SendInterval"]) == 3600
	})

	var p fakehub.TwinPatch
	p.Properties.Desired = map[string]any{"SendInterval": 0.01}
	if _, err := s.PatchTwin("edge1", "tempsensor", p, ""); err != nil {
		t.Fatal(err)
	}
	// With the hour-long interval, no second message would come before the test times out.
	modulemaintest.Events(t, s, "edge1", "tempsensor", first.Seq, 3)
	modulemaintest.WaitReported(t, s, "edge1", "tempsensor", "SendInterval 0.01", func(r map[string]any) bool {
		return number(r["SendInterval"]) == 0.01
	})
	if code := m.Stop(); code != modulemain.ExitOK {
		t.Errorf("exit code %d, want 0", code)
	}
}

func TestRun_BadConfiguration(t *testing.T) {
	s := fakehubtest.New(t)
	good := modulemaintest.Env(t, s, "edge1", "tempsensor")
	tests := []struct {
		name string
		set  map[string]string
		want string
	}{
		{name: "no connection string", set: map[string]string{"EdgeHubConnectionString": ""}, want: "EdgeHubConnectionString"},
		{name: "device connection string", set: map[string]string{"EdgeHubConnectionString": "HostName=h;DeviceId=d;SharedAccessKey=AAAA"}, want: "not a module"},
		{name: "missing CA file", set: map[string]string{"EdgeModuleCACertificateFile": "/nonexistent/ca.pem"}, want: "/nonexistent/ca.pem"},
		{name: "bad port", set: map[string]string{"OUTPOST_MQTT_PORT": "88830"}, want: "OUTPOST_MQTT_PORT"},
		{name: "bad message count", set: map[string]string{"MessageCount": "lots"}, want: "MessageCount"},
		{name: "bad log level", set: map[string]string{"RuntimeLogLevel": "chatty"}, want: "RuntimeLogLevel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range good {
				env[k] = v
			}
			for k, v := range tt.set {
				env[k] = v
			}
			m := modulemaintest.Start(t, run, env)
			if code := m.Wait(); code != modulemain.ExitConfig {
				t.Errorf("exit code %d, want %d", code, modulemain.ExitConfig)
			}
			if !strings.Contains(m.Stderr(), tt.want) {
				t.Errorf("stderr does not mention %q:\n%s", tt.want, m.Stderr())
			}
		})
	}
}

func TestBinary_StaticAndStopsOnSIGTERM(t *testing.T) {
	bin := modulemaintest.BuildStatic(t)
	s := fakehubtest.New(t)
	env := modulemaintest.Env(t, s, "edge1", "tempsensor")
	env["MessageCount"] = "-1"
	env["SendInterval"] = "20ms"
	env["RuntimeLogLevel"] = "info"
	p := modulemaintest.StartProcess(t, bin, env)
	modulemaintest.Events(t, s, "edge1", "tempsensor", 0, 2)
	if code := p.Terminate(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	modulemaintest.RequireLogLine(t, p.Stderr(), "INFO", "tempsensor stopped")
	if strings.Contains(p.Stderr(), "level=DEBUG") {
		t.Error("debug lines logged with RuntimeLogLevel=info")
	}
}

func temperature(t *testing.T, ev fakehub.Event) float64 {
	t.Helper()
	var r reading
	if err := json.Unmarshal(ev.Body, &r); err != nil {
		t.Fatalf("event body %s: %v", ev.Body, err)
	}
	return r.Machine.Temperature
}

// number reads a JSON number from a twin document, whichever way it was decoded.
func number(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case json.Number:
		f, _ := n.Float64()
		return f
	}
	return -1
}
