package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

// Spec declares what a module does, so that the harness knows what to check. It is read
// from a JSON file (docs/conformance.md describes the format); every field is optional
// except that a module name must come from the spec or the caller. Parse fills in the
// defaults below, and a check whose behaviour the spec does not declare (no inputs, no
// methods, no twin) is reported SKIP with the reason.
type Spec struct {
	// Module is the module's name, which is also its module identity on the harness's edge
	// device. Default: Options.ModuleName (edgectl: the executable's or image's base name).
	Module string `json:"module,omitempty"`
	// Inputs are the inputs the module listens on.
	Inputs []Input `json:"inputs,omitempty"`
	// Outputs are the outputs the module sends on.
	Outputs []Output `json:"outputs,omitempty"`
	// Methods are the direct methods the module answers.
	Methods []Method `json:"methods,omitempty"`
	// Twin is the module's twin behaviour; nil when it has none to check.
	Twin *Twin `json:"twin,omitempty"`
	// Limits bound the module's memory and CPU over the run.
	Limits Limits `json:"limits"`

	// SigtermGraceSeconds is how long the module may take to exit after SIGTERM.
	SigtermGraceSeconds float64 `json:"sigtermGraceSeconds,omitempty"`
	// ReconnectWithinSeconds bounds the time between the restarted edge hub being ready and
	// the module being connected to it again.
	ReconnectWithinSeconds float64 `json:"reconnectWithinSeconds,omitempty"`
	// ConnectTimeoutSeconds bounds the module's first connection, from its start.
	ConnectTimeoutSeconds float64 `json:"connectTimeoutSeconds,omitempty"`
	// MessageTimeoutSeconds bounds the wait for each expected message.
	MessageTimeoutSeconds float64 `json:"messageTimeoutSeconds,omitempty"`

	// Env is added to the module's environment, after the variables the harness injects
	// (which it cannot override: see Parse).
	Env map[string]string `json:"env,omitempty"`
}

// Input is a declared module input.
type Input struct {
	// Name is the input's name (the {i} of /modules/{m}/inputs/{i}).
	Name string `json:"name"`
	// Sample is the JSON body the harness sends to the input; default DefaultSample.
	Sample json.RawMessage `json:"sample,omitempty"`
	// Properties are application properties put on the sample.
	Properties map[string]string `json:"properties,omitempty"`
}

// Output is a declared module output.
type Output struct {
	// Name is the output's name (the {o} of /messages/modules/{m}/outputs/{o}).
	Name string `json:"name"`
	// ExpectOnInput names the input whose messages make the module send on this output:
	// each sample sent to that input must produce at least one message here. Empty (or
	// null): the module sends on it by itself, and one message within the message timeout
	// is expected.
	ExpectOnInput string `json:"expectOnInput,omitempty"`
	// MaxBytes caps each message, measured as IoT Hub does (body, system property values,
	// application property names and values); default iothub.MaxMessageSize (256 KB).
	MaxBytes int `json:"maxBytes,omitempty"`
}

// Method is a declared direct method.
type Method struct {
	// Name is the method name.
	Name string `json:"name"`
	// Payload is the JSON request payload; default null.
	Payload json.RawMessage `json:"payload,omitempty"`
	// ExpectStatus is the status the module must answer; default 200.
	ExpectStatus int `json:"expectStatus,omitempty"`
	// TimeoutSeconds is the response timeout the call is made with; default 10.
	TimeoutSeconds float64 `json:"timeoutSeconds,omitempty"`
}

// Twin is a declared twin behaviour: once the module is connected, the harness patches
// Desired into its twin (through the fake IoT Hub's service API), and the module must
// report ExpectReported (every property it names, with that value; others may be there
// too) within TimeoutSeconds.
type Twin struct {
	Desired        map[string]any `json:"desired"`
	ExpectReported map[string]any `json:"expectReported"`
	// TimeoutSeconds bounds the wait for the reported properties; default 15.
	TimeoutSeconds float64 `json:"timeoutSeconds,omitempty"`
}

// Limits bound the module's resource use over the run.
type Limits struct {
	// MemoryMB caps the module's peak resident set size (a container: its cgroup's peak
	// memory use, as docker stats shows it), in MiB; default 256.
	MemoryMB float64 `json:"memoryMB,omitempty"`
	// CPUPercent caps the module's average CPU use over the run, in percent of one core;
	// default 100.
	CPUPercent float64 `json:"cpuPercent,omitempty"`
}

