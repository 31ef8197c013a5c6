// Package features holds Outpost's end-to-end scenarios: Gherkin feature
// files (*.feature) written for a reader who knows Azure IoT Edge, and the
// godog harness that runs them against the real binaries. The package has
// no code of its own outside its tests; `go test ./features/...` runs the
// scenarios.
//
// # Basics
//
//	go test ./features/                                  both backends (docker when an engine answers)
//	go test -v -run 'TestFeatures/process' ./features/   one backend, every scenario listed
//	OUTPOST_FEATURES_TAGS='~@docker' go test ./features/ a godog tag expression
//
// TestFeatures runs every feature file once per backend, as the subtests
// TestFeatures/process and TestFeatures/docker; each scenario is a subtest
// of its backend, named after it. godog runs strict (an undefined or
// pending step fails) and in a random order whose seed it prints; setting
// OUTPOST_FEATURES_SEED to it replays that order. -short skips everything.
//
// # Backends
//
//	process   fakehub and edgeagent as OS processes (built once per run with
//	          go build), the agent with --runtime process; modules are the
//	          test module found in the agent's --image-dir
//	docker    fakehub and edgeagent as containers (testcontainers-go,
//	          images built FROM scratch from this repository by dockertest,
//	          host networking), the agent with --runtime docker and the
//	          engine's socket; modules are pulled from an in-process registry
//	          (distribution/v3, basic auth) on 127.0.0.1
//
// OUTPOST_FEATURES_BACKEND=process|docker|both chooses. By default both run
// when a Docker Engine answers, and the docker backend is skipped with a
// "skipping docker backend: ..." message when none does, unless
// OUTPOST_DOCKER_REQUIRED is set (scripts/test.sh sets it after starting an
// engine), which makes a missing engine a failure. Scenarios tagged @docker
// need the Docker runtime: on the process backend their first step skips
// them, saying why.
//
// Every scenario gets its own fake hub (random loopback ports), IoT Edge
// device and edge agent, torn down after it. The steps drive the system only
// from outside, as a solution would: the fake hub's service API
// (applyConfigurationContent, twin reads; a SAS token from its service
// connection string), the agent's process or container, and Docker. They
// never call the agent's packages.
//
// # The test module
//
// The modules the scenarios deploy are one program, features/testmodule,
// whose behaviour comes from its environment (exit with a code after a
// while, become unhealthy, fail its first starts) and whose health check is
// "testmodule health". It appends what happens to it (start, exit, stop
// signal, unhealthy) to a journal file per module in the scenario's
// directory (bind-mounted at /journal in containers). The scenarios check
// that journal, besides the agent's reported properties: it is the witness
// of what really happened.
//
// # Timing
//
// The agent runs with --reconcile-period 500ms and, when it has the flags,
// a restart back-off of 1 s doubling to 16 s, reset after 4 s of running
// (--restart-backoff-unit, --restart-backoff-cap, --restart-reset-after);
// TestFeatures logs which settings are in force. Without those flags the
// agent's defaults (10 s, 300 s, 10 minutes) apply: the restart scenarios
// then take about 12 s each instead of 3, and the scenarios tagged
// @short-backoff are skipped, saying why. Waits poll with a deadline
// (eventually, consistently); nothing sleeps to synchronise.
//
// # Clean-up
//
// Containers carry the labels io.github.outpost-edge.test=features, the
// scenario id and dockertest's run label; they are removed after each
// scenario, at the end of the run, and (for runs that were interrupted) at
// the start of the next one. The process backend marks every process it
// starts with OUTPOST_FEATURES_SCENARIO in its environment and kills them by
// that marker; the test module also exits by itself when the test process
// that started it is gone.
//
// # Adding scenarios
//
// Steps are thin adapters over the world's helpers (world_test.go), one
// file per area (steps_*_test.go). A new component (the edge hub as a
// container, leaf devices on moduleclient) is a method of backend and a
// field of world, started by a Given step.
package features
