// Command edgehub runs the Outpost edge hub: a local MQTT broker speaking Azure IoT Hub's
// device/module dialect (package hub), with its message store (package store), identity
// cache (package hub/identities) and TLS certificates (package certs) kept in a data
// directory.
//
// Usage:
//
//	edgehub --iothub-hostname NAME --edge-device-id ID [--gateway-hostname NAME]
//	        [--data-dir DIR] [--tls-addr HOST:PORT] [--plain-addr HOST:PORT]
//	        [--config FILE] [--max-message-size BYTES]
//	        [--store-max-bytes BYTES] [--store-full-policy reject-new|drop-oldest]
//	        [--log-format text|json] [--log-level debug|info|warn|error]
//	        [--metrics-addr HOST:PORT] [--https-addr HOST:PORT]
//	        [--upstream-connection-string-file FILE] [--upstream-ca-file FILE]
//	        [--upstream-port PORT] [--identity-refresh DURATION]
//	        [--upstream-mode extension|per-client] [--certs-dir DIR]
//	        [--pprof-addr HOST:PORT] [--config-file FILE] [--print-config]
//
// The data directory holds edge-ca.pem (give it to modules and leaf devices so they trust
// the hub), edge-ca-key.pem, server.pem, server-key.pem, identities.db, twins.db and
// store.db, the message store. The $edgeHub twin's desired
// storeAndForwardConfiguration.storageFolder moves store.db to another directory while the
// hub runs (clients reconnect; nothing stored is lost or left behind), or is refused with
// the reason in the reported properties; the location in use is recorded in
// store-location.json, so restarts find it offline too (storeloc.go).
//
// With --certs-dir the hub serves the edge CA and the server certificate of that directory
// instead (edge-ca.pem, server.pem, server-key.pem: what edgectl setup creates in
// <device data dir>/certs) and never writes them: the edge agent (edgeagent --certs-dir)
// renews them, and the hub reads them again every tenth of the server certificate's
// remaining life (between a second and a minute), so new handshakes get a renewed
// certificate without a restart. The data directory then holds no certificates.
//
// --config names a JSON file read at start:
//
//	{
//	  "edgeHub": { ...the $edgeHub module twin's desired properties: schemaVersion,
//	               routes, storeAndForwardConfiguration... },
//	  "identities": [ {"deviceId": "edge1", "moduleId": "filter", "keys": {"primary": "<base64>"}}, ... ]
//	}
//
// Its identities are added to (or replace entries of) the identity cache; its routes are
// applied, and an invalid route stops the command with an error naming it.
//
// The upstream link to IoT Hub (package upstream, wired by package hub/uplink) is one MQTT
// connection as the edge hub's module identity {edge}/$edgeHub, whose connection string
// comes from --upstream-connection-string-file or, as Azure's edge agent injects it, the
// IotHubConnectionString environment variable; --iothub-hostname and --edge-device-id
// default to its HostName and DeviceId. Through it, messages routed to $upstream go to IoT
// Hub (kept in the store while it is unreachable), clients connecting for the first time
// are authenticated by IoT Hub and cached in identities.db (so --config identities are not
// needed; those not known upstream are removed by the next refresh, every
// --identity-refresh), and the connected clients are shown connected in IoT Hub. Without a
// connection string the hub runs standalone: $upstream messages stay in the store and only
// identities in the cache (from --config) can connect.
//
// --upstream-mode per-client (default extension) is for an IoT Hub without Outpost's
// extension, such as Azure IoT Hub: the hub then opens one plain IoT Hub connection per
// client, with the token the client presented, as Microsoft's edgeHub does over MQTT
// (package hub/perclient). IoT Hub cannot tell the hub the clients' keys in that mode, so
// they must be in the identity cache (--config identities), and --identity-refresh does
// not apply.
//
// --metrics-addr (default 127.0.0.1:9600, the port of Azure's edgeHub metrics) serves
// Prometheus metrics over HTTP at /metrics: the hub's (outpost_edgehub_*, see
// hub.Collector, labelled with iothub and edge_device as Azure's are), the Go runtime's
// and the process's. --metrics-addr "" disables it.
//
// --pprof-addr (default empty: off) serves Go's profiling endpoints over HTTP at
// /debug/pprof/ (go tool pprof http://ADDR/debug/pprof/profile), without authentication:
// keep it on loopback. Heap profiling is on only then (or when GODEBUG sets
// memprofilerate): the profiler's records cost RSS.
//
// The Go garbage collector runs with GOGC 50 unless the GOGC environment variable says
// otherwise (cli.TuneMemory): the hub's live heap is small, and Go's default of 100 lets
// the heap reach twice that, or at least 4 MB, between collections.
//
// Every flag can also be set with an environment variable, EDGEHUB_ followed by the flag
// name in upper case with '-' as '_' (EDGEHUB_DATA_DIR, ...), or in the TOML file
// --config-file (or EDGEHUB_CONFIG_FILE) names, whose keys are the flag names
// (docs/config/edgehub.toml lists them all with their defaults). Below the EDGEHUB_
// variables come those the edge agent injects into edgeHub, as Azure's edgeHub reads them:
// IOTEDGE_IOTHUBHOSTNAME (--iothub-hostname), IOTEDGE_DEVICEID (--edge-device-id),
// EdgeDeviceHostName (--gateway-hostname), EdgeModuleCACertificateFile (--upstream-ca-file),
// EdgeModuleHubServerCertificateFile (its directory: --certs-dir) and OUTPOST_MQTT_PORT
// (--upstream-port). So the precedence is: command line, EDGEHUB_ variables, the agent's
// variables, the file, the defaults. --print-config prints the effective configuration,
// with where each value came from, and exits. docs/configuration.md has the details.
//
// It logs to stderr (--log-format text or json) and stops cleanly on SIGINT or SIGTERM.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/outpost-edge/outpost/cmd/internal/cli"
	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the hub failed to start or stopped with an error
	exitUsage = 2 // bad flags, environment variables or configuration file
)

