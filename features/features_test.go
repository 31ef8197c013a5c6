package features

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cucumber/godog"
	"github.com/docker/docker/client"
	tclog "github.com/testcontainers/testcontainers-go/log"

	"github.com/outpost-edge/outpost/runtime/agent/docker/dockertest"
)

// Environment variables that steer the run (see the package documentation).
const (
	envBackend        = "OUTPOST_FEATURES_BACKEND" // process, docker or both
	envTags           = "OUTPOST_FEATURES_TAGS"    // a godog tag expression
	envSeed           = "OUTPOST_FEATURES_SEED"    // the scenario order's seed
	envDockerRequired = dockertest.RequiredEnv     // a missing engine fails
	envSkipDocker     = "OUTPOST_SKIP_DOCKER"      // scripts/test.sh: run without Docker
)

func TestMain(m *testing.M) {
	// testcontainers-go must not start its reaper (its image cannot be
	// pulled here: clean-up is by label) nor dial a gateway address.
	for k, v := range map[string]string{
		"TESTCONTAINERS_RYUK_DISABLED": "true",
		"TESTCONTAINERS_HOST_OVERRIDE": "localhost",
	} {
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}
	tclog.SetDefault(tclog.NewNoopLogger())
	// dockertest.Main removes the images and containers this run created.
	os.Exit(dockertest.Main(m))
}

// TestFeatures runs the feature files against each backend, as subtests
// TestFeatures/process and TestFeatures/docker, each scenario a subtest of
// its backend.
func TestFeatures(t *testing.T) {
	if testing.Short() {
		t.Skip("the feature scenarios run the system end to end: skipped with -short")
	}
	if err := sweepProcesses(); err != nil {
		t.Logf("killing processes of interrupted runs: %v", err)
	}
	if err := sweepRunDirs(); err != nil {
		t.Logf("removing directories of interrupted runs: %v", err)
	}
	runDir, err := os.MkdirTemp("", runDirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(runDir); err != nil {
			t.Logf("removing %s: %v", runDir, err)
		}
	})
	plan, err := chooseBackends(os.Getenv(envBackend), os.Getenv(envDockerRequired) != "", os.Getenv(envSkipDocker) == "1", pingDocker)
	if err != nil {
		t.Fatal(err)
	}
	bins := buildBinaries(t, runDir)
	bo := detectBackoff(bins.edgeagent)
	t.Log(bo.describe())

	for _, name := range []string{"process", "docker"} {
		t.Run(name, func(t *testing.T) {
			if reason := plan[name]; reason != "" {
				t.Skip(reason)
			}
			start := time.Now()
			var be backend
			switch name {
			case "process":
				be, err = newProcessBackend(bins, runDir)
			case "docker":
				be, err = newDockerBackend(t, context.Background())
			}
			if err != nil {
				t.Fatalf("%s backend: %v", name, err)
			}
			defer be.close()
			runSuite(t, &suite{be: be, runDir: runDir, backoff: bo})
			t.Logf("%s backend: scenarios took %s", name, time.Since(start).Round(time.Second))
		})
	}
}

// runSuite runs every feature file with godog on one backend.
func runSuite(t *testing.T, s *suite) {
	paths, err := filepath.Glob("*.feature")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no feature files found (%v)", err)
	}
	seed := int64(-1) // godog picks one and prints it
	if v := os.Getenv(envSeed); v != "" {
		if seed, err = strconv.ParseInt(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: want an integer", envSeed, v)
		}
	}
	tags := os.Getenv(envTags)
	// Scenarios this run cannot carry out are left out, and said so.
	leaveOut := func(tag, why string) {
		if names := taggedScenarios(paths, tag); len(names) > 0 {
			t.Logf("skipping %d %s scenarios on the %s backend (%s): %s",
				len(names), tag, s.be.name(), why, strings.Join(names, "; "))
		}
		tags = andTags(tags, "~"+tag)
	}
	if s.be.name() != "docker" {
		leaveOut(dockerTag, "they need the Docker runtime")
	}
	if len(s.backoff.missing) > 0 {
		leaveOut(shortBackoffTag, "the edge agent has no "+strings.Join(s.backoff.missing, ", ")+" flag to shorten its restart back-off")
	}
	opts := godog.Options{
		Format:      "pretty",
		Paths:       paths,
		Strict:      true, // undefined or pending steps fail
		Randomize:   seed,
		Tags:        tags,
		Concurrency: 1, // module containers are named after modules: one scenario at a time
		NoColors:    true,
		TestingT:    t,
	}
	ts := godog.TestSuite{
		Name:                "features-" + s.be.name(),
		ScenarioInitializer: func(sc *godog.ScenarioContext) { initScenario(sc, s) },
		Options:             &opts,
	}
	if status := ts.Run(); status != 0 {
		t.Errorf("godog on the %s backend: status %d (set %s to the seed printed above to replay this order)", s.be.name(), status, envSeed)
	}
}

