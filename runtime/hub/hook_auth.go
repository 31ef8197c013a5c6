package hub

import (
	"context"
	"errors"
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// authHook authenticates CONNECTs and tracks the resulting connections.
//
// Mochi's order for a new connection (server.go attachClient): read CONNECT; validate it
// (MinimumProtocolVersion 4 refuses MQTT 3.1 with return code 0x01); OnConnect;
// OnConnectAuthenticate, whose false answer mochi sends as CONNACK "bad user name or
// password", which it maps to 0x05 Not authorized for MQTT 3.1.1; take over an existing
// session with the same client id (disconnecting the older connection); CONNACK 0;
// OnSessionEstablished; then the read loop, and OnDisconnect when it ends.
type authHook struct {
	mqtt.HookBase
	s *Server
}

func (h *authHook) ID() string { return "outpost-auth" }

func (h *authHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnSessionEstablished, mqtt.OnDisconnect:
		return true
	}
	return false
}

// OnConnect refuses MQTT 5 (IoT Hub speaks 3.1.1 only) with CONNACK 0x84 "unsupported
// protocol version"; mochi then closes the connection.
func (h *authHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if pk.ProtocolVersion == 4 {
		return nil
	}
	h.s.stats.authRefused.Add(1)
	h.s.log.Info("client refused", "client_id", cl.ID, "remote", cl.Net.Remote, "err", fmt.Sprintf("MQTT protocol level %d, only 4 (3.1.1) is supported", pk.ProtocolVersion))
	_ = h.s.mochi.SendConnack(cl, packets.ErrUnsupportedProtocolVersion, false, nil)
	return packets.ErrUnsupportedProtocolVersion
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	ctx, cancel := context.WithTimeout(h.s.baseContext(), h.s.opts.AuthTimeout)
	defer cancel()
	c, err := h.s.auth.authenticate(ctx, cl.ID, string(pk.Connect.Username), pk.Connect.Password, h.s.opts.Now())
	if err != nil {
		h.s.stats.authRefused.Add(1)
		h.s.log.Info("client refused", "client_id", cl.ID, "remote", cl.Net.Remote, "err", err)
		return false
	}
	h.s.conns.authenticated(cl, c)
	return true
}

func (h *authHook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	c, ok := h.s.conns.established(cl)
	if !ok {
		return
	}
	h.s.stats.connected.Add(1)
	log := h.s.log.With("client_id", cl.ID)
	if c.signer != c.identity {
		log = log.With("signer", c.signer.String())
	}
	log.Info("client connected", "remote", cl.Net.Remote, "clean_session", pk.Connect.Clean)
	// A client that kept its session (CleanSession=0) is subscribed again at once.
	h.s.pumps.wake(c.identity)
}

func (h *authHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	// Deliveries waiting for a PUBACK on this connection fail now, whether or not a newer
	// connection already replaced it.
	h.s.delivery.closed(cl)
	wasActive := h.s.conns.disconnected(cl)
	log := h.s.log.With("client_id", cl.ID, "remote", cl.Net.Remote)
	if cause := cl.StopCause(); cause != nil {
		err = cause
	}
	switch {
	case errors.Is(err, packets.ErrPacketTooLarge):
		log.Warn("packet larger than the maximum packet size, connection closed",
			"max_packet_bytes", h.s.mochi.Options.Capabilities.MaximumPacketSize)
	case errors.Is(err, packets.ErrSessionTakenOver):
		log.Info("client disconnected: a newer connection took over its identity")
	case !wasActive:
		// Closed before its session was established.
	case err != nil:
		log.Info("client disconnected", "err", err)
	default:
		log.Info("client disconnected")
	}
}
