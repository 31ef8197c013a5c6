// Command brokenmodule is the conformance kit's deliberately broken sample module
// (runtime/conformance, edgectl conformance). Without faults it is a conforming module: it
// relays every message of input1 to output1 (as cmd/relayer does), answers the direct
// method "ping" with 200, and reports every desired property back as a reported property.
// The environment variable BROKEN_FAULTS, a comma-separated list, switches on faults that
// each make exactly one conformance check fail:
//
//	identity   before connecting as itself, it publishes telemetry on another module's
//	           topic (devices/{d}/modules/someone-else/messages/events), with its own
//	           credentials: the edge hub refuses it and closes that connection  -> identity
//	sigterm    it ignores SIGTERM (keeps running until killed)                  -> sigterm
//	reconnect  once its connection drops it closes its client and never
//	           connects again                                                    -> reconnect
//	memory     it leaks 8 MiB every 50 ms (touched, so resident), up to 512 MiB   -> memory
//
// cmd/brokenmodule/conformance.json is its spec. Environment besides BROKEN_FAULTS: the
// connection and RuntimeLogLevel (package modulemain).
//
// Exit codes: 0 after SIGTERM, 1 when it cannot connect, 2 on bad configuration.
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
		fmt.Fprintf(stderr, "brokenmodule: %v\n", err)
		return modulemain.ExitConfig
	}
	faults, err := parseFaults(getenv(envFaults))
	if err != nil {
		log.Error("brokenmodule cannot start", "err", err)
		return modulemain.ExitConfig
	}
	if faults.sigterm {
		// The signal still arrives (modulemain's context ends), and is ignored: the module
		// runs on until it is killed.
		log.Warn("fault: SIGTERM will be ignored")
		ctx = context.WithoutCancel(ctx)
	}
	c, err := modulemain.NewClient(getenv, log)
	if err != nil {
		log.Error("brokenmodule cannot start", "err", err)
		return modulemain.ExitConfig
	}
	defer c.Close()
	_, moduleID := c.Identity()
	log = log.With("module", moduleID)
	if faults.memory {
		log.Warn("fault: leaking memory")
		go leak(ctx)
	}
	if faults.identity {
		if err := publishAsAnother(getenv, log); err != nil {
			log.Warn("fault: publishing on another module's topic", "err", err)
		}
	}
	m := &module{client: c, log: log}
	c.OnInput(m.onInput(ctx))
	c.HandleMethod("ping", m.ping)
	c.OnDesired(m.onDesired(ctx))
	if faults.reconnect {
		c.OnConnectionChange(m.neverReconnect)
	}
	if err := modulemain.Connect(ctx, c, log); err != nil {
		if ctx.Err() != nil {
			return modulemain.ExitOK
		}
		log.Error("brokenmodule cannot connect", "err", err)
		return modulemain.ExitFailure
	}
	log.Info("brokenmodule started", "faults", faults.String())
	<-ctx.Done()
	m.reports.Wait() // they end with ctx
	log.Info("brokenmodule stopped", "relayed", m.relayed.Load())
	return modulemain.ExitOK
}
