package moduleclient

import (
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

// inbound is a C2D or module input message waiting for its callback.
type inbound struct {
	input string // module input name; "" for C2D
	msg   iothub.Message
	ack   func() // sends the PUBACK
}

// OnC2D registers h for cloud-to-device messages and subscribes to
// devices/{d}/messages/devicebound/#. Devices only: modules cannot receive C2D messages, so on
// a module client the call is logged and ignored.
//
// h runs on a goroutine of its own, one message at a time, in arrival order; the message is
// acknowledged (PUBACK, which IoT Hub treats as "complete") after h returns. Delivery is
// at-least-once (see "Delivery" in the package documentation): h may see a message again.
func (c *Client) OnC2D(h func(m iothub.Message)) {
	if c.cs.ModuleID != "" {
		c.log.Warn("OnC2D ignored: modules cannot receive cloud-to-device messages")
		return
	}
	c.mu.Lock()
	c.onC2D = h
	c.mu.Unlock()
	c.updateSubscriptions()
}

// OnInput registers h for messages routed to the module's inputs and subscribes to
// devices/{d}/modules/{m}/inputs/#. Modules only: on a device client the call is logged and
// ignored. input is the input name from the topic. Delivery works as for OnC2D: one message at
// a time, in order, acknowledged after h returns, at-least-once.
func (c *Client) OnInput(h func(input string, m iothub.Message)) {
	if c.cs.ModuleID == "" {
		c.log.Warn("OnInput ignored: only modules have inputs")
		return
	}
	c.mu.Lock()
	c.onInput = h
	c.mu.Unlock()
	c.updateSubscriptions()
}

// route is paho's publish handler for every message the hub sends. It runs on paho's
// dispatch goroutine, so it only parses and hands over: it never blocks and never calls a
// user callback.
func (c *Client) route(cn *conn, m mqtt.Message) {
	t, err := iothub.ParseTopic(m.Topic())
	if err != nil {
		c.log.Warn("ignoring message on an unexpected topic", "err", err)
		m.Ack()
		return
	}
	switch t.Kind {
	case iothub.KindTwinResponse:
		c.deliverTwinResponse(t, m.Payload())
		m.Ack()
	case iothub.KindTwinPatchDesired:
		c.receiveDesired(t, m)
	case iothub.KindMethodRequest:
		c.receiveMethod(cn, t, m.Payload())
		m.Ack()
	case iothub.KindC2D:
		c.receiveMessage(c.c2dQ, "", t, m)
	case iothub.KindInput:
		c.receiveMessage(c.inputQ, t.Input, t, m)
	default:
		c.log.Warn("ignoring message of an unexpected kind", "kind", t.Kind.String())
		m.Ack()
	}
}

// receiveMessage queues a C2D or input message. A message that does not fit is left
// unacknowledged: the hub still owns it and delivers it again (IoT Hub and edgeHub redeliver
// unacknowledged messages), so a slow handler delays messages rather than losing them.
func (c *Client) receiveMessage(q *queue[inbound], input string, t iothub.Topic, m mqtt.Message) {
	in := inbound{input: input, msg: iothub.MessageFromBag(m.Payload(), t.Bag), ack: m.Ack}
	if !q.offer(in) {
		c.log.Warn("handler queue full; message left unacknowledged for redelivery",
			"kind", t.Kind.String(), "input", input, "dropped_total", q.dropped.Load())
	}
}

// deliver runs a message callback and acknowledges the message after it returns. Without a
// handler (a message of a session the hub kept, arriving before the handler was registered)
// the message is not acknowledged, so the hub delivers it again later rather than it being
// lost. A panicking handler is logged and the message acknowledged: redelivering it would
// only panic again.
func (c *Client) deliver(in inbound, call func(iothub.Message), registered bool) {
	if !registered {
		c.log.Warn("message arrived without a handler; left unacknowledged", "input", in.input)
		return
	}
	c.safely("message handler", func() { call(in.msg) })
	in.ack()
}
