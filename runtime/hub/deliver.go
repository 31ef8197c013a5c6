package hub

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// deliverer writes hub-originated messages to one client and matches the client's PUBACKs
// to them.
//
// # Why not mochi's Server.Publish
//
// Server.Publish (with Options.InlineClient) fans a message out to every client whose
// subscription matches the topic. That is wrong for this dialect: "$iothub/twin/res/#" and
// "$iothub/methods/POST/#" are the same filters for every client, so a twin response or a
// method request must go to exactly one connection, not to every subscriber. It also gives
// the caller nothing to wait on: the packet id is chosen inside mochi and a full outbound
// queue drops the message (OnPublishDropped). So the deliverer does the part of mochi's
// publishToClient that matters, for one client:
//
//  1. find the client's live connection (Server.Clients) and the QoS of its best
//     subscription matching the topic (iothub.ParseFilter + Subscription.Matches);
//     neither means ErrNotConnected (route);
//  2. take a packet id with Client.NextPacketID and register the ackInbox that expects
//     (connection, packet id) (expect);
//  3. write the PUBLISH: deliver and notify with Client.WritePacket, synchronously
//     (mochi's write lock keeps it whole among the connection's other writes); a module
//     input's pump writes several encoded PUBLISHes at once under the same lock
//     (deliver_write.go);
//  4. take the PUBACK: mochi hands every packet read from a client to OnPacketRead
//     (deliveryHook) before processing it, and a PUBACK read from a client can only
//     acknowledge a server-to-client PUBLISH; acked puts it in the inbox that expects it.
//     (OnQosComplete is not usable: mochi also calls it for the PUBACK the server itself
//     sends for a client's QoS 1 publish, whose packet id lives in the other direction's
//     id space and may collide.) When the connection closes first, closed tells every
//     inbox that still expects a PUBACK on it.
//
// The PUBLISH is not recorded in mochi's inflight table: the store is the record, and the
// pump resends in order. So mochi neither resends it on a session takeover nor expires it,
// and a PUBACK mochi does not know is ignored by mochi (processPuback).
//
// A subscription granted QoS 0 gets the message at QoS 0, counted delivered once written:
// that client asked for at-most-once.
type deliverer struct {
	mochi *mqtt.Server

	mu       sync.Mutex
	expected map[ackKey]*ackInbox // deliveries waiting for their PUBACK

	batches atomic.Int64 // writes of encoded PUBLISHes (writeRaw), for BenchmarkDrainInput
}

type ackKey struct {
	cl *mqtt.Client
	id uint16
}

func newDeliverer(m *mqtt.Server) *deliverer {
	return &deliverer{mochi: m, expected: map[ackKey]*ackInbox{}}
}

// ackInbox collects the PUBACKs of the deliveries registered with it (expect), and the
// connections that closed while some of them were still unacknowledged. The hook puts
// them in from clients' read goroutines; the owner (one delivery, or one pump for all its
// deliveries in flight) takes them from one goroutine after ready fires. One inbox and one
// channel serve a whole window of deliveries.
type ackInbox struct {
	ready chan struct{} // capacity 1: something arrived since the last take

	mu    sync.Mutex
	acked []ackKey       // in arrival order
	lost  []*mqtt.Client // connections closed with deliveries of this inbox unacknowledged
}

func newAckInbox() *ackInbox { return &ackInbox{ready: make(chan struct{}, 1)} }

func (in *ackInbox) putAck(k ackKey) {
	in.mu.Lock()
	in.acked = append(in.acked, k)
	in.mu.Unlock()
	in.signal()
}

func (in *ackInbox) putLost(cl *mqtt.Client) {
	in.mu.Lock()
	if !slices.Contains(in.lost, cl) {
		in.lost = append(in.lost, cl)
	}
	in.mu.Unlock()
	in.signal()
}

func (in *ackInbox) signal() {
	select {
	case in.ready <- struct{}{}:
	default:
	}
}

// take returns what arrived since the last take, reusing buf (the previous take's first
// result, when the caller is done with it) for the next one.
func (in *ackInbox) take(buf []ackKey) (acked []ackKey, lost []*mqtt.Client) {
	in.mu.Lock()
	defer in.mu.Unlock()
	acked, in.acked = in.acked, buf[:0]
	lost, in.lost = in.lost, nil
	return acked, lost
}

// expect registers in as the receiver of the PUBACK for k. Register before writing the
// PUBLISH: the PUBACK may come back before the write returns.
func (d *deliverer) expect(k ackKey, in *ackInbox) {
	d.mu.Lock()
	d.expected[k] = in
	d.mu.Unlock()
}

// forget unregisters deliveries that are given up (timed out, abandoned). A PUBACK for
// one of them that is already in its inbox stays there: forget then a take by the owner
// sees it, since acked puts into the inbox under d.mu.
func (d *deliverer) forget(keys ...ackKey) {
	d.mu.Lock()
	for _, k := range keys {
		delete(d.expected, k)
	}
	d.mu.Unlock()
}

