package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/outpost-edge/outpost/runtime/agent"
)

func newListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the modules and their status",
		Long: `List the modules the agent runs, sorted by name, as iotedge list does:

  NAME        STATUS    DESCRIPTION           CONFIG
  edgeAgent   running   Up 2 hours            outpost/edgeagent:1.0
  edgeHub     running   Up 2 hours            outpost/edgehub:1.0
  filter      backoff   Back-off, restart in 20s  example/filter:1.2

STATUS is the module's runtime status (running, stopped, failed, backoff,
downloading, unhealthy, dead, unknown); CONFIG is its image. With --output json
every module's full record is printed.` + "\n" + exitHelp,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			mods, err := a.client().Modules(cmd.Context())
			if err != nil {
				return commandError(err)
			}
			if a.json() {
				if mods == nil {
					mods = []agent.ModuleInfo{}
				}
				return a.printJSON(mods)
			}
			writeModuleTable(a.Stdout, mods)
			return nil
		},
	}
}

// writeModuleTable prints the modules as iotedge list's table.
func writeModuleTable(w io.Writer, mods []agent.ModuleInfo) {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tDESCRIPTION\tCONFIG")
	for _, m := range mods {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, m.RuntimeStatus, m.Description, m.Image)
	}
	tw.Flush()
}

// commandError maps a management API failure to an exit code: 4 when the
// agent cannot be reached, 2 for a request the agent found bad, else 1.
func commandError(err error) error {
	var ue *unavailableError
	var ae *apiError
	switch {
	case errors.As(err, &ue):
		return &exitError{code: exitUnavailable, err: err}
	case errors.As(err, &ae) && ae.status == http.StatusBadRequest:
		return usage(err)
	}
	return failed(err)
}

// logsFlags are the options of edgectl logs.
type logsFlags struct {
	tail       string
	since      string
	until      string
	follow     bool
	timestamps bool
}

// query renders the flags as the management API's query; the agent parses
// the times against its own clock.
func (f logsFlags) query() (url.Values, error) {
	q := url.Values{}
	if f.tail != "" && f.tail != "all" {
		n, err := strconv.Atoi(f.tail)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("--tail %q: want a number of lines or \"all\"", f.tail)
		}
		q.Set("tail", f.tail)
	}
	if f.since != "" {
		q.Set("since", f.since)
	}
	if f.until != "" {
		q.Set("until", f.until)
	}
	if f.follow {
		q.Set("follow", "true")
	}
	if f.timestamps {
		q.Set("timestamps", "true")
	}
	return q, nil
}

// logLine is one line of edgectl logs --output json (JSON lines).
type logLine struct {
	Module string `json:"module"`
	Line   string `json:"line"`
}

func newLogsCmd(a *app) *cobra.Command {
	var f logsFlags
	cmd := &cobra.Command{
		Use:   "logs MODULE",
		Short: "Show a module's logs",
		Long: `Show a module's output (stdout and stderr interleaved), as iotedge logs does.
--since and --until take a duration before now ("10m", "1h30m", "2d"), an RFC
3339 time or Unix seconds. --follow keeps streaming new output until
interrupted. With --output json each line is a JSON object {"module", "line"}.` + "\n" + exitHelp,
		Args: exactArgs(1, "one module name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := f.query()
			if err != nil {
				return usage(err)
			}
			rc, err := a.client().Logs(cmd.Context(), args[0], q)
			if err != nil {
				return commandError(err)
			}
			defer rc.Close()
			if err := a.copyLogs(args[0], rc); err != nil && cmd.Context().Err() == nil {
				return failed(fmt.Errorf("reading the logs of %q: %w", args[0], err))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.tail, "tail", "all", "number of lines to show from the end, or \"all\"")
	fl.StringVar(&f.since, "since", "1d", "only output since this time (duration before now, RFC 3339 or Unix seconds)")
	fl.StringVar(&f.until, "until", "", "only output before this time")
	fl.BoolVarP(&f.follow, "follow", "f", false, "keep streaming new output")
	fl.BoolVar(&f.timestamps, "timestamps", false, "prefix each line with its time")
	return cmd
}

// copyLogs writes the stream to stdout, as is or as JSON lines.
func (a *app) copyLogs(module string, r io.Reader) error {
	if !a.json() {
		_, err := io.Copy(a.Stdout, r)
		return err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	enc := json.NewEncoder(a.Stdout)
	for sc.Scan() {
		if err := enc.Encode(logLine{Module: module, Line: sc.Text()}); err != nil {
			return err
		}
	}
	return sc.Err()
}

// restartOutput is edgectl restart's JSON.
type restartOutput struct {
	Module    string `json:"module"`
	Restarted bool   `json:"restarted"`
}

func newRestartCmd(a *app) *cobra.Command {
	var agentBinary string
	var stopTimeout, startTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "restart [MODULE]",
		Short: "Restart a running module, or without MODULE the whole runtime",
		Long: `With MODULE: stop and start a running module, as the RestartModule direct
method does. The restart is not counted by the module's restart policy. A module
that is not running cannot be restarted (the agent starts it by its restart
policy).

Without MODULE: restart the edge runtime set up with edgectl setup, as
iotedgectl restart did: edgectl stop (the agent and every module), then
edgectl start (the agent, which starts the modules again).` + "\n" + exitHelp,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return exactArgs(1, "one module name, or none to restart the runtime")(cmd, args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return a.restartRuntime(cmd.Context(), agentBinary, stopTimeout, startTimeout)
			}
			if err := a.client().Restart(cmd.Context(), args[0]); err != nil {
				return commandError(err)
			}
			if a.json() {
				return a.printJSON(restartOutput{Module: args[0], Restarted: true})
			}
			fmt.Fprintf(a.Stdout, "Restarted %s\n", args[0])
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&agentBinary, "agent-binary", "", "runtime restart, process runtime: the edgeagent executable")
	fl.DurationVar(&stopTimeout, "stop-timeout", agent.DefaultStopTimeout, "runtime restart: give each module this long to stop")
	fl.DurationVar(&startTimeout, "timeout", startWait, "runtime restart: wait this long for the agent to answer")
	return cmd
}
