package features

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// backend runs the system under test for the scenarios: a fake hub and an
// edge agent per scenario, and the test module as the agent's modules.
// processBackend runs them as OS processes with the process runtime;
// dockerBackend as containers (testcontainers-go) with the Docker runtime.
// A backend is built once per test run (newProcessBackend,
// newDockerBackend); the scenarios share it and never see which one runs
// them except through these methods and the @docker tag.
//
// The real edge hub runs as the agent's edgeHub module; leaf devices and
// the modules that talk to it are clients in the test (clients_test.go).
type backend interface {
	// name is "process" or "docker".
	name() string
	// startHub starts a fake hub keeping its data in dir, with the IoT
	// Edge device named device.
	startHub(ctx context.Context, sc *scenario, dir, device string) (*hubProcess, error)
	// startAgent starts an edge agent with the flags of cfg and the
	// backend's own (runtime, image directory...).
	startAgent(ctx context.Context, sc *scenario, cfg agentConfig) (component, error)
	// image returns the reference of the module image repo:tag as a
	// deployment names it.
	image(repo, tag string) string
	// agentImage is what the deployment lists as the edgeAgent image.
	agentImage() string
	// credentials returns the registry credentials a deployment needs to
	// pull the images (none for the process runtime).
	credentials() map[string]registryCredential
	// healthCommand is the Healthcheck Test of the test module.
	healthCommand() []string
	// decorate adds to a module's environment and createOptions what the
	// backend needs: where the journal is, clean-up labels or markers.
	decorate(sc *scenario, env map[string]string, createOptions map[string]any)
	// decorateEdgeHub adds to the real edge hub's environment and
	// createOptions what the backend needs: the clean-up marker or labels,
	// and on Docker the host's network (where IoT Hub and the scenarios'
	// clients are) and the scenario directory (its data, the hub's CA).
	decorateEdgeHub(sc *scenario, env map[string]string, createOptions map[string]any)
	// moduleLog returns what a module has logged so far, as its runtime
	// keeps it (container logs, the process runtime's log file).
	moduleLog(ctx context.Context, sc *scenario, agentDataDir, module string) string
	// moduleExists reports whether the module runtime still has the module
	// (a container, or a running process).
	moduleExists(ctx context.Context, sc *scenario, module string) (bool, error)
	// cleanup removes what the scenario left: module containers or
	// processes. The hub and agent are stopped by the world before.
	cleanup(ctx context.Context, sc *scenario) error
	// close releases what the backend built; called once at the end.
	close()
}

// component is a running program of the system under test: the fake hub,
// the edge agent.
type component interface {
	// stop asks it to stop (SIGTERM) and waits until it has.
	stop(ctx context.Context) error
	// start runs it again with the same arguments and data, after a stop.
	start(ctx context.Context) error
	// output returns what it has logged so far.
	output(ctx context.Context) string
	// remove stops it for good and releases it (kills it if needed).
	remove(ctx context.Context) error
}

// registryCredential is one entry of runtime.settings.registryCredentials.
type registryCredential struct {
	Address  string `json:"address"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// hubProcess is a started fake hub and where to reach it.
type hubProcess struct {
	component
	mqttAddr string // 127.0.0.1:port, MQTT over TLS
	httpAddr string // 127.0.0.1:port, service REST API
}

// agentConfig holds the edge agent's flags that do not depend on the
// backend. All paths are absolute and the same inside containers (the
// docker backend mounts the scenario directory at its own path).
type agentConfig struct {
	connectionStringFile string
	dataDir              string
	caFile               string
	serviceURL           string
	mqttPort             string
	reconcilePeriod      time.Duration
	backoff              backoff
}

// args renders the flags.
func (c agentConfig) args() []string {
	a := []string{
		"--connection-string-file", c.connectionStringFile,
		"--data-dir", c.dataDir,
		"--ca-file", c.caFile,
		"--service-url", c.serviceURL,
		"--mqtt-port", c.mqttPort,
		"--reconcile-period", c.reconcilePeriod.String(),
		"--log-level", "debug",
	}
	return append(a, c.backoff.flags()...)
}

// Log lines the components write once they serve.
const (
	hubReady   = "fakehub ready"
	agentReady = "edgeagent ready"
)

// parseHubReady finds the fake hub's JSON "fakehub ready" line in its
// output and returns its MQTT and HTTPS addresses.
func parseHubReady(out string) (mqtt, http string, ok bool) {
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			MQTT string `json:"mqtt_address"`
			HTTP string `json:"http_address"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == hubReady && line.MQTT != "" && line.HTTP != "" {
			return line.MQTT, line.HTTP, true
		}
	}
	return "", "", false
}

// hubArgs are the fake hub's flags: loopback, random ports, JSON logs (to
// parse the ready line), and the edge device created at start.
func hubArgs(dir, device string) []string {
	return []string{
		"--data-dir", dir,
		"--hostname", "localhost",
		"--mqtt-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0",
		"--edge-device", device,
		"--log-format", "json",
	}
}

// waitOutput waits until c has logged marker at least n times.
func waitOutput(ctx context.Context, c component, what, marker string, n int, timeout time.Duration) error {
	return eventually(ctx, timeout, what, func(ctx context.Context) error {
		if got := strings.Count(c.output(ctx), marker); got < n {
			return fmt.Errorf("%q logged %d times, want %d", marker, got, n)
		}
		return nil
	})
}
