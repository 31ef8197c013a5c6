package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/outpost-edge/outpost/runtime/agent"
)

// env is what the commands get from the process: output streams, the
// environment and the clock, injected so that tests run the real commands.
type env struct {
	Stdout, Stderr io.Writer
	// Stdin is read by login (the password) and uninstall (the
	// confirmation); nothing to read when nil.
	Stdin  io.Reader
	Getenv func(string) string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Executable is edgectl's own executable, which start runs as the
	// agent's watchdog; os.Executable when nil.
	Executable func() (string, error)
	// DockerLabels are labels the Docker runtime's start puts on the
	// agent's container, and that stop and uninstall require (besides the
	// owner label) of every container they touch, so that tests sharing an
	// engine stay off each other's containers. None on a device.
	DockerLabels map[string]string
}

// defaultDataDir is edgeagent's default --data-dir.
const defaultDataDir = "./edgeagent-data"

// Output formats.
const (
	outputText = "text"
	outputJSON = "json"
)

// app holds the global flags and the environment of one run.
type app struct {
	env
	dataDir string
	socket  string
	output  string
}

func (a *app) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// socketPath is --socket, or mgmt.sock in the data directory.
func (a *app) socketPath() string {
	if a.socket != "" {
		return a.socket
	}
	return filepath.Join(a.dataDir, agent.ManagementSocket)
}

func (a *app) json() bool { return a.output == outputJSON }

// printJSON writes v indented to stdout.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// run runs edgectl with args and returns the exit code.
func run(ctx context.Context, args []string, e env) int {
	if e.Getenv == nil {
		e.Getenv = func(string) string { return "" }
	}
	a := &app{env: e}
	root := newRoot(a)
	root.SetArgs(args)
	root.SetOut(e.Stdout)
	root.SetErr(e.Stderr)
	code, msg := codeOf(root.ExecuteContext(ctx))
	if msg != "" {
		fmt.Fprintf(e.Stderr, "edgectl: %s\n", msg)
	}
	return code
}

// newRoot builds the command tree.
func newRoot(a *app) *cobra.Command {
	dataDir := a.Getenv("EDGEAGENT_DATA_DIR")
	if dataDir == "" {
		dataDir = defaultDataDir
	}
	root := &cobra.Command{
		Use:   "edgectl",
		Short: "Manage the Outpost edge agent and its modules",
		Long: `edgectl manages an Outpost edge device: its installation (setup, start,
stop, restart, login, uninstall, install-service), the modules the edge agent
runs (list, logs, restart MODULE), the agent itself (status, config), the
device's configuration and connectivity (check), and deployments (deploy).

It talks to the agent over the management socket mgmt.sock in the agent's
data directory, and reads the agent's config.json there when the agent is not
running.` + "\n" + exitHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if a.output != outputText && a.output != outputJSON {
				return usage(fmt.Errorf("--output %q: want text or json", a.output))
			}
			if a.dataDir == "" {
				return usage(fmt.Errorf("--data-dir must not be empty"))
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usage(fmt.Errorf("%w\nRun '%s --help' for usage.", err, c.CommandPath()))
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.dataDir, "data-dir", dataDir, "the edge agent's data directory (its --data-dir; default $EDGEAGENT_DATA_DIR or "+defaultDataDir+")")
	pf.StringVar(&a.socket, "socket", "", "the agent's management socket (default <data-dir>/"+agent.ManagementSocket+")")
	pf.StringVarP(&a.output, "output", "o", outputText, "output format: text or json")
	root.AddCommand(
		newListCmd(a),
		newLogsCmd(a),
		newRestartCmd(a),
		newStatusCmd(a),
		newConfigCmd(a),
		newCheckCmd(a),
		newDeployCmd(a),
		newConformanceCmd(a),
		newSetupCmd(a),
		newStartCmd(a),
		newStopCmd(a),
		newLoginCmd(a),
		newLogoutCmd(a),
		newUninstallCmd(a),
		newInstallServiceCmd(a),
		newSuperviseCmd(a),
	)
	return root
}

// exactArgs is cobra.ExactArgs with a usage error (exit 2) naming what is
// expected.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usage(fmt.Errorf("%s takes %s (got %d arguments)\nRun '%s --help' for usage.", cmd.CommandPath(), what, len(args), cmd.CommandPath()))
		}
		return nil
	}
}
