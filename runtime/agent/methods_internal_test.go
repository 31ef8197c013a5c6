package agent

import (
	"strings"
	"testing"
	"time"
)

func TestParseLogLine(t *testing.T) {
	tests := []struct {
		line string
		want logLine
	}{
		{"<6> 2019-02-14 16:15:35.243 -08:00 [INF] [EdgeHub] - Version", logLine{6, "2019-02-14T16:15:35.243-08:00", "[INF] [EdgeHub] - Version"}},
		{"<3>2026-03-01 12:00:00.000 +00:00 failed", logLine{3, "2026-03-01T12:00:00.000Z", "failed"}},
		{"<7> debug text", logLine{7, "", "debug text"}},
		{"2026-03-01 12:00:00.000 +02:00 no level", logLine{6, "2026-03-01T12:00:00.000+02:00", "no level"}},
		{"[2026-03-01 12:00:01.500 WRN] bracketed", logLine{6, "2026-03-01T12:00:01.500", "[2026-03-01 12:00:01.500 WRN] bracketed"}},
		{"plain", logLine{6, "", "plain"}},
		{"", logLine{6, "", ""}},
		{"<12> two digits are not a level", logLine{6, "", "<12> two digits are not a level"}},
		{"<6> 2026-13-45 99:99:99.000 +00:00 impossible date", logLine{6, "", "impossible date"}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			if got := parseLogLine(tt.line); got != tt.want {
				t.Errorf("parseLogLine(%q) = %+v, want %+v", tt.line, got, tt.want)
			}
		})
	}
}

// FuzzParseLogLine checks parseLogLine's invariants on any line: a level
// of one digit, a text that ends the line, and a timestamp that parses.
func FuzzParseLogLine(f *testing.F) {
	for _, s := range []string{"<6> 2019-02-14 16:15:35.243 -08:00 [INF] x", "[2026-03-01 12:00:01.500 WRN] y", "plain", "<9>", "\xff<1>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		l := parseLogLine(line)
		if l.level < 0 || l.level > 9 {
			t.Fatalf("level %d", l.level)
		}
		if !strings.HasSuffix(line, l.text) {
			t.Fatalf("text %q does not end %q", l.text, line)
		}
		if l.timestamp != "" {
			if _, err := time.Parse("2006-01-02T15:04:05.000Z07:00", l.timestamp); err != nil {
				if _, err := time.Parse("2006-01-02T15:04:05.000", l.timestamp); err != nil {
					t.Fatalf("timestamp %q does not parse", l.timestamp)
				}
			}
		}
	})
}
