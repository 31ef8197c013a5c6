// Command filter is Outpost's temperature filter sample, modelled on the filter of Azure's
// IoT Edge tutorial: it receives tempsensor's messages on its input input1 and forwards to
// its output alertOutput those whose machine.temperature is above a threshold, unchanged
// except for the added application property MessageType=Alert.
//
// The threshold is the module twin's desired property TemperatureThreshold (default 25, and
// again 25 when the property is deleted). Changes apply at once, and the threshold in use is
// reported as the reported property TemperatureThreshold. A desired value that is not a
// number is logged and ignored.
//
// Messages that cannot be checked (not JSON, no numeric machine.temperature, or on another
// input) are logged, counted and dropped; the counts are logged at exit.
//
// A typical deployment routes
//
//	FROM /messages/modules/tempsensor/outputs/temperatureOutput INTO BrokeredEndpoint("/modules/filter/inputs/input1")
//	FROM /messages/modules/filter/outputs/alertOutput INTO $upstream
//
// It takes no settings besides the connection and RuntimeLogLevel (see package modulemain),
// stops within a second on SIGTERM with exit code 0, and exits with 2 on bad configuration
// and 1 when it cannot connect.
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
)

func main() { modulemain.Main(run) }

// run is the module's life; see modulemain.RunFunc.
func run(ctx context.Context, getenv func(string) string, stderr io.Writer) int {
	log, err := modulemain.NewLogger(getenv, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "filter: %v\n", err)
		return modulemain.ExitConfig
	}
	c, err := modulemain.NewClient(getenv, log)
	if err != nil {
		log.Error("filter cannot start", "err", err)
		return modulemain.ExitConfig
	}
	defer c.Close()
	_, module := c.Identity()
	log = log.With("module", module)

	f := newFilter(c, log)
	c.OnInput(f.onInput(ctx))
	c.OnDesired(f.onDesired(ctx))
	if err := modulemain.Connect(ctx, c, log); err != nil {
		if ctx.Err() != nil {
			return modulemain.ExitOK
		}
		log.Error("filter cannot connect", "err", err)
		return modulemain.ExitFailure
	}
	// Read the threshold before reporting it; OnDesired may deliver the same document again.
	if desired, _, err := c.GetTwin(ctx); err == nil {
		f.applyDesired(desired, 0)
	} else if ctx.Err() == nil {
		log.Warn("cannot read the module twin; using the default threshold until it changes", "err", err)
	}
	f.report(ctx)
	log.Info("filter started", "input", inputName, "output", outputName, "threshold", f.currentThreshold())
	<-ctx.Done()
	f.logStats()
	return modulemain.ExitOK
}