// Files in the data directory besides the certificates.
const (
	identitiesFile = "identities.db"
	storeFile      = "store.db"
)

// config holds the command's settings.
type config struct {
	dataDir         string
	iotHubHostName  string
	gatewayHostName string
	edgeDeviceID    string
	tlsAddr         string
	plainAddr       string
	configFile      string
	maxMessageSize  int
	storeMaxBytes   int64
	storeFullPolicy string
	logFormat       string
	logLevel        string
	metricsAddr     string
	httpsAddr       string
	certsDir        string // certificates another process renews; "" for the hub's own
	pprofAddr       string // --pprof-addr: Go's profiling endpoints; "" for none
	settingsFile    string // --config-file: the TOML configuration file (config.go)
	printConfig     bool   // --print-config: print the effective configuration and exit

	// The upstream link (upstream.go): the flags, and the connection string they lead to
	// (zero without one).
	upstreamCSFile  string
	upstreamCAFile  string
	upstreamPort    int
	identityRefresh time.Duration
	upstreamMode    string // modeExtension or modePerClient
	upstream        sas.ConnectionString
}

func parsePolicy(s string) (store.Policy, error) {
	for _, p := range []store.Policy{store.RejectNew, store.DropOldest} {
		if s == p.String() {
			return p, nil
		}
	}
	return 0, fmt.Errorf("--store-full-policy %q: want %s or %s", s, store.RejectNew, store.DropOldest)
}

// initialConfig is the --config file.
type initialConfig struct {
	EdgeHub    json.RawMessage       `json:"edgeHub"`
	Identities []identities.Record   `json:"identities"`
	hub        *deployment.HubConfig // parsed EdgeHub, nil when absent
}

// readInitialConfig reads and validates the --config file.
func readInitialConfig(path string) (*initialConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var ic initialConfig
	if err := dec.Decode(&ic); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(ic.EdgeHub) > 0 {
		if ic.hub, err = deployment.ParseHub(ic.EdgeHub); err != nil {
			return nil, fmt.Errorf("%s: edgeHub: %w", path, err)
		}
	}
	return &ic, nil
}

