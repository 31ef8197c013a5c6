package modulemain

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in      string
		want    slog.Level
		wantErr bool
	}{
		{in: "", want: slog.LevelInfo},
		{in: "info", want: slog.LevelInfo},
		{in: "Information", want: slog.LevelInfo},
		{in: "debug", want: slog.LevelDebug},
		{in: "verbose", want: slog.LevelDebug},
		{in: "TRACE", want: slog.LevelDebug},
		{in: "warning", want: slog.LevelWarn},
		{in: "warn", want: slog.LevelWarn},
		{in: "error", want: slog.LevelError},
		{in: "fatal", want: slog.LevelError},
		{in: " critical ", want: slog.LevelError},
		{in: "loud", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLevel(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "RuntimeLogLevel") {
					t.Errorf("err = %v, want ErrConfig naming RuntimeLogLevel", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got (%v, %v), want %v", got, err, tt.want)
			}
		})
	}
}

func TestNewLogger_TextAtTheConfiguredLevel(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(func(k string) string { return map[string]string{"RuntimeLogLevel": "warning"}[k] }, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", "v")
	out := buf.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, "level=WARN msg=shown k=v") {
		t.Errorf("log output %q", out)
	}
}
