package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/outpost-edge/outpost/cmd/internal/cli"
	"github.com/outpost-edge/outpost/runtime/certs"
	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/store"
)

// envPrefix starts the environment variable of every flag (cli.EnvName).
const envPrefix = "EDGEHUB"

// Flags with a role in the loading itself. --config is another file: the JSON file of
// initial $edgeHub desired properties and identities (readInitialConfig).
const (
	settingsFileFlag = "config-file"
	printConfigFlag  = "print-config"
)

// Variables the edge agent injects into edgeHub (edge-runtime-behaviour D.1; Azure's names,
// Outpost's agent sets the same), read as defaults below the EDGEHUB_ variables and the
// flags, so that a deployment need not repeat what the agent knows.
const (
	envIoTHubHostName     = "IOTEDGE_IOTHUBHOSTNAME"
	envDeviceID           = "IOTEDGE_DEVICEID"
	envEdgeDeviceHostName = "EdgeDeviceHostName"
	// envModuleCAFile is, in edgeHub's environment, the CA of its upstream: IoT Hub, or the
	// parent edge device.
	envModuleCAFile = "EdgeModuleCACertificateFile"
	// envServerCertFile and envServerCAChainFile name edgeHub's server certificate and its
	// CA (Azure's agent before the workload API).
	envServerCertFile    = "EdgeModuleHubServerCertificateFile"
	envServerCAChainFile = "EdgeModuleHubServerCAChainCertificateFile"
	// envMQTTPort is, in every module's environment, the MQTT/TLS port of the hub its
	// connection string names: for edgeHub, its upstream.
	envMQTTPort = "OUTPOST_MQTT_PORT"
)

// fallbacks maps the agent's variables to flags.
var fallbacks = []cli.Fallback{
	{Flag: "iothub-hostname", Env: envIoTHubHostName},
	{Flag: "edge-device-id", Env: envDeviceID},
	{Flag: "gateway-hostname", Env: envEdgeDeviceHostName},
	{Flag: "upstream-ca-file", Env: envModuleCAFile},
	{Flag: "certs-dir", Env: envServerCertFile, Value: certsDirOf},
	{Flag: "upstream-port", Env: envMQTTPort},
}

// certsDirOf is the --certs-dir of the server certificate file an agent names in
// EdgeModuleHubServerCertificateFile: the hub reads the certificate, its key and the edge CA
// from one directory, under package certs' names.
func certsDirOf(certFile string) (string, error) {
	if filepath.Base(certFile) != certs.DefaultCertFile {
		return "", fmt.Errorf("want a file named %s, in a directory that also holds %s and %s (the edge hub's --certs-dir)",
			certs.DefaultCertFile, certs.DefaultKeyFile, certs.DefaultCAFile)
	}
	return filepath.Dir(certFile), nil
}

// newFlagSet declares the command's flags, with their defaults, into c.
func newFlagSet(c *config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("edgehub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.dataDir, "data-dir", "./edgehub-data", "directory for certificates, the identity cache and the message store")
	fs.StringVar(&c.iotHubHostName, "iothub-hostname", "", "IoT Hub host name clients put in their username and SAS audience; required unless "+envIoTHubHostName+" or the upstream connection string gives it")
	fs.StringVar(&c.gatewayHostName, "gateway-hostname", "localhost", "the edge device's host name: in the TLS certificate, and accepted as SAS audience; "+envEdgeDeviceHostName+", when set, comes before the default")
	fs.StringVar(&c.edgeDeviceID, "edge-device-id", "", "the edge device's id; its modules' inputs are served here; required unless "+envDeviceID+" or the upstream connection string gives it")
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
	fs.StringVar(&c.certsDir, "certs-dir", "", "serve the edge CA and server certificate of this directory (edgectl setup's certs/, renewed by the edge agent) instead of the hub's own in --data-dir; the hub only reads them; "+envServerCertFile+"'s directory when set")
	fs.StringVar(&c.pprofAddr, "pprof-addr", "", "listen address of Go's profiling endpoints (HTTP, path /debug/pprof/, no authentication: keep it on loopback); empty disables them")
	fs.StringVar(&c.settingsFile, settingsFileFlag, "", "TOML configuration file: flag names as keys (docs/configuration.md); the command line and the environment win over it")
	fs.BoolVar(&c.printConfig, printConfigFlag, false, "print the effective configuration (TOML, with where each value came from) on stdout and exit")
	addUpstreamFlags(fs, c)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: edgehub [flags]\n\nRuns the Outpost edge hub.\n\nFlags (each also read from %s_<FLAG>, e.g. %s, or from the --%s file):\n",
			envPrefix, cli.EnvName(envPrefix, "data-dir"), settingsFileFlag)
		fs.PrintDefaults()
	}
	return fs
}

