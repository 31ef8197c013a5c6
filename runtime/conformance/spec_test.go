package conformance

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

func TestParse_Example(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "example.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.Module != "filter" || len(s.Inputs) != 1 || len(s.Outputs) != 2 || len(s.Methods) != 1 || s.Twin == nil {
		t.Fatalf("parsed %+v", s)
	}
	if s.Outputs[1].ExpectOnInput != "" || s.Outputs[1].MaxBytes != iothub.MaxMessageSize {
		t.Errorf("heartbeat output %+v: want no input and the default maxBytes", s.Outputs[1])
	}
	if s.Twin.TimeoutSeconds != DefaultTwinTimeout.Seconds() || s.ConnectTimeoutSeconds != DefaultConnectTimeout.Seconds() {
		t.Errorf("timeouts not defaulted: twin %v, connect %v", s.Twin.TimeoutSeconds, s.ConnectTimeoutSeconds)
	}
	if s.SigtermGraceSeconds != 5 || s.Limits.MemoryMB != 64 {
		t.Errorf("declared values changed: grace %v, memory %v", s.SigtermGraceSeconds, s.Limits.MemoryMB)
	}
}

func TestParse_Defaults(t *testing.T) {
	for _, doc := range []string{"", "  \n", "{}"} {
		s, err := Parse([]byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		want := Spec{
			Limits:              Limits{MemoryMB: DefaultMemoryMB, CPUPercent: DefaultCPUPercent},
			SigtermGraceSeconds: DefaultSigtermGrace.Seconds(), ReconnectWithinSeconds: DefaultReconnectWithin.Seconds(),
			ConnectTimeoutSeconds: DefaultConnectTimeout.Seconds(), MessageTimeoutSeconds: DefaultMessageTimeout.Seconds(),
		}
		if !reflect.DeepEqual(s, want) {
			t.Errorf("%q: got %+v, want %+v", doc, s, want)
		}
	}
	s, _ := Parse([]byte(`{"inputs":[{"name":"in"}],"methods":[{"name":"m"}]}`))
	if string(s.Inputs[0].Sample) != string(DefaultSample) || string(s.Methods[0].Payload) != "null" ||
		s.Methods[0].ExpectStatus != DefaultExpectStatus || s.Methods[0].TimeoutSeconds != DefaultMethodTimeout.Seconds() {
		t.Errorf("input and method defaults: %+v %+v", s.Inputs[0], s.Methods[0])
	}
}

func TestParse_Errors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{name: "unknown field", doc: `{"modul":"x"}`, want: `unknown field "modul"`},
		{name: "not JSON", doc: `{`, want: "unexpected EOF"},
		{name: "two documents", doc: `{} {}`, want: "more than one JSON value"},
		{name: "bad module id", doc: `{"module":"a b"}`, want: `module "a b"`},
		{name: "probe name", doc: `{"module":"conformance-probe"}`, want: "reserved"},
		{name: "system module", doc: `{"module":"$edgeHub"}`, want: "module"},
		{name: "input without name", doc: `{"inputs":[{}]}`, want: "inputs[0]"},
		{name: "input with a slash", doc: `{"inputs":[{"name":"a/b"}]}`, want: `name "a/b"`},
		{name: "input twice", doc: `{"inputs":[{"name":"a"},{"name":"a"}]}`, want: "declared twice"},
		{name: "system property on a sample", doc: `{"inputs":[{"name":"a","properties":{"$.mid":"x"}}]}`, want: `property name "$.mid"`},
		{name: "output twice", doc: `{"outputs":[{"name":"o"},{"name":"o"}]}`, want: "declared twice"},
		{name: "undeclared feeding input", doc: `{"outputs":[{"name":"o","expectOnInput":"in"}]}`, want: `expectOnInput "in"`},
		{name: "negative maxBytes", doc: `{"outputs":[{"name":"o","maxBytes":-1}]}`, want: "maxBytes -1"},
		{name: "bad method name", doc: `{"methods":[{"name":"a/b"}]}`, want: "methods[0]"},
		{name: "method twice", doc: `{"methods":[{"name":"m"},{"name":"m"}]}`, want: "declared twice"},
		{name: "bad status", doc: `{"methods":[{"name":"m","expectStatus":42}]}`, want: "expectStatus 42"},
		{name: "negative method timeout", doc: `{"methods":[{"name":"m","timeoutSeconds":-1}]}`, want: "timeoutSeconds"},
		{name: "twin without expectation", doc: `{"twin":{"desired":{"a":1}}}`, want: "want both desired and expectReported"},
		{name: "twin with a $ property", doc: `{"twin":{"desired":{"$version":1},"expectReported":{"a":1}}}`, want: `"$version"`},
		{name: "negative memory", doc: `{"limits":{"memoryMB":-1}}`, want: "limits.memoryMB"},
		{name: "huge grace", doc: `{"sigtermGraceSeconds":100000}`, want: "sigtermGraceSeconds"},
		{name: "injected variable", doc: `{"env":{"EdgeHubConnectionString":"x"}}`, want: "injected by the harness"},
		{name: "bad variable name", doc: `{"env":{"A=B":"x"}}`, want: `"A=B"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrSpec mentioning %q", err, tt.want)
			}
		})
	}
}

func TestSpec_WithDefaultsNeedsAModule(t *testing.T) {
	if _, err := (Spec{}).WithDefaults(); !errors.Is(err, ErrSpec) {
		t.Errorf("err = %v, want ErrSpec for a spec without a module", err)
	}
	if s, err := (Spec{Module: "m"}).WithDefaults(); err != nil || s.Limits.MemoryMB != DefaultMemoryMB {
		t.Errorf("got %+v, %v", s, err)
	}
}

func TestReadSpec_NamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(path, []byte(`{"limits":{"cpuPercent":-5}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := ReadSpec(path)
	if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), path) {
		t.Errorf("err = %v, want ErrSpec naming %s", err, path)
	}
	if _, err := ReadSpec(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("a missing file was read")
	}
}

// FuzzParse checks that Parse never panics and that what it accepts is a fixed point:
// the parsed spec, written back as JSON and parsed again, is the same spec.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"example.json", "empty.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, dir := range []string{"relayer", "brokenmodule"} {
		if b, err := os.ReadFile(filepath.Join("..", "..", "cmd", dir, "conformance.json")); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"outputs":[{"name":"o","maxBytes":1}],"twin":{"desired":{"a":{"b":null}},"expectReported":{"a":1}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrSpec) {
				t.Fatalf("error %v does not wrap ErrSpec", err)
			}
			return
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("marshal a parsed spec: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("a parsed spec does not parse again: %v\n%s", err, out)
		}
		out2, _ := json.Marshal(again)
		if string(out) != string(out2) {
			t.Fatalf("not a fixed point:\n%s\n%s", out, out2)
		}
	})
}
