package perclient

import (
	"context"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

// inbound is a desired patch, method request or C2D message waiting for the hub's handler.
type inbound struct {
	topic iothub.Topic
	msg   mqtt.Message
}

// route is paho's handler for everything IoT Hub sends on a session's connection. It runs
// on paho's dispatch goroutine, so it only parses and hands over.
func (s *session) route(w *wire, m mqtt.Message) {
	t, err := iothub.ParseTopic(m.Topic())
	if err != nil {
		s.log.Warn("ignoring a message on an unexpected topic", "err", err)
		m.Ack()
		return
	}
	switch t.Kind {
	case iothub.KindTwinResponse:
		s.answer(t, m.Payload())
		m.Ack()
	case iothub.KindTwinPatchDesired, iothub.KindMethodRequest, iothub.KindC2D:
		select {
		case s.inbound <- inbound{topic: t, msg: m}:
		default:
			// A dropped desired patch is recovered by the hub's resync on the next version
			// gap, a dropped method call times out for its caller, and a C2D message left
			// unacknowledged is delivered again on the next connection.
			s.log.Warn("inbound queue full; message dropped", "kind", t.Kind.String())
			if t.Kind != iothub.KindC2D {
				m.Ack()
			}
		}
	default:
		s.log.Warn("ignoring a message of an unexpected kind", "kind", t.Kind.String())
		m.Ack()
	}
}

// serve hands the session's inbound messages to the hub's handlers, one at a time, in
// arrival order, until ctx ends. A C2D message is acknowledged to IoT Hub (which completes
// it) only when the hub's handler returned nil, that is once the hub stored it; otherwise
// IoT Hub delivers it again on the next connection.
func (s *session) serve(ctx context.Context) {
	for {
		var in inbound
		select {
		case <-ctx.Done():
			return
		case in = <-s.inbound:
		}
		h := s.l.handlers()
		t, payload := in.topic, in.msg.Payload()
		switch t.Kind {
		case iothub.KindTwinPatchDesired:
			if h.desired != nil {
				h.desired(s.id, payload, t.Version)
			}
			in.msg.Ack()
		case iothub.KindMethodRequest:
			if h.method != nil {
				h.method(s.id, t.Method, t.RequestID, payload)
			}
			in.msg.Ack()
		case iothub.KindC2D:
			if h.c2d == nil {
				s.log.Warn("C2D message without a handler; left with IoT Hub")
				continue
			}
			if err := h.c2d(s.id, iothub.MessageFromBag(payload, t.Bag)); err != nil {
				s.log.Info("C2D message not taken by the hub; IoT Hub delivers it again on the next connection", "err", err)
				continue
			}
			in.msg.Ack()
		}
	}
}
