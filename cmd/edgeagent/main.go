// Command edgeagent runs the Outpost edge agent: it connects to IoT Hub as
// {edge}/$edgeAgent, reads its deployment from that module twin, runs the
// modules it lists with a module runtime (plain processes by default, or
// Docker), creates their identities in the hub, and reports their status
// back to the twin (package agent).
//
// Usage:
//
//	edgeagent --connection-string-file FILE [--data-dir DIR]
//	          [--runtime process|docker] [--image-dir DIR]
//	          [--network NAME] [--require-digest]
//	          [--gateway-hostname NAME] [--parent-hostname NAME]
//	          [--ca-file FILE] [--module-ca-file FILE]
//	          [--service-url URL] [--mqtt-port N] [--reconcile-period D]
//	          [--restart-backoff-unit D] [--restart-backoff-cap D] [--restart-reset-after D] [--restart-max N]
//	          [--log-format text|json] [--log-level debug|info|warn|error]
//	          [--config FILE] [--config-file FILE] [--print-config] [--runtime-start-time TIME]
//	          [--certs-dir DIR] [--cert-ca-lifetime D] [--cert-server-lifetime D] [--cert-renew-before D]
//
// The connection string file holds the edge device's connection string
// (HostName=…;DeviceId=…;SharedAccessKey=…). The agent derives every module
// key from that device key, so it needs nothing else to authenticate: its
// own $edgeAgent identity and the modules' identities are created (or
// updated) in the hub through the service API at --service-url with the
// device's own token, which IoT Hub and the fake hub accept for an edge
// device's modules.
//
// The data directory holds agent.db (the last valid deployment and the
// modules' restart records, mode 0600), mgmt.sock (the local management API
// edgectl talks to, mode 0600), config.json (the effective configuration,
// for edgectl while the agent is stopped) and, with the process runtime, the
// modules' state, logs and working directories under process/. Keep it
// across restarts: a device that boots without network starts the modules
// of the saved deployment, and a restarted agent adopts the modules that
// kept running.
//
// --ca-file is the CA to trust for the hub (MQTT and HTTPS; system roots
// when empty); it is also given to edgeHub as EdgeModuleCACertificateFile.
// --module-ca-file is the CA of the edge hub's certificate, given to the
// other modules as EdgeModuleCACertificateFile.
//
// With the Docker runtime every module joins the bridge network --network
// (azure-iot-edge by default; created when missing) unless its
// createOptions names networks of its own; edgectl setup --network writes
// it to edge.json, so that the agent, edgectl start (which creates it) and
// edgectl uninstall (which removes it) agree. --require-digest refuses to
// pull or create a module whose image is not pinned by digest
// (name@sha256:...): the deployment is reported 500 with "image not pinned
// by digest" and the image, the agent retries with back-off, and the other
// modules go on.
//
// With --certs-dir the agent keeps the edge CA and the edge hub's server
// certificate for --gateway-hostname in that directory (package certs'
// files and rules, edgectl setup creates them): it creates what is missing
// at start and renews each certificate --cert-renew-before ahead of its
// expiry while it runs, as aziot-certd renews Azure's edge CA.
//
// Every flag can also be set with an environment variable, EDGEAGENT_
// followed by the flag name in upper case with '-' as '_'
// (EDGEAGENT_DATA_DIR, ...), in the file --config names: edgectl setup's
// edge.json, a JSON object whose "agent" member maps flag names to values
// (strings, numbers or booleans; other members are edgectl's):
//
//	{"schemaVersion": "1", "agent": {"connection-string-file": "/var/lib/outpost/device-connection-string",
//	  "data-dir": "/var/lib/outpost", "gateway-hostname": "edge1.local", "mqtt-port": 8883}}
//
// or in the TOML file --config-file names, whose keys are the flag names
// too (docs/config/edgeagent.toml lists them all with their defaults). The
// command line wins over the environment, which wins over edge.json (the
// device's own set-up), which wins over the TOML file (a site's defaults).
// --print-config prints the effective configuration, with where each value
// came from, and exits. docs/configuration.md has the details.
//
// The agent tells the modules where edgeHub listens: the gateway host name
// in their connection strings, and the port in OUTPOST_MQTT_PORT when
// edgeHub's env (EDGEHUB_TLS_ADDR) or createOptions.Cmd (--tls-addr) sets
// one other than 8883. It tells edgeHub what it knows itself: the hub's host
// name and the device (IOTEDGE_IOTHUBHOSTNAME, IOTEDGE_DEVICEID),
// --gateway-hostname (EdgeDeviceHostName), --ca-file
// (EdgeModuleCACertificateFile), --mqtt-port (OUTPOST_MQTT_PORT, when not
// 8883) and the certificates of --certs-dir
// (EdgeModuleHubServerCertificateFile=<dir>/server.pem,
// EdgeModuleHubServerCAChainCertificateFile=<dir>/edge-ca.pem, unless
// edgeHub's env or createOptions.Env names either), which Outpost's edge
// hub reads when its own EDGEHUB_ variables do not say otherwise. With the
// Docker runtime the files must be mounted into edgeHub's container at the
// same path, by its createOptions (HostConfig.Binds).
//
// It logs to stderr (--log-format text or json).
//
// Pulls use the deployment's registryCredentials, else the logins stored by
// edgectl login in registries.json in the data directory (re-read when it
// changes). --runtime-start-time is how edgectl start tells the agent that
// the operator stopped and started the runtime: modules that exited before
// it (like those that exited before the host booted) were stopped with the
// runtime, and are started again whatever their restart policy.
//
// SIGINT or SIGTERM stop the agent and leave the modules running. Exit
// status 1 means the agent could not start, 2 a bad flag or connection
// string.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/outpost-edge/outpost/cmd/internal/cli"
	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/docker"
	"github.com/outpost-edge/outpost/runtime/agent/process"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
)

