package hub_test

import (
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

// desiredPatch waits for the next desired notification and returns its version and body.
func (c *client) desiredPatch(t *testing.T) (int64, string) {
	t.Helper()
	top, body := c.nextOf(t, iothub.KindTwinPatchDesired)
	return top.Version, canon(t, body)
}

func TestDesired_ForwardedThenResyncedAfterTheLinkReturns(t *testing.T) {
	fc := newFakeCloud()
	r := newRelayEnv(t, fc)
	// The client never asks for its twin: it only subscribes to desired patches.
	c := r.connect(modA)
	c.subscribe(t, iothub.DesiredPatchFilter)

	v := fc.patchDesired(t, modA, `{"rate":5}`, true)
	if gotV, got := c.desiredPatch(t); gotV != v || got != `{"$version":2,"rate":5}` {
		t.Fatalf("forwarded patch v%d %s", gotV, got)
	}

	// The link drops; IoT Hub's desired properties change meanwhile (nothing is pushed).
	fc.setConnected(false)
	r.hub.CloudStateChanged(false)
	fc.patchDesired(t, modA, `{"rate":6,"mode":"x"}`, false)
	v = fc.patchDesired(t, modA, `{"mode":null,"extra":{"a":1}}`, false)
	fc.setConnected(true)
	r.hub.CloudStateChanged(true)
	if gotV, got := c.desiredPatch(t); gotV != v || got != `{"$version":4,"extra":{"a":1},"rate":6}` {
		t.Fatalf("resync patch v%d %s, want v%d with the difference only", gotV, got, v)
	}

	// A patch that skips a version (one was lost on the way) makes the hub resync too.
	fc.patchDesired(t, modA, `{"lost":true}`, false)
	v = fc.patchDesired(t, modA, `{"rate":7}`, true)
	if gotV, got := c.desiredPatch(t); gotV != v || got != `{"$version":6,"lost":true,"rate":7}` {
		t.Fatalf("after a gap: v%d %s", gotV, got)
	}
	// A stale notification (not newer than what the client has) is dropped.
	r.hub.CloudStateChanged(false)
	r.hub.CloudStateChanged(true) // a resync with nothing new sends nothing
	c.noMessage(t, 200*time.Millisecond)
}

func TestDesired_SubscribingResyncsAClientThatNeverAskedForItsTwin(t *testing.T) {
	fc := newFakeCloud()
	fc.patchDesired(t, modA, `{"rate":5}`, false)
	r := newRelayEnv(t, fc)

	c := r.connect(modA)
	c.subscribe(t, iothub.DesiredPatchFilter)
	// It has seen nothing yet: it gets the whole desired section.
	if v, got := c.desiredPatch(t); v != 2 || got != `{"$version":2,"rate":5}` {
		t.Fatalf("first subscription: v%d %s", v, got)
	}
	c.Disconnect(0)
	waitFor(t, "the hub to report the client gone", func() bool { return clientStatus(t, fc, "edge1/modA") == "Disconnected" })

	// Changes made while the client is away (IoT Hub does not queue them), and a hub
	// restart: what the client has seen is on disk.
	fc.patchDesired(t, modA, `{"rate":8}`, true)
	v := fc.patchDesired(t, modA, `{"mode":"eco"}`, true)
	r.restart()

	c = r.connect(modA)
	c.subscribe(t, iothub.DesiredPatchFilter)
	if gotV, got := c.desiredPatch(t); gotV != v || got != `{"$version":4,"mode":"eco","rate":8}` {
		t.Fatalf("on resubscription: v%d %s, want v%d", gotV, got, v)
	}
}

func TestDesired_GetAnswerCountsAsSeen(t *testing.T) {
	fc := newFakeCloud()
	fc.patchDesired(t, modA, `{"rate":5}`, false)
	r := newRelayEnv(t, fc)
	c := r.connect(modA)
	c.subscribe(t, iothub.TwinResponseFilter)
	c.request(t, iothub.TwinGetTopic("1"), "")
	c.twinResponse(t)
	// The C SDK subscribes to desired patches only after its first GET: nothing to resend.
	c.subscribe(t, iothub.DesiredPatchFilter)
	c.noMessage(t, 300*time.Millisecond)
	v := fc.patchDesired(t, modA, `{"rate":9}`, true)
	if gotV, got := c.desiredPatch(t); gotV != v || got != `{"$version":3,"rate":9}` {
		t.Fatalf("v%d %s", gotV, got)
	}
}

// clientStatus returns the status the hub reports for a client key in its own twin.
func clientStatus(t *testing.T, fc *fakeCloud, key string) string {
	t.Helper()
	clients, _ := fc.reportedOf(t, edgeHubID)["clients"].(map[string]any)
	c, _ := clients[key].(map[string]any)
	s, _ := c["status"].(string)
	return s
}
