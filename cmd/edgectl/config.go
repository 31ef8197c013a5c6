package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/outpost-edge/outpost/runtime/agent"
)

// Where a configuration came from.
const (
	sourceAgent = "agent" // the running agent's GET /config
	sourceFile  = "file"  // config.json in the data directory
)

// readConfigFile reads config.json from the data directory.
func readConfigFile(dataDir string) (agent.EffectiveConfig, error) {
	var ec agent.EffectiveConfig
	path := filepath.Join(dataDir, agent.ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return ec, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&ec); err != nil {
		return ec, fmt.Errorf("%s: %w", path, err)
	}
	return ec, nil
}

// loadConfig returns the agent's effective configuration: from the agent
// when it answers, else from config.json. The error says why neither
// worked.
func (a *app) loadConfig(ctx context.Context) (agent.EffectiveConfig, string, error) {
	return loadConfigFrom(ctx, a.client(), a.dataDir)
}

// loadConfigFrom is loadConfig with its collaborators given.
func loadConfigFrom(ctx context.Context, c *agentClient, dataDir string) (agent.EffectiveConfig, string, error) {
	ec, err := c.Config(ctx)
	if err == nil {
		return ec, sourceAgent, nil
	}
	var ue *unavailableError
	if !errors.As(err, &ue) {
		return ec, "", err
	}
	ec, ferr := readConfigFile(dataDir)
	switch {
	case ferr == nil:
		return ec, sourceFile, nil
	case errors.Is(ferr, os.ErrNotExist):
		return ec, "", fmt.Errorf("no agent configuration: no agent answers on %s, and %s does not exist (the agent writes it when it starts)",
			ue.socket, filepath.Join(dataDir, agent.ConfigFile))
	}
	return ec, "", fmt.Errorf("%s; and %w", ue.reason, ferr)
}

// validateConfig lists what is wrong in ec (nil when nothing is).
func validateConfig(ec agent.EffectiveConfig) []string {
	var bad []string
	if ec.ConnectionStringFile == "" {
		bad = append(bad, "connectionStringFile is empty (edgeagent --connection-string-file)")
	}
	if ec.Runtime != "process" && ec.Runtime != "docker" {
		bad = append(bad, fmt.Sprintf("runtime %q: want process or docker", ec.Runtime))
	}
	if ec.GatewayHostName == "" {
		bad = append(bad, "gatewayHostName is empty")
	}
	if ec.MQTTPort <= 0 || ec.MQTTPort > 65535 {
		bad = append(bad, fmt.Sprintf("mqttPort %d: want 1..65535", ec.MQTTPort))
	}
	if d, err := time.ParseDuration(ec.ReconcilePeriod); err != nil || d <= 0 {
		bad = append(bad, fmt.Sprintf("reconcilePeriod %q: want a positive duration", ec.ReconcilePeriod))
	}
	return bad
}

// configOutput is edgectl config's JSON.
type configOutput struct {
	Source string                `json:"source"`
	Config agent.EffectiveConfig `json:"config"`
	// RegistryLogins are the logins stored by edgectl login, without
	// their passwords.
	RegistryLogins []string `json:"registryLogins,omitempty"`
}

func newConfigCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Show the agent's effective configuration",
		Long: `Show the agent's effective configuration: its flags after environment
variables and defaults. It comes from the running agent, or, when the agent is
not running, from config.json in the data directory (written at every start).
No secret is shown: the connection string stays in its file, and the registry
logins stored by edgectl login are listed without their passwords.` + "\n" + exitHelp,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ec, source, err := a.loadConfig(cmd.Context())
			if err != nil {
				return failed(fmt.Errorf("%w: check --data-dir, or start the agent with %s", err, a.startHint()))
			}
			logins, lerr := storedLogins(ec.DataDir)
			if lerr != nil {
				logins = []string{"(" + lerr.Error() + ")"}
			}
			if a.json() {
				return a.printJSON(configOutput{Source: source, Config: ec, RegistryLogins: logins})
			}
			writeConfigText(a.Stdout, ec, source)
			for _, l := range logins {
				fmt.Fprintf(a.Stdout, "registry-login:         %s\n", l)
			}
			return nil
		},
	}
}

// writeConfigText prints ec as aligned "name: value" lines.
func writeConfigText(w interface{ Write([]byte) (int, error) }, ec agent.EffectiveConfig, source string) {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	if source == sourceFile {
		fmt.Fprintf(tw, "# the agent is not running: configuration of its last start (%s)\n", ec.WrittenAt.Format(time.RFC3339))
	}
	orNone := func(s string) string {
		if s == "" {
			return "(none)"
		}
		return s
	}
	for _, kv := range [][2]string{
		{"connection-string-file", ec.ConnectionStringFile},
		{"device-id", orNone(ec.DeviceID)},
		{"iothub-hostname", orNone(ec.IoTHubHostName)},
		{"data-dir", ec.DataDir},
		{"runtime", ec.Runtime},
		{"image-dir", orNone(ec.ImageDir)},
		{"gateway-hostname", ec.GatewayHostName},
		{"parent-hostname", orNone(ec.ParentHostName)},
		{"ca-file", orNone(ec.CAFile)},
		{"module-ca-file", orNone(ec.ModuleCAFile)},
		{"service-url", ec.ServiceURL},
		{"mqtt-port", fmt.Sprint(ec.MQTTPort)},
		{"reconcile-period", ec.ReconcilePeriod},
		{"log-format", ec.LogFormat},
		{"log-level", ec.LogLevel},
		{"version", orNone(ec.Version)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	tw.Flush()
}
