package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
	"github.com/outpost-edge/outpost/runtime/iothub"
)

// outputName is the output Azure's sensor sends on; routes name it
// FROM /messages/modules/{module}/outputs/temperatureOutput.
const outputName = "temperatureOutput"

// client is the part of moduleclient.Client the sensor uses.
type client interface {
	SendOutput(ctx context.Context, output string, m iothub.Message) error
	UpdateReported(ctx context.Context, patch map[string]any) (int64, error)
}

// sensor sends the simulator's readings. Run owns the simulator; the method, desired and
// input callbacks only set flags and settings and wake Run.
type sensor struct {
	cfg     config
	client  client
	log     *slog.Logger
	batchID string

	resetReq atomic.Bool   // a reset asked for by the method or the control input
	wake     chan struct{} // coalesced: settings changed

	mu       sync.Mutex // guards settings
	settings settings

	reportMu sync.Mutex // serialises reported-property updates so the last one wins
}

func newSensor(cfg config, c client, log *slog.Logger) *sensor {
	return &sensor{
		cfg: cfg, client: c, log: log, batchID: modulemain.NewBatchID(),
		wake:     make(chan struct{}, 1),
		settings: settings{interval: cfg.interval, sendData: true},
	}
}

func (s *sensor) current() settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settings
}

// defaults are the settings before any desired property: the environment's.
func (s *sensor) defaults() settings { return settings{interval: s.cfg.interval, sendData: true} }

// Run sends messageCount messages (forever when negative), one per interval, then waits for
// ctx to be done, as Azure's sensor does: a module that exited would be restarted by the
// agent and start over. It returns nil when ctx is done, or the error that stopped sending.
func (s *sensor) Run(ctx context.Context) error {
	sim := newSimulator(s.cfg.sim, newRand(s.cfg.seed))
	sent := 0
	for s.cfg.messageCount < 0 || sent < s.cfg.messageCount {
		if s.resetReq.Swap(false) {
			sim.reset()
			s.log.Info("temperature reset", "temperature", s.cfg.sim.machineTempMin)
		}
		started := time.Now()
		r := sim.next(started)
		if s.current().sendData {
			if err := s.send(ctx, sent+1, r); err != nil {
				if modulemain.Stopped(ctx, err) {
					return nil
				}
				return err
			}
			sent++
		}
		if !s.sleep(ctx, started) {
			return nil
		}
	}
	s.log.Info("done sending; waiting to be stopped", "messages", sent)
	<-ctx.Done()
	return nil
}

// sleep waits until the current interval has passed since started, following changes of the
// interval while it waits. It returns false when ctx is done.
func (s *sensor) sleep(ctx context.Context, started time.Time) bool {
	t := time.NewTimer(time.Until(started.Add(s.current().interval)))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-s.wake:
			t.Reset(time.Until(started.Add(s.current().interval)))
		}
	}
}

// send sends reading r as message number seq on temperatureOutput, with Azure's application
// properties sequenceNumber and batchId.
func (s *sensor) send(ctx context.Context, seq int, r reading) error {
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode reading: %w", err) // only NaN or Inf could fail, and the model makes neither
	}
	m := iothub.Message{
		Body:       body,
		Properties: map[string]string{"sequenceNumber": strconv.Itoa(seq), "batchId": s.batchID},
		System: map[string]string{
			iothub.SysContentType:     "application/json",
			iothub.SysContentEncoding: "utf-8",
		},
	}
	if err := s.client.SendOutput(ctx, outputName, m); err != nil {
		return fmt.Errorf("message %d: %w", seq, err)
	}
	s.log.Debug("sent", "seq", seq, "machine_temperature", r.Machine.Temperature)
	return nil
}

// resetMethod answers the direct method "reset": the next reading starts again from the
// baseline temperature.
func (s *sensor) resetMethod(context.Context, []byte) (int, []byte) {
	s.resetReq.Store(true)
	s.log.Info("reset requested by direct method")
	return 200, []byte(`{"message":"reset"}`)
}

// onInput takes commands on the control input; messages on other inputs are ignored.
func (s *sensor) onInput(input string, m iothub.Message) {
	if input != controlInput {
		s.log.Warn("message on an unknown input ignored", "input", input)
		return
	}
	reset, err := parseControl(m.Body)
	if err != nil {
		s.log.Warn("control message ignored", "err", err)
		return
	}
	if reset {
		s.resetReq.Store(true)
		s.log.Info("reset requested by control message")
	}
}

// onDesired returns the desired-properties callback: it applies SendInterval and SendData
// from the twin and reports the settings in use, with ctx (the run's) for the report.
func (s *sensor) onDesired(ctx context.Context) func(patch map[string]any, version int64) {
	return func(patch map[string]any, version int64) {
		s.applyDesired(patch, version)
		s.report(ctx, nil)
	}
}

// applyDesired applies a desired-properties patch (or the whole desired document) and wakes
// Run so that a new interval takes effect at once.
func (s *sensor) applyDesired(patch map[string]any, version int64) {
	s.mu.Lock()
	next, err := s.settings.apply(patch, s.defaults())
	s.settings = next
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("desired properties partly ignored", "version", version, "err", err)
	}
	s.log.Info("settings", "version", version, "send_interval", next.interval, "send_data", next.sendData)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// report sends the current settings, plus extra, as reported properties. Failures are
// logged: the next report carries the same information.
func (s *sensor) report(ctx context.Context, extra map[string]any) {
	s.reportMu.Lock()
	defer s.reportMu.Unlock()
	patch := s.current().reported()
	for k, v := range extra {
		patch[k] = v
	}
	if _, err := s.client.UpdateReported(ctx, patch); err != nil && !modulemain.Stopped(ctx, err) {
		s.log.Warn("reporting properties failed", "err", err)
	}
}
