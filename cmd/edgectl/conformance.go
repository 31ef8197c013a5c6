package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
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
	runtime string
	verbose bool
}

func newConformanceCmd(a *app) *cobra.Command {
	var o conformanceOptions
	cmd := &cobra.Command{
		Use:   "conformance EXECUTABLE|IMAGE|docker:IMAGE",
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
             (a container: docker stop)
  memory     its peak memory (resident set; a container's cgroup) stays within
             limits.memoryMB
  cpu        its average CPU use stays within limits.cpuPercent

A path to an existing file is run as a process. Anything else is taken for a
Docker image reference (docker:IMAGE, or --runtime docker, says so outright),
which must be in the local Docker Engine already (docker pull or docker build
first; the kit does not pull): the image runs as a container in the host's
network, so that it reaches the harness's edge hub on loopback, with the run's
edge CA mounted read-only at ` + conformance.ContainerCAFile + `; docker stop and
docker stats serve the sigterm, memory and cpu checks, and the container is
removed at the end. The engine must run on this machine.

The spec file (--spec, JSON) declares the module's inputs, outputs, methods,
twin behaviour and limits; docs/conformance.md describes it. Without one, only
the checks that need no declaration run, and the others are skipped.

The report goes to stdout (text, or JSON with --output json); --junit and --json
also write it as JUnit XML and JSON files.

Exit status: 0 every check passed or was skipped; 1 a check failed, or the run
could not be made (the module could not be started, no Docker Engine answers,
the harness failed); 2 bad usage, an invalid spec, or a target that is not
there (no such executable, an image the engine lacks).`,
		Args: exactArgs(1, "one executable path or image reference"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.conformance(cmd, args[0], o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.spec, "spec", "", "the module's conformance spec (JSON, see docs/conformance.md)")
	fl.StringVar(&o.junit, "junit", "", "also write the report as JUnit XML to this file")
	fl.StringVar(&o.jsonOut, "json", "", "also write the report as JSON to this file")
	fl.StringVar(&o.module, "module", "", "the module's name when the spec gives none (default: the executable's base name, or the image's repository name)")
	fl.StringVar(&o.runtime, "runtime", targetAuto, "how to run the target: auto (a file is an executable, anything else an image), process or docker")
	fl.StringVar(&o.workDir, "work-dir", "", "keep the fake IoT Hub's and the edge hub's data here (default: a temporary directory, removed)")
	fl.StringArrayVar(&o.env, "env", nil, "KEY=VALUE added to the module's environment (repeatable; wins over the spec's env)")
	fl.BoolVarP(&o.verbose, "verbose", "v", false, "log the harness, edge hub and fake IoT Hub on stderr")
	return cmd
}

// conformance runs the kit and prints and writes the report.
func (a *app) conformance(cmd *cobra.Command, arg string, o conformanceOptions) error {
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
	level := slog.LevelError
	if o.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(a.Stderr, &slog.HandlerOptions{Level: level}))
	tg, err := resolveTarget(cmd.Context(), arg, o.runtime, a.DockerLabels, dockerFromEnv)
	if err != nil {
		return err
	}
	defer tg.close() // the run has removed its container; only the client is left
	if dr, ok := tg.runner.(*conformance.DockerRunner); ok {
		dr.Logger = logger
	}
	name := tg.name
	if o.module != "" {
		name = o.module
	}
	rep, err := conformance.Run(cmd.Context(), conformance.Options{
		Spec: spec, ModuleName: name, Runner: tg.runner, Env: env, WorkDir: o.workDir,
		Logger: logger, Now: a.Now,
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
