package fakehub

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/mqttlog"
)

// MQTT sizing. The numbers are chosen, not mochi's defaults:
const (
	// maxPacketSize admits the largest legal D2C message (256 KB as iothub.Message.Size
	// counts it) plus a maximal topic with its property bag (64 KB) and the packet header, so
	// the size rule is enforced by the hub (closing the connection, as IoT Hub does) and not
	// by a decoder limit. Anything larger cannot be valid and is refused while reading.
	maxPacketSize = iothub.MaxMessageSize + iothub.MaxTopicLength + 1024
	// maxClientWritesPending sizes mochi's per-client outbound queue. The hub writes
	// hub-originated packets through its own per-connection queue (outQueueSize), so
	// mochi's queue only carries mochi's own routing, which the dialect never uses.
	maxClientWritesPending = 64
	// maxInflight bounds unacknowledged QoS 1 packets per client; C2D is the only QoS 1
	// traffic the hub sends and at most maxPendingC2D are queued per device.
	maxInflight = 256
	// sessionExpiry is how long a CleanSession=0 session (its subscriptions) outlives its
	// connection. IoT Hub's value is not documented.
	sessionExpiry = 24 * time.Hour
	// sysTopicInterval: the $SYS topics cannot be subscribed to (only the dialect's filters
	// are granted), so publish them rarely.
	sysTopicInterval = 3600
)

// startMQTT creates the mochi server with the hub's hook and listeners and serves it.
func (s *Server) startMQTT() error {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = maxPacketSize
	caps.MaximumClientWritesPending = maxClientWritesPending
	caps.MaximumInflight = maxInflight
	caps.MaximumSessionExpiryInterval = uint32(sessionExpiry / time.Second)
	caps.MaximumQos = 1             // a QoS 2 SUBSCRIBE is granted QoS 1 (protocol notes 10)
	caps.MinimumProtocolVersion = 4 // MQTT 3.1 (level 3) gets CONNACK 0x01; level 5 is refused in OnConnect
	caps.SharedSubAvailable = 0
	// RetainAvailable stays 1: with 0 mochi refuses a CONNECT whose will has RETAIN set with a
	// v5-only code. The hook clears RETAIN on every message instead, so nothing is stored.
	srv := mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		Logger:                 slog.New(mqttlog.Handler{Handler: s.Logger.Handler()}).With("component", "fakehub-mqtt"),
		SysTopicResendInterval: sysTopicInterval,
	})
	s.broker.Store(srv)
	if err := srv.AddHook(&hook{s: s}, nil); err != nil {
		return fmt.Errorf("mqtt hook: %w", err)
	}
	tlsConf := &tls.Config{
		Certificates: []tls.Certificate{s.pki.server},
		MinVersion:   tls.VersionTLS12,
		// X.509 identities present a certificate; it is checked against the registry in
		// OnConnectAuthenticate, not by the TLS stack (self-signed device certificates are
		// legal).
		ClientAuth: tls.RequestClientCert,
	}
	add := func(id, addr string, conf *tls.Config) (string, error) {
		l, err := newListener(id, addr, conf, s.cut.Load)
		if err != nil {
			return "", fmt.Errorf("mqtt listen %s: %w", addr, err)
		}
		if err := srv.AddListener(l); err != nil {
			l.ln.Close()
			return "", fmt.Errorf("mqtt listener %s: %w", addr, err)
		}
		s.mqttLns = append(s.mqttLns, l)
		return l.Address(), nil
	}
	var err error
	if s.addrMQTT, err = add(listenerTLS, s.MQTTAddr, tlsConf); err != nil {
		return err
	}
	if s.PlainMQTTAddr != "" {
		if s.addrPlainMQTT, err = add(listenerPlain, s.PlainMQTTAddr, nil); err != nil {
			return err
		}
	}
	if err := srv.Serve(); err != nil {
		return fmt.Errorf("mqtt serve: %w", err)
	}
	return nil
}

// stopMQTT drops every connection and stops mochi. Sockets are closed by the hub first so
// that mochi never writes its MQTT 5 DISCONNECT to a 3.1.1 client.
func (s *Server) stopMQTT() {
	srv := s.broker.Load()
	if srv == nil {
		for _, l := range s.mqttLns {
			l.ln.Close()
		}
		s.mqttLns = nil
		return
	}
	s.stopClients(s.allClients())
	_ = srv.Close() // always nil
	waited := make(chan struct{})
	go func() {
		srv.Listeners.ClientsWg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		s.log.Warn("MQTT clients did not finish within 10s of Close")
	}
	s.broker.Store(nil)
	s.mqttLns = nil
}

// allClients returns every authenticated or established client.
func (s *Server) allClients() []*mqtt.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*mqtt.Client
	for cl := range s.conns {
		out = append(out, cl)
	}
	for cl := range s.authed {
		out = append(out, cl)
	}
	return out
}

// stopClients closes connections. It must not be called with s.mu held: closing a TLS
// connection may block on a close_notify write.
func (s *Server) stopClients(cls []*mqtt.Client) {
	for _, cl := range cls {
		cl.Stop(errDropped)
	}
}

// errDropped is the stop cause of connections the hub closes on purpose (identity disabled
// or deleted, network cut, client not reading, shutdown).
var errDropped = errors.New("connection closed by the hub")
