package main

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    config
		wantErr string
	}{
		{name: "defaults", want: config{count: 0, rate: 0, size: 1024, outputs: []string{"output1"}, inFlight: 16}},
		{name: "all set", env: map[string]string{"MessageCount": "1000", "Rate": "250.5", "MessageSize": "4096", "Outputs": "pri0, pri1,pri2", "InFlight": "64"},
			want: config{count: 1000, rate: 250.5, size: 4096, outputs: []string{"pri0", "pri1", "pri2"}, inFlight: 64}},
		{name: "negative count", env: map[string]string{"MessageCount": "-1"}, wantErr: "MessageCount"},
		{name: "negative rate", env: map[string]string{"Rate": "-5"}, wantErr: "Rate"},
		{name: "bad rate", env: map[string]string{"Rate": "fast"}, wantErr: "Rate"},
		{name: "size over the limit", env: map[string]string{"MessageSize": "300000"}, wantErr: "MessageSize"},
		{name: "empty output", env: map[string]string{"Outputs": "a,,b"}, wantErr: "Outputs"},
		{name: "output with a slash", env: map[string]string{"Outputs": "a/b"}, wantErr: "Outputs"},
		{name: "no slots", env: map[string]string{"InFlight": "0"}, wantErr: "InFlight"},
		{name: "too many slots", env: map[string]string{"InFlight": "5000"}, wantErr: "InFlight"},
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
			if err != nil {
				t.Fatal(err)
			}
			if got.count != tt.want.count || got.rate != tt.want.rate || got.size != tt.want.size ||
				got.inFlight != tt.want.inFlight || !slices.Equal(got.outputs, tt.want.outputs) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