// settingsOptions says where the settings come from besides the command line.
func settingsOptions(getenv func(string) string) cli.Options {
	return cli.Options{
		Prefix:          envPrefix,
		Getenv:          getenv,
		FileFlag:        settingsFileFlag,
		Fallbacks:       fallbacks,
		CommandLineOnly: []string{printConfigFlag},
	}
}

// parseConfig reads the flags in args over the environment (getenv: the EDGEHUB_ variables,
// then the agent's) over the configuration file over the defaults. It returns flag.ErrHelp
// when help was asked for (the usage is then already printed).
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	c, _, err := loadConfig(args, getenv, stderr)
	return c, err
}

// loadConfig is parseConfig, also returning where each setting came from.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, *cli.Settings, error) {
	var c config
	fs := newFlagSet(&c, stderr)
	s, err := cli.Load(fs, args, settingsOptions(getenv))
	if err != nil {
		return config{}, nil, err
	}
	if err := validate(&c, s, fs.Args(), getenv); err != nil {
		return config{}, nil, s.Annotate(err)
	}
	return c, s, nil
}

// validate checks the settings and completes them from the upstream connection string;
// args are the command line's positional arguments.
func validate(c *config, s *cli.Settings, args []string, getenv func(string) string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q; edgehub takes flags only (edgehub -h lists them)", args[0])
	}
	if err := checkServerCAChain(c, s, getenv); err != nil {
		return err
	}
	if err := resolveUpstream(c, getenv); err != nil { // upstream.go
		return err
	}
	if c.upstream.HostName != "" {
		// For --print-config: the host name and device came from the connection string.
		origin := cli.Origin{Source: cli.SourceEnvironment, Name: envConnectionString}
		if c.upstreamCSFile != "" {
			origin = cli.Origin{Source: cli.SourceFile, Name: c.upstreamCSFile}
		}
		for _, f := range []struct{ name, value string }{{"iothub-hostname", c.iotHubHostName}, {"edge-device-id", c.edgeDeviceID}} {
			if _, err := s.Fill(f.name, f.value, origin); err != nil {
				return err
			}
		}
	}
	formatErr := cli.CheckLogFormat(c.logFormat)
	switch {
	case c.iotHubHostName == "":
		return fmt.Errorf("--iothub-hostname is required (or %s, or an upstream connection string)", envIoTHubHostName)
	case c.edgeDeviceID == "":
		return fmt.Errorf("--edge-device-id is required (or %s, or an upstream connection string)", envDeviceID)
	case c.dataDir == "":
		return errors.New("--data-dir must not be empty")
	case c.tlsAddr == "":
		return errors.New("--tls-addr must not be empty")
	case formatErr != nil:
		return formatErr
	case c.maxMessageSize <= 0:
		return fmt.Errorf("--max-message-size %d: want a positive number of bytes", c.maxMessageSize)
	case c.storeMaxBytes < 0:
		return fmt.Errorf("--store-max-bytes %d: want 0 (no cap) or a positive number of bytes", c.storeMaxBytes)
	}
	if _, err := parsePolicy(c.storeFullPolicy); err != nil {
		return err
	}
	if _, err := cli.ParseLevel(c.logLevel); err != nil {
		return err
	}
	return nil
}

// checkServerCAChain refuses an EdgeModuleHubServerCAChainCertificateFile other than the
// edge CA of the directory the hub takes from EdgeModuleHubServerCertificateFile: the hub
// serves the CA of that directory, and modules given another would not trust it.
func checkServerCAChain(c *config, s *cli.Settings, getenv func(string) string) error {
	chain := getenv(envServerCAChainFile)
	if chain == "" || s.Origin("certs-dir").Name != envServerCertFile {
		return nil
	}
	if want := filepath.Join(c.certsDir, certs.DefaultCAFile); filepath.Clean(chain) != want {
		return fmt.Errorf("environment variable %s=%q: the edge hub serves the CA of its certificate's directory, %s (from %s)",
			envServerCAChainFile, chain, want, envServerCertFile)
	}
	return nil
}
