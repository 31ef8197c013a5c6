// Command tail is the demo's window on the fake IoT Hub (scripts/run-demo.sh): it prints the
// device-to-cloud messages as the hub receives them (long-polling GET /fake/events) and,
// every --status-every, the modules' status that the edge agent reports in the $edgeAgent
// twin, as the hub's web console shows them.
//
// Usage:
//
//	tail --url https://localhost:8443 --ca-file FILE --service-connection-string-file FILE
//	     --device EDGE [--status-every D] [--exit-after N --timeout D]
//
// Each message is one line: the time the hub enqueued it, the sender, "via edgeHub" when
// the edge hub sent it on the module's behalf, the module output, and the body (a
// temperature reading in short). With --exit-after N it exits 0 once N readings from the
// device's tempSensor and N alerts from its filter have arrived through the edge hub, and 1
// at --timeout; otherwise it runs until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // --timeout before --exit-after was reached, or the hub failed
	exitUsage   = 2
)

// config holds the command's settings.
type config struct {
	url         string
	caFile      string
	serviceCS   string // file
	device      string
	statusEvery time.Duration
	exitAfter   int
	timeout     time.Duration
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.url, "url", "https://localhost:8443", "the fake hub's HTTPS base URL")
	fs.StringVar(&c.caFile, "ca-file", "", "PEM CA of the fake hub's certificate (required)")
	fs.StringVar(&c.serviceCS, "service-connection-string-file", "", "file holding the hub's service connection string (required)")
	fs.StringVar(&c.device, "device", "", "the edge device whose modules' status to show (required)")
	fs.DurationVar(&c.statusEvery, "status-every", 30*time.Second, "show the modules' status this often (0: never)")
	fs.IntVar(&c.exitAfter, "exit-after", 0, "exit once this many readings and alerts arrived through the edge hub (0: run until interrupted)")
	fs.DurationVar(&c.timeout, "timeout", 2*time.Minute, "with --exit-after: give up after this long")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	switch {
	case fs.NArg() > 0:
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case c.caFile == "":
		return config{}, errors.New("--ca-file is required")
	case c.serviceCS == "":
		return config{}, errors.New("--service-connection-string-file is required")
	case c.device == "":
		return config{}, errors.New("--device is required")
	case c.exitAfter < 0:
		return config{}, fmt.Errorf("--exit-after %d: want 0 or more", c.exitAfter)
	case c.statusEvery < 0 || c.timeout <= 0:
		return config{}, errors.New("--status-every and --timeout must be positive durations")
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "tail: %v\n", err)
		return exitUsage
	}
	h, err := newHub(c)
	if err != nil {
		fmt.Fprintf(stderr, "tail: %v\n", err)
		return exitUsage
	}
	if c.exitAfter > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	w := &watcher{hub: h, device: c.device, exitAfter: c.exitAfter, statusEvery: c.statusEvery, out: stdout}
	err = w.Run(ctx)
	switch {
	case err == nil && c.exitAfter > 0:
		fmt.Fprintf(stdout, "demo: %d reading(s) from %s/tempSensor and %d alert(s) from %s/filter arrived at the hub through the edge hub\n",
			w.readings, c.device, w.alerts, c.device)
		return exitOK
	case err == nil || (c.exitAfter == 0 && ctx.Err() != nil):
		return exitOK
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintf(stderr, "tail: only %d reading(s) and %d alert(s) through the edge hub within %v, want %d of each\n",
			w.readings, w.alerts, c.timeout, c.exitAfter)
		return exitFailure
	default:
		fmt.Fprintf(stderr, "tail: %v\n", err)
		return exitFailure
	}
}
