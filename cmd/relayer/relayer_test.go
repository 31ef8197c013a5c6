package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
)

type fakeSender struct {
	mu      sync.Mutex
	outputs []string
	sent    []iothub.Message
	err     error
}

func (f *fakeSender) SendOutput(ctx context.Context, output string, m iothub.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.outputs = append(f.outputs, output)
	f.sent = append(f.sent, m)
	return nil
}

func TestRelayMessage(t *testing.T) {
	tests := []struct {
		name       string
		in         iothub.Message
		wantSystem map[string]string
	}{
		{name: "everything that describes the message travels",
			in: iothub.Message{Body: []byte("b"), Properties: map[string]string{"a": "1", "sequenceNumber": "9"},
				System: map[string]string{
					iothub.SysMessageID: "m", iothub.SysCorrelationID: "c", iothub.SysContentType: "application/json",
					iothub.SysContentEncoding: "utf-8", iothub.SysCreationTime: "2025-01-01T00:00:00Z",
				}},
			wantSystem: map[string]string{
				iothub.SysMessageID: "m", iothub.SysCorrelationID: "c", iothub.SysContentType: "application/json",
				iothub.SysContentEncoding: "utf-8", iothub.SysCreationTime: "2025-01-01T00:00:00Z",
			}},
		{name: "the sender's stamps stay behind",
			in: iothub.Message{Body: []byte("b"), System: map[string]string{
				iothub.SysConnDeviceID: "edge1", iothub.SysConnModuleID: "tempsensor", iothub.SysOutputName: "temperatureOutput",
				iothub.SysUserID: "u", iothub.SysContentType: "text/plain",
			}},
			wantSystem: map[string]string{iothub.SysContentType: "text/plain"}},
		{name: "bare message", in: iothub.Message{Body: []byte{}}, wantSystem: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := relayMessage(tt.in)
			if string(got.Body) != string(tt.in.Body) || !maps.Equal(got.Properties, tt.in.Properties) {
				t.Errorf("body or properties changed: %+v", got)
			}
			if !maps.Equal(got.System, tt.wantSystem) {
				t.Errorf("system %v, want %v", got.System, tt.wantSystem)
			}
		})
	}
}

func TestRelayer_Handle(t *testing.T) {
	msg := iothub.Message{Body: []byte(`{"seq":1}`), Properties: map[string]string{"k": "v"}}
	tests := []struct {
		name                             string
		input                            string
		sendErr                          error
		wantRelayed, wantFailed, wantIgn int64
		wantErr                          error
	}{
		{name: "relayed", input: "in", wantRelayed: 1},
		{name: "other input", input: "elsewhere", wantIgn: 1},
		{name: "send fails", input: "in", sendErr: moduleclient.ErrTooLarge, wantFailed: 1, wantErr: moduleclient.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSender{err: tt.sendErr}
			r := &relayer{client: f, log: slog.New(slog.DiscardHandler), input: "in", output: "out"}
			err := r.handle(t.Context(), tt.input, msg)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if r.relayed.Load() != tt.wantRelayed || r.failed.Load() != tt.wantFailed || r.ignored.Load() != tt.wantIgn || r.received.Load() != 1 {
				t.Errorf("counts relayed %d failed %d ignored %d received %d", r.relayed.Load(), r.failed.Load(), r.ignored.Load(), r.received.Load())
			}
			if tt.wantRelayed == 1 && (len(f.outputs) != 1 || f.outputs[0] != "out" || string(f.sent[0].Body) != `{"seq":1}`) {
				t.Errorf("sent %v on %v", f.sent, f.outputs)
			}
		})
	}
}

func TestRelayer_Ping(t *testing.T) {
	r := &relayer{client: &fakeSender{}, log: slog.New(slog.DiscardHandler), input: "in", output: "out"}
	_ = r.handle(t.Context(), "in", iothub.Message{Body: []byte("x")})
	status, body := r.ping(t.Context(), nil)
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil || status != 200 {
		t.Fatalf("ping answered %d %s (%v)", status, body, err)
	}
	if got["message"] != "pong" || got["relayed"] != 1.0 || got["received"] != 1.0 {
		t.Errorf("ping body %v", got)
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    config
		wantErr string
	}{
		{name: "defaults", want: config{input: "input1", output: "output1"}},
		{name: "overrides", env: map[string]string{"InputName": "fromSensor", "OutputName": "toCloud"}, want: config{input: "fromSensor", output: "toCloud"}},
		{name: "bad input", env: map[string]string{"InputName": "a/b"}, wantErr: "InputName"},
		{name: "bad output", env: map[string]string{"OutputName": "#"}, wantErr: "OutputName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if !errors.Is(err, modulemain.ErrConfig) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrConfig naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got (%+v, %v), want %+v", got, err, tt.want)
			}
		})
	}
}
