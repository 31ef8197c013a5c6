package main

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/runtime/conformance"
)

func TestParseEnvFlags(t *testing.T) {
	got, err := parseEnvFlags([]string{"A=1", "B=x=y", "C="})
	if err != nil || got["A"] != "1" || got["B"] != "x=y" || got["C"] != "" || len(got) != 3 {
		t.Errorf("got %v, %v", got, err)
	}
	for _, bad := range []string{"A", "=1"} {
		if _, err := parseEnvFlags([]string{bad}); err == nil {
			t.Errorf("--env %q accepted", bad)
		}
	}
}

func TestModuleNameOf(t *testing.T) {
	for in, want := range map[string]string{"relayer": "relayer", "my module.exe": "my-module", "a+b": "a-b", "x.v2": "x"} {
		if got := moduleNameOf(in); got != want {
			t.Errorf("moduleNameOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRunnerFor(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "mymodule")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	r, name, err := runnerFor(exe)
	if err != nil || name != "mymodule" || r.Describe() != "executable "+exe {
		t.Errorf("runnerFor(%s) = %v, %q, %v", exe, r, name, err)
	}
	for _, bad := range []string{dir, filepath.Join(dir, "missing"), "./missing", "relayer:1.0"} {
		if _, _, err := runnerFor(bad); err == nil {
			t.Errorf("runnerFor(%q) accepted", bad)
		}
	}
}

// TestConformance_FailingModule runs edgectl conformance on a program that is not a
// module: exit status 1, the text report on stdout, and both report files readable.
func TestConformance_FailingModule(t *testing.T) {
	falseCmd, err := exec.LookPath("false")
	if err != nil {
		t.Skip("no false command")
	}
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(spec, []byte(`{"module":"notamodule","connectTimeoutSeconds":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	junit, js := filepath.Join(dir, "report.xml"), filepath.Join(dir, "report.json")
	code, stdout, stderr := cli(t, env{}, "conformance", falseCmd, "--spec", spec, "--junit", junit, "--json", js)
	if code != exitFailed {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitFailed, stdout, stderr)
	}
	for _, want := range []string{"Conformance of module notamodule", "FAIL  connect", "FAILED: connect, sigterm"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	b, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var suites conformance.JUnitSuites
	if err := xml.Unmarshal(b, &suites); err != nil || suites.Failures != 2 {
		t.Errorf("JUnit file: %+v, %v", suites, err)
	}
	b, err = os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep conformance.Report
	if err := json.Unmarshal(b, &rep); err != nil || rep.Module != "notamodule" || rep.Failed != 2 {
		t.Errorf("JSON file: %+v, %v", rep, err)
	}
}

func TestConformance_Usage(t *testing.T) {
	dir := t.TempDir()
	badSpec := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(badSpec, []byte(`{"inputz":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no target", args: []string{"conformance"}, want: "one executable path or image reference"},
		{name: "bad spec", args: []string{"conformance", "/bin/true", "--spec", badSpec}, want: `unknown field "inputz"`},
		{name: "bad env", args: []string{"conformance", "/bin/true", "--env", "NOEQUALS"}, want: "want KEY=VALUE"},
		{name: "missing executable", args: []string{"conformance", filepath.Join(dir, "nope")}, want: "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := cli(t, env{}, tt.args...)
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d mentioning %q", code, stderr, exitUsage, tt.want)
			}
		})
	}
}
