package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/outpost-edge/outpost/runtime/agent/docker"
	"github.com/outpost-edge/outpost/runtime/certs"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// setupFlags are edgectl setup's options.
type setupFlags struct {
	connectionString     string
	connectionStringFile string
	runtime              string
	edgeHostName         string
	force                bool

	agentImage   string
	network      string
	agentNetwork string
	agentBinary  string
	// requireDigest is the agent's digest policy (Docker runtime).
	requireDigest bool

	caFile          string
	serviceURL      string
	mqttPort        int
	imageDir        string
	parentHostName  string
	reconcilePeriod time.Duration
	logLevel        string

	caLifetime     time.Duration
	serverLifetime time.Duration
	renewBefore    time.Duration
}

// setupOutput is edgectl setup's JSON.
type setupOutput struct {
	ConfigFile string   `json:"configFile"`
	DeviceID   string   `json:"deviceId"`
	HostName   string   `json:"iotHubHostName"`
	Runtime    string   `json:"runtime"`
	EdgeCA     string   `json:"edgeCA"`
	Changes    []change `json:"changes,omitempty"`
	// Result is "created", "unchanged", "changed" or "refused".
	Result string `json:"result"`
}

func newSetupCmd(a *app) *cobra.Command {
	var f setupFlags
	cmd := &cobra.Command{
		Use:   `setup --connection-string "<edge device connection string>"`,
		Short: "Configure this device: connection string, runtime, certificates",
		Long: `Configure the edge runtime on this device, as iotedgectl setup did: check the
edge device's connection string (HostName, DeviceId and a SharedAccessKey, from
which the agent derives every module key), write the configuration
<data-dir>/edge.json (the agent reads it with edgeagent --config) and the
connection string to <data-dir>/device-connection-string (mode 0600), and
create the edge CA and the edge hub's server certificate for --edge-hostname
in <data-dir>/certs. Then start the runtime with edgectl start.

Run again with the same settings, setup changes nothing (and repairs missing
certificates). With other settings it prints what would change and refuses
(exit status 5) unless --force is given; a running runtime uses the new
settings after edgectl restart. Certificate lifetimes apply to certificates
issued from then on.

Exit status: 0 success, 1 failure, 2 bad usage (a malformed connection
string, one without a key), 5 already set up differently (nothing written;
use --force).`,
		Args: exactArgs(0, "no arguments (the connection string goes in --connection-string)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.setup(f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.connectionString, "connection-string", "", "the edge device's connection string (HostName=…;DeviceId=…;SharedAccessKey=…)")
	fl.StringVar(&f.connectionStringFile, "connection-string-file", "", "read the connection string from this file instead (keeps it out of the process list)")
	fl.StringVar(&f.runtime, "runtime", runtimeProcess, "module runtime: process (plain processes) or docker")
	fl.StringVar(&f.edgeHostName, "edge-hostname", "", "the device's host name, where modules and leaf devices reach the edge hub (default: this host's name)")
	fl.BoolVar(&f.force, "force", false, "overwrite an existing setup that differs")
	fl.StringVar(&f.agentImage, "agent-image", defaultAgentImage, "docker: the edge agent's image")
	fl.StringVar(&f.network, "network", docker.DefaultNetwork, "docker: the modules' network (the agent puts them on it, start creates it, uninstall removes it)")
	fl.BoolVar(&f.requireDigest, "require-digest", false, "docker: the agent refuses images not pinned by digest (name@sha256:...)")
	fl.StringVar(&f.agentNetwork, "agent-network", "", "docker: the network of the agent's container (default: --network; \"host\" for a hub on the host's loopback)")
	fl.StringVar(&f.agentBinary, "agent-binary", "", "process: the edgeagent executable (default: next to edgectl, else on PATH)")
	fl.StringVar(&f.caFile, "ca-file", "", "agent: PEM CA to trust for the hub (default: system roots)")
	fl.StringVar(&f.serviceURL, "service-url", "", "agent: IoT Hub service API URL (default https://<HostName>)")
	fl.IntVar(&f.mqttPort, "mqtt-port", 0, "agent: MQTT over TLS port of the hub (default 8883)")
	fl.StringVar(&f.imageDir, "image-dir", "", "agent, process runtime: where registry-style images resolve to executables")
	fl.StringVar(&f.parentHostName, "parent-hostname", "", "agent: nested edge, the parent device's host name")
	fl.DurationVar(&f.reconcilePeriod, "reconcile-period", 0, "agent: reconcile at least this often (default 5s)")
	fl.StringVar(&f.logLevel, "log-level", "", "agent: debug, info, warn or error (default info)")
	fl.DurationVar(&f.caLifetime, "ca-lifetime", certs.DefaultCALifetime, "lifetime of the edge CA certificate")
	fl.DurationVar(&f.serverLifetime, "server-lifetime", certs.DefaultServerLifetime, "lifetime of the edge hub's server certificate")
	fl.DurationVar(&f.renewBefore, "renew-before", certs.DefaultRenewBefore, "renew certificates this long before they expire (edgectl check warns from then on)")
	return cmd
}

// readCSFlag returns the connection string from --connection-string or
// --connection-string-file, checked for an edge device.
func readCSFlag(f setupFlags) (sas.ConnectionString, error) {
	text, from := f.connectionString, "--connection-string"
	switch {
	case text != "" && f.connectionStringFile != "":
		return sas.ConnectionString{}, usage(errors.New("give --connection-string or --connection-string-file, not both"))
	case f.connectionStringFile != "":
		b, err := os.ReadFile(f.connectionStringFile)
		if err != nil {
			return sas.ConnectionString{}, failed(fmt.Errorf("--connection-string-file: %w", err))
		}
		text, from = strings.TrimSpace(string(b)), fmt.Sprintf("--connection-string-file %q", f.connectionStringFile)
	case text == "":
		return sas.ConnectionString{}, usage(errors.New(`--connection-string is required: the edge device's connection string, "HostName=<hub>;DeviceId=<device>;SharedAccessKey=<key>" (az iot hub device-identity connection-string show --device-id <device> --hub-name <hub>)`))
	}
	cs, err := checkDeviceCS(text)
	if err != nil {
		return cs, usage(fmt.Errorf("%s: %w", from, err))
	}
	return cs, nil
}

// checkDeviceCS parses an edge device's connection string. Errors never
// quote a key.
func checkDeviceCS(text string) (sas.ConnectionString, error) {
	const noKey = "it has no SharedAccessKey: the agent derives every module key from the device key, so use the edge device's symmetric key connection string"
	cs, err := sas.ParseConnectionString(text)
	if err != nil {
		if !hasKeyPart(text) {
			return cs, fmt.Errorf("%s (%w)", noKey, err)
		}
		return cs, err
	}
	switch {
	case cs.IsService():
		return sas.ConnectionString{}, fmt.Errorf("want an edge device's connection string (with DeviceId), got a service connection string %s", cs.Redacted())
	case cs.ModuleID != "":
		return sas.ConnectionString{}, fmt.Errorf("want the edge device's connection string, got a module's (%s)", cs.Redacted())
	case cs.SharedAccessKey == "":
		return sas.ConnectionString{}, errors.New(noKey)
	}
	return cs, nil
}

// hasKeyPart reports whether text has a non-empty SharedAccessKey part.
func hasKeyPart(text string) bool {
	for _, part := range strings.Split(text, ";") {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "SharedAccessKey") && strings.TrimSpace(v) != "" {
			return true
		}
	}
	return false
}

// buildSetup is the configuration setup writes for f in dataDir (absolute).
func buildSetup(f setupFlags, dataDir string) (edgeConfig, error) {
	if f.runtime != runtimeProcess && f.runtime != runtimeDocker {
		return edgeConfig{}, fmt.Errorf("--runtime %q: want %s or %s", f.runtime, runtimeProcess, runtimeDocker)
	}
	host := strings.ToLower(strings.TrimSpace(f.edgeHostName))
	if host == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		host = strings.ToLower(h)
	}
	if f.mqttPort < 0 || f.mqttPort > 65535 {
		return edgeConfig{}, fmt.Errorf("--mqtt-port %d: want 1..65535", f.mqttPort)
	}
	if f.reconcilePeriod < 0 {
		return edgeConfig{}, fmt.Errorf("--reconcile-period %s: want a positive duration", f.reconcilePeriod)
	}
	switch f.logLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return edgeConfig{}, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	abs := func(flag, p string) (string, error) {
		if p == "" {
			return "", nil
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("%s: %w", flag, err)
		}
		return a, nil
	}
	cdir := filepath.Join(dataDir, certsDir)
	c := edgeConfig{
		SchemaVersion: setupSchema,
		Agent: agentSettings{
			ConnectionStringFile: filepath.Join(dataDir, connectionStringFile),
			DataDir:              dataDir,
			Runtime:              f.runtime,
			GatewayHostName:      host,
			ModuleCAFile:         filepath.Join(cdir, certs.DefaultCAFile),
			ServiceURL:           f.serviceURL,
			MQTTPort:             f.mqttPort,
			ParentHostName:       f.parentHostName,
			LogLevel:             f.logLevel,
			CertsDir:             cdir,
			CertCALifetime:       f.caLifetime.String(),
			CertServerLifetime:   f.serverLifetime.String(),
			CertRenewBefore:      f.renewBefore.String(),
		},
	}
	if f.reconcilePeriod > 0 {
		c.Agent.ReconcilePeriod = f.reconcilePeriod.String()
	}
	var err error
	if c.Agent.CAFile, err = abs("--ca-file", f.caFile); err != nil {
		return c, err
	}
	if c.Agent.ImageDir, err = abs("--image-dir", f.imageDir); err != nil {
		return c, err
	}
	switch f.runtime {
	case runtimeDocker:
		// The modules' network is an agent setting (edgeagent --network),
		// so that the agent puts the modules where start created it.
		c.Agent.Network = strings.TrimSpace(f.network)
		if c.Agent.Network == "" {
			c.Agent.Network = docker.DefaultNetwork
		}
		c.Agent.RequireDigest = f.requireDigest
		c.Docker = &dockerSettings{AgentImage: f.agentImage, AgentNetwork: f.agentNetwork}
		if c.Docker.AgentNetwork == "" {
			c.Docker.AgentNetwork = c.Agent.Network
		}
	case runtimeProcess:
		if f.requireDigest {
			return c, errors.New("--require-digest applies to the docker runtime only (the process runtime's images are executables)")
		}
		c.Process = &processSettings{}
		if c.Process.AgentBinary, err = abs("--agent-binary", f.agentBinary); err != nil {
			return c, err
		}
	}
	if _, err := c.certOptions(); err != nil {
		return c, err
	}
	if f.renewBefore >= f.caLifetime || f.renewBefore >= f.serverLifetime {
		return c, fmt.Errorf("--renew-before %s must be shorter than --ca-lifetime %s and --server-lifetime %s", f.renewBefore, f.caLifetime, f.serverLifetime)
	}
	return c, c.validate()
}

