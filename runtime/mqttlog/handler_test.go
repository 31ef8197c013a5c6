package mqttlog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	tests := []struct {
		name     string
		min      slog.Level // the hub's level
		level    slog.Level
		msg      string
		want     string // "" = nothing logged
		wantGone string // must not appear
	}{
		{"info demoted, hidden at info", slog.LevelInfo, slog.LevelInfo, "added hook", "", ""},
		{"info demoted, shown at debug", slog.LevelDebug, slog.LevelInfo, "added hook", "level=DEBUG msg=\"added hook\"", ""},
		{"empty warn renamed", slog.LevelDebug, slog.LevelWarn, "", "level=DEBUG msg=\"connection ended\"", ""},
		{"empty warn hidden at info", slog.LevelInfo, slog.LevelWarn, "", "", ""},
		{"packet dump dropped", slog.LevelDebug, slog.LevelWarn, "error processing packet", "msg=\"error processing packet\"", "pk="},
		{"packet attr dropped", slog.LevelDebug, slog.LevelWarn, "error processing packet", "msg=\"error processing packet\"", "packet="},
		{"other warnings pass", slog.LevelInfo, slog.LevelWarn, "client store quota reached", "level=WARN msg=\"client store quota reached\"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := slog.New(Handler{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tt.min})}).With("broker", "mochi")
			l.Log(t.Context(), tt.level, tt.msg, "error", "EOF", "pk", "PAYLOAD", "packet", "PAYLOAD")
			out := buf.String()
			switch {
			case tt.want == "" && out != "":
				t.Fatalf("logged %q, want nothing", out)
			case tt.want != "" && !strings.Contains(out, tt.want):
				t.Fatalf("logged %q, want it to contain %q", out, tt.want)
			case tt.wantGone != "" && strings.Contains(out, tt.wantGone):
				t.Fatalf("logged %q, which contains %q", out, tt.wantGone)
			case out != "" && !strings.Contains(out, "broker=mochi"):
				t.Fatalf("logged %q without the logger's attributes", out)
			}
		})
	}
}
