package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// Results of a check.
const (
	resultOK      = "ok"
	resultWarning = "warning"
	resultError   = "error"
	resultSkipped = "skipped"
)

// Sections of edgectl check's output.
const (
	sectionConfig       = "Configuration checks"
	sectionConnectivity = "Connectivity checks"
)

// outcome is what one check found: a result, the reason (what was found)
// and, for warnings and errors, the fix (what to do about it).
type outcome struct {
	Result string
	Reason string
	Fix    string
}

func ok(format string, args ...any) outcome {
	return outcome{Result: resultOK, Reason: fmt.Sprintf(format, args...)}
}

func warning(reason, fix string) outcome {
	return outcome{Result: resultWarning, Reason: reason, Fix: fix}
}

func failure(reason, fix string) outcome {
	return outcome{Result: resultError, Reason: reason, Fix: fix}
}

func skipped(format string, args ...any) outcome {
	return outcome{Result: resultSkipped, Reason: fmt.Sprintf(format, args...)}
}

// checkListItem is one check in edgectl check --list --output json.
type checkListItem struct {
	ID          string `json:"id"`
	Description string `json:"description"`
}

// checkDef is one check. needs lists checks that must pass (OK) for this
// one to run; otherwise it is skipped, saying which.
type checkDef struct {
	id, section, desc string
	needs             []string
	run               func(ctx context.Context, c *checker) outcome
}

// checkResult is one check's line of the report, and its JSON.
type checkResult struct {
	ID          string `json:"id"`
	Section     string `json:"section"`
	Description string `json:"description"`
	Result      string `json:"result"`
	Reason      string `json:"reason,omitempty"`
	Fix         string `json:"fix,omitempty"`
}

// checkSummary counts the results.
type checkSummary struct {
	OK       int `json:"ok"`
	Warnings int `json:"warnings"`
	Errors   int `json:"errors"`
	Skipped  int `json:"skipped"`
}

// checkReport is edgectl check's JSON.
type checkReport struct {
	Checks  []checkResult `json:"checks"`
	Summary checkSummary  `json:"summary"`
}

// checkOptions are edgectl check's flags.
type checkOptions struct {
	verbose          bool
	dontRun          []string
	warningsAsErrors bool
	list             bool
	certWarning      time.Duration
	minFree          string
	timeout          time.Duration
	csFile           string
	caFile           string
	certFiles        []string
	dockerHost       string
}

// checker holds what the checks share: options, the environment, and what
// earlier checks found.
type checker struct {
	opts    checkOptions
	minFree int64
	dataDir string
	socket  string
	now     func() time.Time
	getenv  func(string) string
	agent   *agentClient
	hint    string

	// Filled by earlier checks.
	config       agent.EffectiveConfig
	configSource string
	device       sas.ConnectionString
	status       *agent.AgentStatus

	// dialHub and httpClient are the network; replaced in tests.
	dialHub    func(ctx context.Context, addr string, c *checker) error
	httpClient func(c *checker) (*http.Client, error)
}

// checks is every check, in the order they run and print.
func checks() []checkDef {
	return []checkDef{
		{id: "config-well-formed", section: sectionConfig, desc: "agent configuration is well-formed", run: checkConfig},
		{id: "connection-string", section: sectionConfig, desc: "device connection string is valid", run: checkConnectionString},
		{id: "certs-not-expiring", section: sectionConfig, desc: "certificates are valid and not about to expire", run: checkCerts},
		{id: "storage-writable-free-space", section: sectionConfig, desc: "data directory is writable and has free space", run: checkStorage},
		{id: "docker-reachable", section: sectionConfig, desc: "container engine is reachable", run: checkDocker},
		{id: "agent-running", section: sectionConfig, desc: "edge agent is running", run: checkAgent},
		{id: "deployment-applied", section: sectionConfig, desc: "deployment is applied and modules run", needs: []string{"agent-running"}, run: checkDeployment},
		{id: "hub-reachable", section: sectionConnectivity, desc: "IoT Hub is reachable (MQTT over TLS)", needs: []string{"connection-string"}, run: checkHub},
		{id: "clock-skew", section: sectionConnectivity, desc: "local clock agrees with the hub's", needs: []string{"hub-reachable"}, run: checkClock},
	}
}

// runChecks runs defs in order, skipping those in dontRun and those whose
// needs did not pass.
func runChecks(ctx context.Context, c *checker, defs []checkDef, dontRun []string) checkReport {
	var rep checkReport
	results := make(map[string]string)
	for _, d := range defs {
		var o outcome
		switch {
		case slices.Contains(dontRun, d.id):
			o = skipped("not run (--dont-run)")
		default:
			for _, n := range d.needs {
				if r := results[n]; r != resultOK {
					o = skipped("needs %s, which %s", n, pastTense(r))
					break
				}
			}
			if o.Result == "" {
				o = d.run(ctx, c)
			}
		}
		results[d.id] = o.Result
		rep.Checks = append(rep.Checks, checkResult{ID: d.id, Section: d.section, Description: d.desc, Result: o.Result, Reason: o.Reason, Fix: o.Fix})
		switch o.Result {
		case resultOK:
			rep.Summary.OK++
		case resultWarning:
			rep.Summary.Warnings++
		case resultError:
			rep.Summary.Errors++
		default:
			rep.Summary.Skipped++
		}
	}
	return rep
}