func main() {
	// The process runtime starts each module through this executable in a
	// hidden supervisor mode: hand over before anything else.
	if len(os.Args) > 1 && os.Args[1] == process.SuperviseArg {
		os.Exit(process.SuperviseMain(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the agent could not start
	exitUsage = 2 // bad flags, environment variables or connection string
)

// Files and directories in the data directory.
const (
	stateFile  = "agent.db"
	processDir = "process"
)

// Runtimes.
const (
	runtimeProcess = "process"
	runtimeDocker  = "docker"
)

// readConnectionString reads the edge device's connection string. Errors
// never quote the file's content.
func readConnectionString(path string) (sas.ConnectionString, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return sas.ConnectionString{}, fmt.Errorf("--connection-string-file: %w", err)
	}
	cs, err := sas.ParseConnectionString(strings.TrimSpace(string(b)))
	if err != nil {
		return sas.ConnectionString{}, fmt.Errorf("--connection-string-file %q: %w", path, err)
	}
	switch {
	case cs.IsService() || cs.ModuleID != "":
		return sas.ConnectionString{}, fmt.Errorf("--connection-string-file %q: want the edge device's connection string (DeviceId, no ModuleId), got %s", path, cs.Redacted())
	case cs.SharedAccessKey == "":
		return sas.ConnectionString{}, fmt.Errorf("--connection-string-file %q: the connection string has no SharedAccessKey; the agent derives module keys from it", path)
	}
	return cs, nil
}

// run runs the agent until ctx is done and returns the process exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	c, settings, err := loadConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "edgeagent: %v\n", err)
		return exitUsage
	}
	if c.printConfig {
		if err := settings.WriteTOML(os.Stdout, "edgeagent configuration"); err != nil {
			fmt.Fprintf(stderr, "edgeagent: %v\n", err)
			return exitError
		}
		return exitOK
	}
	logger, err := cli.NewLogger(c.logFormat, c.logLevel, stderr)
	if err != nil { // validated by parseConfig
		fmt.Fprintf(stderr, "edgeagent: %v\n", err)
		return exitUsage
	}
	device, err := readConnectionString(c.connectionStringFile)
	if err != nil {
		logger.Error("edgeagent: bad connection string", "err", err)
		return exitUsage
	}
	if err := serve(ctx, c, device, logger); err != nil {
		logger.Error("edgeagent stopped with an error", "err", err)
		return exitError
	}
	return exitOK
}

// moduleRuntime is the runtime the agent drives plus its own lifecycle.
type moduleRuntime struct {
	agent.Runtime
	// run is the runtime's background work, if any, until ctx ends.
	run func(ctx context.Context) error
	// close releases it.
	close func() error
	// version describes it in the reported platform.
	version string
}

// newRuntime builds the runtime --runtime names.
func newRuntime(ctx context.Context, c config, logger *slog.Logger) (*moduleRuntime, error) {
	switch c.runtime {
	case runtimeDocker:
		rt, err := docker.New(dockerOptions(c, logger.With("component", "docker"))) // options.go
		if err != nil {
			return nil, err
		}
		nctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := rt.EnsureNetwork(nctx); err != nil {
			rt.Close()
			return nil, fmt.Errorf("docker network %q: %w", rt.Network(), err)
		}
		return &moduleRuntime{Runtime: rt, close: rt.Close, version: "docker"}, nil
	default:
		rt, err := process.New(process.Options{
			StateDir: filepath.Join(c.dataDir, processDir),
			ImageDir: c.imageDir,
			Logger:   logger.With("component", "process"),
		})
		if err != nil {
			return nil, err
		}
		return &moduleRuntime{Runtime: rt, run: rt.Run, close: func() error { return nil }, version: "process"}, nil
	}
}

