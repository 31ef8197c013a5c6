package fakehub

import (
	"bytes"
	"errors"
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// hook adapts mochi's callbacks to the hub. Mochi calls them on the client's own goroutine
// (except where noted), in this order for one connection:
//
//	OnConnect -> OnConnectAuthenticate -> OnSessionEstablish -> [CONNACK] ->
//	OnSessionEstablished -> { OnPacketRead -> OnPublish | OnSubscribe/OnACLCheck ->
//	OnPacketProcessed }* -> [OnWill] -> OnDisconnect
type hook struct {
	mqtt.HookBase
	s *Server
}

// ID names the hook in mochi's logs.
func (h *hook) ID() string { return "fakehub" }

// Provides lists the callbacks the hook implements.
func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablish,
		mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnPacketRead, mqtt.OnPublish,
		mqtt.OnSubscribe, mqtt.OnPacketProcessed, mqtt.OnQosDropped, mqtt.OnWill:
		return true
	}
	return false
}

// OnConnect applies the test controls and the protocol level before authentication. An
// error ends the connection; when the hub answers with a CONNACK it writes it here.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	s := h.s
	srv := s.broker.Load()
	if srv == nil || !s.sleepDelay() {
		return errors.New("server closing")
	}
	if s.cut.Load() {
		return errors.New("network cut: closed without CONNACK")
	}
	if pk.ProtocolVersion != 4 {
		// MQTT 5 and later: answer in 3.1.1 form (0x01, unacceptable protocol version).
		cl.Properties.ProtocolVersion = 4
		_ = srv.SendConnack(cl, packets.ErrUnsupportedProtocolVersion, false, nil)
		return fmt.Errorf("protocol level %d refused", pk.ProtocolVersion)
	}
	if s.throttle.Load() {
		_ = srv.SendConnack(cl, packets.ErrServerUnavailable, false, nil) // 0x03
		return errors.New("throttled: CONNACK 0x03")
	}
	return nil
}

// OnConnectAuthenticate authenticates the CONNECT; false makes mochi answer CONNACK 0x05.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	return h.s.authenticate(cl, pk)
}

// OnACLCheck: publishes were checked in OnPacketRead (a forbidden one closed the
// connection); for SUBSCRIBE the decision was made in OnSubscribe.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if write {
		return true
	}
	return h.s.subscribeAllowed(cl, topic)
}

// OnSessionEstablish runs before mochi takes over an existing session of the same client id.
func (h *hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	h.s.sessionEstablish(cl)
}

// OnSessionEstablished runs after the CONNACK was written.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	h.s.sessionEstablished(cl)
}

// OnDisconnect runs when the connection has ended, for any reason.
func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.s.disconnected(cl, err)
}

// OnPacketRead sees every packet before mochi validates it. Returning an error that wraps
// packets.ErrRejectPacket makes mochi close the connection (without a PUBACK): that is how
// the hub enforces the dialect on PUBLISH.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if !h.s.sleepDelay() {
			return pk, fmt.Errorf("server closing: %w", packets.ErrRejectPacket)
		}
		if err := h.s.checkPublish(cl, pk); err != nil {
			h.s.log.Info("closing MQTT connection", "client", cl.ID, "err", err)
			return pk, fmt.Errorf("%w: %w", packets.ErrRejectPacket, err)
		}
	case packets.Puback:
		h.s.c2dAcked(cl, pk.PacketID)
		h.s.oboC2DAcked(cl, pk.PacketID)
	}
	return pk, nil
}

// OnPublish handles an inbound PUBLISH that passed checkPublish. Returning
// packets.CodeSuccessIgnore makes mochi acknowledge it (QoS 1) without routing or retaining
// it; packets.ErrRejectPacket drops it without an acknowledgement.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if err := h.s.handlePublish(cl, pk); err != nil {
		return pk, err
	}
	pk.FixedHeader.Retain = false
	return pk, packets.CodeSuccessIgnore
}

// OnSubscribe decides which filters of a SUBSCRIBE are granted (see subscribeAllowed) and
// caps the requested QoS at 1.
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	return h.s.decideSubscribe(cl, pk)
}

// OnPacketProcessed runs after mochi answered a packet (after the SUBACK for a SUBSCRIBE).
func (h *hook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, err error) {
	switch pk.FixedHeader.Type {
	case packets.Subscribe, packets.Unsubscribe:
		h.s.subscriptionsChanged(cl)
	}
}

// OnQosDropped: mochi gave up on an outbound QoS 1 packet (session taken over or inflight
// expiry); a C2D message it carried becomes pending again.
func (h *hook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	h.s.c2dDropped(cl, pk.PacketID)
}

// OnWill clears RETAIN so that mochi stores nothing when it publishes a will. The hub
// captures wills itself, in OnDisconnect (see disconnected).
func (h *hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	will.Retain = false
	return will, nil
}

// payloadOrEmpty treats a body of white space as empty (Node and Python send " " for GET).
func payloadOrEmpty(b []byte) []byte {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	return b
}
