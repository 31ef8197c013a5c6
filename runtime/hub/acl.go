package hub

import (
	"fmt"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// Publish and subscribe rules (iothub-mqtt-protocol.md sections 0, 2-6, 10, 11). They are
// pure; aclHook applies them.

// mayPublish decides whether identity id may publish on topic. A client publishes only:
//
//   - its own telemetry: devices/{d}/messages/events[...] for a device,
//     devices/{d}/modules/{m}/messages/events[...] for a module (ids compared ordinally);
//   - twin requests: $iothub/twin/GET/?$rid=..., $iothub/twin/PATCH/properties/reported/?$rid=...;
//   - method responses: $iothub/methods/res/{status}/?$rid=....
//
// The $iothub topics carry no identity: they always concern the connection's own identity.
// Everything else is refused, including another identity's telemetry, input and C2D topics,
// and topics outside the dialect. The telemetry check looks at the prefix only; the
// property bag is parsed (and refused when malformed) by the ingest path.
func mayPublish(id sas.Identity, topic string) error {
	if rest, ok := strings.CutPrefix(topic, telemetryPrefix(id)); ok {
		if rest == "" || rest[0] == '/' {
			return nil
		}
	}
	if strings.HasPrefix(topic, "$iothub/") {
		t, err := iothub.ParseTopic(topic)
		if err != nil {
			return err
		}
		switch t.Kind {
		case iothub.KindTwinGet, iothub.KindTwinPatchReported, iothub.KindMethodResponse:
			return nil
		}
		return fmt.Errorf("%s topics are sent by the hub, not by clients", t.Kind)
	}
	return fmt.Errorf("not a telemetry topic of %q", id)
}

// telemetryPrefix returns "devices/{d}[/modules/{m}]/messages/events".
func telemetryPrefix(id sas.Identity) string {
	if id.ModuleID == "" {
		return "devices/" + id.DeviceID + "/messages/events"
	}
	return "devices/" + id.DeviceID + "/modules/" + id.ModuleID + "/messages/events"
}

// maySubscribe decides whether identity id may add the subscription filter, given how many
// filters it holds and whether it already holds this one (re-subscribing is always fine).
// Accepted filters (iothub.ParseFilter): its own module inputs (modules only, both the
// ".../inputs/#" and the ".../#" form); its own C2D, including "devices/+/messages/devicebound/#"
// (devices only: modules cannot receive C2D); and the twin response, desired patch and
// method request filters. At most iothub.MaxSubscriptionsPerClient filters per identity.
func maySubscribe(id sas.Identity, filter string, held int, already bool) error {
	s, err := iothub.ParseFilter(filter)
	if err != nil {
		return err
	}
	switch s.Kind {
	case iothub.KindInput:
		if id.ModuleID == "" {
			return fmt.Errorf("devices have no module inputs")
		}
		if s.DeviceID != id.DeviceID || s.ModuleID != id.ModuleID {
			return fmt.Errorf("inputs of %q are not %q's", sas.Identity{DeviceID: s.DeviceID, ModuleID: s.ModuleID}, id)
		}
	case iothub.KindC2D:
		if id.ModuleID != "" {
			return fmt.Errorf("modules cannot receive cloud-to-device messages")
		}
		if !s.AnyDevice && s.DeviceID != id.DeviceID {
			return fmt.Errorf("cloud-to-device messages of %q are not %q's", s.DeviceID, id)
		}
	}
	if !already && held >= iothub.MaxSubscriptionsPerClient {
		return fmt.Errorf("already %d subscriptions, the most an identity may hold", held)
	}
	return nil
}

// aclHook applies the rules to mochi's checks and refuses QoS 2.
//
// Refusals close the connection, as IoT Hub does: a refused PUBLISH, at any QoS (mochi
// itself would silently drop a refused QoS 0 one), and a QoS 2 PUBLISH. A refused filter
// gets the SUBACK failure code 0x80 and the connection stays open, as IoT Hub answers it.
//
// Mochi also asks OnACLCheck (write=false) before fanning a publish out to a subscriber.
// The hub never uses mochi's fan-out (hub-originated messages are written to exactly one
// client, see deliver.go), and a topic name is never a dialect filter (they all end in
// '#'), so such checks fail: nothing a client publishes, a Will message included, reaches
// another client through mochi.
type aclHook struct {
	mqtt.HookBase
	s *Server
}

func (h *aclHook) ID() string { return "outpost-acl" }

func (h *aclHook) Provides(b byte) bool {
	return b == mqtt.OnACLCheck || b == mqtt.OnPacketRead
}

func (h *aclHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	d, m, err := iothub.ParseClientID(cl.ID)
	if err != nil {
		return false // cannot happen: the authentication hook checked the client id
	}
	id := sas.Identity{DeviceID: d, ModuleID: m}
	if write {
		if err := mayPublish(id, topic); err != nil {
			h.s.stats.acl.Add(1)
			h.s.log.Warn("publish refused, closing connection", "client_id", cl.ID, "topic", truncateTopic(topic), "err", err)
			cl.Stop(fmt.Errorf("%w: %w", ErrRefused, err))
			return false
		}
		return true
	}
	subs := cl.State.Subscriptions.GetAll()
	_, already := subs[topic]
	if err := maySubscribe(id, topic, len(subs), already); err != nil {
		h.s.stats.acl.Add(1)
		h.s.log.Warn("subscription refused", "client_id", cl.ID, "filter", truncateTopic(topic), "err", err)
		return false
	}
	return true
}

// errQoS2 closes a connection that publishes at QoS 2.
var errQoS2 = fmt.Errorf("%w: QoS 2 is not supported: %w", ErrRefused, packets.ErrRejectPacket)

// OnPacketRead refuses QoS 2 publishes. It runs before mochi caps the QoS to
// Capabilities.MaximumQos (1), which would otherwise hide it; returning an error wrapping
// packets.ErrRejectPacket ends the client's read loop, which closes the connection.
func (h *aclHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos == 2 {
		h.s.stats.qos2.Add(1)
		h.s.log.Warn("QoS 2 publish refused, closing connection", "client_id", cl.ID, "topic", truncateTopic(pk.TopicName))
		return pk, errQoS2
	}
	return pk, nil
}

// truncateTopic keeps log lines short: a topic can be 64 KB of property bag.
func truncateTopic(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
