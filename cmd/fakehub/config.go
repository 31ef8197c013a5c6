package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/outpost-edge/outpost/cmd/internal/cli"
)

// config holds the command's settings.
type config struct {
	dataDir       string
	hostname      string
	mqttAddr      string
	plainMQTTAddr string
	httpAddr      string
	plainHTTPAddr string
	logFormat     string
	logLevel      string
	devices       []string // device identities to ensure at start
	edgeDevices   []string // IoT Edge device identities to ensure at start
	modules       []string // "device/module" identities to ensure at start
	logEvents     bool     // log every captured device-to-cloud message
	configFile    string   // --config-file: the TOML configuration file
	printConfig   bool     // --print-config: print the effective configuration and exit
}

// envPrefix starts the environment variable of every flag (cli.EnvName).
const envPrefix = "FAKEHUB"

// Flags with a role in the loading itself.
const (
	configFileFlag  = "config-file"
	printConfigFlag = "print-config"
)

// newFlagSet declares the command's flags, with their defaults, into c.
func newFlagSet(c *config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("fakehub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.dataDir, "data-dir", "./fakehub-data", "directory for the registry, twins, certificates and connection strings")
	fs.StringVar(&c.hostname, "hostname", "localhost", "IoT Hub host name used in connection strings, SAS audiences and the TLS certificate")
	fs.StringVar(&c.mqttAddr, "mqtt-addr", ":8883", "MQTT over TLS listen address")
	fs.StringVar(&c.plainMQTTAddr, "plain-mqtt-addr", "", "plain (no TLS) MQTT listen address; empty disables it")
	fs.StringVar(&c.httpAddr, "http-addr", ":8443", "HTTPS listen address of the service and fake-only APIs")
	fs.StringVar(&c.plainHTTPAddr, "plain-http-addr", "", "plain HTTP listen address of the same APIs; empty disables it")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.Var((*cli.List)(&c.devices), "device", "device id to create at start if absent (repeatable, or comma-separated); its connection string goes to DATA_DIR/devices/ID.connection-string")
	fs.Var((*cli.List)(&c.modules), "module", "DEVICE/MODULE module identity to create at start if absent (the device must exist or be named by --device/--edge-device); connection string in DATA_DIR/devices/DEVICE/MODULE.connection-string")
	fs.BoolVar(&c.logEvents, "log-events", false, "log every captured device-to-cloud message (sender, properties, body) at info level")
	fs.Var((*cli.List)(&c.edgeDevices), "edge-device", "IoT Edge device id to create at start if absent (repeatable, or comma-separated); connection string as for --device")
	fs.StringVar(&c.configFile, configFileFlag, "", "TOML configuration file: flag names as keys (docs/configuration.md); the command line and the environment win over it")
	fs.BoolVar(&c.printConfig, printConfigFlag, false, "print the effective configuration (TOML, with where each value came from) on stdout and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: fakehub [flags]\n\nRuns a fake Azure IoT Hub (see docs/fakehub.md).\n\nFlags (each also read from %s_<FLAG>, e.g. %s, or from the --%s file):\n",
			envPrefix, cli.EnvName(envPrefix, "data-dir"), configFileFlag)
		fs.PrintDefaults()
	}
	return fs
}

// settingsOptions says where the settings come from besides the command line.
func settingsOptions(getenv func(string) string) cli.Options {
	return cli.Options{Prefix: envPrefix, Getenv: getenv, FileFlag: configFileFlag, CommandLineOnly: []string{printConfigFlag}}
}

// parseConfig reads the flags in args over the environment (getenv) over the configuration
// file over the defaults. It returns flag.ErrHelp when help was asked for (the usage is then
// already printed).
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
	if err := validate(c, fs.Args()); err != nil {
		return config{}, nil, s.Annotate(err)
	}
	return c, s, nil
}

// validate checks the settings; args are the command line's positional arguments.
func validate(c config, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q; fakehub takes flags only (fakehub -h lists them)", args[0])
	}
	if err := cli.CheckLogFormat(c.logFormat); err != nil {
		return err
	}
	if _, err := cli.ParseLevel(c.logLevel); err != nil {
		return err
	}
	if c.dataDir == "" {
		return errors.New("--data-dir must not be empty")
	}
	if c.mqttAddr == "" || c.httpAddr == "" {
		return errors.New("--mqtt-addr and --http-addr must not be empty")
	}
	return nil
}
