package conformance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/conformance"
)

// These tests run the kit against the repository's sample modules, built as static
// executables: cmd/relayer and cmd/brokenmodule without faults pass every check they
// declare, and each of brokenmodule's faults fails exactly the check it is meant to.

// runTimeout bounds one run (the never-reconnecting module waits out its 10 s bound).
const runTimeout = 60 * time.Second

func TestRun_RelayerPassesEveryCheck(t *testing.T) {
	bin := buildModule(t, "cmd/relayer")
	rep := runKit(t, bin, specOf(t, "cmd/relayer"), nil)
	if !rep.OK() || rep.Skipped != 1 {
		t.Fatalf("failed %v, skipped %d (want only twin skipped)", rep.FailedChecks(), rep.Skipped)
	}
	if r, _ := rep.Result(conformance.CheckTwin); r.Verdict != conformance.Skip {
		t.Errorf("twin: %s, want SKIP: relayer declares no twin behaviour", r.Verdict)
	}
	// The report of a real run reads back as JUnit XML and as JSON.
	var junit, js bytes.Buffer
	if err := rep.WriteJUnit(&junit); err != nil {
		t.Fatal(err)
	}
	var suites conformance.JUnitSuites
	dec := xml.NewDecoder(&junit)
	dec.Strict = true
	if err := dec.Decode(&suites); err != nil {
		t.Fatalf("JUnit XML: %v", err)
	}
	if len(suites.Suites) != 1 || len(suites.Suites[0].Cases) != len(rep.Results) || suites.Failures != 0 || suites.Skipped != 1 {
		t.Errorf("JUnit XML read back: %+v", suites)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back conformance.Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Results) != len(rep.Results) || back.Passed != rep.Passed {
		t.Errorf("JSON read back: %+v, %v", back, err)
	}
}

// TestRun_ModulesThatNeverConnect runs programs that are not modules: the connect check
// fails with the reason, the checks that need a connection are skipped, and sigterm
// judges how they stop.
func TestRun_ModulesThatNeverConnect(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep command")
	}
	falseCmd, err := exec.LookPath("false")
	if err != nil {
		t.Skip("no false command")
	}
	spec, err := conformance.Parse([]byte(`{"module":"notamodule","connectTimeoutSeconds":1,"sigtermGraceSeconds":2,
		"inputs":[{"name":"in"}],"methods":[{"name":"ping"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		runner       *conformance.ProcessRunner
		wantEvidence string
		wantFailed   []string
	}{
		{name: "runs without connecting", runner: &conformance.ProcessRunner{Path: sleep, Args: []string{"60"}},
			wantEvidence: "no connection attempt", wantFailed: []string{conformance.CheckConnect, conformance.CheckSigterm}},
		{name: "exits at once", runner: &conformance.ProcessRunner{Path: falseCmd},
			wantEvidence: "exited with code 1 before connecting", wantFailed: []string{conformance.CheckConnect, conformance.CheckSigterm}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
			defer cancel()
			rep, err := conformance.Run(ctx, conformance.Options{Spec: spec, Runner: tt.runner})
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			_ = rep.WriteText(&b)
			t.Logf("report:\n%s", b.String())
			if got := rep.FailedChecks(); !slices.Equal(got, tt.wantFailed) {
				t.Errorf("failed %v, want %v", got, tt.wantFailed)
			}
			if r, _ := rep.Result(conformance.CheckConnect); !strings.Contains(r.Evidence, tt.wantEvidence) {
				t.Errorf("connect evidence %q, want it to say %q", r.Evidence, tt.wantEvidence)
			}
			for _, name := range []string{"input/in", "output", "twin", "method/ping", "reconnect"} {
				if r, ok := rep.Result(name); !ok || r.Verdict != conformance.Skip {
					t.Errorf("%s: %+v, want SKIP", name, r)
				}
			}
		})
	}
}

func TestRun_Refuses(t *testing.T) {
	tests := []struct {
		name string
		opts conformance.Options
		want error
	}{
		{name: "no module name", opts: conformance.Options{Runner: &conformance.ProcessRunner{Path: "/bin/true"}}, want: conformance.ErrSpec},
		{name: "no runner", opts: conformance.Options{ModuleName: "m"}, want: conformance.ErrTarget},
		{name: "injected variable", opts: conformance.Options{ModuleName: "m", Runner: &conformance.ProcessRunner{Path: "/bin/true"},
			Env: map[string]string{"IOTEDGE_MODULEID": "x"}}, want: conformance.ErrSpec},
		{name: "missing executable", opts: conformance.Options{ModuleName: "m",
			Runner: &conformance.ProcessRunner{Path: filepath.Join(t.TempDir(), "nope")}}, want: conformance.ErrTarget},
		{name: "not executable", opts: conformance.Options{ModuleName: "m",
			Runner: &conformance.ProcessRunner{Path: writeFile(t, "plain.txt")}}, want: conformance.ErrTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := conformance.Run(context.Background(), tt.opts)
			if !errors.Is(err, tt.want) || rep != nil {
				t.Errorf("Run = %v, %v; want no report and %v", rep, err, tt.want)
			}
		})
	}
}

// writeFile creates a non-executable file.
func writeFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("text"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRun_BrokenModuleFailsExactlyItsFaults(t *testing.T) {
	bin := buildModule(t, "cmd/brokenmodule")
	spec := specOf(t, "cmd/brokenmodule")
	tests := []struct {
		faults string
		want   []string // the failed checks, in report order
	}{
		{faults: "", want: nil},
		{faults: "identity", want: []string{conformance.CheckIdentity}},
		{faults: "sigterm", want: []string{conformance.CheckSigterm}},
		{faults: "reconnect", want: []string{conformance.CheckReconnect}},
		{faults: "memory", want: []string{conformance.CheckMemory}},
	}
	for _, tt := range tests {
		name := tt.faults
		if name == "" {
			name = "none"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rep := runKit(t, bin, spec, map[string]string{"BROKEN_FAULTS": tt.faults})
			if got := rep.FailedChecks(); !slices.Equal(got, tt.want) {
				t.Fatalf("failed checks %v, want %v", got, tt.want)
			}
			if rep.Skipped != 0 {
				t.Errorf("%d checks skipped, want none: the spec declares everything", rep.Skipped)
			}
		})
	}
}

// runKit runs the kit on bin and logs the text report.
func runKit(t *testing.T, bin string, spec conformance.Spec, env map[string]string) *conformance.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	rep, err := conformance.Run(ctx, conformance.Options{
		Spec: spec, Runner: &conformance.ProcessRunner{Path: bin}, Env: env, WorkDir: t.TempDir(),
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var b bytes.Buffer
	_ = rep.WriteText(&b)
	t.Logf("report:\n%s\nmodule output:\n%s", b.String(), rep.ModuleOutput)
	return rep
}

// specOf reads the conformance.json of a module directory of the repository.
func specOf(t *testing.T, dir string) conformance.Spec {
	t.Helper()
	s, err := conformance.ReadSpec(filepath.Join(repoRoot(t), dir, "conformance.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// buildModule builds the main package in dir (relative to the repository root) with
// CGO_ENABLED=0 and returns the executable. It skips the test under -short.
func buildModule(t *testing.T, dir string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs modules; skipped with -short")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	bin := filepath.Join(t.TempDir(), filepath.Base(dir))
	cmd := exec.Command(gobin, "build", "-o", bin, "./"+dir)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, out)
	}
	return bin
}

// repoRoot is the directory of go.mod above the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir || strings.TrimSpace(parent) == "" {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}
