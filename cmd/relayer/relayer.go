package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"sync/atomic"

	"github.com/outpost-edge/outpost/cmd/internal/modulemain"
	"github.com/outpost-edge/outpost/runtime/iothub"
)

// sender is the part of moduleclient.Client the relayer uses.
type sender interface {
	SendOutput(ctx context.Context, output string, m iothub.Message) error
}

// forwardedSystem are the system properties that describe the message itself and travel
// with it. The others are stamped by the hub for the original sender (connection ids, output
// name, user id) and would be wrong, or refused, on the relayer's copy.
var forwardedSystem = []string{
	iothub.SysMessageID, iothub.SysCorrelationID, iothub.SysContentType,
	iothub.SysContentEncoding, iothub.SysCreationTime,
}

// relayer re-sends every message of one input on one output.
type relayer struct {
	client        sender
	log           *slog.Logger
	input, output string

	received, relayed, failed, ignored atomic.Int64
}

// onInput returns the input callback. Its sends are not cancelled with ctx (the run's): a
// message is acknowledged when the callback returns, so one abandoned at SIGTERM would be
// lost. Close ends them instead, and the unacknowledged message is redelivered later.
func (r *relayer) onInput(ctx context.Context) func(input string, m iothub.Message) {
	sendCtx := context.WithoutCancel(ctx)
	return func(input string, m iothub.Message) {
		if err := r.handle(sendCtx, input, m); err != nil && !modulemain.Stopped(ctx, err) {
			r.log.Error("message not relayed", "err", err)
		}
	}
}

// handle relays m when it came on the relayer's input; messages on other inputs are logged,
// counted and dropped. The error is a failed send.
func (r *relayer) handle(ctx context.Context, input string, m iothub.Message) error {
	r.received.Add(1)
	if input != r.input {
		r.ignored.Add(1)
		r.log.Warn("message on another input ignored", "input", input, "ignored_total", r.ignored.Load())
		return nil
	}
	if err := r.client.SendOutput(ctx, r.output, relayMessage(m)); err != nil {
		r.failed.Add(1)
		return fmt.Errorf("relay from %s to %s: %w", r.input, r.output, err)
	}
	r.relayed.Add(1)
	r.log.Debug("relayed", "bytes", len(m.Body), "sequence_number", m.Properties["sequenceNumber"])
	return nil
}

// relayMessage is m as re-sent: the same body and application properties, and the system
// properties in forwardedSystem.
func relayMessage(m iothub.Message) iothub.Message {
	out := iothub.Message{Body: m.Body, Properties: maps.Clone(m.Properties), System: map[string]string{}}
	for _, k := range forwardedSystem {
		if v, ok := m.System[k]; ok {
			out.System[k] = v
		}
	}
	return out
}

// ping answers the direct method "ping" with 200 and the relayer's counts.
func (r *relayer) ping(context.Context, []byte) (int, []byte) {
	b, _ := json.Marshal(map[string]any{ // a map of strings and numbers always marshals
		"message": "pong", "received": r.received.Load(), "relayed": r.relayed.Load(), "failed": r.failed.Load(),
	})
	return 200, b
}

// logStats logs what the relayer did, at exit.
func (r *relayer) logStats() {
	r.log.Info("relayer stopped", "received", r.received.Load(), "relayed", r.relayed.Load(),
		"failed", r.failed.Load(), "ignored", r.ignored.Load())
}
