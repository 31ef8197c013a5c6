package modulemain

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Env reads a module's settings from environment variables. Each getter returns the
// default when the variable is unset or blank, and records an error (returned by Err) when
// it is malformed, so that a module reports every bad variable at once rather than one per
// restart.
type Env struct {
	getenv func(string) string
	errs   []error
}

// NewEnv returns an Env reading through getenv (os.Getenv in production).
func NewEnv(getenv func(string) string) *Env { return &Env{getenv: getenv} }

// lookup returns the trimmed value of name and whether it is set to something.
func (e *Env) lookup(name string) (string, bool) {
	v := strings.TrimSpace(e.getenv(name))
	return v, v != ""
}

// Set reports whether name is set to a non-blank value.
func (e *Env) Set(name string) bool {
	_, ok := e.lookup(name)
	return ok
}

// Invalid records that the value of name is wrong for the given reason, e.g. "want a
// positive number". Modules call it for checks beyond the syntax the getters verify.
func (e *Env) Invalid(name, reason string) {
	e.errs = append(e.errs, fmt.Errorf("environment variable %s=%q: %s", name, e.getenv(name), reason))
}

// Err returns the recorded errors joined, wrapping ErrConfig, or nil.
func (e *Env) Err() error {
	if len(e.errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrConfig, errors.Join(e.errs...))
}

// String returns the value of name, or def.
func (e *Env) String(name, def string) string {
	if v, ok := e.lookup(name); ok {
		return v
	}
	return def
}

// Int returns the value of name as a decimal integer, or def.
func (e *Env) Int(name string, def int) int {
	v, ok := e.lookup(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.Invalid(name, "want an integer")
		return def
	}
	return n
}

// Float returns the value of name as a finite decimal number, or def.
func (e *Env) Float(name string, def float64) float64 {
	v, ok := e.lookup(name)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		e.Invalid(name, "want a number")
		return def
	}
	return f
}

// Bool returns the value of name as a boolean (true/false, 1/0, case-insensitive), or def.
func (e *Env) Bool(name string, def bool) bool {
	v, ok := e.lookup(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(strings.ToLower(v))
	if err != nil {
		e.Invalid(name, "want true or false")
		return def
	}
	return b
}

// Duration returns the value of name as a non-negative duration (see ParseDuration), or def.
func (e *Env) Duration(name string, def time.Duration) time.Duration {
	v, ok := e.lookup(name)
	if !ok {
		return def
	}
	d, err := ParseDuration(v)
	if err != nil {
		e.Invalid(name, err.Error())
		return def
	}
	return d
}

// List returns the comma-separated value of name with each item trimmed, or def. Empty
// items ("a,,b") are an error.
func (e *Env) List(name string, def []string) []string {
	v, ok := e.lookup(name)
	if !ok {
		return def
	}
	items := strings.Split(v, ",")
	for i, it := range items {
		items[i] = strings.TrimSpace(it)
		if items[i] == "" {
			e.Invalid(name, "empty item in the comma-separated list")
			return def
		}
	}
	return items
}

// ParseDuration reads a non-negative duration in any of the forms a module's settings come
// in:
//
//   - a Go duration: "5s", "250ms", "1m30s";
//   - a bare number of seconds: "5", "0.5" (what Azure's twin setting SendInterval holds);
//   - a .NET TimeSpan "[d.]hh:mm:ss[.fffffff]": "00:00:05" (what Azure's MessageDelay holds).
//
// Unlike .NET, a bare integer means seconds, not days.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var (
		d   time.Duration
		err error
	)
	switch {
	case s == "":
		return 0, errors.New("empty duration")
	case strings.Contains(s, ":"):
		d, err = parseTimeSpan(s)
	default:
		if f, ferr := strconv.ParseFloat(s, 64); ferr == nil {
			if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > math.MaxInt64/float64(time.Second) {
				return 0, fmt.Errorf("duration %q out of range", s)
			}
			d = time.Duration(f * float64(time.Second))
		} else {
			d, err = time.ParseDuration(s)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("want a duration such as 5s, 500ms, 5 (seconds) or 00:00:05: %w", err)
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return d, nil
}

// parseTimeSpan reads the .NET TimeSpan form [d.]hh:mm:ss[.fffffff] (hours 0-23, minutes and
// seconds 0-59, as .NET requires).
func parseTimeSpan(s string) (time.Duration, error) {
	bad := fmt.Errorf("malformed time span %q", s)
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, bad
	}
	var days int64
	if ds, hs, ok := strings.Cut(parts[0], "."); ok {
		n, err := strconv.ParseInt(ds, 10, 32)
		if err != nil || n < 0 {
			return 0, bad
		}
		days, parts[0] = n, hs
	}
	secs, frac, _ := strings.Cut(parts[2], ".")
	fields := []struct {
		text string
		max  int64
		unit time.Duration
	}{{parts[0], 23, time.Hour}, {parts[1], 59, time.Minute}, {secs, 59, time.Second}}
	d := time.Duration(days) * 24 * time.Hour
	for _, f := range fields {
		n, err := strconv.ParseInt(f.text, 10, 64)
		if err != nil || n < 0 || n > f.max || len(f.text) > 2 {
			return 0, bad
		}
		d += time.Duration(n) * f.unit
	}
	if frac != "" {
		if len(frac) > 7 || strings.Trim(frac, "0123456789") != "" {
			return 0, bad
		}
		n, _ := strconv.ParseInt((frac + "000000000")[:9], 10, 64) // digits only, checked above
		d += time.Duration(n)
	}
	return d, nil
}
