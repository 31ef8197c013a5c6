// Command relayer is Outpost's relayer sample, modelled on the Relayer of Azure's
// end-to-end tests: it receives the messages routed to its input and re-sends each one,
// unchanged (body, application properties, message id, correlation id, content type and
// encoding, creation time), on its output.
//
// Environment (besides the connection and RuntimeLogLevel, see package modulemain):
//
//	InputName   the input to relay, default input1; messages on other inputs are dropped
//	OutputName  the output to send on, default output1
//
// The direct method "ping" answers 200 {"message":"pong","received":N,"relayed":N,"failed":N}.
//
// Delivery is at-least-once: a message is acknowledged only once it is relayed, so one in
// flight at SIGTERM is delivered again to the next instance.
//
// It stops within a second on SIGTERM with exit code 0, and exits with 2 on bad
// configuration and 1 when it cannot connect.
package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
)

// Environment variables and their defaults.
const (
	envInputName      = "InputName"
	envOutputName     = "OutputName"
	defaultInputName  = "input1"
	defaultOutputName = "output1"
)

func main() { modulemain.Main(run) }

// config is the module's configuration.
type config struct {
	input, output string
}

// parseConfig reads InputName and OutputName; names with characters that cannot appear in
// an MQTT topic level ('/', '#', '+') are refused.
func parseConfig(getenv func(string) string) (config, error) {
	e := modulemain.NewEnv(getenv)
	c := config{input: e.String(envInputName, defaultInputName), output: e.String(envOutputName, defaultOutputName)}
	for _, v := range []struct{ name, value string }{{envInputName, c.input}, {envOutputName, c.output}} {
		if strings.ContainsAny(v.value, "/#+") {
			e.Invalid(v.name, "an endpoint name cannot contain '/', '#' or '+'")
		}
	}
	if err := e.Err(); err != nil {
		return config{}, err
	}
	return c, nil
}

// run is the module's life; see modulemain.RunFunc.
func run(ctx context.Context, getenv func(string) string, stderr io.Writer) int {
	log, err := modulemain.NewLogger(getenv, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "relayer: %v\n", err)
		return modulemain.ExitConfig
	}
	cfg, err := parseConfig(getenv)
	if err != nil {
		log.Error("relayer cannot start", "err", err)
		return modulemain.ExitConfig
	}
	c, err := modulemain.NewClient(getenv, log)
	if err != nil {
		log.Error("relayer cannot start", "err", err)
		return modulemain.ExitConfig
	}
	defer c.Close()
	_, module := c.Identity()
	log = log.With("module", module)

	r := &relayer{client: c, log: log, input: cfg.input, output: cfg.output}
	c.OnInput(r.onInput(ctx))
	c.HandleMethod("ping", r.ping)
	if err := modulemain.Connect(ctx, c, log); err != nil {
		if ctx.Err() != nil {
			return modulemain.ExitOK
		}
		log.Error("relayer cannot connect", "err", err)
		return modulemain.ExitFailure
	}
	log.Info("relayer started", "input", cfg.input, "output", cfg.output)
	<-ctx.Done()
	r.logStats()
	return modulemain.ExitOK
}
