package hub

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
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
// OnPublish hooks synchronously, before it builds and writes the PUBACK. So OnPublish
// simply blocks until store.Append has committed the message to every matched queue, and
// only then returns, with packets.CodeSuccessIgnore: mochi then writes the PUBACK and
// skips its own fan-out and retained-message handling (pk.Ignore). To refuse, OnPublish
// closes the connection (Client.Stop) and returns packets.ErrRejectPacket, on which mochi
// returns before writing any PUBACK. (Any other error would be worse than useless: for
// MQTT 3.1.1 mochi ignores it and acknowledges anyway.)
//
// Blocking there is safe with concurrent clients: each connection has its own read
// goroutine, so only the publishing client waits, and only for its own next packet; its
// writes (deliveries to it, PUBACKs already due) go on, since mochi writes from other
// goroutines under the connection's write lock. TCP flow control pushes back on a client
// that publishes faster than the store commits. The wait is bounded by
// Options.StoreTimeout, and by the hub's shutdown; the store group-commits appends from
// all clients, so concurrent publishers share fsyncs.
//
// The cost: a client's publishes are committed one after another, so one client's
// throughput is bounded by the commit latency (about a millisecond), however many
// publishes it pipelines; many clients together are not. Acknowledging asynchronously
// (reject in OnPublish, write the PUBACK ourselves after the commit, in receive order as
// MQTT requires) would lift that; it is left for when the benchmarks ask for it.
type ingestHook struct {
	mqtt.HookBase
	s *Server
}

func (h *ingestHook) ID() string { return "outpost-ingest" }

func (h *ingestHook) Provides(b byte) bool { return b == mqtt.OnPublish }

func (h *ingestHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	if err := h.s.ingest(cl, pk); err != nil {
		cl.Stop(err)
		return pk, packets.ErrRejectPacket
	}
	return pk, packets.CodeSuccessIgnore
}

// ingest handles one PUBLISH that passed the ACL: telemetry is stamped, routed and stored;
// twin requests and method responses go to handleRequest (twin_requests.go). A non-nil error
// refuses the publish (the caller closes the connection); it has been logged and counted.
func (s *Server) ingest(cl *mqtt.Client, pk packets.Packet) error {
	t, err := iothub.ParseTopic(pk.TopicName)
	if err != nil {
		s.stats.malformed.Add(1)
		s.log.Warn("malformed publish refused, closing connection", "client_id", cl.ID, "err", err)
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if t.Kind != iothub.KindTelemetry {
		return s.handleRequest(cl, t, pk.Payload) // twin and method requests (twin_requests.go)
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
		return fmt.Errorf("%w: message of %d bytes, the limit is %d", ErrRefused, size, s.opts.MaxLocalMessageSize)
	}
	rt := s.routing.Load()
	targets := rt.table.Evaluate(routeMessage(&e))
	if len(targets) == 0 {
		s.stats.unrouted.Add(1)
		s.log.Debug("message matched no route, dropped", "client_id", cl.ID)
		return nil
	}
	st := make([]store.Target, len(targets))
	for i, tg := range targets {
		if tg.Endpoint.Kind == route.Upstream && size > s.opts.MaxUpstreamMessageSize {
			s.stats.tooLarge.Add(1)
			s.log.Warn("message too large for $upstream, refused, closing connection", "client_id", cl.ID,
				"size", size, "max_bytes", s.opts.MaxUpstreamMessageSize, "route", tg.Route)
			return fmt.Errorf("%w: message of %d bytes routed to $upstream by %q, IoT Hub's limit is %d",
				ErrRefused, size, tg.Route, s.opts.MaxUpstreamMessageSize)
		}
		// $upstream: the sender's own queue (upstream_lanes.go).
		st[i] = store.Target{Queue: queueOf(tg.Endpoint, sender), Priority: tg.Priority, TTL: rt.ttl(tg.TTL)}
	}
	ctx, cancel := context.WithTimeout(s.baseContext(), s.opts.StoreTimeout)
	defer cancel()
	if err := s.deps.Store.Append(ctx, e.encode(), st); err != nil {
		if errors.Is(err, store.ErrFull) {
			s.stats.storeFull.Add(1)
		} else {
			s.stats.storeError.Add(1)
		}
		s.log.Warn("message not stored, refused without PUBACK, closing connection", "client_id", cl.ID, "err", err)
		return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	s.stats.stored.Add(1)
	for _, tg := range targets {
		s.pumps.ensure(tg.Endpoint)
	}
	return nil
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

// routeMessage builds what the routes see: the source (/messages/ for a device,
// /messages/modules/{m}[/outputs/{o}]/ for a module), the body, the application
// properties, and the system properties under their routing names plus enqueuedTime.
func routeMessage(e *envelope) *route.Message {
	m := e.Message
	sys := make(map[string]string, len(m.System)+1)
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
	return &route.Message{Source: source, Body: m.Body, App: m.Properties, System: sys}
}

// newMessageID returns a random version 4 UUID in its usual text form.
func newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