func pastTense(result string) string {
	switch result {
	case resultWarning:
		return "raised a warning"
	case resultError:
		return "failed"
	case resultSkipped:
		return "was skipped"
	}
	return "did not run"
}

func newCheckCmd(a *app) *cobra.Command {
	var o checkOptions
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check the device's configuration and connectivity",
		Long: `Check the device's configuration and connectivity, and say what to do about
each problem. Every check works offline: an unreachable hub is a warning (the
agent and the modules keep running, and messages wait on the device), and the
checks that need the hub are skipped.

  √ <check> - OK
  ‼ <check> - Warning     followed by the reason and the fix
  × <check> - Error       followed by the reason and the fix

Checks (ids for --dont-run): config-well-formed, connection-string,
certs-not-expiring, storage-writable-free-space, docker-reachable,
agent-running, deployment-applied, hub-reachable, clock-skew.

The exit status is 1 when a check raised an error (or a warning, with
--warnings-as-errors), else 0.` + "\n" + exitHelp,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.list {
				if a.json() {
					list := []checkListItem{}
					for _, d := range checks() {
						list = append(list, checkListItem{ID: d.id, Description: d.desc})
					}
					return a.printJSON(list)
				}
				for _, d := range checks() {
					fmt.Fprintf(a.Stdout, "%-28s %s\n", d.id, d.desc)
				}
				return nil
			}
			if setup, err := readSetup(a.dataDir); err == nil && !cmd.Flags().Changed("cert-warning") {
				// Warn from when the certificates should have been renewed.
				o.certWarning = setup.renewBefore()
			}
			c, err := a.newChecker(o)
			if err != nil {
				return usage(err)
			}
			known := make(map[string]bool)
			for _, d := range checks() {
				known[d.id] = true
			}
			for _, id := range o.dontRun {
				if !known[id] {
					return usage(fmt.Errorf("--dont-run %q: no such check (edgectl check --list shows them)", id))
				}
			}
			rep := runChecks(cmd.Context(), c, checks(), o.dontRun)
			if a.json() {
				if err := a.printJSON(rep); err != nil {
					return failed(err)
				}
			} else {
				writeCheckText(a.Stdout, rep, o.verbose)
			}
			if rep.Summary.Errors > 0 || (o.warningsAsErrors && rep.Summary.Warnings > 0) {
				return silent(exitFailed)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&o.verbose, "verbose", false, "also show the details of checks that passed or were skipped")
	fl.StringSliceVar(&o.dontRun, "dont-run", nil, "ids of checks not to run (comma-separated)")
	fl.BoolVar(&o.warningsAsErrors, "warnings-as-errors", false, "exit 1 on warnings too")
	fl.BoolVar(&o.list, "list", false, "list the checks and exit")
	fl.DurationVar(&o.certWarning, "cert-warning", 30*24*time.Hour, "warn about certificates that expire within this time (default: the setup's --renew-before, else 30 days)")
	fl.StringVar(&o.minFree, "min-free-space", "1GiB", "warn when the data directory's file system has less free space (e.g. 500MiB, 2GiB)")
	fl.DurationVar(&o.timeout, "timeout", 5*time.Second, "timeout of each network check")
	fl.StringVar(&o.csFile, "connection-string-file", "", "the device connection string file (default: the agent's)")
	fl.StringVar(&o.caFile, "ca-file", "", "the CA to trust for the hub (default: the agent's --ca-file)")
	fl.StringSliceVar(&o.certFiles, "cert", nil, "more certificate files to check (repeatable)")
	fl.StringVar(&o.dockerHost, "docker-host", "", "the Docker Engine address (default $DOCKER_HOST or unix:///var/run/docker.sock)")
	return cmd
}

// newChecker checks the flags and builds the checker.
func (a *app) newChecker(o checkOptions) (*checker, error) {
	minFree, err := parseSize(o.minFree)
	if err != nil {
		return nil, fmt.Errorf("--min-free-space: %w", err)
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("--timeout %s: want a positive duration", o.timeout)
	}
	if o.certWarning < 0 {
		return nil, fmt.Errorf("--cert-warning %s: want a duration of 0 or more", o.certWarning)
	}
	for i, id := range o.dontRun {
		o.dontRun[i] = strings.TrimSpace(id)
	}
	return &checker{
		opts: o, minFree: minFree, dataDir: a.dataDir, socket: a.socketPath(), now: a.now, getenv: a.Getenv,
		agent: a.client(), hint: a.startHint(), dialHub: dialHub, httpClient: hubHTTPClient,
	}, nil
}
