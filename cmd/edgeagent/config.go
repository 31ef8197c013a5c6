package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/cmd/internal/cli"
	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/docker"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
)

// config holds the command's settings.
type config struct {
	connectionStringFile string
	dataDir              string
	runtime              string
	imageDir             string
	// network and requireDigest are the Docker runtime's: the modules'
	// network, and whether only images pinned by digest may run.
	network         string
	requireDigest   bool
	gatewayHostName string
	parentHostName  string
	caFile          string
	moduleCAFile    string
	serviceURL      string
	mqttPort        int
	period          time.Duration
	backoff         restart.Policy // restart back-off: unit, cap, reset, give-up limit
	logFormat       string
	logLevel        string
	// configFile is --config: edgectl setup's edge.json (configfile.go).
	configFile string
	// settingsFile is --config-file: the TOML configuration file.
	settingsFile string
	// printConfig is --print-config: print the effective configuration
	// and exit.
	printConfig bool
	// runtimeStart is --runtime-start-time: when the runtime was last
	// started (edgectl start); zero when not given.
	runtimeStart time.Time
	// certsDir and the lifetimes are the edge certificates the agent
	// renews (none when certsDir is empty).
	certsDir                                string
	caLifetime, serverLifetime, renewBefore time.Duration
}

// envPrefix starts the environment variable of every flag (cli.EnvName).
const envPrefix = "EDGEAGENT"

// Flags with a role in the loading itself.
const (
	configFlag         = "config"      // edgectl setup's edge.json
	settingsFileFlag   = "config-file" // the TOML configuration file
	printConfigFlag    = "print-config"
	runtimeStartFlag   = "runtime-start-time" // set by edgectl start, at every start
	connectionFileFlag = "connection-string-file"
)

// newFlagSet declares the command's flags, with their defaults, into c.
func newFlagSet(c *config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("edgeagent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.connectionStringFile, connectionFileFlag, "", "file holding the edge device's connection string (required)")
	fs.StringVar(&c.dataDir, "data-dir", "./edgeagent-data", "directory for the agent's state (and the process runtime's modules)")
	fs.StringVar(&c.runtime, "runtime", runtimeProcess, "module runtime: process or docker")
	fs.StringVar(&c.imageDir, "image-dir", "", "process runtime: directory where registry-style images resolve to executables")
	fs.StringVar(&c.network, "network", docker.DefaultNetwork, "docker runtime: the bridge network modules join (created when missing; edgectl setup --network)")
	fs.BoolVar(&c.requireDigest, "require-digest", false, "docker runtime: refuse to pull or create a module whose image is not pinned by digest (name@sha256:...)")
	fs.StringVar(&c.gatewayHostName, "gateway-hostname", "localhost", "the edge device's host name, where modules reach edgeHub")
	fs.StringVar(&c.parentHostName, "parent-hostname", "", "nested edge: the parent edge device's host name")
	fs.StringVar(&c.caFile, "ca-file", "", "PEM CA to trust for the hub (MQTT and HTTPS), also given to edgeHub; system roots when empty")
	fs.StringVar(&c.moduleCAFile, "module-ca-file", "", "PEM CA of edgeHub's certificate, given to modules as EdgeModuleCACertificateFile")
	fs.StringVar(&c.serviceURL, "service-url", "", "IoT Hub service API base URL for module identities; default https://<HostName>")
	fs.IntVar(&c.mqttPort, "mqtt-port", moduleclient.DefaultPort, "MQTT over TLS port of the hub (or of the parent)")
	fs.DurationVar(&c.period, "reconcile-period", agent.DefaultPeriod, "reconcile at least this often")
	fs.DurationVar(&c.backoff.Unit, "restart-backoff-unit", restart.DefaultUnit, "first restart back-off; it doubles after each restart")
	fs.DurationVar(&c.backoff.Cap, "restart-backoff-cap", restart.DefaultCap, "longest restart back-off")
	fs.DurationVar(&c.backoff.ResetAfter, "restart-reset-after", restart.DefaultResetAfter, "a module running healthy this long has its restart count reset")
	fs.IntVar(&c.backoff.MaxRestarts, "restart-max", 0, "give a module up (status failed) after this many restarts; 0 never gives up")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error (also given to modules as RuntimeLogLevel)")
	fs.StringVar(&c.certsDir, "certs-dir", "", "directory of the edge CA and the edge hub's server certificate (edgectl setup's certs/), kept valid by the agent: created when missing, renewed before they expire")
	fs.DurationVar(&c.caLifetime, "cert-ca-lifetime", 0, "lifetime of a new edge CA certificate (default 10 years)")
	fs.DurationVar(&c.serverLifetime, "cert-server-lifetime", 0, "lifetime of a new server certificate (default 1 year)")
	fs.DurationVar(&c.renewBefore, "cert-renew-before", 0, "renew certificates this long before they expire (default 30 days, or a third of the shorter lifetime)")
	fs.StringVar(&c.configFile, configFlag, "", `JSON file whose "agent" object sets flags by name (edgectl setup's edge.json); flags and environment variables win, and it wins over --config-file`)
	fs.StringVar(&c.settingsFile, settingsFileFlag, "", "TOML configuration file: flag names as keys (docs/configuration.md); every other source wins over it")
	fs.BoolVar(&c.printConfig, printConfigFlag, false, "print the effective configuration (TOML, with where each value came from) on stdout and exit")
	fs.Func(runtimeStartFlag, "RFC 3339 time the runtime was started (edgectl start passes it): modules that exited before it, or before the host booted, are started again whatever their restart policy", func(v string) error {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return fmt.Errorf("want an RFC 3339 time: %w", err)
		}
		c.runtimeStart = t
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: edgeagent --connection-string-file FILE [flags]\n       edgeagent --config FILE [flags]\n\nRuns the Outpost edge agent.\n\n"+
			"Flags (each also read from %s_<FLAG>, e.g. %s, from the --%s file or from the --%s file):\n",
			envPrefix, cli.EnvName(envPrefix, "data-dir"), configFlag, settingsFileFlag)
		fs.PrintDefaults()
	}
	return fs
}

