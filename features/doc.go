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
//	OUTPOST_FEATURES_TAGS=@offline go test ./features/   one feature: @offline, @multiplexing,
//	                                                     @routing, @methods, @auth (all @edgehub)
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
//	          test module and the edge hub, found in the agent's --image-dir
//	docker    fakehub and edgeagent as containers (testcontainers-go,
//	          images built FROM scratch from this repository by dockertest,
//	          host networking), the agent with --runtime docker and the
//	          engine's socket; modules (the test module, the edge hub) are
//	          pulled from an in-process registry (distribution/v3, basic
//	          auth) on 127.0.0.1
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
// # The edge hub and its clients
//
// The features about messaging (offline_caching, multiplexing, routing,
// methods, auth) deploy Outpost's edge hub as the edgeHub system module
// ("Given edgeHub is Outpost's edge hub"): the agent pulls and runs it as on
// a device, the image built FROM scratch from cmd/edgehub on Docker (host
// network, the scenario directory mounted at its own path), the cmd/edgehub
// binary from the image directory on the process runtime. The deployment
// sets its routes and store-and-forward settings ($edgeHub desired
// properties) and, in edgeHub's env, what an operator sets per device: fixed
// free loopback ports for MQTT/TLS and the method API (a restarted hub is
// where its clients look for it), its data directory, the store policy,
// IoT Hub's port and CA, and a one-second identity refresh. The agent
// injects its identity (IotHubConnectionString). The deployment and restart
// policy features keep a stand-in, the test module, as edgeHub: they are
// about the agent, and it keeps a journal.
//
// The modules and leaf devices that talk to the edge hub are clients in the
// test (clients_test.go) built on the device SDK, runtime/moduleclient,
// each with an identity created through IoT Hub's service API (leaf devices
// as children of the edge device); a plain paho client plays a module
// breaking the rules. Each message carries its sender's sequence number.
// The steps observe from outside only: what IoT Hub received and its
// connection list (the fake hub's /fake/events and /fake/connections),
// twins through the service API, what the clients received. They cut and
// restore the network with the fake hub's fault controls, and restart
// edgeHub through the agent's management API (what `edgectl restart
// edgeHub` does). clients.log in the scenario directory holds the clients'
// log; a failed scenario prints edgeHub's last log lines.
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
// The edge hub scenarios keep their offline periods to a few seconds: the
// hub's reconnection back-off (1 s doubling, jittered) then brings the link
// back within about 3 s of the network, and the TTL scenario uses a 2 s
// time-to-live. The clients reconnect within 100 ms to 1 s.
//
// # Adding scenarios
//
// Steps are thin adapters over the world's helpers (world_test.go), one
// file per area (steps_*_test.go). A new component is a method of backend
// and a field of world, started by a Given step.
package features