// Tags that leave scenarios out of a run.
const (
	// dockerTag marks the scenarios (or features) that need the Docker
	// runtime.
	dockerTag = "@docker"
	// shortBackoffTag marks the scenarios that need the agent's restart
	// back-off shortened by flags: with its defaults they take minutes.
	shortBackoffTag = "@short-backoff"
)

// andTags combines two godog tag expressions ("&&" binds looser than ",").
func andTags(a, b string) string {
	if a == "" {
		return b
	}
	return a + " && " + b
}

// taggedScenarios lists the scenarios of the feature files that carry tag,
// themselves or through their feature, for the skip message.
func taggedScenarios(paths []string, tag string) []string {
	var out []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		tagged, featureTagged := false, false
		for _, line := range strings.Split(string(b), "\n") {
			l := strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(l, "@"):
				tagged = tagged || slices.Contains(strings.Fields(l), tag)
			case strings.HasPrefix(l, "Feature:"):
				featureTagged, tagged = tagged, false
			case strings.HasPrefix(l, "Scenario:"), strings.HasPrefix(l, "Scenario Outline:"):
				if featureTagged || tagged {
					_, name, _ := strings.Cut(l, ":")
					out = append(out, strings.TrimSpace(name))
				}
				tagged = false
			}
		}
	}
	return out
}

// backendPlan maps each backend to "" when it runs, or to the reason it
// does not.
type backendPlan map[string]string

// chooseBackends decides which backends run, from OUTPOST_FEATURES_BACKEND
// (choice), OUTPOST_DOCKER_REQUIRED, OUTPOST_SKIP_DOCKER and whether a
// Docker Engine answers (ping). By default the docker backend runs when an
// engine answers and is skipped, saying so, when none does; asking for it
// explicitly, or OUTPOST_DOCKER_REQUIRED, makes a missing engine an error.
func chooseBackends(choice string, dockerRequired, skipDocker bool, ping func() error) (backendPlan, error) {
	plan := backendPlan{"process": "", "docker": ""}
	switch choice {
	case "process":
		plan["docker"] = "skipping docker backend: " + envBackend + "=process"
		return plan, nil
	case "docker":
		plan["process"] = "skipping process backend: " + envBackend + "=docker"
	case "both", "":
	default:
		return nil, fmt.Errorf("%s=%q: want process, docker or both", envBackend, choice)
	}
	if skipDocker {
		if choice != "" {
			return nil, fmt.Errorf("%s=%s asks for the docker backend, %s=1 for none", envBackend, choice, envSkipDocker)
		}
		plan["docker"] = "skipping docker backend: " + envSkipDocker + "=1"
		return plan, nil
	}
	if err := ping(); err != nil {
		if choice != "" || dockerRequired {
			return nil, fmt.Errorf("the docker backend needs a Docker Engine and none answers (%v); scripts/docker-up.sh starts one", err)
		}
		plan["docker"] = fmt.Sprintf("skipping docker backend: no Docker Engine answers (%v); scripts/docker-up.sh starts one, %s=1 makes this a failure", err, envDockerRequired)
	}
	return plan, nil
}

// pingDocker reports whether a Docker Engine answers.
func pingDocker() error {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = cli.Ping(ctx)
	return err
}

// binaries are the programs the process backend runs, built once per run.
type binaries struct {
	fakehub, edgeagent, edgehub, testmodule string
}

// buildBinaries builds the fake hub, the edge agent, the edge hub and the
// test module, static, into dir/bin.
func buildBinaries(t *testing.T, dir string) binaries {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin+"/", pkgFakehub, pkgEdgeagent, pkgEdgehub, pkgTestmodule)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return binaries{
		fakehub:    filepath.Join(bin, "fakehub"),
		edgeagent:  filepath.Join(bin, "edgeagent"),
		edgehub:    filepath.Join(bin, "edgehub"),
		testmodule: filepath.Join(bin, "testmodule"),
	}
}
