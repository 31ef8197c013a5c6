package hub

import (
	"context"
	"fmt"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// deliverer writes hub-originated messages to one client and waits for its PUBACK.
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
//     neither means ErrNotConnected;
//  2. take a packet id with Client.NextPacketID and register a waiter for (connection,
//     packet id);
//  3. write the PUBLISH with Client.WritePacket, synchronously (mochi's write lock keeps
//     it whole among the connection's other writes);
//  4. wait for the PUBACK: mochi hands every packet read from a client to OnPacketRead
//     (deliveryHook) before processing it, and a PUBACK read from a client can only
//     acknowledge a server-to-client PUBLISH. (OnQosComplete is not usable: mochi also
//     calls it for the PUBACK the server itself sends for a client's QoS 1 publish, whose
//     packet id lives in the other direction's id space and may collide.)
//
// The PUBLISH is not recorded in mochi's inflight table: the store is the record, and the
// pump resends in order. So mochi neither resends it on a session takeover nor expires it,
// and a PUBACK mochi does not know is ignored by mochi (processPuback).
//
// A subscription granted QoS 0 gets the message at QoS 0, counted delivered once written:
// that client asked for at-most-once.
type deliverer struct {
	mochi *mqtt.Server

	mu      sync.Mutex
	waiters map[ackKey]chan error
}

type ackKey struct {
	cl *mqtt.Client
	id uint16
}

func newDeliverer(m *mqtt.Server) *deliverer {
	return &deliverer{mochi: m, waiters: map[ackKey]chan error{}}
}

// deliver sends topic/payload to clientID and returns when it is acknowledged (nil),
// when the client is not there to take it (ErrNotConnected), or when it is not
// acknowledged within timeout or the connection closes first (ErrNoAck).
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
	cl, ok := d.mochi.Clients.Get(clientID)
	if !ok || cl.Closed() || cl.Net.Inline {
		return fmt.Errorf("%w: %q is not connected", ErrNotConnected, clientID)
	}
	qos, ok := subscribedQoS(cl, topic)
	if !ok {
		return fmt.Errorf("%w: %q is not subscribed to %s", ErrNotConnected, clientID, topic.Kind)
	}
	qos = min(qos, maxQoS)
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic.String(),
		Payload:     payload,
	}
	var done chan error
	if qos > 0 {
		id, err := cl.NextPacketID()
		if err != nil {
			return fmt.Errorf("%w: %q: no free packet id: %w", ErrNoAck, clientID, err)
		}
		pk.PacketID = uint16(id)
		key := ackKey{cl, pk.PacketID}
		done = make(chan error, 1)
		d.mu.Lock()
		d.waiters[key] = done
		d.mu.Unlock()
		defer func() {
			d.mu.Lock()
			delete(d.waiters, key)
			d.mu.Unlock()
		}()
	}
	// WritePacket has no deadline of its own beyond the connection's keep-alive one; a
	// client that stops reading is cut off after timeout rather than holding the pump.
	stuck := time.AfterFunc(timeout, func() { cl.Stop(fmt.Errorf("%w: write to %q blocked for %v", ErrNoAck, clientID, timeout)) })
	err := cl.WritePacket(pk)
	stuck.Stop()
	if err != nil {
		return fmt.Errorf("%w: write to %q: %w", ErrNoAck, clientID, err)
	}
	if done == nil {
		return nil
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("%w: no PUBACK from %q within %v", ErrNoAck, clientID, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// acked completes the delivery waiting for (cl, id), if any.
func (d *deliverer) acked(cl *mqtt.Client, id uint16) {
	d.mu.Lock()
	done, ok := d.waiters[ackKey{cl, id}]
	delete(d.waiters, ackKey{cl, id})
	d.mu.Unlock()
	if ok {
		done <- nil
	}
}

// closed fails every delivery waiting on cl: its PUBACK can no longer arrive.
func (d *deliverer) closed(cl *mqtt.Client) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, done := range d.waiters {
		if k.cl == cl {
			delete(d.waiters, k)
			done <- fmt.Errorf("%w: %q disconnected before acknowledging", ErrNoAck, cl.ID)
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
