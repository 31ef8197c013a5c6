package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/runtime/certs"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// Names of the agent scenarios' device and files.
const (
	agentEdge      = "benchedge" // the edge device in the fake hub
	agentDirPrefix = "agent-"    // each environment's directory under the workdir
	agentDataDir   = "agent"     // the agent's --data-dir in it
	agentBinaries  = "edgeagent, edgehub, fakehub, tempsensor and filter"
)

// Runtimes of the agent.
const (
	runtimeProcess = "process"
	runtimeDocker  = "docker"
)

// agentEnvConfig says what an agentEnv runs.
type agentEnvConfig struct {
	Runtime   string     // runtimeProcess or runtimeDocker
	Docker    *dockerEnv // the engine, for runtimeDocker
	AgentArgs []string   // more edgeagent flags (restart back-off)
	// Modules are module identities of the edge device the fake hub creates at start,
	// for load clients that connect to the edge hub themselves.
	Modules []string
}

// agentEnv is a whole edge device on this machine, as scripts/run-demo.sh wires it: the
// fake IoT Hub (bin/fakehub) with an edge device, and the edge agent (bin/edgeagent) for
// that device, which runs the edge hub (bin/edgehub, or its image) and the modules of
// the deployments set on the fake hub.
type agentEnv struct {
	s         *settings
	cfg       agentEnvConfig
	dir       string
	hub       *proc // the fake hub
	api       *hubAPI
	hubMQTT   int    // the fake hub's MQTT/TLS port
	hubHTTPS  string // the fake hub's HTTPS address: the agent's service API
	hubCA     string
	agent     *agentProc
	agentLog  *os.File // the agent's log, kept with the directory when something fails
	keep      bool     // a run failed: keep the directory, to look at
	agentData string
	certsDir  string
	// edgeHubTLS and edgeHubPlain are the edge hub's MQTT ports on 127.0.0.1: TLS for the
	// modules, plain for the harness's load clients.
	edgeHubTLS, edgeHubPlain int

	events     *eventFollower
	stopEvents context.CancelFunc
}

// checkAgentBinaries makes sure the binaries the agent scenarios run exist.
func checkAgentBinaries(s *settings) error {
	for _, name := range []string{"edgeagent", "edgehub", "fakehub", "tempsensor", "filter"} {
		p := filepath.Join(s.BinDir, name)
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (the agent scenarios run bin/{%s}: build them with make build)", err, agentBinaries)
		}
	}
	return nil
}

// startAgentEnv starts the fake hub and the agent, and waits until the agent is connected
// to the hub. The caller stops it with close.
func startAgentEnv(ctx context.Context, s *settings, cfg agentEnvConfig) (e *agentEnv, err error) {
	dir, err := os.MkdirTemp(s.Workdir, agentDirPrefix+cfg.Runtime+"-")
	if err != nil {
		return nil, err
	}
	e = &agentEnv{s: s, cfg: cfg, dir: dir, agentData: filepath.Join(dir, agentDataDir), certsDir: filepath.Join(dir, "certs")}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if err := e.startHub(); err != nil {
		return nil, err
	}
	for _, p := range []*int{&e.edgeHubTLS, &e.edgeHubPlain} {
		if *p, err = freePort(); err != nil {
			return nil, err
		}
	}
	// The edge CA and the edge hub's certificate, as edgectl setup creates them before the
	// agent first starts (the agent only renews them, in the background).
	if err := os.MkdirAll(e.certsDir, 0o700); err != nil {
		return nil, err
	}
	if _, err := certs.LoadOrCreate(certs.Options{Dir: e.certsDir, Names: certs.Names("localhost")}); err != nil {
		return nil, fmt.Errorf("edge certificates: %w", err)
	}
	ectx, stop := context.WithCancel(context.WithoutCancel(ctx))
	e.stopEvents = stop
	e.events = newEventFollower()
	go e.events.run(ectx, e.api)

	args := []string{
		"--connection-string-file", filepath.Join(dir, "fakehub", "devices", agentEdge+".connection-string"),
		"--data-dir", e.agentData,
		"--runtime", cfg.Runtime,
		"--gateway-hostname", "localhost",
		"--ca-file", e.hubCA,
		"--certs-dir", e.certsDir,
		"--module-ca-file", filepath.Join(e.certsDir, certs.DefaultCAFile),
		"--service-url", "https://" + e.hubHTTPS,
		"--mqtt-port", strconv.Itoa(e.hubMQTT),
		"--log-format", "json", "--log-level", "info",
	}
	if cfg.Runtime == runtimeProcess {
		args = append(args, "--image-dir", s.BinDir)
	}
	args = append(args, cfg.AgentArgs...)
	logFile, err := os.Create(filepath.Join(dir, "edgeagent.log"))
	if err != nil {
		return nil, err
	}
	e.agentLog = logFile
	if e.agent, err = startAgentProc(filepath.Join(s.BinDir, "edgeagent"), args, logFile); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := e.agent.waitLine(wctx, 0, func(l logLine) bool { return l.Msg == "connected to the hub" }); err != nil {
		return nil, fmt.Errorf("edge agent (%s runtime) not connected to the fake hub: %w", cfg.Runtime, err)
	}
	return e, nil
}

