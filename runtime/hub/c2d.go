package hub

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/store"
)

// DefaultC2DTTL is how long a C2D message waits in the hub for its leaf device when the
// message sets no expiry: 48 hours, the longest IoT Hub keeps one (protocol notes 3).
const DefaultC2DTTL = 48 * time.Hour

// c2dQueue returns the store queue holding a leaf device's C2D messages:
// "/devices/{d}/messages/devicebound" (iothub.C2DTo, the messages' own "$.to"). No route
// endpoint id starts with "/devices/", and device ids contain no '/'.
func c2dQueue(deviceID string) string { return iothub.C2DTo(deviceID) }

// c2dDevice returns the device of a C2D queue name.
func c2dDevice(queue string) (string, bool) {
	rest, ok := strings.CutPrefix(queue, "/devices/")
	if !ok {
		return "", false
	}
	d, ok := strings.CutSuffix(rest, "/messages/devicebound")
	if !ok || d == "" || strings.Contains(d, "/") {
		return "", false
	}
	return d, true
}

// onCloudC2D is the Cloud's C2D handler: it makes the message durable in the leaf's queue
// and returns nil, upon which the link acknowledges it to IoT Hub (which then considers it
// delivered); an error leaves it with IoT Hub, which sends it again on the next
// connection. The stored message goes to the leaf at QoS 1 once it is connected and
// subscribed (c2d_pump.go), and leaves the store on the leaf's PUBACK, so nothing IoT Hub
// let go of is lost, across hub restarts too.
//
// The message keeps IoT Hub's properties; "$.mid" and "$.to" are added when missing, since
// SDKs need both (protocol notes 3). Its TTL is its "$.exp" when set (an expired message is
// dropped), else Options.C2DTTL.
func (s *Server) onCloudC2D(id sas.Identity, m iothub.Message) error {
	if id.ModuleID != "" {
		s.log.Warn("C2D message for a module dropped: modules cannot receive C2D messages", "identity", id)
		return nil
	}
	if m.System == nil {
		m.System = map[string]string{}
	}
	if m.Properties == nil {
		m.Properties = map[string]string{}
	}
	if m.System[iothub.SysMessageID] == "" {
		m.System[iothub.SysMessageID] = newMessageID()
	}
	if m.System[iothub.SysTo] == "" {
		m.System[iothub.SysTo] = iothub.C2DTo(id.DeviceID)
	}
	now := s.opts.Now()
	ttl := s.opts.C2DTTL
	if exp, ok := m.System[iothub.SysExpiry]; ok && exp != "" {
		t, err := time.Parse(time.RFC3339Nano, exp)
		switch {
		case err != nil:
			s.log.Info("C2D message with an unreadable expiry; the default TTL applies", "identity", id, "expiry", exp)
		case !t.After(now):
			s.log.Info("C2D message expired before it reached the hub; dropped", "identity", id, "expiry", exp)
			return nil
		default:
			ttl = t.Sub(now)
		}
	}
	e := envelope{Sender: id, Enqueued: now.UTC(), Message: m}
	ctx, cancel := context.WithTimeout(s.baseContext(), s.opts.StoreTimeout)
	defer cancel()
	q := c2dQueue(id.DeviceID)
	if err := s.deps.Store.Append(ctx, e.encode(), []store.Target{{Queue: q, TTL: ttl}}); err != nil {
		return fmt.Errorf("C2D message for %q not stored: %w", id, err)
	}
	s.c2d.ensure(id.DeviceID)
	return nil
}
