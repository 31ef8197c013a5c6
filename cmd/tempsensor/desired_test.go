package main

import (
	"encoding/json"
	"testing"
	"time"
)

func TestSettings_Apply(t *testing.T) {
	defaults := settings{interval: 5 * time.Second, sendData: true}
	current := settings{interval: time.Second, sendData: false}
	tests := []struct {
		name    string
		patch   map[string]any
		want    settings
		wantErr bool
	}{
		{name: "empty patch", patch: map[string]any{}, want: current},
		{name: "interval in seconds", patch: map[string]any{"SendInterval": json.Number("10")}, want: settings{10 * time.Second, false}},
		{name: "fractional seconds", patch: map[string]any{"SendInterval": 0.5}, want: settings{500 * time.Millisecond, false}},
		{name: "interval as a string", patch: map[string]any{"SendInterval": "100ms"}, want: settings{100 * time.Millisecond, false}},
		{name: "send data", patch: map[string]any{"SendData": true}, want: settings{time.Second, true}},
		{name: "deleted properties go back to the defaults", patch: map[string]any{"SendInterval": nil, "SendData": nil}, want: defaults},
		{name: "bad interval keeps the rest", patch: map[string]any{"SendInterval": true, "SendData": true},
			want: settings{time.Second, true}, wantErr: true},
		{name: "negative interval", patch: map[string]any{"SendInterval": json.Number("-3")}, want: current, wantErr: true},
		{name: "bad send data", patch: map[string]any{"SendData": "yes"}, want: current, wantErr: true},
		{name: "other properties ignored", patch: map[string]any{"TemperatureThreshold": 3}, want: current},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := current.apply(tt.patch, defaults)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSettings_Reported(t *testing.T) {
	got := settings{interval: 1500 * time.Millisecond, sendData: true}.reported()
	if got["SendInterval"] != 1.5 || got["SendData"] != true {
		t.Errorf("reported %v", got)
	}
}
