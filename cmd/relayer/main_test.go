package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
	"github.com/outpost-edge/outpost/cmd/internal/modulemain/modulemaintest"
	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/iothub"
)

// These tests run the module against the fake IoT Hub over MQTT/TLS on loopback. The fake
// hub, like IoT Hub, has no module inputs, so the receiving half (a route into the relayer's
// input) waits for the edge hub; TestRelayer_SendsThroughTheHub drives the input handler
// directly with a connected client to check what the relayer puts on the wire.

func TestRun_AnswersPing(t *testing.T) {
	s := fakehubtest.New(t)
	m := modulemaintest.Start(t, run, modulemaintest.Env(t, s, "edge1", "relayer"))
	modulemaintest.WaitFor(t, "relayer started", func() bool {
		return modulemaintest.HasLogLine(m.Stderr(), "INFO", "relayer started")
	})
	ctx, cancel := context.WithTimeout(context.Background(), modulemaintest.WaitTimeout)
	defer cancel()
	resp, err := s.InvokeMethod(ctx, "edge1", "relayer", fakehub.MethodRequest{MethodName: "ping"})
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(resp.Payload, &body); err != nil || resp.Status != 200 || body["message"] != "pong" {
		t.Errorf("ping answered %d %s", resp.Status, resp.Payload)
	}
	resp, err = s.InvokeMethod(ctx, "edge1", "relayer", fakehub.MethodRequest{MethodName: "explode"})
	if err != nil || resp.Status != 501 {
		t.Errorf("an unknown method answered %d (%v), want 501", resp.Status, err)
	}
	if code := m.Stop(); code != modulemain.ExitOK {
		t.Errorf("exit code %d, want 0", code)
	}
	modulemaintest.RequireLogLine(t, m.Stderr(), "INFO", "relayer stopped")
}

func TestRelayer_SendsThroughTheHub(t *testing.T) {
	s := fakehubtest.New(t)
	env := modulemaintest.Env(t, s, "edge1", "relayer")
	c, err := modulemain.NewClient(modulemaintest.Getenv(env), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := &relayer{client: c, log: slog.New(slog.DiscardHandler), input: "input1", output: "toCloud"}
	in := iothub.Message{
		Body:       []byte(`{"machine":{"temperature":30}}`),
		Properties: map[string]string{"sequenceNumber": "12", "batchId": "b-1", "MessageType": "Alert"},
		System: map[string]string{
			iothub.SysMessageID: "msg-12", iothub.SysCorrelationID: "corr-1",
			iothub.SysContentType: "application/json", iothub.SysContentEncoding: "utf-8",
			iothub.SysConnDeviceID: "edge1", iothub.SysConnModuleID: "tempsensor", iothub.SysOutputName: "temperatureOutput",
		},
	}
	if err := r.handle(t.Context(), "somewhere-else", in); err != nil {
		t.Fatal(err)
	}
	if err := r.handle(t.Context(), "input1", in); err != nil {
		t.Fatal(err)
	}
	ev := modulemaintest.Events(t, s, "edge1", "relayer", 0, 1)[0]
	if string(ev.Body) != string(in.Body) {
		t.Errorf("body %s, want %s", ev.Body, in.Body)
	}
	for k, v := range in.Properties {
		if ev.Properties[k] != v {
			t.Errorf("property %s = %q, want %q", k, ev.Properties[k], v)
		}
	}
	want := map[string]string{"$.on": "toCloud", "message-id": "msg-12", "correlation-id": "corr-1",
		"content-type": "application/json", "content-encoding": "utf-8", "iothub-connection-module-id": "relayer"}
	for k, v := range want {
		if ev.SystemProperties[k] != v {
			t.Errorf("system property %s = %q, want %q (all: %v)", k, ev.SystemProperties[k], v, ev.SystemProperties)
		}
	}
	if extra := s.Events(ev.Seq, 0); len(extra) > 0 {
		t.Errorf("the message from another input was relayed too: %v", extra)
	}
}

func TestRun_BadConfiguration(t *testing.T) {
	s := fakehubtest.New(t)
	env := modulemaintest.Env(t, s, "edge1", "relayer")
	env["OutputName"] = "a/b"
	m := modulemaintest.Start(t, run, env)
	if code := m.Wait(); code != modulemain.ExitConfig {
		t.Errorf("exit code %d, want %d", code, modulemain.ExitConfig)
	}
	modulemaintest.RequireLogLine(t, m.Stderr(), "ERROR", "OutputName")
}

func TestBinary_StaticAndStopsOnSIGTERM(t *testing.T) {
	bin := modulemaintest.BuildStatic(t)
	s := fakehubtest.New(t)
	p := modulemaintest.StartProcess(t, bin, modulemaintest.Env(t, s, "edge1", "relayer"))
	modulemaintest.WaitFor(t, "relayer started", func() bool {
		return modulemaintest.HasLogLine(p.Stderr(), "INFO", "relayer started")
	})
	if code := p.Terminate(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	modulemaintest.RequireLogLine(t, p.Stderr(), "INFO", "relayer stopped")
}
