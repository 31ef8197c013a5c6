package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/docker/docker/client"

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

func TestImageModuleName(t *testing.T) {
	for ref, want := range map[string]string{
		"relayer": "relayer", "outpost/relayer:dev": "relayer", "localhost:5000/team/my.module:1.0": "my.module",
		"example.com/a/b/filter@sha256:" + strings.Repeat("a", 64): "filter",
	} {
		named, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			t.Fatal(err)
		}
		if got := imageModuleName(named); got != want {
			t.Errorf("imageModuleName(%q) = %q, want %q", ref, got, want)
		}
	}
}

// TestResolveTarget decides between executables and images without an engine: the
// engine it is given never answers, which tells the cases that ask it from those that
// must not.
func TestResolveTarget(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "mymodule")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	noEngine := func() (*client.Client, error) {
		return client.NewClientWithOpts(client.WithHost("unix://"+filepath.Join(dir, "no-docker.sock")), client.WithAPIVersionNegotiation())
	}
	brokenClient := func() (*client.Client, error) { return nil, errors.New("bad DOCKER_HOST") }
	tests := []struct {
		name     string
		arg      string
		runtime  string
		open     openEngine
		wantCode int    // exit code; 0: resolved
		wantSay  string // in the error, or the runner's description
	}{
		{name: "executable", arg: exe, runtime: targetAuto, wantSay: "executable " + exe},
		{name: "executable, process forced", arg: exe, runtime: targetProcess, wantSay: "executable " + exe},
		{name: "directory", arg: dir, runtime: targetAuto, wantCode: exitUsage, wantSay: "is a directory"},
		{name: "missing relative path", arg: "./missing", runtime: targetAuto, wantCode: exitUsage, wantSay: "executable ./missing"},
		{name: "missing absolute path", arg: filepath.Join(dir, "nope"), runtime: targetAuto, wantCode: exitUsage, wantSay: "nope"},
		{name: "not a file: an image, no engine", arg: "relayer:1.0", runtime: targetAuto, open: noEngine, wantCode: exitFailed,
			wantSay: "relayer:1.0 is not a file here, so it was taken for an image reference"},
		{name: "not a file, not a reference", arg: "Relayer!", runtime: targetAuto, open: noEngine, wantCode: exitUsage, wantSay: "image reference"},
		{name: "not a file, process forced", arg: "relayer:1.0", runtime: targetProcess, wantCode: exitUsage, wantSay: "executable relayer:1.0"},
		{name: "docker prefix on an existing file", arg: "docker:" + exe, runtime: targetAuto, open: noEngine, wantCode: exitUsage, wantSay: "image reference"},
		{name: "docker prefix, no engine", arg: "docker:outpost/relayer:dev", runtime: targetAuto, open: noEngine, wantCode: exitFailed, wantSay: "outpost/relayer:dev"},
		{name: "docker runtime, no client", arg: "relayer", runtime: targetDocker, open: brokenClient, wantCode: exitFailed, wantSay: "bad DOCKER_HOST"},
		{name: "docker prefix with process runtime", arg: "docker:relayer", runtime: targetProcess, wantCode: exitUsage, wantSay: "--runtime is process"},
		{name: "unknown runtime", arg: exe, runtime: "podman", wantCode: exitUsage, wantSay: "want auto, process or docker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			open := tt.open
			if open == nil {
				open = func() (*client.Client, error) {
					t.Error("the engine was asked")
					return nil, errors.New("no engine in this case")
				}
			}
			tg, err := resolveTarget(context.Background(), tt.arg, tt.runtime, nil, open)
			code, msg := codeOf(err)
			if code != tt.wantCode {
				t.Fatalf("exit %d (%s), want %d", code, msg, tt.wantCode)
			}
			if err == nil {
				defer tg.close()
				msg = tg.runner.Describe()
			}
			if !strings.Contains(msg, tt.wantSay) {
				t.Errorf("%q does not say %q", msg, tt.wantSay)
			}
		})
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
