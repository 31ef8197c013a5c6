// Command loadgen is Outpost's load generator for benchmarks, after the load-gen module of
// Azure's long-haul tests: it sends numbered messages as fast as asked on one or more
// outputs and prints what it achieved.
//
// Each message body is
//
//	{"seq":N,"sender":"<module id>","sentAt":"2025-01-02T03:04:05.123456789Z","pad":"xxx..."}
//
// padded to exactly MessageSize bytes (bodies cannot be shorter than the unpadded JSON,
// about 100 bytes), with content type application/json, encoding utf-8 and the application
// properties sequenceNumber (N, from 1) and batchId (a random UUID per run), so that a
// receiver can count losses, duplicates and reordering per run.
//
// Environment (besides the connection and RuntimeLogLevel, see package modulemain):
//
//	MessageCount  messages to send, default 0: no limit
//	Rate          messages per second, default 0: as fast as InFlight allows. The schedule
//	              is fixed (message n is due at n/Rate s), so late sends catch up.
//	MessageSize   body size in bytes, default 1024, at most 261120
//	Outputs       comma-separated outputs, default output1; message N goes to the
//	              ((N-1) mod count)-th, in turn
//	InFlight      sends awaiting their acknowledgement at most, default 16 (1-1024)
//
// It logs its progress every 10 s and, when it has sent MessageCount messages or is
// stopped (SIGTERM, within a second), a summary line
//
//	time=... level=INFO msg="loadgen summary" module=loadgen sent=1000 failed=0 unfinished=0 elapsed=1.234s rate_per_second=810.4
//
// where unfinished counts sends cut short by the stop. It then exits: 0, or 1 when any send
// failed or it could not connect, 2 on bad configuration. Unlike tempsensor it does not wait
// to be stopped after its last message; deploy it with restartPolicy "never" or
// "on-failure" to keep the edge agent from starting it again.
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
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return modulemain.ExitConfig
	}
	cfg, err := parseConfig(getenv)
	if err != nil {
		log.Error("loadgen cannot start", "err", err)
		return modulemain.ExitConfig
	}
	c, err := modulemain.NewClient(getenv, log)
	if err != nil {
		log.Error("loadgen cannot start", "err", err)
		return modulemain.ExitConfig
	}
	defer c.Close()
	_, module := c.Identity()
	log = log.With("module", module)

	if err := modulemain.Connect(ctx, c, log); err != nil {
		if ctx.Err() != nil {
			return modulemain.ExitOK
		}
		log.Error("loadgen cannot connect", "err", err)
		return modulemain.ExitFailure
	}
	g := &generator{cfg: cfg, client: c, log: log, name: module, batchID: modulemain.NewBatchID()}
	log.Info("loadgen started", "messages", cfg.count, "rate", cfg.rate, "message_size", cfg.size,
		"outputs", cfg.outputs, "in_flight", cfg.inFlight, "batch_id", g.batchID)
	s := g.Run(ctx)
	log.Info("loadgen summary", "sent", s.sent, "failed", s.failed, "unfinished", s.unfinished,
		"elapsed", s.elapsed, "rate_per_second", formatRate(s.rate()))
	if s.failed > 0 {
		return modulemain.ExitFailure
	}
	return modulemain.ExitOK
}
