package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/outpost-edge/outpost/runtime/agent"
)

// backend is what start, stop, restart, status and uninstall need from
// the way the agent is run: the process runtime's watchdog or the Docker
// container.
type backend interface {
	// start starts the agent, telling it the runtime started at startTime,
	// and describes what now runs it.
	start(ctx context.Context, startTime time.Time) (string, error)
	// supervisor describes what runs the agent (the watchdog, the
	// container), and whether it runs.
	supervisor(ctx context.Context) supervisorState
	// stopAgent stops the agent and what restarts it; "" when nothing ran.
	stopAgent(ctx context.Context) (string, error)
	// stopModules stops every module the agent owns, each given timeout to
	// stop, and returns their names.
	stopModules(ctx context.Context, timeout time.Duration) ([]string, error)
	// remove deletes every module the agent owns (stopped), and for Docker
	// their named volumes and the network; it returns what it removed.
	remove(ctx context.Context) ([]string, error)
	close()
}

// supervisorState describes what runs the agent.
type supervisorState struct {
	Running  bool
	Desc     string
	Log      string // where the agent's output goes, when edgectl knows
	AgentPID int
}

// startWait bounds how long start waits for the agent to answer.
const startWait = time.Minute

// backendFor returns the backend of the setup c.
func (a *app) backendFor(c edgeConfig, agentBinary string) (backend, error) {
	if c.Agent.Runtime == runtimeDocker {
		return newDockerBackend(a, c)
	}
	return &processBackend{a: a, c: c, agentBinary: agentBinary}, nil
}

// executable is edgectl's own executable, which runs the watchdog.
func (a *app) executable() (string, error) {
	if a.Executable != nil {
		return a.Executable()
	}
	return os.Executable()
}

// agentAnswers reports whether the agent answers on its socket.
func (a *app) agentAnswers() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := a.client().Status(ctx)
	return err == nil
}

// lifecycleOutput is the JSON of start, stop, restart and uninstall.
type lifecycleOutput struct {
	Action string `json:"action"`
	// Result is "started", "already-running", "stopped", "restarted" or
	// "uninstalled".
	Result     string   `json:"result"`
	Agent      string   `json:"agent,omitempty"`
	Modules    []string `json:"modules,omitempty"`
	Removed    []string `json:"removed,omitempty"`
	AgentPID   int      `json:"agentPid,omitempty"`
	Supervisor string   `json:"supervisor,omitempty"`
}

func newStartCmd(a *app) *cobra.Command {
	var agentBinary string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start the edge runtime (the agent, which starts the modules)",
		Long: `Start the edge runtime set up with edgectl setup, as iotedgectl start did,
and wait until the agent answers on its management socket.

With the process runtime, the agent runs under a watchdog: a background edgectl
process that restarts the agent with back-off (1 s doubling to 1 min) whenever
it dies, while the modules keep running and are adopted by the new agent. The
agent's output goes to <data-dir>/edgeagent.log. On a real device, prefer a
systemd service (edgectl install-service).

With the Docker runtime, the agent runs as the container edgeAgent (the Docker
socket and the data directory mounted, restart policy unless-stopped), and the
modules' network (setup --network, azure-iot-edge by default) is created.

Modules stopped by edgectl stop are started again by the agent, whatever their
restart policy.` + "\n" + exitHelp,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := a.start(cmd.Context(), agentBinary, timeout)
			if err != nil {
				return err
			}
			return a.printLifecycle(out)
		},
	}
	cmd.Flags().StringVar(&agentBinary, "agent-binary", "", "process runtime: the edgeagent executable (default: the setup's, next to edgectl, else on PATH)")
	cmd.Flags().DurationVar(&timeout, "timeout", startWait, "wait this long for the agent to answer")
	return cmd
}

func newStopCmd(a *app) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Stop the edge runtime: the agent and every module it runs",
		Long: `Stop the edge runtime, as iotedgectl stop did: first the agent and what
restarts it (the watchdog, or the edgeAgent container), then every module the
agent owns, each given --timeout to stop on SIGTERM before it is killed.
edgectl start starts them all again.` + "\n" + exitHelp,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := a.stop(cmd.Context(), timeout)
			if err != nil {
				return err
			}
			return a.printLifecycle(out)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", agent.DefaultStopTimeout, "give each module this long to stop before killing it")
	return cmd
}

// restartRuntime is edgectl restart without a module name.
func (a *app) restartRuntime(ctx context.Context, agentBinary string, stopTimeout, startTimeout time.Duration) error {
	if _, err := a.stop(ctx, stopTimeout); err != nil {
		return err
	}
	out, err := a.start(ctx, agentBinary, startTimeout)
	if err != nil {
		return err
	}
	out.Action, out.Result = "restart", "restarted"
	return a.printLifecycle(out)
}

// setupAndBackend reads the setup and opens its backend.
func (a *app) setupAndBackend(agentBinary string) (edgeConfig, backend, error) {
	c, err := readSetup(a.dataDir)
	if err != nil {
		return c, nil, failed(err)
	}
	b, err := a.backendFor(c, agentBinary)
	if err != nil {
		return c, nil, failed(err)
	}
	return c, b, nil
}

