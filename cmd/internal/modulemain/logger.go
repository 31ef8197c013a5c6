package modulemain

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// EnvLogLevel is the variable the edge agent injects with its own log level (unless the
// deployment sets it for the module), and that Azure's modules read for theirs.
const EnvLogLevel = "RuntimeLogLevel"

// ParseLevel reads a RuntimeLogLevel value, case-insensitively. It accepts the names Azure's
// modules and edge runtime use (verbose, information, warning, fatal, ...) as well as slog's
// own; an empty value is info. Anything else is an error wrapping ErrConfig.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "trace", "verbose", "debug":
		return slog.LevelDebug, nil
	case "", "info", "information":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "fatal", "critical":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%w: environment variable %s=%q: want debug, info, warning or error",
		ErrConfig, EnvLogLevel, s)
}

// NewLogger returns a text slog logger writing to w at the level RuntimeLogLevel names.
func NewLogger(getenv func(string) string, w io.Writer) (*slog.Logger, error) {
	lvl, err := ParseLevel(getenv(EnvLogLevel))
	if err != nil {
		return nil, err
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})), nil
}