// deviceChanges compares the stored connection string with the new one,
// without ever showing a key.
func deviceChanges(path string, cs sas.ConnectionString) []change {
	b, err := os.ReadFile(path)
	if err != nil {
		return []change{{Setting: "connection string", From: "(unreadable: " + err.Error() + ")", To: deviceName(cs)}}
	}
	old, err := sas.ParseConnectionString(strings.TrimSpace(string(b)))
	if err != nil {
		return []change{{Setting: "connection string", From: "(invalid)", To: deviceName(cs)}}
	}
	var out []change
	if deviceName(old) != deviceName(cs) {
		out = append(out, change{Setting: "device", From: deviceName(old), To: deviceName(cs)})
	}
	if old.SharedAccessKey != cs.SharedAccessKey {
		out = append(out, change{Setting: "device key", From: "***", To: "*** (another key)"})
	}
	if old.String() != cs.String() && len(out) == 0 {
		out = append(out, change{Setting: "connection string", From: old.Redacted(), To: cs.Redacted()})
	}
	return out
}

func deviceName(cs sas.ConnectionString) string { return cs.DeviceID + " on " + cs.HostName }

// setup runs edgectl setup.
func (a *app) setup(f setupFlags) error {
	cs, err := readCSFlag(f)
	if err != nil {
		return err
	}
	dataDir, err := filepath.Abs(a.dataDir)
	if err != nil {
		return failed(fmt.Errorf("--data-dir: %w", err))
	}
	c, err := buildSetup(f, dataDir)
	if err != nil {
		return usage(err)
	}
	out := setupOutput{ConfigFile: filepath.Join(dataDir, setupFile), DeviceID: cs.DeviceID, HostName: cs.HostName,
		Runtime: c.Agent.Runtime, EdgeCA: c.Agent.ModuleCAFile, Result: "created"}

	old, rerr := readSetup(dataDir)
	switch {
	case errors.Is(rerr, errNotSetUp):
	case rerr != nil && !f.force:
		return failed(fmt.Errorf("%w; fix it or re-run setup with --force to replace it", rerr))
	case rerr != nil:
		out.Changes = []change{{Setting: setupFile, From: "(invalid)", To: "(new)"}}
		out.Result = "changed"
	default:
		out.Changes = append(deviceChanges(old.Agent.ConnectionStringFile, cs), diffSetup(old.migrated(), c)...)
		out.Result = "changed"
		if len(out.Changes) == 0 {
			out.Result = "unchanged"
		} else if !f.force {
			out.Result = "refused"
			if a.json() {
				_ = a.printJSON(out)
			} else {
				fmt.Fprintf(a.Stdout, "This device is already set up (%s). Setup would change:\n", out.ConfigFile)
				for _, ch := range out.Changes {
					fmt.Fprintf(a.Stdout, "  %s\n", ch)
				}
			}
			return &exitError{code: exitRefused, err: errors.New("already set up with other settings: nothing changed; re-run with --force to apply the changes")}
		}
	}

	if err := a.writeSetupFiles(c, cs); err != nil {
		return failed(err)
	}
	if a.json() {
		return a.printJSON(out)
	}
	a.printSetup(out, c)
	return nil
}