// httpClient is the client for the service API, trusting caFile when set.
func httpClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %q: no PEM certificate in it", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// serve wires the agent by hand and runs it until ctx is done.
func serve(ctx context.Context, c config, device sas.ConnectionString, logger *slog.Logger) error {
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	rt, err := newRuntime(ctx, c, logger)
	if err != nil {
		return fmt.Errorf("%s runtime: %w", c.runtime, err)
	}
	defer rt.close()
	db, err := agent.OpenStateDB(filepath.Join(c.dataDir, stateFile))
	if err != nil {
		return err
	}
	defer db.Close()

	client, err := httpClient(c.caFile)
	if err != nil {
		return err
	}
	serviceURL := c.serviceURL
	if serviceURL == "" {
		serviceURL = "https://" + device.HostName
	}
	ids, err := agent.NewHubIdentities(device, serviceURL, client, nil)
	if err != nil {
		return err
	}
	self, err := ids.ConnectionString("$edgeAgent", c.parentHostName)
	if err != nil {
		return err
	}
	twin, err := moduleclient.New(self, moduleclient.Options{CAFile: c.caFile, Port: c.mqttPort, Logger: logger.With("component", "upstream")})
	if err != nil {
		return fmt.Errorf("upstream client: %w", err)
	}
	defer twin.Close()

	// The tracker lets the management API show download progress.
	tracked := agent.TrackPulls(rt)
	info := agentInfo(rt.version)
	opts := agentOptions(c, device) // options.go
	opts.BootTime = later(bootTime(), c.runtimeStart)
	opts.RegistryLogins = (&loginsFile{path: filepath.Join(c.dataDir, agent.RegistriesFile), log: logger.With("component", "logins")}).Logins
	opts.Info = info
	// The tracker hides the runtime's exit watch: give it back, so that the
	// agent learns of a crash at once rather than at its next reconcile.
	var agentRT agent.Runtime = tracked
	if w, ok := rt.Runtime.(agent.ExitWatcher); ok {
		agentRT = struct {
			*agent.PullTracker
			agent.ExitWatcher
		}{tracked, w}
	}
	a, err := agent.New(opts, agent.Deps{Runtime: agentRT, Twin: twin, Identities: ids, State: db, Logger: logger.With("component", "agent")})
	if err != nil {
		return err
	}

	// The runtime's background work runs until the agent has stopped.
	rtCtx, stopRuntime := context.WithCancel(context.WithoutCancel(ctx))
	rtDone := make(chan error, 1)
	if rt.run != nil {
		go func() { rtDone <- rt.run(rtCtx) }()
	} else {
		rtDone <- nil
	}
	defer func() {
		stopRuntime()
		if err := <-rtDone; err != nil {
			logger.Error("module runtime stopped with an error", "err", err)
		}
	}()

	// The edge certificates, renewed in the background until the agent
	// stops.
	if c.certsDir != "" {
		certsCtx, stopCerts := context.WithCancel(ctx)
		certsDone := make(chan struct{})
		go func() {
			defer close(certsDone)
			runCertRenewal(certsCtx, c, logger.With("component", "certs"))
		}()
		defer func() {
			stopCerts()
			<-certsDone
		}()
	}

	// The local management API for edgectl, and the effective
	// configuration it reads while the agent is not running.
	ec := effectiveConfig(c, device, serviceURL, info.Version, time.Now())
	if err := writeConfigFile(c.dataDir, ec); err != nil {
		logger.Warn("cannot save the effective configuration for edgectl", "err", err)
	}
	ms := &agent.ManagementServer{
		Path:    filepath.Join(c.dataDir, agent.ManagementSocket),
		Runtime: tracked,
		Pulls:   tracked,
		Agent:   a,
		Info:    agent.AgentStatus{DataDir: ec.DataDir, Runtime: c.runtime},
		Config:  ec,
		Logger:  logger.With("component", "mgmt"),
	}
	twin.OnConnectionChange(ms.OnHubConnection)
	msDone := make(chan struct{})
	go func() {
		defer close(msDone)
		runManagement(ctx, ms, logger)
	}()
	defer func() { <-msDone }()

	logger.Info("edgeagent ready",
		"device_id", device.DeviceID, "iothub_hostname", device.HostName, "runtime", c.runtime,
		"data_dir", c.dataDir, "gateway_hostname", c.gatewayHostName, "service_url", serviceURL)
	if err := a.Run(ctx); err != nil {
		return err
	}
	logger.Info("edgeagent stopped; modules left running")
	return nil
}

// runtimeLogLevel maps the agent's level to the RuntimeLogLevel names
// Azure's modules understand.
func runtimeLogLevel(level string) string {
	switch strings.ToLower(level) {
	case "debug":
		return "debug"
	case "warn":
		return "warning"
	case "error":
		return "error"
	}
	return "info"
}

// agentInfo describes this binary for the reported properties.
func agentInfo(runtimeVersion string) agent.AgentInfo {
	info := agent.AgentInfo{Version: "dev", Platform: agent.Platform{OS: goruntime.GOOS, Architecture: arch(), Version: runtimeVersion}}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			info.Version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Commit = s.Value
			case "vcs.time":
				info.Build = s.Value
			}
		}
	}
	return info
}

// arch spells the architecture as uname -m does, as Azure reports it.
func arch() string {
	switch goruntime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "arm":
		return "armv7l"
	}
	return goruntime.GOARCH
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// bootTime reads the host's boot time from /proc/stat (btime); zero when
// it cannot, which disables the agent's "stopped by a shutdown" rule.
func bootTime() time.Time {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return time.Unix(n, 0)
			}
		}
	}
	return time.Time{}
}