// run runs the hub until ctx is done and returns the process exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	c, settings, err := loadConfig(args, getenv, stderr) // config.go
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "edgehub: %v\n", err)
		return exitUsage
	}
	if c.printConfig {
		if err := settings.WriteTOML(os.Stdout, "edgehub configuration"); err != nil {
			fmt.Fprintf(stderr, "edgehub: %v\n", err)
			return exitError
		}
		return exitOK
	}
	cli.TuneMemory(getenv, c.pprofAddr != "") // GC target and heap profiling (cli/memory.go)
	logger, err := cli.NewLogger(c.logFormat, c.logLevel, stderr)
	if err != nil { // validated by parseConfig
		fmt.Fprintf(stderr, "edgehub: %v\n", err)
		return exitUsage
	}
	stopPprof, err := startPprof(c.pprofAddr, logger) // config_pprof.go
	if err != nil {
		logger.Error("edgehub: cannot serve the profiling endpoints", "err", err)
		return exitError
	}
	defer stopPprof()
	var ic *initialConfig
	if c.configFile != "" {
		if ic, err = readInitialConfig(c.configFile); err != nil {
			logger.Error("edgehub: bad --config file", "err", err)
			return exitUsage
		}
	}
	if err := serveMovable(ctx, c, ic, logger); err != nil { // storeloc_serve.go
		logger.Error("edgehub stopped with an error", "err", err)
		return exitError
	}
	return exitOK
}

// applyInitialConfig puts the --config identities into the cache and applies its routes.
func applyInitialConfig(ctx context.Context, ic *initialConfig, ids *identities.Cache, srv *hub.Server) error {
	if ic == nil {
		return nil
	}
	for _, r := range ic.Identities {
		if err := ids.Put(ctx, r); err != nil {
			return fmt.Errorf("--config identities: %w", err)
		}
	}
	if ic.hub != nil {
		if err := srv.ApplyConfig(ic.hub); err != nil {
			return fmt.Errorf("--config edgeHub: %w", err)
		}
	}
	return nil
}

// Metrics HTTP server limits: a scrape is one small request.
const (
	metricsReadHeaderTimeout = 10 * time.Second
	metricsScrapeTimeout     = 10 * time.Second
	metricsMaxInFlight       = 4
)

// startMetrics serves the metrics at /metrics on --metrics-addr until the returned stop
// is called, and returns the bound address ("" and a no-op stop when disabled).
func startMetrics(c config, srv *hub.Server, st *store.Store, logger *slog.Logger) (string, func(), error) {
	if c.metricsAddr == "" {
		return "", func() {}, nil
	}
	hc, err := hub.NewCollector(srv, st, hub.CollectorOptions{StoreMaxBytes: c.storeMaxBytes})
	if err != nil {
		return "", nil, err
	}
	reg := prometheus.NewRegistry()
	hubReg := prometheus.WrapRegistererWith(prometheus.Labels{"iothub": c.iotHubHostName, "edge_device": c.edgeDeviceID}, reg)
	for _, err := range []error{
		hubReg.Register(hc),
		reg.Register(collectors.NewGoCollector()),
		reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})),
	} {
		if err != nil {
			return "", nil, fmt.Errorf("metrics: %w", err)
		}
	}
	l, err := net.Listen("tcp", c.metricsAddr)
	if err != nil {
		return "", nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	errLog := slog.NewLogLogger(logger.With("component", "metrics").Handler(), slog.LevelWarn)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            errLog,
		ErrorHandling:       promhttp.ContinueOnError, // one bad metric does not hide the others
		Registry:            reg,
		MaxRequestsInFlight: metricsMaxInFlight,
		Timeout:             metricsScrapeTimeout,
	})))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: metricsReadHeaderTimeout, ErrorLog: errLog}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server stopped; the hub keeps running without it", "err", err)
		}
	}()
	return l.Addr().String(), func() {
		_ = hs.Close()
		<-done
	}, nil
}
