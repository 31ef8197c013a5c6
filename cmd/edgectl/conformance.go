package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/outpost-edge/outpost/runtime/conformance"
)

// conformanceOptions are edgectl conformance's flags.
type conformanceOptions struct {
	spec    string
	junit   string
	jsonOut string
	module  string
	workDir string
	env     []string
	verbose bool
}

func newConformanceCmd(a *app) *cobra.Command {
	var o conformanceOptions
	cmd := &cobra.Command{
		Use:   "conformance EXECUTABLE|IMAGE",
		Short: "Check that a third-party module behaves as an IoT Edge module should",
		Long: `Run a module against a real Outpost edge hub and a fake IoT Hub, both started
for the run on random loopback ports, and check it, each check a named test
with a verdict (PASS, FAIL or SKIP) and the evidence:

  connect    it connects with the injected environment (EdgeHubConnectionString,
             EdgeModuleCACertificateFile, IOTEDGE_*, OUTPOST_MQTT_PORT) over TLS
  identity   it acts only as its own identity (nothing on other identities' topics)
  input/I    it receives and acknowledges a sample on each declared input
  output/O   it sends on each declared output, with valid messages within maxBytes
  twin       it reports the declared properties after a desired-property change
  method/M   it answers each declared direct method with the expected status in time
  reconnect  it reconnects after the edge hub restarts, within the bound, and loses
             nothing it acknowledged
  sigterm    it exits with code 0 within the grace period after SIGTERM
  memory     its peak resident memory stays within limits.memoryMB
  cpu        its average CPU use stays within limits.cpuPercent

A path to an executable is run as a process. The spec file (--spec, JSON)
declares the module's inputs, outputs, methods, twin behaviour and limits;
docs/conformance.md describes it. Without one, only the checks that need no
declaration run, and the others are skipped.

The report goes to stdout (text, or JSON with --output json); --junit and --json
also write it as JUnit XML and JSON files.

Exit status: 0 every check passed or was skipped; 1 a check failed, or the run
could not be made (the module could not be started, the harness failed); 2 bad
usage or an invalid spec.`,
		Args: exactArgs(1, "one executable path or image reference"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.conformance(cmd, args[0], o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.spec, "spec", "", "the module's conformance spec (JSON, see docs/conformance.md)")
	fl.StringVar(&o.junit, "junit", "", "also write the report as JUnit XML to this file")
	fl.StringVar(&o.jsonOut, "json", "", "also write the report as JSON to this file")
	fl.StringVar(&o.module, "module", "", "the module's name when the spec gives none (default: the executable's base name)")
	fl.StringVar(&o.workDir, "work-dir", "", "keep the fake IoT Hub's and the edge hub's data here (default: a temporary directory, removed)")
	fl.StringArrayVar(&o.env, "env", nil, "KEY=VALUE added to the module's environment (repeatable; wins over the spec's env)")
	fl.BoolVarP(&o.verbose, "verbose", "v", false, "log the harness, edge hub and fake IoT Hub on stderr")
	return cmd
}

// conformance runs the kit and prints and writes the report.
func (a *app) conformance(cmd *cobra.Command, target string, o conformanceOptions) error {
	var spec conformance.Spec
	if o.spec != "" {
		s, err := conformance.ReadSpec(o.spec)
		if err != nil {
			return usage(err)
		}
		spec = s
	}
	env, err := parseEnvFlags(o.env)
	if err != nil {
		return usage(err)
	}
	runner, name, err := runnerFor(target)
	if err != nil {
		return usage(err)
	}
	if o.module != "" {
		name = o.module
	}
	level := slog.LevelError
	if o.verbose {
		level = slog.LevelInfo
	}
	rep, err := conformance.Run(cmd.Context(), conformance.Options{
		Spec: spec, ModuleName: name, Runner: runner, Env: env, WorkDir: o.workDir,
		Logger: slog.New(slog.NewTextHandler(a.Stderr, &slog.HandlerOptions{Level: level})),
		Now:    a.Now,
	})
	switch {
	case errors.Is(err, conformance.ErrSpec):
		return usage(err)
	case rep == nil:
		return failed(err)
	}
	if err := a.writeConformance(rep, o); err != nil {
		return failed(err)
	}
	if err != nil { // interrupted: the report is partial
		return failed(err)
	}
	if !rep.OK() {
		return silent(exitFailed)
	}
	return nil
}

// writeConformance prints the report and writes the files asked for.
func (a *app) writeConformance(rep *conformance.Report, o conformanceOptions) error {
	var err error
	if a.json() {
		err = rep.WriteJSON(a.Stdout)
	} else {
		err = rep.WriteText(a.Stdout)
	}
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path  string
		write func(io.Writer) error
	}{{o.junit, rep.WriteJUnit}, {o.jsonOut, rep.WriteJSON}} {
		if f.path == "" {
			continue
		}
		if err := writeFileWith(f.path, f.write); err != nil {
			return err
		}
	}
	return nil
}

// writeFileWith writes a file through write, reporting the first error.
func writeFileWith(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// parseEnvFlags reads the --env KEY=VALUE flags.
func parseEnvFlags(kvs []string) (map[string]string, error) {
	env := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--env %q: want KEY=VALUE", kv)
		}
		env[k] = v
	}
	return env, nil
}

// runnerFor picks the runner for the target and the module name it suggests: an existing
// file is an executable run as a process.
func runnerFor(target string) (conformance.Runner, string, error) {
	fi, err := os.Stat(target)
	switch {
	case err == nil && !fi.IsDir():
		path, err := filepath.Abs(target)
		if err != nil {
			return nil, "", err
		}
		return &conformance.ProcessRunner{Path: path}, moduleNameOf(filepath.Base(target)), nil
	case err == nil:
		return nil, "", fmt.Errorf("%s is a directory, not an executable", target)
	case strings.ContainsRune(target, os.PathSeparator) && (strings.HasPrefix(target, ".") || filepath.IsAbs(target)):
		return nil, "", fmt.Errorf("executable %s: %w", target, err)
	}
	return nil, "", fmt.Errorf("%s is not an executable file; image references need the Docker runner, which is not available in this build", target)
}

// moduleNameOf turns a file or image name into a module name: the characters a module id
// may not hold become '-'.
func moduleNameOf(base string) string {
	base = strings.TrimSuffix(base, filepath.Ext(base))
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, base)
}
