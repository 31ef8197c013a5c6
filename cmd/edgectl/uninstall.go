package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/outpost-edge/outpost/runtime/agent"
)

func newUninstallCmd(a *app) *cobra.Command {
	var yes bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove the edge runtime: the agent, the modules, their network and volumes, the data directory",
		Long: `Remove the edge runtime from this device, as iotedgectl uninstall did: stop it
(edgectl stop), remove every module the agent owns, and with Docker the
edgeAgent container, the named volumes the modules mounted and the modules'
network (setup --network, azure-iot-edge by default; when Outpost created it),
then delete the data directory with
the configuration, the connection string, the certificates, the registry
logins and the agent's state.

It asks for confirmation on standard input unless --yes is given. It refuses a
data directory that holds no Outpost setup or agent state.` + "\n" + exitHelp,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.uninstall(cmd.Context(), yes, timeout)
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().DurationVar(&timeout, "timeout", agent.DefaultStopTimeout, "give each module this long to stop before killing it")
	return cmd
}

// removableDataDir checks that dir is an Outpost data directory that may
// be deleted whole: it holds a setup or an agent's state, and is not the
// root or the home directory.
func removableDataDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if home, _ := os.UserHomeDir(); abs == "/" || abs == home {
		return "", fmt.Errorf("refusing to delete %s", abs)
	}
	if _, err := os.Stat(abs); errors.Is(err, os.ErrNotExist) {
		return abs, nil
	}
	for _, f := range []string{setupFile, "agent.db", agent.ConfigFile} {
		if _, err := os.Stat(filepath.Join(abs, f)); err == nil {
			return abs, nil
		}
	}
	return "", fmt.Errorf("%s holds no Outpost setup or agent state (%s, agent.db, %s): is --data-dir right?", abs, setupFile, agent.ConfigFile)
}

// confirm asks question and reads the answer from stdin. The question goes
// to stdout, or with --output json to stderr, so that stdout stays JSON.
func (a *app) confirm(question string) bool {
	w := a.Stdout
	if a.json() {
		w = a.Stderr
	}
	fmt.Fprintf(w, "%s [y/N] ", question)
	if a.Stdin == nil {
		fmt.Fprintln(w)
		return false
	}
	line, _ := bufio.NewReader(a.Stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

// uninstallConfig is what uninstall knows of how the runtime runs: the
// setup, or for an agent started by hand or by a service without edgectl
// setup, its last config.json (its runtime and image directory). ok is
// false when neither is there.
func uninstallConfig(dir string) (c edgeConfig, setUp, ok bool, err error) {
	c, err = readSetup(dir)
	if err == nil {
		return c, true, true, nil
	}
	if !errors.Is(err, errNotSetUp) {
		return c, false, false, err
	}
	ec, ferr := readConfigFile(dir)
	if ferr != nil {
		return edgeConfig{}, false, false, nil
	}
	c = edgeConfig{Agent: agentSettings{DataDir: dir, Runtime: ec.Runtime, ImageDir: ec.ImageDir}}
	return c, false, ec.Runtime == runtimeProcess || ec.Runtime == runtimeDocker, nil
}

// uninstall runs edgectl uninstall.
func (a *app) uninstall(ctx context.Context, yes bool, timeout time.Duration) error {
	dir, err := removableDataDir(a.dataDir)
	if err != nil {
		return failed(err)
	}
	c, setUp, known, err := uninstallConfig(dir)
	if err != nil {
		return failed(err)
	}
	if !setUp && a.agentAnswers() {
		return failed(fmt.Errorf("an agent runs with %s, not started by edgectl start: stop it where it was started (systemctl stop, ...) first", dir))
	}
	if !yes {
		what := "the data directory " + dir
		if known {
			what = fmt.Sprintf("the edge agent, every module it runs (%s runtime), ", c.Agent.Runtime)
			if c.Agent.Runtime == runtimeDocker {
				what += "their named volumes, the network " + c.network() + ", "
			}
			what += "and the data directory " + dir + " (configuration, connection string, certificates, registry logins, state)"
		}
		if !a.confirm("This removes " + what + ". Continue?") {
			return failed(errCancelled)
		}
	}
	out := lifecycleOutput{Action: "uninstall", Result: "uninstalled"}
	if known {
		b, err := a.backendFor(c, "")
		if err != nil {
			return failed(err)
		}
		defer b.close()
		st, err := a.stopWith(ctx, b, timeout)
		out.Agent, out.Modules = st.Agent, st.Modules
		if err != nil {
			return err
		}
		removed, err := b.remove(ctx)
		out.Removed = removed
		if err != nil {
			return failed(fmt.Errorf("remove the modules: %w (run uninstall again)", err))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return failed(fmt.Errorf("remove the data directory: %w", err))
	}
	out.Removed = append(out.Removed, "data directory "+dir)
	if a.json() {
		return a.printJSON(out)
	}
	for _, r := range out.Removed {
		fmt.Fprintf(a.Stdout, "  Removed %s\n", r)
	}
	if _, err := os.Stat(defaultUnitPath); err == nil {
		fmt.Fprintf(a.Stdout, "  The service unit %s remains: systemctl disable --now %s && rm %s\n", defaultUnitPath, filepath.Base(defaultUnitPath), defaultUnitPath)
	}
	fmt.Fprintln(a.Stdout, "Runtime uninstalled successfully.")
	return nil
}
