package features

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cucumber/godog"
)

// Timings of the scenarios' systems.
const (
	// reconcilePeriod is the agent's --reconcile-period: how late it may
	// notice an exit.
	reconcilePeriod = 500 * time.Millisecond
	// startTimeout bounds starting the hub and the agent, and a module's
	// first start (a pull included).
	startTimeout = 60 * time.Second
	// reportTimeout bounds waiting for a reported property that needs no
	// restart: a reconcile or two, a pull, a twin round trip.
	reportTimeout = 30 * time.Second
)

// edgeDevice is the IoT Edge device of every scenario (each has its own hub).
const edgeDevice = "edge1"

// suite is what a backend's scenarios share: built once per test run.
type suite struct {
	be      backend
	runDir  string
	backoff backoff
	seq     atomic.Int64
}

// scenario identifies one scenario's run: its id is in every label and
// marker of what it starts, its directory holds every file of it.
type scenario struct {
	id      string // "<test pid>-<n>"
	name    string
	dir     string
	journal journal
}

// world is the state of one scenario. initScenario makes a new one per
// scenario and its Before hook fills it; steps read and change it; the
// After hook tears down what it holds.
type world struct {
	s  *suite
	sc *scenario

	hub      *hubProcess
	api      *hubAPI
	agent    component
	agentCfg agentConfig
	// agentRuns counts the agent's starts: its ready line is expected once
	// per start.
	agentRuns int

	// deployment is the one being built, or the last one applied.
	deployment *deployment
	// previous is the deployment before the last change, for steps about
	// what changed.
	previous *deployment
	// desiredVersion is the $edgeAgent desired $version after the last
	// apply.
	desiredVersion int64
	// before holds the reported modules saved before an action (an agent
	// restart), to compare with afterwards.
	before map[string]map[string]any

	// clients are the modules and leaf devices the scenario connects to
	// the edge hub, by name (clients_test.go); rawClients plain MQTT
	// clients for what the SDK would never send; clientLog their log.
	clients    map[string]*localClient
	rawClients map[string]*rawClient
	clientLog  *os.File
	// lastSub is the client of the last plain MQTT subscription.
	lastSub string
	// received holds the messages IoT Hub received so far, fetched by
	// receivedEvents.
	received []hubEvent
	// mark is the sequence number of the last message IoT Hub had received
	// at a step's chosen moment (the network cut), for "nothing since".
	mark int64
	// answer is the last direct method answer (status, payload) or error.
	answer    methodResult
	answerErr error
	call      methodCall
}

// initScenario registers the hooks and steps of one scenario, on a new
// world.
func initScenario(ctx *godog.ScenarioContext, s *suite) {
	w := &world{s: s}
	ctx.Before(func(ctx context.Context, gs *godog.Scenario) (context.Context, error) {
		return ctx, w.begin(gs)
	})
	ctx.After(func(ctx context.Context, gs *godog.Scenario, err error) (context.Context, error) {
		return ctx, w.end(ctx, err)
	})
	registerDeviceSteps(ctx, w)
	registerDeploymentSteps(ctx, w)
	registerModuleSteps(ctx, w)
	registerRestartSteps(ctx, w)
	registerEdgeHubSteps(ctx, w)
	registerClientSteps(ctx, w)
	registerMessageSteps(ctx, w)
	registerTwinSteps(ctx, w)
	registerMethodSteps(ctx, w)
	registerAuthSteps(ctx, w)
}

// begin resets the world for scenario gs: a fresh directory and journal.
func (w *world) begin(gs *godog.Scenario) error {
	n := w.s.seq.Add(1)
	dir := filepath.Join(w.s.runDir, w.s.be.name(), strconv.FormatInt(n, 10))
	j := journal{dir: filepath.Join(dir, "journal")}
	// 0o777: a module container may run as another user than the test.
	if err := os.MkdirAll(j.dir, 0o777); err != nil {
		return err
	}
	if err := os.Chmod(j.dir, 0o777); err != nil {
		return err
	}
	*w = world{
		s:  w.s,
		sc: &scenario{id: fmt.Sprintf("%d-%d", os.Getpid(), n), name: gs.Name, dir: dir, journal: j},
	}
	w.deployment = newDeployment(w.s.be.credentials())
	return nil
}

// end tears the scenario's system down: the agent first (so that it
// restarts nothing), then the hub, then whatever else the scenario left
// (modules). On failure it logs the
// components' output and the journals first.
func (w *world) end(ctx context.Context, scenarioErr error) error {
	if w.sc == nil {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	if scenarioErr != nil && !errors.Is(scenarioErr, godog.ErrSkip) {
		godog.Logf(ctx, "%s", w.diagnostics(ctx))
	}
	var errs []error
	w.closeClients()
	if w.agent != nil {
		errs = append(errs, w.agent.remove(ctx))
	}
	if w.hub != nil {
		errs = append(errs, w.hub.remove(ctx))
	}
	errs = append(errs, w.s.be.cleanup(ctx, w.sc))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tearing down scenario %s: %w", w.sc.id, err)
	}
	return nil
}