// start runs edgectl start.
func (a *app) start(ctx context.Context, agentBinary string, timeout time.Duration) (lifecycleOutput, error) {
	out := lifecycleOutput{Action: "start"}
	c, b, err := a.setupAndBackend(agentBinary)
	if err != nil {
		return out, err
	}
	defer b.close()
	sup := b.supervisor(ctx)
	if sup.Running {
		out.Result, out.Supervisor, out.AgentPID = "already-running", sup.Desc, sup.AgentPID
		return out, nil
	}
	if st, err := a.client().Status(ctx); err == nil {
		out.Result, out.AgentPID, out.Supervisor = "already-running", st.PID, sup.Desc
		if sup.AgentPID == 0 {
			// An agent runs, but not under edgectl: systemd, or by hand.
			out.Supervisor = fmt.Sprintf("not started by edgectl start (pid %d): manage it where it was started (systemctl, ...)", st.PID)
		}
		return out, nil
	}
	desc, err := b.start(ctx, a.now())
	if err != nil {
		return out, failed(err)
	}
	out.Result, out.Supervisor = "started", desc
	st, err := a.waitAgent(ctx, b, c, timeout)
	if err != nil {
		return out, failed(err)
	}
	out.AgentPID = st.PID
	return out, nil
}

// waitAgent waits until the agent answers, its supervisor gives up, or
// timeout passes.
func (a *app) waitAgent(ctx context.Context, b backend, c edgeConfig, timeout time.Duration) (agent.AgentStatus, error) {
	deadline := time.Now().Add(timeout)
	cl := a.client()
	for {
		st, err := cl.Status(ctx)
		if err == nil {
			return st, nil
		}
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		sup := b.supervisor(ctx)
		if !sup.Running {
			return st, fmt.Errorf("the agent did not start: %s%s", sup.Desc, logTail(sup.Log))
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("the agent does not answer after %s (%s; it keeps trying)%s", timeout, sup.Desc, logTail(sup.Log))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logTail is the end of the agent's log, to show why it failed.
func logTail(path string) string {
	if path == "" {
		return ""
	}
	lines, err := tailLines(path, 10)
	if err != nil || len(lines) == 0 {
		return "; see " + path
	}
	return "; the end of " + path + ":\n  " + strings.Join(lines, "\n  ")
}

// tailLines returns the last n lines of the file at path.
func tailLines(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	const maxTail = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > maxTail {
		f.Seek(fi.Size()-maxTail, io.SeekStart)
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return lines, sc.Err()
}

// stop runs edgectl stop.
func (a *app) stop(ctx context.Context, timeout time.Duration) (lifecycleOutput, error) {
	_, b, err := a.setupAndBackend("")
	if err != nil {
		return lifecycleOutput{Action: "stop"}, err
	}
	defer b.close()
	return a.stopWith(ctx, b, timeout)
}

// stopWith stops the agent, then its modules, through b.
func (a *app) stopWith(ctx context.Context, b backend, timeout time.Duration) (lifecycleOutput, error) {
	out := lifecycleOutput{Action: "stop", Result: "stopped"}
	desc, err := b.stopAgent(ctx)
	if err != nil {
		return out, failed(fmt.Errorf("stop the agent: %w", err))
	}
	out.Agent = desc
	if st, err := a.client().Status(ctx); err == nil {
		// Stopping its modules now would only make it start them again.
		return out, failed(fmt.Errorf("the agent (pid %d) was not started by edgectl start and still runs: stop it where it was started (systemctl stop, ...), then run edgectl stop again to stop the modules", st.PID))
	}
	mods, err := b.stopModules(ctx, timeout)
	out.Modules = mods
	if err != nil {
		return out, failed(fmt.Errorf("stop the modules: %w", err))
	}
	return out, nil
}

// printLifecycle prints the result of start, stop or restart, in
// iotedgectl's words.
func (a *app) printLifecycle(out lifecycleOutput) error {
	if a.json() {
		return a.printJSON(out)
	}
	w := a.Stdout
	switch out.Result {
	case "already-running":
		fmt.Fprintln(w, "Runtime already running.")
		if out.Supervisor != "" {
			fmt.Fprintf(w, "  %s\n", out.Supervisor)
		}
		return nil
	case "stopped":
		if out.Agent != "" {
			fmt.Fprintf(w, "  %s\n", capitalize(out.Agent))
		} else {
			fmt.Fprintln(w, "  The edge agent was not running.")
		}
		if len(out.Modules) > 0 {
			fmt.Fprintf(w, "  Stopped %d module(s): %s\n", len(out.Modules), strings.Join(out.Modules, ", "))
		}
		fmt.Fprintln(w, "Runtime stopped.")
		return nil
	}
	if out.Supervisor != "" {
		fmt.Fprintf(w, "  edge agent pid %d (%s)\n", out.AgentPID, out.Supervisor)
	}
	if out.Result == "restarted" {
		fmt.Fprintln(w, "Runtime restarted.")
	} else {
		fmt.Fprintln(w, "Runtime started.")
	}
	return nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// refineStatus adds to edgectl status what runs the agent, when the device
// was set up with edgectl setup: an agent that does not answer while its
// watchdog or container runs is starting or restarting (UNAVAILABLE), not
// STOPPED.
func (a *app) refineStatus(ctx context.Context, out *statusOutput) {
	c, err := readSetup(a.dataDir)
	if err != nil {
		return
	}
	b, err := a.backendFor(c, "")
	if err != nil {
		out.Supervisor = err.Error()
		return
	}
	defer b.close()
	sup := b.supervisor(ctx)
	out.Supervisor = sup.Desc
	if out.State != stateRunning && sup.Running {
		out.State = stateUnavailable
		out.Reason = fmt.Sprintf("the agent does not answer on its socket: %s is starting or restarting it", sup.Desc)
		if sup.Log != "" {
			out.Reason += "; its log: " + sup.Log
		}
	}
}