// startHub starts the fake hub with the edge device and cfg.Modules.
func (e *agentEnv) startHub() error {
	data := filepath.Join(e.dir, "fakehub")
	args := []string{
		"--data-dir", data, "--hostname", "localhost",
		"--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--plain-http-addr", "127.0.0.1:0",
		"--log-format", "json", "--log-level", "info",
		"--edge-device", agentEdge,
	}
	if len(e.cfg.Modules) > 0 {
		ids := make([]string, len(e.cfg.Modules))
		for i, m := range e.cfg.Modules {
			ids[i] = agentEdge + "/" + m
		}
		args = append(args, "--module", strings.Join(ids, ","))
	}
	var ready fakehubReady
	p, err := startProc("fake hub", filepath.Join(e.s.BinDir, "fakehub"), args, func(line string) bool {
		r, ok := parseFakehubReady(line)
		if ok {
			ready = r
		}
		return ok
	}, 30*time.Second)
	if err != nil {
		return err
	}
	e.hub = p
	port, err := portOf(ready.MQTT)
	if err != nil {
		return fmt.Errorf("fake hub: %w", err)
	}
	e.hubMQTT = port
	e.hubCA = filepath.Join(data, "ca.pem")
	raw, err := os.ReadFile(filepath.Join(data, "service-connection-string"))
	if err != nil {
		return err
	}
	cs, err := sas.ParseConnectionString(strings.TrimSpace(string(raw)))
	if err != nil {
		return fmt.Errorf("fake hub: service connection string: %w", err)
	}
	e.api = &hubAPI{base: "http://" + ready.PlainHTTP, service: cs, http: &http.Client{Timeout: time.Minute}}
	e.hubHTTPS = ready.HTTP
	return nil
}

// fakehubReady is the fake hub's "fakehub ready" log line's addresses.
type fakehubReady struct {
	MQTT      string `json:"mqtt_address"`
	HTTP      string `json:"http_address"`
	PlainHTTP string `json:"plain_http_address"`
}

// parseFakehubReady reads the addresses from the fake hub's ready line (JSON logs);
// false for any other line, or a ready line without them.
func parseFakehubReady(line string) (fakehubReady, bool) {
	var l struct {
		Msg string `json:"msg"`
		fakehubReady
	}
	if json.Unmarshal([]byte(line), &l) != nil || l.Msg != "fakehub ready" {
		return fakehubReady{}, false
	}
	r := l.fakehubReady
	if r.MQTT == "" || r.HTTP == "" || r.PlainHTTP == "" {
		return fakehubReady{}, false
	}
	return r, true
}

// portOf returns the port of a "host:port" address.
func portOf(addr string) (int, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return 0, fmt.Errorf("address %q: no port", addr)
	}
	p, err := strconv.Atoi(addr[i+1:])
	if err != nil || p <= 0 || p > 65535 {
		return 0, fmt.Errorf("address %q: bad port", addr)
	}
	return p, nil
}

// image is the image of binary name for this environment's runtime: for processes a
// registry-style name that --image-dir resolves to bin/<name>, for Docker the image
// pushed to the harness's registry.
func (e *agentEnv) image(name string) string {
	if e.cfg.Runtime == runtimeDocker {
		return e.cfg.Docker.refs[name]
	}
	return "outpost/" + name + ":dev"
}

