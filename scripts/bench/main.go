// Command bench is the benchmark harness behind `make bench` (scripts/bench.sh runs it).
// It starts the real binaries, the edge hub (bin/edgehub) and the reference broker
// (Mosquitto, persistence off), drives the same MQTT traffic through both in the same
// run with paho clients on 127.0.0.1, and writes docs/benchmarks.md (tables of medians,
// ratios to the reference, the targets of docs/peers-and-targets.md met or missed, the
// machine and the command) and docs/benchmarks.png (a bar chart of throughput).
//
// Scenarios (scenario.go; each has a hard time limit, each case runs BENCH_RUNS times
// against a fresh broker):
//
//	throughput  durable routed QoS 1 throughput, 256 B and 1 KB, 1/4/16 publishers
//	latency     p50/p99 publish -> receive at 1,000 and 5,000 msg/s, 1 KB
//	memory      RSS idle and with 100 clients at 1,000 msg/s
//	store       runtime/store's Append benchmarks (go test -bench), quoted
//	profile     CPU and block profile of the hub under the durable load (scripts/bench/profhub),
//	            when the durable target is missed
//	agent-deploy   deployment applied -> module running, process and Docker runtimes,
//	               beside a bare fork/exec and a bare docker run (agent_deploy.go)
//	agent-restart  crash (kill -9) -> module running again, both runtimes, beside an
//	               immediate re-exec and Docker's own restart policy (agent_restart.go)
//	agent-memory   the agent's RSS idle, during reconciles, and agent + hub with 100
//	               clients at 1,000 msg/s (agent_memory.go)
//	upstream            upstream throughput, modules -> hub -> fake IoT Hub over the one link,
//	                    beside the same clients straight to the fake hub (upstream_throughput.go)
//	upstream-drain      drain of a backlog built with the network cut, live traffic flowing
//	                    (upstream_drain.go)
//	upstream-reconnect  network restored -> first message delivered (upstream_reconnect.go)
//	upstream-cap        store.db against the byte cap when it is reached (upstream_cap.go)
//
// The upstream scenarios build cmd/fakehub from this tree into the work directory and run
// it as the cloud end (upstream_cloud.go, upstream_rig.go).
//
// The agent scenarios run make build's binaries from -bin (bin/edgeagent, edgehub,
// fakehub, tempsensor, filter) and, for their Docker halves, scripts/images.sh's images
// on the local engine (skipped, with a line in the report, when no engine answers); run
// them under the Docker lock (flock /tmp/outpost-docker.lock).
//
// More areas (the upstream link, the agent) are added as scenarios.
//
// Usage (from the repository root; scripts/bench.sh passes the environment through):
//
//	go run ./scripts/bench [-runs N] [-quick] [-scenarios a,b] [-profile auto|always|never]
//	    [-hub bin/edgehub] [-profhub .outpost/bin/profhub] [-mosquitto PATH] [-workdir .outpost/bench]
//	    [-out docs/benchmarks.md] [-chart docs/benchmarks.png]
//
// BENCH_RUNS, BENCH_QUICK=1, BENCH_SCENARIOS and BENCH_PROFILE set the defaults of -runs,
// -quick, -scenarios and -profile. Missed targets do not fail the command (it measures;
// it does not assert); a scenario that could not run at all does, after the report is
// written.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	settings
	scenarios []string
	verbose   bool
	out       string
	chart     string
}