// writeSetupFiles creates the data directory, the connection string file,
// the certificates and edge.json (last: a setup is complete once it
// exists).
func (a *app) writeSetupFiles(c edgeConfig, cs sas.ConnectionString) error {
	if err := os.MkdirAll(c.Agent.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := os.MkdirAll(c.Agent.CertsDir, 0o700); err != nil {
		return fmt.Errorf("certificates directory: %w", err)
	}
	if err := writeFileAtomic(c.Agent.ConnectionStringFile, []byte(cs.String()+"\n"), 0o600); err != nil {
		return err
	}
	opts, err := c.certOptions()
	if err != nil {
		return err
	}
	opts.Now = a.Now
	if _, err := certs.LoadOrCreate(opts); err != nil {
		return fmt.Errorf("certificates in %s: %w", c.Agent.CertsDir, err)
	}
	return writeSetup(c)
}

// printSetup prints setup's text, as iotedgectl setup did.
func (a *app) printSetup(out setupOutput, c edgeConfig) {
	w := a.Stdout
	switch out.Result {
	case "unchanged":
		fmt.Fprintln(w, "Runtime already set up with these settings: nothing changed.")
	case "changed":
		fmt.Fprintln(w, "Runtime setup successfully (changed):")
		for _, ch := range out.Changes {
			fmt.Fprintf(w, "  %s\n", ch)
		}
	default:
		fmt.Fprintln(w, "Runtime setup successfully.")
	}
	fmt.Fprintf(w, "Using configuration: %s\n", out.ConfigFile)
	fmt.Fprintf(w, "  device:         %s on %s (connection string in %s)\n", out.DeviceID, out.HostName, c.Agent.ConnectionStringFile)
	fmt.Fprintf(w, "  runtime:        %s\n", c.Agent.Runtime)
	fmt.Fprintf(w, "  edge hostname:  %s\n", c.Agent.GatewayHostName)
	a.printCert(w, "  edge CA:        ", c.Agent.ModuleCAFile)
	a.printCert(w, "  server cert:    ", filepath.Join(c.Agent.CertsDir, certs.DefaultCertFile))
	running := a.agentAnswers()
	switch {
	case out.Result == "changed" && running:
		fmt.Fprintln(w, "The runtime is running with the old settings: use 'edgectl restart' to apply them.")
	case !running:
		fmt.Fprintln(w, "Use 'edgectl start' to start the runtime.")
	}
}

func (a *app) printCert(w io.Writer, label, path string) {
	info, err := certs.Inspect(path)
	if err != nil {
		fmt.Fprintf(w, "%s%s (%v)\n", label, path, err)
		return
	}
	fmt.Fprintf(w, "%s%s (expires %s)\n", label, path, info.NotAfter.UTC().Format(time.RFC3339))
}
