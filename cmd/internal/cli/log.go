package cli

import (
	"fmt"
	"io"
	"log/slog"
)

// Values of --log-format.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// CheckLogFormat returns an error naming --log-format unless format is text or json.
func CheckLogFormat(format string) error {
	if format != FormatText && format != FormatJSON {
		return fmt.Errorf("--log-format %q: want text or json", format)
	}
	return nil
}

// ParseLevel reads a --log-level value as slog does (debug, info, warn or error, in any
// case, optionally with an offset such as "warn+2"); anything else is an error naming
// --log-level.
func ParseLevel(level string) (slog.Level, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return lvl, nil
}

// NewLogger returns the slog logger --log-format and --log-level ask for, writing to w. It
// checks the format first, then the level, with the errors of CheckLogFormat and ParseLevel.
func NewLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	if err := CheckLogFormat(format); err != nil {
		return nil, err
	}
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == FormatJSON {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