// route returns clientID's live connection and the QoS it gets topic at, or
// ErrNotConnected when it is not connected or not subscribed to topic.
func (d *deliverer) route(clientID string, topic iothub.Topic) (*mqtt.Client, byte, error) {
	cl, ok := d.mochi.Clients.Get(clientID)
	if !ok || cl.Closed() || cl.Net.Inline {
		return nil, 0, fmt.Errorf("%w: %q is not connected", ErrNotConnected, clientID)
	}
	qos, ok := subscribedQoS(cl, topic)
	if !ok {
		return nil, 0, fmt.Errorf("%w: %q is not subscribed to %s", ErrNotConnected, clientID, topic.Kind)
	}
	return cl, qos, nil
}

// deliver sends topic/payload to clientID and returns when it is acknowledged (nil),
// when the client is not there to take it (ErrNotConnected), or when it is not
// acknowledged within timeout or the connection closes first (ErrNoAck). It is stop and
// wait, for the C2D pump; module inputs go through the window of pump_window.go.
func (d *deliverer) deliver(ctx context.Context, clientID string, topic iothub.Topic, payload []byte, timeout time.Duration) error {
	return d.send(ctx, clientID, topic, payload, timeout, 1)
}

// notify sends topic/payload to clientID at QoS 0 whatever QoS the client subscribed
// with, and returns once it is written. Desired-property notifications go this way, as
// IoT Hub sends them: the SDKs acknowledge a QoS 1 notification only after their
// callback returns, and a callback that updates reported properties would then wait for
// the hub's answer to its PATCH while the hub waited for the PUBACK. A lost
// notification is repaired by the resync on the next (re)subscription.
func (d *deliverer) notify(ctx context.Context, clientID string, topic iothub.Topic, payload []byte, timeout time.Duration) error {
	return d.send(ctx, clientID, topic, payload, timeout, 0)
}

// send delivers at the QoS the client subscribed with, capped at maxQoS.
func (d *deliverer) send(ctx context.Context, clientID string, topic iothub.Topic, payload []byte, timeout time.Duration, maxQoS byte) error {
	cl, qos, err := d.route(clientID, topic)
	if err != nil {
		return err
	}
	qos = min(qos, maxQoS)
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic.String(),
		Payload:     payload,
	}
	var in *ackInbox
	if qos > 0 {
		id, err := cl.NextPacketID()
		if err != nil {
			return fmt.Errorf("%w: %q: no free packet id: %w", ErrNoAck, clientID, err)
		}
		pk.PacketID = uint16(id)
		key := ackKey{cl, pk.PacketID}
		in = newAckInbox()
		d.expect(key, in)
		defer d.forget(key)
	}
	// WritePacket has no deadline of its own beyond the connection's keep-alive one; a
	// client that stops reading is cut off after timeout rather than holding the caller.
	stuck := time.AfterFunc(timeout, func() { cl.Stop(fmt.Errorf("%w: write to %q blocked for %v", ErrNoAck, clientID, timeout)) })
	err = cl.WritePacket(pk)
	stuck.Stop()
	if err != nil {
		return fmt.Errorf("%w: write to %q: %w", ErrNoAck, clientID, err)
	}
	if in == nil {
		return nil
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-in.ready:
		if acked, _ := in.take(nil); len(acked) > 0 {
			return nil
		}
		return fmt.Errorf("%w: %q disconnected before acknowledging", ErrNoAck, clientID)
	case <-t.C:
		return fmt.Errorf("%w: no PUBACK from %q within %v", ErrNoAck, clientID, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// acked hands the PUBACK for (cl, id) to the inbox expecting it, if any. The put happens
// under d.mu so that forget followed by a take never misses it (see forget).
func (d *deliverer) acked(cl *mqtt.Client, id uint16) {
	k := ackKey{cl, id}
	d.mu.Lock()
	defer d.mu.Unlock()
	if in, ok := d.expected[k]; ok {
		delete(d.expected, k)
		in.putAck(k)
	}
}

// closed tells every inbox that expects a PUBACK on cl that it can no longer arrive.
func (d *deliverer) closed(cl *mqtt.Client) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, in := range d.expected {
		if k.cl == cl {
			delete(d.expected, k)
			in.putLost(cl)
		}
	}
}

// subscribedQoS returns the QoS a client gets topic at: the highest granted QoS among its
// subscriptions that match, capped at 1.
func subscribedQoS(cl *mqtt.Client, topic iothub.Topic) (byte, bool) {
	var qos byte
	found := false
	for filter, sub := range cl.State.Subscriptions.GetAll() {
		s, err := iothub.ParseFilter(filter)
		if err != nil || !s.Matches(topic) {
			continue
		}
		found = true
		qos = max(qos, min(sub.Qos, 1))
	}
	return qos, found
}

// deliveryHook feeds PUBACKs read from clients to the deliverer, and wakes the pumps of a
// module when it subscribes (a pump waiting for a module that is connected but not yet
// subscribed would otherwise sleep out its back-off).
type deliveryHook struct {
	mqtt.HookBase
	s *Server
}

func (h *deliveryHook) ID() string { return "outpost-delivery" }

func (h *deliveryHook) Provides(b byte) bool { return b == mqtt.OnPacketRead || b == mqtt.OnSubscribed }

func (h *deliveryHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Puback {
		h.s.delivery.acked(cl, pk.PacketID)
	}
	return pk, nil
}

// OnSubscribed runs after mochi recorded the granted subscriptions, before the SUBACK.
func (h *deliveryHook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) {
	if d, m, err := iothub.ParseClientID(cl.ID); err == nil {
		h.s.pumps.wake(sas.Identity{DeviceID: d, ModuleID: m})
	}
}