// Defaults applied by Parse.
const (
	DefaultSigtermGrace    = 10 * time.Second
	DefaultReconnectWithin = 30 * time.Second
	DefaultConnectTimeout  = 30 * time.Second
	DefaultMessageTimeout  = 10 * time.Second
	DefaultTwinTimeout     = 15 * time.Second
	DefaultMethodTimeout   = 10 * time.Second
	DefaultExpectStatus    = 200
	DefaultMemoryMB        = 256
	DefaultCPUPercent      = 100
)

// DefaultSample is the body sent to an input that declares no sample.
var DefaultSample = json.RawMessage(`{"conformance":"sample"}`)

// ProbeModule is the harness's own module identity: it sends to the module's inputs and
// receives from its outputs through the edge hub's routes. A module may not be named so.
const ProbeModule = "conformance-probe"

// maxSpecSize bounds a spec file.
const maxSpecSize = 1 << 20

// ReadSpec reads and parses the spec file at path; see Parse.
func ReadSpec(path string) (Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Spec{}, fmt.Errorf("spec file %q: %w", path, err)
	}
	s, err := Parse(b)
	if err != nil {
		return Spec{}, fmt.Errorf("spec file %q: %w", path, err)
	}
	return s, nil
}

// Parse reads a JSON spec, refusing unknown fields (a misspelt field would otherwise turn
// a check into a silent default), validates it and fills in the defaults. An empty
// document is a valid spec with every default. The module name may be left empty here
// (the caller supplies one, see Options.ModuleName); WithDefaults checks it.
func Parse(b []byte) (Spec, error) {
	if len(b) > maxSpecSize {
		return Spec{}, fmt.Errorf("%w: %d bytes, more than %d", ErrSpec, len(b), maxSpecSize)
	}
	var s Spec
	if len(bytes.TrimSpace(b)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return Spec{}, fmt.Errorf("%w: %w", ErrSpec, err)
		}
		if dec.More() {
			return Spec{}, fmt.Errorf("%w: more than one JSON value", ErrSpec)
		}
	}
	return s.withDefaults(false)
}

// WithDefaults validates s, which must name its module, and returns it with the defaults
// filled in.
func (s Spec) WithDefaults() (Spec, error) { return s.withDefaults(true) }

