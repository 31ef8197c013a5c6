package fakehub

import (
	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

// Deliveries to identities an edge hub carries: desired patches, method requests and C2D
// messages go on the edge hub's connection when the identity is attached with the matching
// subscription. Each function is a hook called first by the plain delivery path and reports
// whether it took the delivery over.

// oboNotifyDesiredLocked is notifyDesiredLocked's hook: the patch goes out on
// $edgehub/{I}/twin/PATCH/properties/desired/?$version={n} at QoS 0.
func (s *Server) oboNotifyDesiredLocked(key string, body []byte, version int64, e *effects) bool {
	c, a := s.oboCarrierLocked(key, func(a *oboAttachment) bool { return a.desired })
	if c == nil {
		return false
	}
	t := iothub.OBOTopic{Kind: iothub.OBOTwinPatchDesired, DeviceID: a.ident.DeviceID, ModuleID: a.ident.ModuleID, Version: version}
	s.enqueueLocked(c, outItem{topic: t.String(), payload: body}, e)
	return true
}

// oboInvokeLocked is invokeMethod's hook: the request goes out on
// $edgehub/{I}/methods/POST/{name}/?$rid={rid} at QoS 0 and call waits for the answer under
// the identity's key. via reports that the identity is carried with "methods"; sent that the
// request was queued.
func (s *Server) oboInvokeLocked(key, method, rid string, payload []byte, call *methodCall, e *effects) (sent, via bool) {
	c, a := s.oboCarrierLocked(key, func(a *oboAttachment) bool { return a.methods })
	if c == nil {
		return false, false
	}
	t := iothub.OBOTopic{Kind: iothub.OBOMethodRequest, DeviceID: a.ident.DeviceID, ModuleID: a.ident.ModuleID, Method: method, RequestID: rid}
	s.calls[rid] = call
	if sent = s.enqueueLocked(c, outItem{topic: t.String(), payload: payload}, e); !sent {
		delete(s.calls, rid)
	}
	return sent, true
}

// oboDeliverC2D is deliverC2D's hook: a leaf attached with "c2d" gets its waiting messages on
// the carrying edge hub's connection, at the QoS granted to its
// devices/+/messages/devicebound/# subscription (nothing goes out until it holds one). The
// edge hub's PUBACK completes a message (oboC2DAcked).
func (s *Server) oboDeliverC2D(deviceID string) bool {
	var e effects
	s.mu.Lock()
	defer func() {
		s.mu.Unlock()
		s.stopClients(e.stop)
	}()
	c, _ := s.oboCarrierLocked(deviceID, func(a *oboAttachment) bool { return a.c2d })
	if c == nil {
		return false
	}
	qos, ok := oboC2DSubscription(c.cl)
	if !ok {
		return true
	}
	s.pruneC2DLocked(deviceID, s.now())
	for _, entry := range s.c2d[deviceID] {
		if entry.cl != nil {
			continue
		}
		entry.cl, entry.pid = c.cl, 0
		if !s.enqueueLocked(c, outItem{topic: entry.topic, payload: entry.body, qos: qos, c2d: entry}, &e) {
			entry.cl = nil
			return true
		}
		if qos == 0 {
			entry.removed = true
		}
	}
	if qos == 0 {
		s.removeC2DLocked(deviceID, func(e *c2dEntry) bool { return e.removed })
	}
	return true
}

// oboC2DSubscription reports whether an edge hub's connection holds the C2D filter for the
// leaves it carries, and the QoS to deliver at.
func oboC2DSubscription(cl *mqtt.Client) (byte, bool) {
	sub, ok := cl.State.Subscriptions.Get(iothub.OBOC2DFilter)
	if !ok {
		return 0, false
	}
	return min(sub.Qos, 1), true
}

// oboC2DAcked completes the C2D message an edge hub's PUBACK acknowledges, whichever leaf it
// was for.
func (s *Server) oboC2DAcked(cl *mqtt.Client, pid uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conns[cl]
	if c == nil || c.obo == nil || pid == 0 {
		return
	}
	for deviceID, q := range s.c2d {
		for _, entry := range q {
			if entry.cl == cl && entry.pid == pid {
				s.removeC2DLocked(deviceID, func(e *c2dEntry) bool { return e.cl == cl && e.pid == pid })
				return
			}
		}
	}
}

// oboPumpC2D delivers the waiting C2D messages of every leaf an edge hub's connection carries
// with "c2d" (after it subscribed to the C2D filter).
func (s *Server) oboPumpC2D(c *conn) {
	s.mu.Lock()
	var leaves []string
	for _, a := range c.obo.attached {
		if a.c2d {
			leaves = append(leaves, a.ident.DeviceID)
		}
	}
	s.mu.Unlock()
	for _, d := range leaves {
		s.deliverC2D(d)
	}
}
