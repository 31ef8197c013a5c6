package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
)

// fakeClient records what the filter sends and reports.
type fakeClient struct {
	mu       sync.Mutex
	sent     []iothub.Message
	outputs  []string
	reported []map[string]any
	sendErr  error
}

func (f *fakeClient) SendOutput(ctx context.Context, output string, m iothub.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sendErr != nil {
		return f.sendErr
	}
	f.sent = append(f.sent, m)
	f.outputs = append(f.outputs, output)
	return nil
}

func (f *fakeClient) UpdateReported(ctx context.Context, patch map[string]any) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reported = append(f.reported, patch)
	return 0, nil
}

func TestFilter_Handle(t *testing.T) {
	sensor := func(temp float64) iothub.Message {
		return iothub.Message{
			Body:       []byte(`{"machine":{"temperature":` + fmtFloat(temp) + `}}`),
			Properties: map[string]string{"sequenceNumber": "7"},
			System:     map[string]string{iothub.SysContentType: "application/json", iothub.SysContentEncoding: "utf-8", iothub.SysMessageID: "m1"},
		}
	}
	tests := []struct {
		name        string
		input       string
		msg         iothub.Message
		wantForward bool
		wantCounter string
	}{
		{name: "alert", input: "input1", msg: sensor(30), wantForward: true, wantCounter: "forwarded"},
		{name: "below", input: "input1", msg: sensor(20), wantCounter: "below"},
		{name: "not JSON", input: "input1", msg: iothub.Message{Body: []byte("hot")}, wantCounter: "dropped"},
		{name: "no temperature", input: "input1", msg: iothub.Message{Body: []byte(`{"machine":{}}`)}, wantCounter: "dropped"},
		{name: "other input", input: "control", msg: sensor(30), wantCounter: "dropped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := &fakeClient{}
			f := newFilter(fc, slog.New(slog.DiscardHandler))
			if err := f.handle(t.Context(), tt.input, tt.msg); err != nil {
				t.Fatal(err)
			}
			counters := map[string]int64{"forwarded": f.forwarded.Load(), "below": f.below.Load(), "dropped": f.dropped.Load()}
			for name, n := range counters {
				if want := int64(0); name == tt.wantCounter {
					want = 1
					if n != want {
						t.Errorf("%s = %d, want 1", name, n)
					}
				} else if n != want {
					t.Errorf("%s = %d, want 0", name, n)
				}
			}
			if f.received.Load() != 1 {
				t.Errorf("received = %d", f.received.Load())
			}
			if !tt.wantForward {
				if len(fc.sent) != 0 {
					t.Errorf("forwarded %d messages, want none", len(fc.sent))
				}
				return
			}
			if len(fc.sent) != 1 || fc.outputs[0] != "alertOutput" {
				t.Fatalf("sent %v on %v, want one message on alertOutput", fc.sent, fc.outputs)
			}
			got := fc.sent[0]
			if string(got.Body) != string(tt.msg.Body) {
				t.Errorf("body %q, want the original %q", got.Body, tt.msg.Body)
			}
			if got.Properties["MessageType"] != "Alert" || got.Properties["sequenceNumber"] != "7" {
				t.Errorf("properties %v", got.Properties)
			}
			if _, ok := tt.msg.Properties["MessageType"]; ok {
				t.Error("the original message's properties were modified")
			}
			if got.System[iothub.SysMessageID] != "" || got.System[iothub.SysContentType] != "application/json" {
				t.Errorf("system properties %v", got.System)
			}
		})
	}
}

func TestFilter_HandleReturnsSendFailures(t *testing.T) {
	fc := &fakeClient{sendErr: moduleclient.ErrTooLarge}
	f := newFilter(fc, slog.New(slog.DiscardHandler))
	err := f.handle(t.Context(), "input1", iothub.Message{Body: []byte(`{"machine":{"temperature":99}}`)})
	if !errors.Is(err, moduleclient.ErrTooLarge) || f.forwarded.Load() != 0 {
		t.Errorf("err = %v, forwarded = %d", err, f.forwarded.Load())
	}
}

func TestAlertMessage_DefaultsContentType(t *testing.T) {
	got := alertMessage(iothub.Message{Body: []byte(`{}`)})
	if got.System[iothub.SysContentType] != "application/json" || got.System[iothub.SysContentEncoding] != "utf-8" || got.Properties["MessageType"] != "Alert" {
		t.Errorf("got %+v", got)
	}
}

func TestFilter_Desired(t *testing.T) {
	tests := []struct {
		name       string
		patches    []map[string]any
		want       float64
		wantReport int
	}{
		{name: "initial document without threshold", patches: []map[string]any{{"$version": json.Number("1")}}, want: 25},
		{name: "set", patches: []map[string]any{{"TemperatureThreshold": json.Number("30")}}, want: 30, wantReport: 1},
		{name: "bad value keeps the last", patches: []map[string]any{{"TemperatureThreshold": json.Number("30")}, {"TemperatureThreshold": "hot"}}, want: 30, wantReport: 1},
		{name: "deleted goes back to the default", patches: []map[string]any{{"TemperatureThreshold": json.Number("30")}, {"TemperatureThreshold": nil}}, want: 25, wantReport: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := &fakeClient{}
			f := newFilter(fc, slog.New(slog.DiscardHandler))
			h := f.onDesired(t.Context())
			for i, p := range tt.patches {
				h(p, int64(i+2))
			}
			if got := f.currentThreshold(); got != tt.want {
				t.Errorf("threshold %v, want %v", got, tt.want)
			}
			if len(fc.reported) != tt.wantReport {
				t.Fatalf("%d reports, want %d", len(fc.reported), tt.wantReport)
			}
			if tt.wantReport > 0 && fc.reported[len(fc.reported)-1]["TemperatureThreshold"] != tt.want {
				t.Errorf("last report %v, want %v", fc.reported[len(fc.reported)-1], tt.want)
			}
		})
	}
}

func fmtFloat(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}
