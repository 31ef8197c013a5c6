package cli

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestCheckLogFormat(t *testing.T) {
	tests := []struct {
		format  string
		wantErr bool
	}{
		{format: "text"},
		{format: "json"},
		{format: "xml", wantErr: true},
		{format: "", wantErr: true},
		{format: "JSON", wantErr: true}, // the daemons have always been case-sensitive here
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			err := CheckLogFormat(tt.format)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "--log-format") || !strings.Contains(err.Error(), "want text or json") {
					t.Errorf("err = %v, want one naming --log-format", err)
				}
				return
			}
			if err != nil {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestParseLevel(t *testing.T) {
	tests := []struct {
		level   string
		want    slog.Level
		wantErr bool
	}{
		{level: "debug", want: slog.LevelDebug},
		{level: "info", want: slog.LevelInfo},
		{level: "WARN", want: slog.LevelWarn},
		{level: "error", want: slog.LevelError},
		{level: "info+2", want: slog.LevelInfo + 2},
		{level: "loud", wantErr: true},
		{level: "", wantErr: true},
		{level: "warning", wantErr: true}, // Azure's spelling is modulemain's, not the daemons'
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			got, err := ParseLevel(tt.level)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), `--log-level "`+tt.level+`"`) {
					t.Errorf("err = %v, want one naming --log-level and the value", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseLevel(%q) = %v, %v; want %v", tt.level, got, err, tt.want)
			}
		})
	}
}

func TestNewLogger(t *testing.T) {
	tests := []struct {
		name, format, level string
		wantJSON            bool
		wantDebug           bool   // whether a debug record is written
		wantErr             string // substring of the error; "" for success
	}{
		{name: "text info", format: "text", level: "info"},
		{name: "text debug", format: "text", level: "debug", wantDebug: true},
		{name: "json info", format: "json", level: "info", wantJSON: true},
		{name: "json debug", format: "json", level: "debug", wantJSON: true, wantDebug: true},
		{name: "bad format", format: "xml", level: "info", wantErr: "--log-format"},
		{name: "bad level", format: "json", level: "loud", wantErr: "--log-level"},
		{name: "format checked first", format: "xml", level: "loud", wantErr: "--log-format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger, err := NewLogger(tt.format, tt.level, &buf)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewLogger: %v", err)
			}
			logger.Debug("quiet")
			logger.Info("hello", "k", "v")
			out := buf.String()
			if got := strings.Contains(out, "quiet"); got != tt.wantDebug {
				t.Errorf("debug record written = %v, want %v; output %q", got, tt.wantDebug, out)
			}
			last := out[strings.LastIndex(strings.TrimSuffix(out, "\n"), "\n")+1:]
			var rec map[string]any
			isJSON := json.Unmarshal([]byte(last), &rec) == nil
			if isJSON != tt.wantJSON {
				t.Errorf("JSON output = %v, want %v; output %q", isJSON, tt.wantJSON, out)
			}
			if isJSON && (rec["msg"] != "hello" || rec["k"] != "v") {
				t.Errorf("record = %v, want msg hello and k v", rec)
			}
			if !isJSON && !strings.Contains(last, "msg=hello k=v") {
				t.Errorf("text record = %q, want msg=hello k=v", last)
			}
		})
	}
}
