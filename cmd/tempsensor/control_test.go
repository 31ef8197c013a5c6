package main

import (
	"errors"
	"testing"
)

func TestParseControl(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantReset bool
		wantErr   bool
	}{
		{name: "reset", body: `{"command":"reset"}`, wantReset: true},
		{name: "Azure's enum name", body: `{"command":"Reset"}`, wantReset: true},
		{name: "Azure's enum number", body: `{"command":0}`, wantReset: true},
		{name: "no operation", body: `{"command":"NoOperation"}`},
		{name: "no operation number", body: `{"command":1}`},
		{name: "list with a reset", body: `[{"command":"NoOperation"},{"command":"reset"}]`, wantReset: true},
		{name: "empty list", body: `[]`},
		{name: "unknown command", body: `{"command":"explode"}`, wantErr: true},
		{name: "unknown number", body: `{"command":7}`, wantErr: true},
		{name: "no command", body: `{}`, wantErr: true},
		{name: "not JSON", body: `reset`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reset, err := parseControl([]byte(tt.body))
			if tt.wantErr {
				if !errors.Is(err, errBadControl) {
					t.Fatalf("err = %v, want errBadControl", err)
				}
				return
			}
			if err != nil || reset != tt.wantReset {
				t.Errorf("got (%v, %v), want (%v, nil)", reset, err, tt.wantReset)
			}
		})
	}
}
