package hub_test

import (
	"testing"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/runtime/iothub"
)

func TestIntegration_C2DToALeafSurvivesAHubRestart(t *testing.T) {
	e := newCloudEnv(t)
	// The leaf takes the message but does not acknowledge it before the hub goes down.
	c := e.connect(leaf, noAutoAck)
	c.subscribe(t, iothub.C2DFilter(leaf.DeviceID))
	waitFor(t, "leaf1 attached upstream", func() bool { return e.carried(leaf) })
	id, err := e.iot.SendC2D(leaf.DeviceID, fakehub.C2DMessage{Body: []byte("open the valve"), Properties: map[string]string{"valve": "3"}})
	if err != nil {
		t.Fatal(err)
	}
	m := c.next(t)
	top, err := iothub.ParseTopic(m.Topic())
	if err != nil || top.Kind != iothub.KindC2D || string(m.Payload()) != "open the valve" {
		t.Fatalf("leaf received %s %q: %v", m.Topic(), m.Payload(), err)
	}
	if mid, _ := top.Bag.Get("$.mid"); mid != id {
		t.Fatalf("$.mid %q, want IoT Hub's %q", mid, id)
	}
	if v, _ := top.Bag.Get("valve"); v != "3" {
		t.Fatalf("properties lost: %s", m.Topic())
	}
	// IoT Hub let go of it once the hub had stored it.
	waitFor(t, "IoT Hub to consider the message delivered", func() bool { return e.iot.PendingC2D(leaf.DeviceID) == 0 })

	c.Disconnect(0)
	e.restart()
	c = e.connect(leaf)
	c.subscribe(t, iothub.C2DFilter(leaf.DeviceID))
	if m := c.next(t); string(m.Payload()) != "open the valve" {
		t.Fatalf("after the restart the leaf received %s %q", m.Topic(), m.Payload())
	}
	waitFor(t, "the hub's copy to be acknowledged", func() bool {
		items, err := e.store.Read(c2dQueue, 10)
		return err == nil && len(items) == 0
	})
}
