package hub_test

import (
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

const c2dQueue = "/devices/leaf1/messages/devicebound"

func TestC2D_StoredDurablyAndDeliveredAcrossARestart(t *testing.T) {
	fc := newFakeCloud()
	r := newRelayEnv(t, fc)
	msg := iothub.Message{Body: []byte("hello leaf"), Properties: map[string]string{"k": "v w"},
		System: map[string]string{iothub.SysMessageID: "m-1", iothub.SysCorrelationID: "c-1"}}
	if err := fc.onC2D(leaf, msg); err != nil {
		t.Fatalf("C2D handler: %v (the link would not acknowledge it)", err)
	}
	// A message without an id or "to" gets both.
	if err := fc.onC2D(leaf, iothub.Message{Body: []byte("second")}); err != nil {
		t.Fatal(err)
	}
	// Refused or dropped, but acknowledged (nil): a module, an expired message.
	if err := fc.onC2D(modA, iothub.Message{Body: []byte("to a module")}); err != nil {
		t.Fatal(err)
	}
	expired := r.clock.Now().Add(-time.Minute).Format(time.RFC3339Nano)
	if err := fc.onC2D(leaf, iothub.Message{Body: []byte("expired"), System: map[string]string{iothub.SysExpiry: expired}}); err != nil {
		t.Fatal(err)
	}

	// The leaf was not connected; the hub restarts: the messages are on disk.
	r.restart()
	c := r.connect(leaf, noAutoAck)
	c.subscribe(t, iothub.C2DFilter(leaf.DeviceID))
	m := c.next(t)
	want := "devices/leaf1/messages/devicebound/%24.mid=m-1&%24.cid=c-1&%24.to=%2Fdevices%2Fleaf1%2Fmessages%2Fdevicebound&k=v%20w"
	if m.Topic() != want || string(m.Payload()) != "hello leaf" || m.Qos() != 1 {
		t.Fatalf("received %s %q QoS %d\nwant %s", m.Topic(), m.Payload(), m.Qos(), want)
	}
	// Not acknowledged: delivered again on the next connection.
	c.Disconnect(0)
	c = r.connect(leaf)
	c.subscribe(t, "devices/+/messages/devicebound/#") // the embedded C SDK's filter
	if m := c.next(t); string(m.Payload()) != "hello leaf" {
		t.Fatalf("redelivery: %s %q", m.Topic(), m.Payload())
	}
	m = c.next(t)
	top, err := iothub.ParseTopic(m.Topic())
	if err != nil || string(m.Payload()) != "second" {
		t.Fatalf("second message %s %q: %v", m.Topic(), m.Payload(), err)
	}
	if mid, _ := top.Bag.Get("$.mid"); mid == "" {
		t.Errorf("no $.mid in %s", m.Topic())
	}
	if to, _ := top.Bag.Get("$.to"); to != "/devices/leaf1/messages/devicebound" {
		t.Errorf("$.to %q in %s", to, m.Topic())
	}
	waitFor(t, "the acknowledged messages to leave the store", func() bool {
		items, err := r.store.Read(c2dQueue, 10)
		return err == nil && len(items) == 0
	})
	c.noMessage(t, 200*time.Millisecond) // neither the expired message nor the module's
}

func TestC2D_OnlyTheLeafItselfGetsItsMessages(t *testing.T) {
	fc := newFakeCloud()
	r := newRelayEnv(t, fc)
	// leaf1 holds the any-device filter; a message for leaf2 is still not its own.
	other := r.connect(leaf)
	other.subscribe(t, "devices/+/messages/devicebound/#")
	if err := fc.onC2D(sas.Identity{DeviceID: "leaf2"}, iothub.Message{Body: []byte("for leaf2")}); err != nil {
		t.Fatal(err)
	}
	other.noMessage(t, 300*time.Millisecond)
}