func parseOptions(args []string, getenv func(string) string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := getenv("BENCH_QUICK") == "1" || getenv("BENCH_QUICK") == "true"
	fs.BoolVar(&o.Quick, "quick", quick, "short runs, one per case unless -runs says otherwise (BENCH_QUICK=1)")
	fs.IntVar(&o.Runs, "runs", 0, "runs per case (BENCH_RUNS; default 5, 1 with -quick)")
	scen := fs.String("scenarios", getenv("BENCH_SCENARIOS"), "comma-separated scenarios to run (BENCH_SCENARIOS; default all)")
	fs.StringVar(&o.Profile, "profile", envOr(getenv, "BENCH_PROFILE", "auto"), "profile the hub: auto (when the durable target is missed), always or never (BENCH_PROFILE)")
	fs.IntVar(&o.ProfilePublishers, "profile-publishers", 16, "publishers of the profiled 1 KB throughput case")
	fs.StringVar(&o.Hub, "hub", "bin/edgehub", "the edgehub binary")
	hubArgs := fs.String("hub-args", "", "extra arguments for the hub binary, space-separated (experiments: -hub .outpost/bin/profhub -hub-args '--store-nosync')")
	fs.StringVar(&o.ProfHub, "profhub", ".outpost/bin/profhub", "the profiling build of the hub (go build ./scripts/bench/profhub); built when missing")
	fs.StringVar(&o.Mosquitto, "mosquitto", "", "the mosquitto binary (default: from PATH, else /usr/sbin/mosquitto)")
	fs.StringVar(&o.BinDir, "bin", "bin", "directory of make build's binaries, for the agent scenarios")
	fs.StringVar(&o.Go, "go", envOr(getenv, "GO", "go"), "the go command (GO)")
	fs.StringVar(&o.Workdir, "workdir", ".outpost/bench", "scratch directory for the brokers' data (emptied first)")
	fs.DurationVar(&o.QuietWait, "quiet-wait", 5*time.Second, "before each run, wait up to this long for the machine to be quiet (other processes' CPU below 30% of one core for 1s); 0: do not wait")
	fs.BoolVar(&o.verbose, "v", false, "log each broker's last log lines after each run (debug)")
	fs.StringVar(&o.out, "out", "docs/benchmarks.md", "the report")
	fs.StringVar(&o.chart, "chart", "docs/benchmarks.png", "the chart (next to the report, which links it by name)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.Runs == 0 {
		o.Runs = 5
		if o.Quick {
			o.Runs = 1
		}
		if v := getenv("BENCH_RUNS"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return o, fmt.Errorf("BENCH_RUNS=%q: want a positive number", v)
			}
			o.Runs = n
		}
	}
	if o.Runs < 1 {
		return o, fmt.Errorf("-runs %d: want at least 1", o.Runs)
	}
	if o.ProfilePublishers < 1 {
		return o, fmt.Errorf("-profile-publishers %d: want at least 1", o.ProfilePublishers)
	}
	if !slices.Contains([]string{"auto", "always", "never"}, o.Profile) {
		return o, fmt.Errorf("-profile %q: want auto, always or never", o.Profile)
	}
	o.HubArgs = strings.Fields(*hubArgs)
	if *scen != "" {
		for _, id := range strings.Split(*scen, ",") {
			o.scenarios = append(o.scenarios, strings.TrimSpace(id))
		}
	}
	return o, nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// scenarios returns every scenario in report order.
func scenarios(kinds []brokerKind) []scenario {
	return []scenario{
		throughputScenario(kinds),
		latencyScenario(kinds),
		memoryScenario(kinds),
		storeScenario(),
		profileScenario(), // after throughput: it reads its verdict
		agentDeployScenario(),
		agentRestartScenario(),
		agentMemoryScenario(),
		upstreamThroughputScenario(),
		upstreamDrainScenario(),
		upstreamReconnectScenario(),
		upstreamCapScenario(),
	}
}

