// Command tempsensor is Outpost's simulated temperature sensor, modelled on Microsoft's
// SimulatedTemperatureSensor module: it sends a reading every SendInterval on its output
// temperatureOutput,
//
//	{"machine":{"temperature":21.3,"pressure":1.03},"ambient":{"temperature":20.8,"humidity":25},
//	 "timeCreated":"2025-01-02T03:04:05.123456789Z"}
//
// with content type application/json, encoding utf-8 and the application properties
// sequenceNumber (from 1) and batchId (random per run). The machine temperature climbs from
// machineTempMin by half a degree per message on average, with noise, until it passes
// machineTempMax, then wanders around it.
//
// Environment (besides the connection, see package modulemain):
//
//	MessageCount   messages to send, default 500; negative (-1) sends forever. After the last
//	               one the module keeps running (answering methods) until stopped, as Azure's
//	               does: exiting would make the agent restart it and start over.
//	SendInterval   wait between messages, default 5s: a Go duration ("500ms"), a number of
//	               seconds ("5") or a .NET time span ("00:00:05")
//	MessageDelay   Azure's name for SendInterval (same forms); set one or the other
//	Seed           integer seeding the noise, for reproducible runs; random by default (logged)
//	machineTempMin, machineTempMax, machinePressureMin, machinePressureMax, ambientTemp,
//	ambientHumidity  the simulator's bounds, Azure's names and defaults (21, 100, 1, 10, 21, 25)
//
// Twin: the desired properties SendInterval (seconds, or a duration string) and SendData
// (false pauses sending) apply at once and are echoed as reported properties, as Azure's
// sensor does; at start the module reports {"status":"running"} with them.
//
// Direct method "reset" (payload ignored) brings the temperature back to machineTempMin and
// answers 200 {"message":"reset"}. The input "control" takes {"command":"reset"} too.
//
// It logs to stderr (RuntimeLogLevel sets the level), stops within a second on SIGTERM with
// exit code 0, and exits with 2 on bad configuration and 1 when it cannot connect.
package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
)

func main() { modulemain.Main(run) }

// run is the module's life; see modulemain.RunFunc.
func run(ctx context.Context, getenv func(string) string, stderr io.Writer) int {
	log, err := modulemain.NewLogger(getenv, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tempsensor: %v\n", err)
		return modulemain.ExitConfig
	}
	cfg, err := parseConfig(getenv)
	if err != nil {
		log.Error("tempsensor cannot start", "err", err)
		return modulemain.ExitConfig
	}
	c, err := modulemain.NewClient(getenv, log)
	if err != nil {
		log.Error("tempsensor cannot start", "err", err)
		return modulemain.ExitConfig
	}
	defer c.Close()
	_, module := c.Identity()
	log = log.With("module", module)

	s := newSensor(cfg, c, log)
	c.HandleMethod("reset", s.resetMethod)
	c.OnDesired(s.onDesired(ctx))
	c.OnInput(s.onInput)
	if err := modulemain.Connect(ctx, c, log); err != nil {
		if ctx.Err() != nil {
			return modulemain.ExitOK
		}
		log.Error("tempsensor cannot connect", "err", err)
		return modulemain.ExitFailure
	}
	// Like Azure's sensor, read the twin before the first message, so that a deployment with
	// SendData=false never sends one. OnDesired delivers the same document again; applying
	// it twice changes nothing.
	if desired, _, err := c.GetTwin(ctx); err == nil {
		s.applyDesired(desired, 0)
	} else if ctx.Err() == nil {
		log.Warn("cannot read the module twin; starting with the environment's settings", "err", err)
	}
	log.Info("tempsensor started", "messages", cfg.messageCount, "send_interval", cfg.interval,
		"seed", cfg.seed, "batch_id", s.batchID)
	s.report(ctx, map[string]any{"status": "running"})
	if err := s.Run(ctx); err != nil {
		log.Error("tempsensor failed", "err", err)
		return modulemain.ExitFailure
	}
	log.Info("tempsensor stopped")
	return modulemain.ExitOK
}

// newRand returns the simulator's random source for seed.
func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}
