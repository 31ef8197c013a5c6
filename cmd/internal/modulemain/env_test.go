package modulemain

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "5s", want: 5 * time.Second},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "1m30s", want: 90 * time.Second},
		{in: "5", want: 5 * time.Second},
		{in: "0.5", want: 500 * time.Millisecond},
		{in: "0", want: 0},
		{in: " 2 ", want: 2 * time.Second},
		{in: "00:00:05", want: 5 * time.Second},
		{in: "01:02:03", want: time.Hour + 2*time.Minute + 3*time.Second},
		{in: "00:00:00.25", want: 250 * time.Millisecond},
		{in: "1.00:00:00", want: 24 * time.Hour},
		{in: "", wantErr: true},
		{in: "-1s", wantErr: true},
		{in: "-3", wantErr: true},
		{in: "soon", wantErr: true},
		{in: "inf", wantErr: true},
		{in: "1e300", wantErr: true},
		{in: "00:60:00", wantErr: true},
		{in: "24:00:00", wantErr: true},
		{in: "00:00", wantErr: true},
		{in: "00:00:05.12345678", wantErr: true},
		{in: "00:00:0x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEnv_Getters(t *testing.T) {
	vars := map[string]string{
		"N": "42", "BadN": "4x", "F": "2.5", "BadF": "NaN", "B": "TRUE", "BadB": "yes",
		"D": "3s", "BadD": "later", "L": " a, b ,c", "BadL": "a,,b", "S": " text ", "Blank": "   ",
	}
	tests := []struct {
		name    string
		get     func(e *Env) any
		want    any
		wantErr string
	}{
		{name: "int", get: func(e *Env) any { return e.Int("N", 1) }, want: 42},
		{name: "int default", get: func(e *Env) any { return e.Int("Unset", 1) }, want: 1},
		{name: "blank is unset", get: func(e *Env) any { return e.Int("Blank", 7) }, want: 7},
		{name: "bad int", get: func(e *Env) any { return e.Int("BadN", 1) }, want: 1, wantErr: `BadN="4x"`},
		{name: "float", get: func(e *Env) any { return e.Float("F", 0) }, want: 2.5},
		{name: "bad float", get: func(e *Env) any { return e.Float("BadF", 0) }, want: 0.0, wantErr: "BadF"},
		{name: "bool", get: func(e *Env) any { return e.Bool("B", false) }, want: true},
		{name: "bad bool", get: func(e *Env) any { return e.Bool("BadB", false) }, want: false, wantErr: "BadB"},
		{name: "duration", get: func(e *Env) any { return e.Duration("D", 0) }, want: 3 * time.Second},
		{name: "bad duration", get: func(e *Env) any { return e.Duration("BadD", time.Second) }, want: time.Second, wantErr: "BadD"},
		{name: "string", get: func(e *Env) any { return e.String("S", "") }, want: "text"},
		{name: "string default", get: func(e *Env) any { return e.String("Unset", "def") }, want: "def"},
		{name: "list", get: func(e *Env) any { return strings.Join(e.List("L", nil), "|") }, want: "a|b|c"},
		{name: "bad list", get: func(e *Env) any { return strings.Join(e.List("BadL", []string{"d"}), "|") }, want: "d", wantErr: "BadL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEnv(func(k string) string { return vars[k] })
			if got := tt.get(e); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			err := e.Err()
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Err() = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Err() = %v, want ErrConfig mentioning %s", err, tt.wantErr)
			}
		})
	}
}

func TestEnv_CollectsEveryError(t *testing.T) {
	e := NewEnv(func(k string) string { return map[string]string{"A": "x", "B": "y"}[k] })
	e.Int("A", 0)
	e.Float("B", 0)
	e.Invalid("C", "want something else")
	err := e.Err()
	for _, name := range []string{"A", "B", "C", "want something else"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Err() = %v, want it to mention %s", err, name)
		}
	}
	if !slices.Equal(e.List("Unset", []string{"x"}), []string{"x"}) {
		t.Error("List default")
	}
}