// settingsOptions says where the settings come from besides the command line
// and edge.json.
func settingsOptions(getenv func(string) string) cli.Options {
	return cli.Options{
		Prefix:          envPrefix,
		Getenv:          getenv,
		FileFlag:        settingsFileFlag,
		CommandLineOnly: []string{printConfigFlag},
		// edge.json is read before the TOML file, so the TOML file cannot name it.
		NotInFile: []string{configFlag, runtimeStartFlag},
	}
}

// parseConfig reads the flags in args over the environment (getenv) over
// edge.json (--config) over the TOML configuration file (--config-file)
// over the defaults. It returns flag.ErrHelp when help was asked for (the
// usage is then already printed).
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	c, _, err := loadConfig(args, getenv, stderr)
	return c, err
}

// loadConfig is parseConfig, also returning where each setting came from.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, *cli.Settings, error) {
	var c config
	fs := newFlagSet(&c, stderr)
	s := cli.NewSettings(fs, settingsOptions(getenv))
	if err := s.Parse(args); err != nil {
		return config{}, nil, err
	}
	if err := s.ApplyEnvironment(); err != nil {
		return config{}, nil, err
	}
	if c.configFile != "" {
		if err := applyConfigFile(s, fs, c.configFile); err != nil { // configfile.go
			return config{}, nil, err
		}
	}
	if err := s.ApplyFile(); err != nil {
		return config{}, nil, err
	}
	if err := validate(c, fs.Args()); err != nil {
		return config{}, nil, s.Annotate(err)
	}
	return c, s, nil
}

// validate checks the settings; args are the command line's positional
// arguments.
func validate(c config, args []string) error {
	formatErr := cli.CheckLogFormat(c.logFormat)
	switch {
	case len(args) > 0:
		return fmt.Errorf("unexpected argument %q; edgeagent takes flags only (edgeagent -h lists them)", args[0])
	case c.connectionStringFile == "":
		return errors.New("--connection-string-file is required")
	case c.dataDir == "":
		return errors.New("--data-dir must not be empty")
	case c.runtime != runtimeProcess && c.runtime != runtimeDocker:
		return fmt.Errorf("--runtime %q: want %s or %s", c.runtime, runtimeProcess, runtimeDocker)
	case c.runtime == runtimeDocker && strings.TrimSpace(c.network) == "":
		return errors.New("--network must not be empty with the docker runtime")
	case c.runtime != runtimeDocker && c.requireDigest:
		// A policy that silently does not apply is worse than a refusal.
		return fmt.Errorf("--require-digest applies to the docker runtime only, not to --runtime %s (whose images are executables)", c.runtime)
	case c.gatewayHostName == "":
		return errors.New("--gateway-hostname must not be empty")
	case c.mqttPort <= 0 || c.mqttPort > 65535:
		return fmt.Errorf("--mqtt-port %d: want 1..65535", c.mqttPort)
	case c.period <= 0:
		return fmt.Errorf("--reconcile-period %s: want a positive duration", c.period)
	case c.backoff.Unit <= 0 || c.backoff.Cap < c.backoff.Unit || c.backoff.ResetAfter <= 0:
		return fmt.Errorf("restart back-off: --restart-backoff-unit %s, --restart-backoff-cap %s, --restart-reset-after %s: want positive durations with the cap at least the unit",
			c.backoff.Unit, c.backoff.Cap, c.backoff.ResetAfter)
	case c.backoff.MaxRestarts < 0:
		return fmt.Errorf("--restart-max %d: want 0 (never give up) or more", c.backoff.MaxRestarts)
	case formatErr != nil:
		return formatErr
	case c.caLifetime < 0 || c.serverLifetime < 0 || c.renewBefore < 0:
		return errors.New("--cert-ca-lifetime, --cert-server-lifetime and --cert-renew-before must not be negative")
	}
	if _, err := cli.ParseLevel(c.logLevel); err != nil {
		return err
	}
	return nil
}