func (s Spec) withDefaults(needModule bool) (Spec, error) {
	bad := func(format string, args ...any) (Spec, error) {
		return Spec{}, fmt.Errorf("%w: "+format, append([]any{ErrSpec}, args...)...)
	}
	if s.Module != "" || needModule {
		if err := iothub.ValidateModuleID(s.Module); err != nil {
			return bad("module %q: %v", s.Module, err)
		}
		if s.Module == ProbeModule || strings.HasPrefix(s.Module, "$") {
			return bad("module %q: the name is reserved", s.Module)
		}
	}
	inputs := map[string]bool{}
	for i, in := range s.Inputs {
		if err := checkEndpointName(in.Name); err != nil {
			return bad("inputs[%d]: %v", i, err)
		}
		if inputs[in.Name] {
			return bad("inputs[%d]: input %q declared twice", i, in.Name)
		}
		inputs[in.Name] = true
		if len(in.Sample) == 0 || string(in.Sample) == "null" {
			s.Inputs[i].Sample = DefaultSample
		} else if !json.Valid(in.Sample) {
			return bad("inputs[%d] (%q): sample is not valid JSON", i, in.Name)
		}
		for k := range in.Properties {
			if k == "" || strings.HasPrefix(k, iothub.SystemPrefix) {
				return bad("inputs[%d] (%q): property name %q: want a non-empty application property name (not %q...)", i, in.Name, k, iothub.SystemPrefix)
			}
		}
	}
	outputs := map[string]bool{}
	for i, out := range s.Outputs {
		if err := checkEndpointName(out.Name); err != nil {
			return bad("outputs[%d]: %v", i, err)
		}
		if outputs[out.Name] {
			return bad("outputs[%d]: output %q declared twice", i, out.Name)
		}
		outputs[out.Name] = true
		if out.ExpectOnInput != "" && !inputs[out.ExpectOnInput] {
			return bad("outputs[%d] (%q): expectOnInput %q is not a declared input", i, out.Name, out.ExpectOnInput)
		}
		switch {
		case out.MaxBytes < 0:
			return bad("outputs[%d] (%q): maxBytes %d: want a positive number of bytes", i, out.Name, out.MaxBytes)
		case out.MaxBytes == 0:
			s.Outputs[i].MaxBytes = iothub.MaxMessageSize
		}
	}
	methods := map[string]bool{}
	for i, m := range s.Methods {
		if err := iothub.ValidateMethodName(m.Name); err != nil {
			return bad("methods[%d]: name %q: %v", i, m.Name, err)
		}
		if methods[m.Name] {
			return bad("methods[%d]: method %q declared twice", i, m.Name)
		}
		methods[m.Name] = true
		if len(m.Payload) > 0 && !json.Valid(m.Payload) {
			return bad("methods[%d] (%q): payload is not valid JSON", i, m.Name)
		}
		if len(m.Payload) == 0 {
			s.Methods[i].Payload = json.RawMessage("null")
		}
		switch {
		case m.ExpectStatus == 0:
			s.Methods[i].ExpectStatus = DefaultExpectStatus
		case m.ExpectStatus < 100 || m.ExpectStatus > 999:
			return bad("methods[%d] (%q): expectStatus %d: want a status code (100-999)", i, m.Name, m.ExpectStatus)
		}
		if err := seconds(&s.Methods[i].TimeoutSeconds, DefaultMethodTimeout); err != nil {
			return bad("methods[%d] (%q): timeoutSeconds: %v", i, m.Name, err)
		}
	}
	if s.Twin != nil {
		if len(s.Twin.Desired) == 0 || len(s.Twin.ExpectReported) == 0 {
			return bad("twin: want both desired and expectReported (leave twin out when the module has no twin behaviour)")
		}
		for k := range s.Twin.Desired {
			if strings.HasPrefix(k, "$") {
				return bad("twin.desired: property %q: names starting with '$' are reserved", k)
			}
		}
		if err := seconds(&s.Twin.TimeoutSeconds, DefaultTwinTimeout); err != nil {
			return bad("twin.timeoutSeconds: %v", err)
		}
	}
	for _, f := range []struct {
		name string
		v    *float64
		def  float64
	}{
		{"limits.memoryMB", &s.Limits.MemoryMB, DefaultMemoryMB},
		{"limits.cpuPercent", &s.Limits.CPUPercent, DefaultCPUPercent},
	} {
		if *f.v < 0 {
			return bad("%s %v: want a positive number", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	for _, f := range []struct {
		name string
		v    *float64
		def  time.Duration
	}{
		{"sigtermGraceSeconds", &s.SigtermGraceSeconds, DefaultSigtermGrace},
		{"reconnectWithinSeconds", &s.ReconnectWithinSeconds, DefaultReconnectWithin},
		{"connectTimeoutSeconds", &s.ConnectTimeoutSeconds, DefaultConnectTimeout},
		{"messageTimeoutSeconds", &s.MessageTimeoutSeconds, DefaultMessageTimeout},
	} {
		if err := seconds(f.v, f.def); err != nil {
			return bad("%s: %v", f.name, err)
		}
	}
	for k := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return bad("env: variable name %q: want a name without '=' or NUL", k)
		}
		if injected[k] {
			return bad("env: %s is injected by the harness and cannot be set", k)
		}
	}
	return s, nil
}

// seconds fills *v with def (in seconds) when zero and refuses negative or huge values.
func seconds(v *float64, def time.Duration) error {
	const maxSeconds = 3600
	switch {
	case *v < 0 || *v > maxSeconds:
		return fmt.Errorf("%v: want seconds between 0 and %d", *v, maxSeconds)
	case *v == 0:
		*v = def.Seconds()
	}
	return nil
}

// duration converts a number of seconds from the spec.
func duration(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// checkEndpointName accepts input and output names that fit in a route and a topic level
// unchanged: letters, digits, '_', '-' and '.', at most 64 of them.
func checkEndpointName(n string) error {
	if n == "" || len(n) > 64 {
		return fmt.Errorf("name %q: want 1 to 64 characters", n)
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return fmt.Errorf("name %q: only letters, digits, '_', '-' and '.' are allowed", n)
		}
	}
	return nil
}
