package main

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestDecide(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		threshold float64
		wantAlert bool
		wantTemp  float64
		wantErr   error
	}{
		{name: "above", body: `{"machine":{"temperature":30.5,"pressure":2},"ambient":{"temperature":21,"humidity":25}}`, threshold: 25, wantAlert: true, wantTemp: 30.5},
		{name: "below", body: `{"machine":{"temperature":20}}`, threshold: 25, wantTemp: 20},
		{name: "equal is not above", body: `{"machine":{"temperature":25}}`, threshold: 25, wantTemp: 25},
		{name: "negative threshold", body: `{"machine":{"temperature":-1}}`, threshold: -5, wantAlert: true, wantTemp: -1},
		{name: "integer temperature", body: `{"machine":{"temperature":100}}`, threshold: 99.9, wantAlert: true, wantTemp: 100},
		{name: "extra fields ignored", body: `{"x":[1,2],"machine":{"temperature":26,"other":{}}}`, threshold: 25, wantAlert: true, wantTemp: 26},
		{name: "not JSON", body: `temperature=30`, wantErr: errMalformed},
		{name: "empty", body: ``, wantErr: errMalformed},
		{name: "truncated", body: `{"machine":{"temperature":30`, wantErr: errMalformed},
		{name: "array", body: `[{"machine":{"temperature":30}}]`, wantErr: errMalformed},
		{name: "JSON string", body: `"hot"`, wantErr: errMalformed},
		{name: "no machine", body: `{"ambient":{"temperature":30}}`, wantErr: errNoTemperature},
		{name: "null machine", body: `{"machine":null}`, wantErr: errNoTemperature},
		{name: "machine not an object", body: `{"machine":5}`, wantErr: errNoTemperature},
		{name: "no temperature", body: `{"machine":{"pressure":3}}`, wantErr: errNoTemperature},
		{name: "null temperature", body: `{"machine":{"temperature":null}}`, wantErr: errNoTemperature},
		{name: "string temperature", body: `{"machine":{"temperature":"30"}}`, wantErr: errNoTemperature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alert, temp, err := decide([]byte(tt.body), tt.threshold)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || alert {
					t.Fatalf("got (%v, %v), want error %v", alert, err, tt.wantErr)
				}
				return
			}
			if err != nil || alert != tt.wantAlert || temp != tt.wantTemp {
				t.Errorf("got (%v, %v, %v), want (%v, %v, nil)", alert, temp, err, tt.wantAlert, tt.wantTemp)
			}
		})
	}
}

// FuzzDecide checks that no body makes decide panic, and that a decision agrees with the
// temperature it returns.
func FuzzDecide(f *testing.F) {
	for _, s := range []string{`{"machine":{"temperature":30}}`, `{"machine":null}`, `[]`, `{"machine":{"temperature":"x"}}`, ``} {
		f.Add([]byte(s), 25.0)
	}
	f.Fuzz(func(t *testing.T, body []byte, threshold float64) {
		alert, temp, err := decide(body, threshold)
		if err != nil {
			if alert {
				t.Fatal("alert with an error")
			}
			if !errors.Is(err, errMalformed) && !errors.Is(err, errNoTemperature) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if alert != (temp > threshold) {
			t.Fatalf("alert %v for temperature %v and threshold %v", alert, temp, threshold)
		}
	})
}

func TestParseThreshold(t *testing.T) {
	tests := []struct {
		name    string
		in      any
		want    float64
		wantErr bool
	}{
		{name: "json number", in: json.Number("30.5"), want: 30.5},
		{name: "float", in: 19.0, want: 19},
		{name: "negative", in: json.Number("-4"), want: -4},
		{name: "deleted", in: nil, want: defaultThreshold},
		{name: "string", in: "30", wantErr: true},
		{name: "bool", in: true, wantErr: true},
		{name: "object", in: map[string]any{"value": 3}, wantErr: true},
		{name: "huge", in: json.Number("1e999"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseThreshold(tt.in)
			if tt.wantErr {
				if !errors.Is(err, errBadThreshold) {
					t.Fatalf("err = %v, want errBadThreshold", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got (%v, %v), want %v", got, err, tt.want)
			}
		})
	}
}
