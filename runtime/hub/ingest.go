package hub

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/route"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/store"
)

// ingestHook turns client publishes into stored messages.
//
// # PUBACK after commit
//
// Mochi handles a PUBLISH in the client's own read goroutine (attachClient -> Client.Read
// -> receivePacket -> processPacket -> processPublish), and processPublish calls the
// OnPublish hooks synchronously, before it builds and writes the PUBACK. OnPublish
// validates, stamps and routes the message, hands the append to the store without
// waiting (AsyncAppender) and returns packets.ErrRejectPacket: mochi then writes no
// PUBACK and does nothing else with the packet (no fan-out, no retained message). The
// connection's pubacks (ingest_acks.go) writes the PUBACK itself once the store reports
// the commit, in receive order as MQTT requires: a publish is acknowledged only when it
// and every earlier publish of the connection are settled, so one client's pipelined
// publishes share group commits instead of waiting for one commit each, and nothing is
// acknowledged before it is durable, whatever order the commits report in.
//
// Options.IngestWindow bounds a client's publishes awaiting their PUBACK: at the limit
// OnPublish waits, the client's next packet is not read, and TCP flow control pushes back
// on a client that publishes faster than the store commits. Each append is bounded by
// Options.StoreTimeout, and by the hub's shutdown (Run's ctx).
//
// Refusals. A publish the read goroutine refuses (malformed, too large) closes the
// connection (Client.Stop) and returns ErrRejectPacket. An append that fails (store full
// under reject-new, disk error, StoreTimeout, shutdown) is refused by pubacks: it is
// counted and logged, the connection is closed, and neither it nor any later publish of
// the connection is acknowledged, even one whose append succeeded (it is stored, and the
// client's retry after reconnecting stores it again: a duplicate, never a loss). (Any
// error other than ErrRejectPacket and CodeSuccessIgnore would be worse than useless: for
// MQTT 3.1.1 mochi ignores it and acknowledges anyway.)
//
// What keeps the old synchronous order: a publish that needs no commit (no route matched)
// is acknowledged behind the pending ones; a twin request or method response first waits
// until every earlier publish of the client is settled and acknowledged (drain), then is
// handled as before and acknowledged by mochi (CodeSuccessIgnore), so a request sees
// everything its client sent before it stored; a QoS 0 message waits for its own commit,
// as before (no PUBACK either way); a DISCONNECT waits for the pending PUBACKs, so a
// client that disconnects cleanly gets them; OnDisconnect waits until every pending append
// is settled, so the hub's shutdown (mochi waits for it) leaves none behind. A Store that
// is not an AsyncAppender gets the old behaviour: each append is waited for in OnPublish.
type ingestHook struct {
	mqtt.HookBase
	s *Server
	// clients maps a connection (*mqtt.Client) to its *pubacks, from its first publish to
	// OnDisconnect.
	clients sync.Map
}

func (h *ingestHook) ID() string { return "outpost-ingest" }

func (h *ingestHook) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnPacketRead || b == mqtt.OnDisconnect
}

func (h *ingestHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	q := h.pubacks(cl)
	ackNow, err := h.s.ingest(cl, pk, q)
	if err != nil {
		q.fail()
		cl.Stop(err)
		return pk, packets.ErrRejectPacket
	}
	if ackNow {
		return pk, packets.CodeSuccessIgnore // mochi writes the PUBACK, in order (q was idle)
	}
	return pk, packets.ErrRejectPacket // q writes the PUBACK after the commit
}

// OnPacketRead lets the PUBACKs a client awaits go out before its DISCONNECT closes the
// connection.
func (h *ingestHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Disconnect {
		if v, ok := h.clients.Load(cl); ok {
			_ = v.(*pubacks).drain() // a refusal is closing the connection anyway
		}
	}
	return pk, nil
}

// OnDisconnect waits until the connection's pending appends are settled.
func (h *ingestHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if v, ok := h.clients.LoadAndDelete(cl); ok {
		v.(*pubacks).close()
	}
}

// pubacks returns the connection's queue of pending PUBACKs, creating it on the first
// publish (only cl's read goroutine calls this, so there is no race to create it).
func (h *ingestHook) pubacks(cl *mqtt.Client) *pubacks {
	if v, ok := h.clients.Load(cl); ok {
		return v.(*pubacks)
	}
	q := newPubacks(h.s, cl)
	h.clients.Store(cl, q)
	return q
}

