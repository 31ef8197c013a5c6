package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
	"github.com/outpost-edge/outpost/runtime/iothub"
)

// Names on the wire, as in Azure's TempFilter deployment.
const (
	inputName       = "input1"
	outputName      = "alertOutput"
	thresholdName   = "TemperatureThreshold" // desired and reported property
	alertProperty   = "MessageType"
	alertValue      = "Alert"
	contentTypeJSON = "application/json"
)

// client is the part of moduleclient.Client the filter uses.
type client interface {
	SendOutput(ctx context.Context, output string, m iothub.Message) error
	UpdateReported(ctx context.Context, patch map[string]any) (int64, error)
}

// filter forwards the sensor messages whose machine temperature is above its threshold.
type filter struct {
	client client
	log    *slog.Logger

	mu        sync.Mutex // guards threshold
	threshold float64

	reportMu sync.Mutex // serialises reports so the last one reflects the last change

	received, forwarded, below, dropped atomic.Int64
}

func newFilter(c client, log *slog.Logger) *filter {
	return &filter{client: c, log: log, threshold: defaultThreshold}
}

func (f *filter) currentThreshold() float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.threshold
}

// onInput returns the input callback. Its sends are not cancelled with ctx (the run's):
// a message is acknowledged when the callback returns, so an alert abandoned at SIGTERM
// would be lost. Close ends them instead, and the unacknowledged message is redelivered to
// the next instance.
func (f *filter) onInput(ctx context.Context) func(input string, m iothub.Message) {
	sendCtx := context.WithoutCancel(ctx)
	return func(input string, m iothub.Message) {
		if err := f.handle(sendCtx, input, m); err != nil && !modulemain.Stopped(ctx, err) {
			f.log.Error("alert not forwarded", "err", err)
		}
	}
}

// handle checks one message and forwards it on alertOutput when it is an alert. A message
// that cannot be checked (not JSON, no temperature, another input) is logged, counted and
// dropped; the error returned is only a failure to forward an alert.
func (f *filter) handle(ctx context.Context, input string, m iothub.Message) error {
	f.received.Add(1)
	if input != inputName {
		f.dropped.Add(1)
		f.log.Warn("message on an unknown input dropped", "input", input, "dropped_total", f.dropped.Load())
		return nil
	}
	threshold := f.currentThreshold()
	alert, temp, err := decide(m.Body, threshold)
	if err != nil {
		f.dropped.Add(1)
		f.log.Warn("message dropped", "err", err, "bytes", len(m.Body), "dropped_total", f.dropped.Load())
		return nil
	}
	if !alert {
		f.below.Add(1)
		f.log.Debug("below threshold", "machine_temperature", temp, "threshold", threshold)
		return nil
	}
	if err := f.client.SendOutput(ctx, outputName, alertMessage(m)); err != nil {
		return fmt.Errorf("alert at %v°C: %w", temp, err)
	}
	f.forwarded.Add(1)
	f.log.Info("alert forwarded", "machine_temperature", temp, "threshold", threshold)
	return nil
}

// alertMessage is m as forwarded: the same body and application properties plus
// MessageType=Alert, and the body's content type and encoding (application/json and utf-8
// when m had none: the body was just parsed as JSON). Other system properties (message id,
// connection ids, ...) belong to the original message and are not copied.
func alertMessage(m iothub.Message) iothub.Message {
	props := maps.Clone(m.Properties)
	if props == nil {
		props = map[string]string{}
	}
	props[alertProperty] = alertValue
	sys := map[string]string{iothub.SysContentType: contentTypeJSON, iothub.SysContentEncoding: "utf-8"}
	for _, k := range []string{iothub.SysContentType, iothub.SysContentEncoding} {
		if v := m.System[k]; v != "" {
			sys[k] = v
		}
	}
	return iothub.Message{Body: m.Body, Properties: props, System: sys}
}

// onDesired returns the desired-properties callback: it applies TemperatureThreshold and
// reports the threshold in use, with ctx (the run's).
func (f *filter) onDesired(ctx context.Context) func(patch map[string]any, version int64) {
	return func(patch map[string]any, version int64) {
		if f.applyDesired(patch, version) {
			f.report(ctx)
		}
	}
}

// applyDesired applies TemperatureThreshold from a desired patch (or the whole desired
// document) and reports whether the patch mentioned it. A value that is not a number is
// logged and leaves the threshold as it was.
func (f *filter) applyDesired(patch map[string]any, version int64) bool {
	v, ok := patch[thresholdName]
	if !ok {
		return false
	}
	t, err := parseThreshold(v)
	if err != nil {
		f.log.Warn("desired threshold ignored", "version", version, "err", err, "threshold", f.currentThreshold())
		return false
	}
	f.mu.Lock()
	f.threshold = t
	f.mu.Unlock()
	f.log.Info("threshold set", "version", version, "threshold", t)
	return true
}

// report sends the threshold in use as the reported property TemperatureThreshold. A
// failure is logged; the next change reports again.
func (f *filter) report(ctx context.Context) {
	f.reportMu.Lock()
	defer f.reportMu.Unlock()
	patch := map[string]any{thresholdName: f.currentThreshold()}
	if _, err := f.client.UpdateReported(ctx, patch); err != nil && !modulemain.Stopped(ctx, err) {
		f.log.Warn("reporting the threshold failed", "err", err)
	}
}

// logStats logs what the filter did, at exit.
func (f *filter) logStats() {
	f.log.Info("filter stopped", "received", f.received.Load(), "forwarded", f.forwarded.Load(),
		"below_threshold", f.below.Load(), "dropped", f.dropped.Load())
}