// edgeHubModule is the edge hub as the demo deploys it: its data and the certificates
// the agent keeps in this environment's directory, TLS for the modules, a plain listener
// for the harness's load clients, upstream to the fake hub.
func (e *agentEnv) edgeHubModule() benchModule {
	m := benchModule{Name: "edgeHub", Image: e.image("edgehub"), Env: map[string]any{
		"EDGEHUB_DATA_DIR":         filepath.Join(e.dir, "edgehub"),
		"EDGEHUB_CERTS_DIR":        e.certsDir,
		"EDGEHUB_TLS_ADDR":         fmt.Sprintf("127.0.0.1:%d", e.edgeHubTLS),
		"EDGEHUB_PLAIN_ADDR":       fmt.Sprintf("127.0.0.1:%d", e.edgeHubPlain),
		"EDGEHUB_GATEWAY_HOSTNAME": "localhost",
		"EDGEHUB_METRICS_ADDR":     "127.0.0.1:0", // any free port: the default one may be taken
		"EDGEHUB_UPSTREAM_PORT":    e.hubMQTT,
		"EDGEHUB_UPSTREAM_CA_FILE": e.hubCA,
	}}
	if e.cfg.Runtime == runtimeDocker {
		m.CreateOptions = e.cfg.Docker.moduleOptions(e.dir + ":" + e.dir)
	}
	return m
}

// sensorModule is a tempsensor named name that sends a reading every second, from its
// start on.
func (e *agentEnv) sensorModule(name string) benchModule {
	m := benchModule{Name: name, Image: e.image("tempsensor"), Env: map[string]any{
		"MessageCount":      -1,
		"SendInterval":      "1s",
		"OUTPOST_MQTT_PORT": e.edgeHubTLS,
	}}
	if e.cfg.Runtime == runtimeDocker {
		m.CreateOptions = e.cfg.Docker.moduleOptions(e.certsDir + ":" + e.certsDir + ":ro")
	}
	return m
}

// filterModule is the demo's filter module.
func (e *agentEnv) filterModule() benchModule {
	m := benchModule{Name: "filter", Image: e.image("filter"), Env: map[string]any{"OUTPOST_MQTT_PORT": e.edgeHubTLS}}
	if e.cfg.Runtime == runtimeDocker {
		m.CreateOptions = e.cfg.Docker.moduleOptions(e.certsDir + ":" + e.certsDir + ":ro")
	}
	return m
}

// upstreamRoutes sends every message to the fake hub.
var upstreamRoutes = map[string]string{"upstream": "FROM /messages/* INTO $upstream"}

// deploy sets m on the edge device, as edgectl deploy does, and returns the time just
// before the request and the desired version m became.
func (e *agentEnv) deploy(ctx context.Context, m benchManifest) (time.Time, int64, error) {
	content, err := m.content()
	if err != nil {
		return time.Time{}, 0, err
	}
	t0 := time.Now()
	if err := e.api.apply(ctx, agentEdge, content); err != nil {
		return t0, 0, err
	}
	r, err := e.api.agentTwin(ctx, agentEdge)
	return t0, r.DesiredVersion, err
}

// deployAndWait sets m and waits until the agent has reported that version with every
// module of m running and no other module.
func (e *agentEnv) deployAndWait(ctx context.Context, m benchManifest, limit time.Duration) error {
	_, v, err := e.deploy(ctx, m)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	names := map[string]bool{m.EdgeHub.Name: true, "edgeAgent": true}
	for _, mod := range m.Modules {
		names[mod.Name] = true
	}
	_, _, err = e.api.waitReported(wctx, agentEdge, func(r agentReported) bool {
		if !r.applied(v) {
			return false
		}
		for n := range names {
			if r.status(n) != "running" {
				return false
			}
		}
		for n := range r.Modules {
			if !names[n] {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("deployment v%d not running within %v: %w", v, limit, err)
	}
	return nil
}

// close stops the agent, removes what it ran (the process runtime leaves its modules
// running when the agent stops, by design), and stops the fake hub.
func (e *agentEnv) close() error {
	var errs []error
	if e.agent != nil {
		errs = append(errs, e.agent.stop(20*time.Second))
	}
	if e.stopEvents != nil {
		e.stopEvents()
	}
	switch e.cfg.Runtime {
	case runtimeProcess:
		if _, err := killRecordedModules(e.agentData); err != nil {
			errs = append(errs, err)
		}
	case runtimeDocker:
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		errs = append(errs, e.cfg.Docker.removeContainers(ctx))
		cancel()
	}
	if e.hub != nil {
		errs = append(errs, e.hub.stop(10*time.Second))
	}
	if e.agentLog != nil {
		errs = append(errs, e.agentLog.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w (kept %s)", err, e.dir) // to look at
	}
	if e.keep {
		e.s.Log.Info("a run failed: its device's directory is kept", "dir", e.dir)
		return nil
	}
	return os.RemoveAll(e.dir)
}

// agentRSS returns the agent's resident memory.
func (e *agentEnv) agentRSS() (memory, error) { return readMemory(e.agent.pid()) }
