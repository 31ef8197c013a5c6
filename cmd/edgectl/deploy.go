package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/outpost-edge/outpost/runtime/deployment"
)

// deployOptions are edgectl deploy's flags.
type deployOptions struct {
	serviceCSFile string
	device        string
	serviceURL    string
	caFile        string
	timeout       time.Duration
	pollInterval  time.Duration
	noWait        bool
}

// twinReader reads a module twin; *serviceClient is one, tests use stubs.
type twinReader interface {
	ModuleTwin(ctx context.Context, device, module string) (moduleTwin, error)
}

// deployOutput is edgectl deploy's JSON.
type deployOutput struct {
	Device  string      `json:"device"`
	Version int64       `json:"version"`
	Result  string      `json:"result"` // succeeded, failed, timeout, sent
	State   deployState `json:"state"`
}

// Bar width of the download progress bar.
const barWidth = 30

func newDeployCmd(a *app) *cobra.Command {
	var o deployOptions
	cmd := &cobra.Command{
		Use:   "deploy MANIFEST",
		Short: "Deploy a manifest to the device and follow it until every module runs",
		Long: `Deploy a manifest (modulesContent JSON, as for az iot edge set-modules) to an
edge device through IoT Hub's service API, then follow the $edgeAgent reported
properties until the agent has applied it and every module runs (or is stopped,
as desired), printing each module's progress and a progress bar while images
download.

The manifest is validated first, with the agent's own parser: a rejected
manifest is not sent, and the error names the field. The service connection
string needs the iothubowner policy (or RegistryWrite and ServiceConnect).

Exit status: 0 every module is as desired; 1 the manifest is invalid, the hub
refused it, the agent rejected it or could not apply it, or a module failed;
3 not done within --timeout (the deployment stays in place).` + "\n" + exitHelp,
		Args: exactArgs(1, "one manifest file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.deploy(cmd.Context(), args[0], o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.serviceCSFile, "service-connection-string-file", "", "file holding the hub's service connection string, iothubowner (default $EDGECTL_SERVICE_CONNECTION_STRING_FILE)")
	fl.StringVar(&o.device, "device", "", "the edge device's id (default: the agent's)")
	fl.StringVar(&o.serviceURL, "service-url", "", "the hub's service API base URL (default: the agent's --service-url for the same hub, else https://<HostName>)")
	fl.StringVar(&o.caFile, "ca-file", "", "PEM CA to trust for the hub (default: the agent's --ca-file for the same hub, else the system roots)")
	fl.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up following after this long (exit 3)")
	fl.DurationVar(&o.pollInterval, "poll-interval", time.Second, "how often to read the agent's reported properties")
	fl.BoolVar(&o.noWait, "no-wait", false, "send the deployment and exit without following it")
	return cmd
}

// deploy validates, sends and follows a manifest.
func (a *app) deploy(ctx context.Context, path string, o deployOptions) error {
	if o.serviceCSFile == "" {
		o.serviceCSFile = a.Getenv("EDGECTL_SERVICE_CONNECTION_STRING_FILE")
	}
	switch {
	case o.serviceCSFile == "":
		return usage(errors.New("--service-connection-string-file is required (the hub's iothubowner connection string)"))
	case o.timeout <= 0:
		return usage(fmt.Errorf("--timeout %s: want a positive duration", o.timeout))
	case o.pollInterval <= 0:
		return usage(fmt.Errorf("--poll-interval %s: want a positive duration", o.pollInterval))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return failed(fmt.Errorf("manifest: %w", err))
	}
	m, err := deployment.ParseManifest(data)
	if err != nil {
		return failed(fmt.Errorf("%s is not a valid deployment (the agent would answer %d): %s", filepath.Base(path), deployment.StatusCode(err), deployment.Description(err)))
	}
	cs, err := readServiceConnectionString(o.serviceCSFile)
	if err != nil {
		return usage(err)
	}
	// Defaults from the agent on this device, when it is for the same hub.
	ec, _, cfgErr := a.loadConfig(ctx)
	sameHub := cfgErr == nil && ec.IoTHubHostName == cs.HostName
	if o.device == "" {
		if !sameHub || ec.DeviceID == "" {
			return usage(errors.New("--device is required (no agent of this hub on this device to take it from)"))
		}
		o.device = ec.DeviceID
	}
	if o.serviceURL == "" {
		o.serviceURL = "https://" + cs.HostName
		if sameHub && ec.ServiceURL != "" {
			o.serviceURL = ec.ServiceURL
		}
	}
	if o.caFile == "" && sameHub {
		o.caFile = ec.CAFile
	}
	sc, err := newServiceClient(o.serviceURL, cs, o.caFile, a.now)
	if err != nil {
		return usage(err)
	}
	if err := sc.ApplyConfiguration(ctx, o.device, m.Desired); err != nil {
		return failed(fmt.Errorf("deploy to %s: %w", o.device, err))
	}
	// The new desired version, and where the reported section stands.
	t, err := sc.ModuleTwin(ctx, o.device, "$edgeAgent")
	if err != nil {
		return failed(fmt.Errorf("deployment sent, but the $edgeAgent twin cannot be read: %w", err))
	}
	version, _ := toInt(t.Properties.Desired["$version"])
	base, _ := toInt(t.Properties.Reported["$version"])
	if !a.json() {
		fmt.Fprintf(a.Stdout, "Deployed %s to %s: desired version %d.\n", filepath.Base(path), o.device, version)
	}
	if o.noWait {
		if a.json() {
			return a.printJSON(deployOutput{Device: o.device, Version: version, Result: "sent"})
		}
		return nil
	}
	want := expectedModules(m.Agent)
	st, err := followDeploy(ctx, sc, o.device, want, version, base, o, a.progressWriter())
	out := deployOutput{Device: o.device, Version: version, State: st}
	code := exitOK
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		out.Result, code = "timeout", exitTimeout
		st.Message = fmt.Sprintf("not done after %s: %s", o.timeout, st.Message)
	case err != nil:
		return failed(err)
	case st.Phase == phaseSucceeded:
		out.Result = phaseSucceeded
	default:
		out.Result, code = phaseFailed, exitFailed
	}
	out.State = st
	if a.json() {
		if err := a.printJSON(out); err != nil {
			return failed(err)
		}
	} else {
		fmt.Fprintln(a.Stdout, st.Message)
	}
	if code != exitOK {
		return silent(code)
	}
	return nil
}

// progressWriter is where progress lines go: stdout in text mode, nowhere
// with --output json.
func (a *app) progressWriter() io.Writer {
	if a.json() {
		return io.Discard
	}
	return a.Stdout
}

// followDeploy polls the $edgeAgent twin every o.pollInterval until the
// deployment succeeds or fails, printing changes to w. It returns the last
// state, and context.DeadlineExceeded after o.timeout. Failed reads are
// reported once and retried: the hub may be briefly unreachable.
func followDeploy(ctx context.Context, tr twinReader, device string, want []expectedModule, version, base int64, o deployOptions, w io.Writer) (deployState, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var prev deployState
	lastMsg, lastBar, readErr := "", "", ""
	tick := time.NewTicker(o.pollInterval)
	defer tick.Stop()
	for {
		t, err := tr.ModuleTwin(ctx, device, "$edgeAgent")
		switch {
		case err != nil && ctx.Err() != nil:
			return prev, ctxErr(ctx)
		case err != nil:
			if msg := err.Error(); msg != readErr {
				fmt.Fprintf(w, "  cannot read the $edgeAgent twin (retrying): %s\n", msg)
				readErr = msg
			}
		default:
			readErr = ""
			st := evaluateDeploy(want, version, base, parseAgentReport(t.Properties.Reported))
			if st.Phase != phaseWaiting || st.Message != lastMsg {
				for _, line := range changedLines(prev, st) {
					fmt.Fprintln(w, line)
				}
			}
			if st.Phase == phaseWaiting && st.Message != lastMsg {
				fmt.Fprintf(w, "  %s\n", st.Message)
			}
			lastMsg = st.Message
			if st.Downloading > 0 {
				bar := fmt.Sprintf("  %s module(s) ready, %d downloading", progressBar(st.Done, st.Total, barWidth), st.Downloading)
				if bar != lastBar {
					fmt.Fprintln(w, bar)
					lastBar = bar
				}
			}
			prev = st
			if st.Phase == phaseSucceeded || st.Phase == phaseFailed {
				return st, nil
			}
		}
		select {
		case <-ctx.Done():
			return prev, ctxErr(ctx)
		case <-tick.C:
		}
	}
}

// ctxErr is why ctx ended: context.DeadlineExceeded for the timeout,
// context.Canceled for an interrupt.
func ctxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return ctx.Err()
}
