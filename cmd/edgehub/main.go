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
//
// The data directory holds edge-ca.pem (give it to modules and leaf devices so they trust
// the hub), edge-ca-key.pem, server.pem, server-key.pem, identities.db, twins.db and
// store.db.
//
// With --certs-dir the hub serves the edge CA and the server certificate of that directory
// instead (edge-ca.pem, server.pem, server-key.pem: what edgectl setup creates in
// <device data dir>/certs) and never writes them: the edge agent (edgeagent --certs-dir)
// renews them, and the hub reads them again every minute, so new handshakes get a renewed
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
// Every flag can also be set with an environment variable, EDGEHUB_ followed by the flag
// name in upper case with '-' as '_' (EDGEHUB_DATA_DIR, ...); the command line wins. It
// logs to stderr and stops cleanly on SIGINT or SIGTERM.
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
	"path/filepath"
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

	// The upstream link (upstream.go): the flags, and the connection string they lead to
	// (zero without one).
	upstreamCSFile  string
	upstreamCAFile  string
	upstreamPort    int
	identityRefresh time.Duration
	upstreamMode    string // modeExtension or modePerClient
	upstream        sas.ConnectionString
}

// envPrefix starts the environment variable of every flag (cli.EnvName).
const envPrefix = "EDGEHUB"

// parseConfig reads the flags in args over the environment (getenv) over the defaults. It
// returns flag.ErrHelp when help was asked for (the usage is then already printed).
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("edgehub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.dataDir, "data-dir", "./edgehub-data", "directory for certificates, the identity cache and the message store")
	fs.StringVar(&c.iotHubHostName, "iothub-hostname", "", "IoT Hub host name clients put in their username and SAS audience (required)")
	fs.StringVar(&c.gatewayHostName, "gateway-hostname", "localhost", "the edge device's host name: in the TLS certificate, and accepted as SAS audience")
	fs.StringVar(&c.edgeDeviceID, "edge-device-id", "", "the edge device's id; its modules' inputs are served here (required)")
	fs.StringVar(&c.tlsAddr, "tls-addr", ":8883", "MQTT over TLS listen address")
	fs.StringVar(&c.plainAddr, "plain-addr", "", "plain (no TLS) MQTT listen address; empty disables it")
	fs.StringVar(&c.configFile, "config", "", "JSON file with initial $edgeHub desired properties and identities (see the package documentation)")
	fs.IntVar(&c.maxMessageSize, "max-message-size", hub.DefaultMaxLocalMessageSize, "largest message accepted for module-to-module routes, in bytes ($upstream keeps IoT Hub's 256 KB)")
	fs.Int64Var(&c.storeMaxBytes, "store-max-bytes", 0, "cap on stored messages, in bytes; 0 means no cap")
	fs.StringVar(&c.storeFullPolicy, "store-full-policy", store.RejectNew.String(), "when the cap is reached: reject-new or drop-oldest")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "127.0.0.1:9600", "Prometheus metrics listen address (HTTP, path /metrics); empty disables it")
	fs.StringVar(&c.httpsAddr, "https-addr", "", "listen address of the direct method API modules call (HTTPS, edgeHub's port 443); empty disables it")
	fs.StringVar(&c.certsDir, "certs-dir", "", "serve the edge CA and server certificate of this directory (edgectl setup's certs/, renewed by the edge agent) instead of the hub's own in --data-dir; the hub only reads them")
	addUpstreamFlags(fs, &c)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: edgehub [flags]\n\nRuns the Outpost edge hub.\n\nFlags (each also read from %s_<FLAG>, e.g. %s):\n",
			envPrefix, cli.EnvName(envPrefix, "data-dir"))
		fs.PrintDefaults()
	}
	if err := cli.ApplyEnv(fs, envPrefix, getenv); err != nil {
		return config{}, err
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if err := resolveUpstream(&c, getenv); err != nil {
		return config{}, err
	}
	formatErr := cli.CheckLogFormat(c.logFormat)
	switch {
	case fs.NArg() > 0:
		return config{}, fmt.Errorf("unexpected argument %q; edgehub takes flags only (edgehub -h lists them)", fs.Arg(0))
	case c.iotHubHostName == "":
		return config{}, errors.New("--iothub-hostname is required (or an upstream connection string)")
	case c.edgeDeviceID == "":
		return config{}, errors.New("--edge-device-id is required (or an upstream connection string)")
	case c.dataDir == "":
		return config{}, errors.New("--data-dir must not be empty")
	case c.tlsAddr == "":
		return config{}, errors.New("--tls-addr must not be empty")
	case formatErr != nil:
		return config{}, formatErr
	case c.maxMessageSize <= 0:
		return config{}, fmt.Errorf("--max-message-size %d: want a positive number of bytes", c.maxMessageSize)
	case c.storeMaxBytes < 0:
		return config{}, fmt.Errorf("--store-max-bytes %d: want 0 (no cap) or a positive number of bytes", c.storeMaxBytes)
	}
	if _, err := parsePolicy(c.storeFullPolicy); err != nil {
		return config{}, err
	}
	if _, err := cli.ParseLevel(c.logLevel); err != nil {
		return config{}, err
	}
	return c, nil
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
	c, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "edgehub: %v\n", err)
		return exitUsage
	}
	logger, err := cli.NewLogger(c.logFormat, c.logLevel, stderr)
	if err != nil { // validated by parseConfig
		fmt.Fprintf(stderr, "edgehub: %v\n", err)
		return exitUsage
	}
	var ic *initialConfig
	if c.configFile != "" {
		if ic, err = readInitialConfig(c.configFile); err != nil {
			logger.Error("edgehub: bad --config file", "err", err)
			return exitUsage
		}
	}
	if err := serve(ctx, c, ic, logger); err != nil {
		logger.Error("edgehub stopped with an error", "err", err)
		return exitError
	}
	return exitOK
}