func run(ctx context.Context, args []string) error {
	o, err := parseOptions(args, os.Getenv)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if o.Repo, err = os.Getwd(); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(o.Repo, "go.mod")); err != nil {
		return fmt.Errorf("run from the repository root (no go.mod in %s)", o.Repo)
	}
	if err := o.resolveBinaries(); err != nil {
		return err
	}
	for _, p := range []*string{&o.Workdir, &o.Hub, &o.ProfHub, &o.BinDir} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	// Modules of the process runtime outlive their agent: kill what an interrupted run
	// left before its state files go.
	if err := sweepAgentModules(o.Workdir); err != nil {
		o.Log.Warn("sweeping the modules of an earlier run", "err", err)
	}
	if err := os.RemoveAll(o.Workdir); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Workdir, 0o755); err != nil {
		return err
	}

	kinds := []brokerKind{hubKind("Outpost hub", o.Hub, func(string) []string { return o.HubArgs }), mosquittoKind(o.Mosquitto)}
	all := scenarios(kinds)
	for _, id := range o.scenarios {
		if !slices.ContainsFunc(all, func(s scenario) bool { return s.ID == id }) {
			return fmt.Errorf("unknown scenario %q", id)
		}
	}
	started := time.Now()
	rep := &report{Machine: describeMachine(o.Workdir, o.Repo, o.Mosquitto), Command: commandLine(args, os.Getenv), Findings: findings}
	var failed []error
	for _, sc := range all {
		if len(o.scenarios) > 0 && !slices.Contains(o.scenarios, sc.ID) {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		o.Log.Info("scenario", "id", sc.ID, "limit", sc.Limit(&o.settings))
		sctx, cancel := context.WithTimeout(ctx, sc.Limit(&o.settings))
		sec, err := sc.Run(sctx, &o.settings, rep.Sections)
		cancel()
		if err != nil {
			o.Log.Error("scenario failed", "id", sc.ID, "err", err)
			failed = append(failed, fmt.Errorf("scenario %s: %w", sc.ID, err))
			if sec == nil {
				sec = &section{ID: sc.ID, Title: sc.Title}
			}
			sec.Notes = append(sec.Notes, "The scenario failed: "+oneLine(err))
		}
		if sec != nil {
			rep.Sections = append(rep.Sections, sec)
		}
	}
	rep.Settings = o.settings
	rep.Waited = o.waited
	rep.Elapsed = time.Since(started)
	if err := writeOutputs(rep, o.out, o.chart); err != nil {
		return err
	}
	o.Log.Info("report written", "report", o.out, "chart", o.chart, "elapsed", rep.Elapsed.Round(time.Second))
	return errors.Join(failed...)
}

// resolveBinaries checks that the hub and Mosquitto binaries are there.
func (o *options) resolveBinaries() error {
	if _, err := os.Stat(o.Hub); err != nil {
		return fmt.Errorf("edgehub binary: %w (build it: make build, or run make bench)", err)
	}
	if o.Mosquitto == "" {
		if p, err := exec.LookPath("mosquitto"); err == nil {
			o.Mosquitto = p
		} else {
			o.Mosquitto = "/usr/sbin/mosquitto" // Debian installs it outside a user's PATH
		}
	}
	if _, err := os.Stat(o.Mosquitto); err != nil {
		return fmt.Errorf("mosquitto binary: %w (apt-get install -y mosquitto, or run make bench)", err)
	}
	return nil
}

// writeOutputs writes the chart (when a section drew one) and the report, each through
// a temporary file renamed into place.
func writeOutputs(rep *report, out, chartPath string) error {
	for _, s := range rep.Sections {
		if s.Chart == nil {
			continue
		}
		tmp := chartPath + ".tmp"
		if err := writePNG(tmp, s.Chart.render(960, 480)); err != nil {
			return err
		}
		if err := os.Rename(tmp, chartPath); err != nil {
			return err
		}
		rep.Chart = relPath(filepath.Dir(out), chartPath)
		break
	}
	f, err := os.Create(out + ".tmp")
	if err != nil {
		return err
	}
	if err := rep.write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(out+".tmp", out)
}

// commandLine is how this run was invoked, for the report: BENCH_COMMAND (set by
// scripts/bench.sh and the Makefile) with the BENCH_* variables that were set, or this
// command with its arguments.
func commandLine(args []string, getenv func(string) string) string {
	var env []string
	for _, k := range []string{"BENCH_RUNS", "BENCH_QUICK", "BENCH_SCENARIOS", "BENCH_PROFILE"} {
		if v := getenv(k); v != "" {
			env = append(env, k+"="+strings.Join(quoteArgs([]string{v}), ""))
		}
	}
	cmd := getenv("BENCH_COMMAND")
	if cmd == "" {
		cmd = strings.Join(append([]string{"go", "run", "./scripts/bench"}, quoteArgs(args)...), " ")
	} else if len(args) > 0 {
		cmd += " " + strings.Join(quoteArgs(args), " ")
	}
	return strings.Join(append(env, cmd), " ")
}
