package hub

import (
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// StoredMessage returns body from sender in the form ingest stores it, for the tests of
// package hub_test that fill a store directly (a backlog, a queue of an earlier version).
func StoredMessage(sender sas.Identity, body string) []byte {
	e := envelope{Sender: sender, Enqueued: time.Now().UTC(), Message: iothub.Message{
		Body:       []byte(body),
		Properties: map[string]string{},
		System:     map[string]string{iothub.SysConnDeviceID: sender.DeviceID},
	}}
	if sender.ModuleID != "" {
		e.Message.System[iothub.SysConnModuleID] = sender.ModuleID
	}
	return e.encode()
}

// SetMethodIdleTimeout shortens the method API's idle timeout for the hubs the test creates
// from now on; it is restored when the test ends. Hub tests do not run in parallel.
func SetMethodIdleTimeout(t testing.TB, d time.Duration) {
	old := testMethodIdleTimeout
	testMethodIdleTimeout = d
	t.Cleanup(func() { testMethodIdleTimeout = old })
}

// UpstreamTurn is upstreamTurn, for the tests of the $upstream pump's turns.
const UpstreamTurn = upstreamTurn