// serve wires the hub by hand and runs it until ctx is done.
func serve(ctx context.Context, c config, ic *initialConfig, logger *slog.Logger) error {
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	tlsCerts, err := newServerCerts(ctx, c, logger.With("component", "certs")) // certsdir.go
	if err != nil {
		return err
	}
	ids, err := identities.Open(identities.Options{Path: filepath.Join(c.dataDir, identitiesFile)})
	if err != nil {
		return err
	}
	defer ids.Close()
	twins, storeMaxBytes, err := openTwins(c, logger) // twins.go
	if err != nil {
		return err
	}
	defer twins.Close()
	policy, _ := parsePolicy(c.storeFullPolicy) // validated by parseConfig
	st, err := store.Open(store.Options{
		Path:       filepath.Join(c.dataDir, storeFile),
		MaxBytes:   storeMaxBytes,
		FullPolicy: policy,
		Logger:     logger,
	})
	if err != nil {
		return err
	}
	defer st.Close()

	link, err := newLink(c, ids, logger.With("component", "upstream"))
	if err != nil {
		return err
	}
	srv, err := hub.New(hub.Options{
		IoTHubHostName:      c.iotHubHostName,
		GatewayHostName:     c.gatewayHostName,
		EdgeDeviceID:        c.edgeDeviceID,
		TLSAddr:             c.tlsAddr,
		TLS:                 tlsCerts.tls, // follows renewals without restarting the listener
		PlainAddr:           c.plainAddr,
		HTTPSAddr:           c.httpsAddr,
		MaxLocalMessageSize: c.maxMessageSize,
		Logger:              logger.With("component", "hub"),
	}, link.deps(hub.Deps{Store: st, Identities: ids, IdentityChanges: ids.Changes(), Twins: twins}))
	if err != nil {
		return err
	}
	if err := applyInitialConfig(ctx, ic, ids, srv); err != nil {
		_ = srv.Close()
		return err
	}

	// The store commits while the hub runs; it stops after the hub, so that every publish
	// the hub accepted is committed.
	storeCtx, stopStore := context.WithCancel(context.Background())
	storeDone := make(chan error, 1)
	go func() { storeDone <- st.Run(storeCtx) }()
	defer func() {
		stopStore()
		<-storeDone
	}()

	metricsAddr, stopMetrics, err := startMetrics(c, srv, st, logger)
	if err != nil {
		_ = srv.Close()
		return err
	}
	defer stopMetrics()

	// Certificates are renewed (with --certs-dir: read again) in the background while the
	// hub runs: new handshakes get the renewed certificate, connected clients keep theirs
	// until they reconnect.
	certsCtx, stopCerts := context.WithCancel(ctx)
	certsDone := make(chan error, 1)
	go func() { certsDone <- tlsCerts.run(certsCtx) }()
	defer func() {
		stopCerts()
		<-certsDone
	}()

	logger.Info("edgehub ready",
		"tls_address", srv.TLSAddr(), "plain_address", srv.PlainAddr(),
		"edge_device_id", c.edgeDeviceID, "iothub_hostname", c.iotHubHostName,
		"gateway_hostname", c.gatewayHostName,
		"ca_file", tlsCerts.caPath, "metrics_address", metricsAddr, "https_address", srv.HTTPSAddr())
	link.logReady(logger, c)
	defer link.start(ctx, srv)() // the link stops after the hub
	if err := srv.Run(ctx); err != nil {
		return err
	}
	logger.Info("edgehub stopped")
	return nil
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
