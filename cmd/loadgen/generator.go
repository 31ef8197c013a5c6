package main

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

// progressEvery is how often a long run logs its progress.
const progressEvery = 10 * time.Second

// sender is the part of moduleclient.Client the generator uses.
type sender interface {
	SendOutput(ctx context.Context, output string, m iothub.Message) error
}

// generator sends the configured messages.
type generator struct {
	cfg     config
	client  sender
	log     *slog.Logger
	name    string // the module id, the bodies' "sender"
	batchID string

	sent, failed, unfinished atomic.Int64
}

// summary is what a run did.
type summary struct {
	sent, failed, unfinished int64
	elapsed                  time.Duration
}

func (s summary) rate() float64 { return ratePerSecond(s.sent, s.elapsed) }

// Run sends messages until the count is reached or ctx is done, keeping at most inFlight
// sends awaiting their acknowledgement and, with a rate, starting message n at
// dueAt(start, n, rate). It returns once every send has finished. Sends cut short by ctx are
// counted as unfinished, not failed: the hub may or may not have them.
func (g *generator) Run(ctx context.Context) summary {
	start := time.Now()
	stopProgress := g.logProgress(ctx, start)
	defer stopProgress()

	slots := make(chan struct{}, g.cfg.inFlight)
	var wg sync.WaitGroup
	for n := uint64(0); g.cfg.count == 0 || n < uint64(g.cfg.count); n++ {
		if g.cfg.rate > 0 && !sleepUntil(ctx, dueAt(start, n, g.cfg.rate)) {
			break
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		seq, output := n+1, g.cfg.outputs[n%uint64(len(g.cfg.outputs))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			g.send(ctx, seq, output)
		}()
	}
	wg.Wait()
	return summary{sent: g.sent.Load(), failed: g.failed.Load(), unfinished: g.unfinished.Load(), elapsed: time.Since(start)}
}

// send sends message seq on output and counts the outcome.
func (g *generator) send(ctx context.Context, seq uint64, output string) {
	m := iothub.Message{
		Body: buildBody(seq, g.name, time.Now(), g.cfg.size),
		Properties: map[string]string{
			"sequenceNumber": strconv.FormatUint(seq, 10),
			"batchId":        g.batchID,
		},
		System: map[string]string{
			iothub.SysContentType:     "application/json",
			iothub.SysContentEncoding: "utf-8",
		},
	}
	switch err := g.client.SendOutput(ctx, output, m); {
	case err == nil:
		g.sent.Add(1)
	case ctx.Err() != nil:
		g.unfinished.Add(1)
	default:
		g.failed.Add(1)
		g.log.Warn("send failed", "seq", seq, "output", output, "err", err)
	}
}

// logProgress logs the counts every progressEvery until the returned function is called.
func (g *generator) logProgress(ctx context.Context, start time.Time) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				sent := g.sent.Load()
				g.log.Info("progress", "sent", sent, "failed", g.failed.Load(),
					"rate_per_second", formatRate(ratePerSecond(sent, time.Since(start))))
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

func formatRate(r float64) string { return strconv.FormatFloat(r, 'f', 1, 64) }
