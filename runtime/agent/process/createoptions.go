package process

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Docker's health check defaults, used when a field is 0.
const (
	defaultHealthInterval = 30 * time.Second
	defaultHealthTimeout  = 30 * time.Second
	defaultHealthRetries  = 3
	// minHealthDuration is Docker's lower bound for a non-zero interval,
	// timeout or start period.
	minHealthDuration = time.Millisecond
)

// shell runs CMD-SHELL health checks, as in a Linux container.
var shell = []string{"/bin/sh", "-c"}

// options is the subset of the Docker create JSON the process runtime uses.
type options struct {
	Cmd        []string
	Entrypoint []string
	WorkingDir string
	Health     *healthSpec // nil: no health check
	// Ignored lists the top-level keys that were present and not used.
	Ignored []string
}

// healthSpec is a parsed Docker Healthcheck, with defaults applied.
type healthSpec struct {
	// Test is the command line to run: Docker's CMD arguments, or
	// /bin/sh -c and the CMD-SHELL text.
	Test        []string      `json:"test"`
	Interval    time.Duration `json:"interval"`
	Timeout     time.Duration `json:"timeout"`
	StartPeriod time.Duration `json:"startPeriod,omitempty"`
	Retries     int           `json:"retries"`
}

// dockerHealth is Docker's HealthConfig as it appears in create JSON
// (durations in nanoseconds).
type dockerHealth struct {
	Test          []string
	Interval      int64
	Timeout       int64
	StartPeriod   int64
	StartInterval int64 // accepted, not used: checks run every Interval
	Retries       int
}

// parseCreateOptions reads the fields of createOptions the process runtime
// uses. Keys match case-insensitively, as Docker's decoder does. Env is
// accepted and ignored: the agent has already merged it into the spec's
// environment. An empty text or "null" means no options.
func parseCreateOptions(text string) (options, error) {
	var o options
	text = strings.TrimSpace(text)
	if text == "" || text == "null" {
		return o, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &fields); err != nil {
		return o, fmt.Errorf("%w: not a JSON object: %v", ErrCreateOptions, err)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic when a key appears in two spellings
	for _, k := range keys {
		v := fields[k]
		var err error
		switch strings.ToLower(k) {
		case "cmd":
			o.Cmd, err = parseStrSlice(v)
		case "entrypoint":
			o.Entrypoint, err = parseStrSlice(v)
		case "workingdir":
			err = json.Unmarshal(v, &o.WorkingDir)
			if err == nil && o.WorkingDir != "" && !strings.HasPrefix(o.WorkingDir, "/") {
				err = fmt.Errorf("%q is not an absolute path", o.WorkingDir)
			}
		case "healthcheck":
			o.Health, err = parseHealth(v)
		case "env":
			// Merged into ModuleSpec.Env by the agent.
		default:
			o.Ignored = append(o.Ignored, k)
		}
		if err != nil {
			return options{}, fmt.Errorf("%w: %s: %v", ErrCreateOptions, k, err)
		}
	}
	return o, nil
}

// parseStrSlice reads Docker's StrSlice: null, a string (one element, not
// split) or an array of strings.
func parseStrSlice(v json.RawMessage) ([]string, error) {
	v = bytes.TrimSpace(v)
	if bytes.Equal(v, []byte("null")) {
		return nil, nil
	}
	if len(v) > 0 && v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	var out []string
	if err := json.Unmarshal(v, &out); err != nil {
		return nil, fmt.Errorf("want a string or an array of strings")
	}
	return out, nil
}

// parseHealth reads a Docker Healthcheck; nil when it disables or does not
// define a check.
func parseHealth(v json.RawMessage) (*healthSpec, error) {
	if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return nil, nil
	}
	var d dockerHealth
	dec := json.NewDecoder(bytes.NewReader(v))
	if err := dec.Decode(&d); err != nil {
		return nil, err
	}
	h := &healthSpec{
		Interval:    time.Duration(d.Interval),
		Timeout:     time.Duration(d.Timeout),
		StartPeriod: time.Duration(d.StartPeriod),
		Retries:     d.Retries,
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"Interval", h.Interval}, {"Timeout", h.Timeout}, {"StartPeriod", h.StartPeriod}, {"StartInterval", time.Duration(d.StartInterval)}} {
		if f.d < 0 || f.d > 0 && f.d < minHealthDuration {
			return nil, fmt.Errorf("%s is %d ns; it must be 0 (the default) or at least %d ns (1 ms)", f.name, int64(f.d), int64(minHealthDuration))
		}
	}
	if h.Retries < 0 {
		return nil, fmt.Errorf("Retries is %d; it must not be negative", h.Retries)
	}
	if h.Interval == 0 {
		h.Interval = defaultHealthInterval
	}
	if h.Timeout == 0 {
		h.Timeout = defaultHealthTimeout
	}
	if h.Retries == 0 {
		h.Retries = defaultHealthRetries
	}
	if len(d.Test) == 0 {
		return nil, nil // Docker: inherit the image's check; a process has none
	}
	switch d.Test[0] {
	case "NONE":
		return nil, nil
	case "CMD":
		if len(d.Test) < 2 || d.Test[1] == "" {
			return nil, fmt.Errorf(`Test ["CMD", …] needs a command`)
		}
		h.Test = append([]string(nil), d.Test[1:]...)
	case "CMD-SHELL":
		cmd := strings.Join(d.Test[1:], " ")
		if strings.TrimSpace(cmd) == "" {
			return nil, fmt.Errorf(`Test ["CMD-SHELL", …] needs a command`)
		}
		h.Test = append(append([]string(nil), shell...), cmd)
	default:
		return nil, fmt.Errorf(`Test must start with "CMD", "CMD-SHELL" or "NONE" (got %q)`, d.Test[0])
	}
	return h, nil
}
