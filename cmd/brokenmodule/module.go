package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
)

// The module's conforming behaviour.

const (
	inputName  = "input1"
	outputName = "output1"
)

// client is the part of moduleclient.Client the module uses.
type client interface {
	SendOutput(ctx context.Context, output string, m iothub.Message) error
	UpdateReported(ctx context.Context, patch map[string]any) (int64, error)
	Close() error
}

var _ client = (*moduleclient.Client)(nil)

// module relays input1 to output1, answers ping and reports its desired properties.
type module struct {
	client  client
	log     *slog.Logger
	relayed atomic.Int64
	closing sync.Once

	reports  sync.WaitGroup // reports in flight
	reportMu sync.Mutex
}

// onInput relays messages of input1 to output1 with their body and application
// properties, acknowledging each only once it is sent (so nothing acknowledged is lost).
func (m *module) onInput(ctx context.Context) func(string, iothub.Message) {
	sendCtx := context.WithoutCancel(ctx)
	return func(input string, msg iothub.Message) {
		if input != inputName {
			return
		}
		out := iothub.Message{Body: msg.Body, Properties: maps.Clone(msg.Properties), System: map[string]string{}}
		for _, k := range []string{iothub.SysMessageID, iothub.SysContentType, iothub.SysContentEncoding} {
			if v, ok := msg.System[k]; ok {
				out.System[k] = v
			}
		}
		if err := m.client.SendOutput(sendCtx, outputName, out); err != nil {
			m.log.Warn("message not relayed", "err", err)
			return
		}
		m.relayed.Add(1)
	}
}

// ping answers 200 {"message":"pong"}.
func (m *module) ping(context.Context, []byte) (int, []byte) {
	return 200, []byte(`{"message":"pong"}`)
}

// onDesired reports every desired property back with the same value.
//
// The report is sent from a goroutine of its own, after the callback has returned: the
// client acknowledges the desired patch only when the callback returns, and Outpost's edge
// hub answers a reported PATCH only once the desired patch it delivered before is
// acknowledged, so waiting for the answer inside the callback stalls both until the hub's
// acknowledgement timeout (30 s by default).
func (m *module) onDesired(ctx context.Context) func(map[string]any, int64) {
	return func(patch map[string]any, version int64) {
		report := maps.Clone(patch)
		delete(report, "$version")
		if len(report) == 0 {
			return
		}
		m.reports.Add(1)
		go func() {
			defer m.reports.Done()
			m.reportMu.Lock() // in the order of the patches
			defer m.reportMu.Unlock()
			if _, err := m.client.UpdateReported(ctx, report); err != nil {
				m.log.Warn("reported properties not updated", "err", err)
				return
			}
			b, _ := json.Marshal(report) // came from JSON
			m.log.Info("reported desired properties", "version", version, "properties", string(b))
		}()
	}
}

// neverReconnect is the reconnect fault: the first time the connection drops, the client
// is closed for good.
func (m *module) neverReconnect(connected bool, err error) {
	if connected {
		return
	}
	m.closing.Do(func() {
		m.log.Warn("fault: connection lost; never reconnecting", "err", err)
		go m.client.Close() // not from the client's own callback
	})
}