// diagnostics renders what helps to understand a failure: the agent's and
// the hub's last log lines, every module's journal, the last report.
func (w *world) diagnostics(ctx context.Context) string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s (%s backend), files in %s\n", w.sc.id, w.s.be.name(), w.sc.dir)
	if w.agent != nil {
		fmt.Fprintf(&b, "--- edge agent, last lines:\n%s\n", tail(w.agent.output(ctx), 40))
	}
	if w.hub != nil {
		fmt.Fprintf(&b, "--- fake hub, last lines:\n%s\n", tail(w.hub.output(ctx), 10))
	}
	if w.deployment != nil && w.deployment.hub != nil {
		fmt.Fprintf(&b, "--- edgeHub, last lines:\n%s\n", tail(w.hubLog(ctx), 40))
		if len(w.clients) > 0 {
			fmt.Fprintf(&b, "--- clients: log in %s\n", filepath.Join(w.sc.dir, "clients.log"))
		}
	}
	if w.deployment != nil && w.deployment.hub == nil {
		for _, m := range w.deployment.all() {
			fmt.Fprintf(&b, "--- %s\n", w.sc.journal.describe(m.name))
		}
	}
	if w.api != nil {
		if r, err := w.reported(ctx); err == nil {
			delete(r, "$metadata") // timestamps of every field: noise here
			fmt.Fprintf(&b, "--- $edgeAgent reported: %s\n", compactJSON(r))
		}
	}
	return b.String()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startDevice starts the scenario's fake hub and edge agent.
func (w *world) startDevice(ctx context.Context) error {
	hubDir := filepath.Join(w.sc.dir, "hub")
	hub, err := w.s.be.startHub(ctx, w.sc, hubDir, edgeDevice)
	if err != nil {
		return fmt.Errorf("starting the fake hub: %w", err)
	}
	w.hub = hub
	caFile := filepath.Join(hubDir, "ca.pem")
	if w.api, err = newHubAPI(hub.httpAddr, caFile, filepath.Join(hubDir, "service-connection-string")); err != nil {
		return err
	}
	_, httpPort, _ := strings.Cut(hub.httpAddr, ":")
	_, mqttPort, _ := strings.Cut(hub.mqttAddr, ":")
	w.agentCfg = agentConfig{
		connectionStringFile: filepath.Join(hubDir, "devices", edgeDevice+".connection-string"),
		dataDir:              filepath.Join(w.sc.dir, "agent"),
		caFile:               caFile,
		serviceURL:           "https://localhost:" + httpPort,
		mqttPort:             mqttPort,
		reconcilePeriod:      reconcilePeriod,
		backoff:              w.s.backoff,
	}
	return w.startAgent(ctx)
}

// startAgent starts the edge agent, the first time or again.
func (w *world) startAgent(ctx context.Context) error {
	if w.agent == nil {
		a, err := w.s.be.startAgent(ctx, w.sc, w.agentCfg)
		if err != nil {
			return fmt.Errorf("starting the edge agent: %w", err)
		}
		w.agent = a
	} else if err := w.agent.start(ctx); err != nil {
		return fmt.Errorf("starting the edge agent again: %w", err)
	}
	w.agentRuns++
	if err := waitOutput(ctx, w.agent, "the edge agent is ready", agentReady, w.agentRuns, startTimeout); err != nil {
		return fmt.Errorf("%w\n%s", err, tail(w.agent.output(ctx), 30))
	}
	return nil
}

// apply applies w.deployment and remembers the desired version it got.
func (w *world) apply(ctx context.Context) error {
	content, err := w.deployment.modulesContent(w)
	if err != nil {
		return err
	}
	if err := w.api.applyConfigurationContent(ctx, edgeDevice, content); err != nil {
		return err
	}
	t, err := w.api.moduleTwin(ctx, edgeDevice, "$edgeAgent")
	if err != nil {
		return err
	}
	v, ok := number(t.Properties.Desired["$version"])
	if !ok {
		return fmt.Errorf("the $edgeAgent twin has no desired $version: %s", compactJSON(t.Properties.Desired))
	}
	w.desiredVersion = v
	return nil
}

// change applies a changed copy of the current deployment.
func (w *world) change(ctx context.Context, edit func(d *deployment) error) error {
	next := w.deployment.clone()
	if err := edit(next); err != nil {
		return err
	}
	w.previous, w.deployment = w.deployment, next
	return w.apply(ctx)
}