// ingest handles one PUBLISH that passed the ACL: telemetry is stamped, routed and handed
// to the store through q; twin requests and method responses go to handleRequest
// (twin_requests.go) once q is drained. It reports whether mochi should write the PUBACK
// now (nothing is pending); otherwise q writes it. A non-nil error refuses the publish
// (the caller closes the connection); it has been logged and counted.
func (s *Server) ingest(cl *mqtt.Client, pk packets.Packet, q *pubacks) (ackNow bool, err error) {
	t, err := iothub.ParseTopic(pk.TopicName)
	if err != nil {
		s.stats.malformed.Add(1)
		s.log.Warn("malformed publish refused, closing connection", "client_id", cl.ID, "err", err)
		return false, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if t.Kind != iothub.KindTelemetry {
		if err := q.drain(); err != nil {
			return false, err
		}
		return true, s.handleRequest(cl, t, pk.Payload) // twin and method requests (twin_requests.go)
	}
	s.stats.received(t.ModuleID != "")
	sender := sas.Identity{DeviceID: t.DeviceID, ModuleID: t.ModuleID}
	e := envelope{Sender: sender, Enqueued: s.opts.Now().UTC(), Message: iothub.MessageFromBag(pk.Payload, t.Bag)}
	stamp(&e, pk.FixedHeader.Retain)

	size := e.Message.Size()
	if size > s.opts.MaxLocalMessageSize {
		s.stats.tooLarge.Add(1)
		s.log.Warn("message too large, refused, closing connection", "client_id", cl.ID,
			"size", size, "max_bytes", s.opts.MaxLocalMessageSize)
		return false, fmt.Errorf("%w: message of %d bytes, the limit is %d", ErrRefused, size, s.opts.MaxLocalMessageSize)
	}
	rt := s.routing.Load()
	targets := rt.table.Evaluate(routeMessage(&e, &q.routing))
	if len(targets) == 0 {
		s.stats.unrouted.Add(1)
		s.log.Debug("message matched no route, dropped", "client_id", cl.ID)
		if q.idle() {
			return true, nil
		}
		return false, s.submitted(cl, q.skip(pk))
	}
	st := make([]store.Target, len(targets))
	for i, tg := range targets {
		if tg.Endpoint.Kind == route.Upstream && size > s.opts.MaxUpstreamMessageSize {
			s.stats.tooLarge.Add(1)
			s.log.Warn("message too large for $upstream, refused, closing connection", "client_id", cl.ID,
				"size", size, "max_bytes", s.opts.MaxUpstreamMessageSize, "route", tg.Route)
			return false, fmt.Errorf("%w: message of %d bytes routed to $upstream by %q, IoT Hub's limit is %d",
				ErrRefused, size, tg.Route, s.opts.MaxUpstreamMessageSize)
		}
		// $upstream: the sender's own queue (upstream_lanes.go).
		st[i] = store.Target{Queue: queueOf(tg.Endpoint, sender), Priority: tg.Priority, TTL: rt.ttl(tg.TTL)}
	}
	if err := s.submitted(cl, q.append(pk, e.encodePooled(), st)); err != nil {
		return false, err
	}
	// The pumps may start before the commit: they wait for the store to signal the queue.
	for _, tg := range targets {
		s.pumps.ensure(tg.Endpoint)
	}
	return false, nil
}

// submitted logs and counts what pubacks refused at once (the hub stopping while the
// client's window was full); refusals pubacks reported itself pass through.
func (s *Server) submitted(cl *mqtt.Client, err error) error {
	if err == nil || errors.Is(err, errNotAcknowledged) {
		return err
	}
	s.stats.storeError.Add(1)
	s.log.Warn("message not stored, refused without PUBACK, closing connection", "client_id", cl.ID, "err", err)
	return err
}

// stamp applies what the hub, not the client, decides about a message:
//
//   - $.cdid and $.cmid are the authenticated sender (the ACL made the topic's identity the
//     connection's): client values are overwritten, and a device's $.cmid removed;
//   - $.mid is generated (a random version 4 UUID) when the client sent none;
//   - a RETAIN flag becomes the application property mqtt-retain=true, as IoT Hub does (the
//     hub stores no retained message).
func stamp(e *envelope, retain bool) {
	sys := e.Message.System
	sys[iothub.SysConnDeviceID] = e.Sender.DeviceID
	if e.Sender.ModuleID != "" {
		sys[iothub.SysConnModuleID] = e.Sender.ModuleID
	} else {
		delete(sys, iothub.SysConnModuleID)
	}
	if sys[iothub.SysMessageID] == "" {
		sys[iothub.SysMessageID] = newMessageID()
	}
	if retain {
		e.Message.Properties["mqtt-retain"] = "true"
	}
}

// routeMessage builds what the routes see into rm, reusing its System map: the source
// (/messages/ for a device, /messages/modules/{m}[/outputs/{o}]/ for a module), the body,
// the application properties, and the system properties under their routing names plus
// enqueuedTime.
func routeMessage(e *envelope, rm *route.Message) *route.Message {
	m := e.Message
	sys := rm.System
	if sys == nil {
		sys = make(map[string]string, len(m.System)+1)
	}
	clear(sys)
	for wire, v := range m.System {
		if name, ok := iothub.RoutingName(wire); ok {
			sys[name] = v
		}
	}
	sys["enqueuedTime"] = e.Enqueued.Format(time.RFC3339Nano)
	source := route.TelemetrySource()
	if e.Sender.ModuleID != "" {
		source = route.ModuleSource(e.Sender.ModuleID, m.System[iothub.SysOutputName])
	}
	*rm = route.Message{Source: source, Body: m.Body, App: m.Properties, System: sys}
	return rm
}

// newMessageID returns a random version 4 UUID in its usual text form.
func newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:16])
	return string(s[:])
}
