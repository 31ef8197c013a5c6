package hub_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// TestDesired_ReportingFromTheSDKCallbackIsNotHeldUp: the SDK acknowledges a desired
// notification only after its callback returns, and a module commonly reports the new
// setting from that callback. The hub must answer that reported PATCH without first
// waiting for the notification's acknowledgement (it sends notifications at QoS 0, as
// IoT Hub does); otherwise the PATCH would wait for the hub's AckTimeout.
func TestDesired_ReportingFromTheSDKCallbackIsNotHeldUp(t *testing.T) {
	fc := newFakeCloud()
	r := newRelayEnv(t, fc, withOptions(func(o *hub.Options) { o.AckTimeout = 20 * time.Second }))
	_, portText, err := net.SplitHostPort(r.hub.PlainAddr())
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := sas.ParseConnectionString("HostName=" + hubHost + ";DeviceId=" + modA.DeviceID + ";ModuleId=" + modA.ModuleID +
		";SharedAccessKey=" + keyOf(modA) + ";GatewayHostName=127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := moduleclient.New(cs, moduleclient.Options{Plain: true, Port: port, Now: r.clock.Now, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	reported := make(chan error, 8)
	c.OnDesired(func(_ map[string]any, v int64) {
		// Far shorter than AckTimeout: a PATCH held up behind the notification fails.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.UpdateReported(ctx, map[string]any{"seen": v})
		reported <- err
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect: %v", err)
	}
	// Two changes, each reported back from the callback before the next one is made.
	for _, patch := range []string{`{"rate":5}`, `{"rate":6}`} {
		fc.patchDesired(t, modA, patch, true)
		select {
		case err := <-reported:
			if err != nil {
				t.Fatalf("reported PATCH from the desired callback after %s: %v", patch, err)
			}
		case <-ctx.Done():
			t.Fatalf("no report from the desired callback after %s within the deadline", patch)
		}
	}
}
