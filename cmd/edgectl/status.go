package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/outpost-edge/outpost/runtime/agent"
)

// Agent states edgectl status prints, as iotedgectl status did.
const (
	stateRunning     = "RUNNING"     // the agent answers on its socket
	stateStopped     = "STOPPED"     // the agent has run with this data directory, and nothing answers now
	stateUnavailable = "UNAVAILABLE" // no agent state here, or the socket cannot be used
)

// statusOutput is edgectl status's JSON.
type statusOutput struct {
	State  string             `json:"state"`
	Reason string             `json:"reason,omitempty"`
	Agent  *agent.AgentStatus `json:"agent,omitempty"`
	// Supervisor describes what runs the agent (edgectl's watchdog, the
	// edgeAgent container) on a device set up with edgectl setup.
	Supervisor string `json:"supervisor,omitempty"`
}

// hasAgentState reports whether an agent has used dataDir, or edgectl
// setup prepared it: its state database, its configuration file or the
// setup file is there.
func hasAgentState(dataDir string) bool {
	for _, f := range []string{"agent.db", agent.ConfigFile, setupFile} {
		if _, err := os.Stat(filepath.Join(dataDir, f)); err == nil {
			return true
		}
	}
	return false
}

// agentState decides the state edgectl status prints from the error of
// GET /status (nil: the agent answered) and whether the data directory
// holds an agent's state. It is pure.
func agentState(err error, hasState bool, dataDir string) (state, reason string) {
	if err == nil {
		return stateRunning, ""
	}
	var ue *unavailableError
	if !errors.As(err, &ue) {
		return stateUnavailable, err.Error()
	}
	if ue.state == stateStopped && hasState {
		return stateStopped, ue.reason
	}
	if ue.state == stateStopped {
		return stateUnavailable, fmt.Sprintf("%s; no agent has used the data directory %s yet (is --data-dir the agent's?)", ue.reason, dataDir)
	}
	return stateUnavailable, ue.reason
}

func newStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Tell whether the agent is running",
		Long: `Tell whether the edge agent is running: RUNNING (it answers on its socket),
STOPPED (it has run with this data directory but does not answer now) or
UNAVAILABLE (no agent state in the data directory, the socket cannot be used,
or the agent is starting or restarting under edgectl's watchdog or in its
container), with the reason and what to do. A running agent's version, runtime,
device, hub connection and deployment status follow.
Exit status 0 when RUNNING, 4 otherwise.` + "\n" + exitHelp,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := a.client().Status(cmd.Context())
			state, reason := agentState(err, hasAgentState(a.dataDir), a.dataDir)
			out := statusOutput{State: state, Reason: reason}
			if err == nil {
				out.Agent = &st
			}
			a.refineStatus(cmd.Context(), &out)
			if a.json() {
				if perr := a.printJSON(out); perr != nil {
					return failed(perr)
				}
			} else {
				writeStatusText(a.Stdout, out, a.now())
			}
			if state != stateRunning {
				return silent(exitUnavailable)
			}
			return nil
		},
	}
}

// writeStatusText prints edgectl status's text.
func writeStatusText(w io.Writer, out statusOutput, now time.Time) {
	fmt.Fprintf(w, "Outpost edge agent: %s\n", out.State)
	if out.Reason != "" {
		fmt.Fprintf(w, "  %s\n", out.Reason)
	}
	st := out.Agent
	if st == nil {
		if out.Supervisor != "" {
			fmt.Fprintf(w, "  supervisor: %s\n", out.Supervisor)
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	fmt.Fprintf(tw, "  version:\t%s\n", orDash(st.Version))
	fmt.Fprintf(tw, "  runtime:\t%s\n", orDash(st.Runtime))
	fmt.Fprintf(tw, "  device:\t%s on %s\n", orDash(st.DeviceID), orDash(st.IoTHubHostName))
	hub := st.Hub.State
	if !st.Hub.Since.IsZero() {
		hub += " for " + agent.HumanDuration(now.Sub(st.Hub.Since))
	}
	if st.Hub.LastError != "" && st.Hub.State != agent.HubConnected {
		hub += " (last error: " + st.Hub.LastError + ")"
	}
	fmt.Fprintf(tw, "  hub connection:\t%s\n", hub)
	fmt.Fprintf(tw, "  deployment:\t%s\n", describeDeployment(st.Deployment))
	fmt.Fprintf(tw, "  data directory:\t%s\n", orDash(st.DataDir))
	up := ""
	if !st.StartedAt.IsZero() {
		up = ", up " + agent.HumanDuration(now.Sub(st.StartedAt))
	}
	fmt.Fprintf(tw, "  process:\tpid %d%s\n", st.PID, up)
	if out.Supervisor != "" {
		fmt.Fprintf(tw, "  supervisor:\t%s\n", out.Supervisor)
	}
	tw.Flush()
}

// describeDeployment is one line about the agent's deployment.
func describeDeployment(d agent.DeploymentStatus) string {
	if d.Code == 0 {
		return "not reported yet"
	}
	s := fmt.Sprintf("version %d, status %d", d.LastDesiredVersion, d.Code)
	if d.Description != "" {
		s += ": " + d.Description
	}
	if d.DesiredVersion > d.LastDesiredVersion {
		s += fmt.Sprintf(" (version %d received)", d.DesiredVersion)
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
