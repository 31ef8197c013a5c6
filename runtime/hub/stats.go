package hub

import "sync/atomic"

// Stats are the hub's counters since New, and two gauges (Clients, and the endpoints in
// Sent). They are the source of the metrics (NewCollector); every refusal and drop the
// package documentation mentions is counted here.
type Stats struct {
	// Connections accepted (CONNACK 0) and refused (CONNACK 0x05 or 0x01).
	Connected, AuthRefused int64
	// Connections closed by the hub: revoked identity or token, protocol violations.
	Revoked int64
	// Clients is the number of connections established now (a gauge).
	Clients int

	// Received telemetry publishes, and what became of them. ReceivedFromModules is the
	// part of Received that modules sent; the rest came from devices.
	Received            int64
	ReceivedFromModules int64
	Stored              int64 // appended to at least one queue, then acknowledged
	Unrouted            int64 // matched no route: acknowledged and dropped (edgeHub has no fallback route)

	// Refused publishes; each closed the connection without a PUBACK.
	RefusedTooLarge   int64 // over MaxLocalMessageSize, or over MaxUpstreamMessageSize when routed upstream
	RefusedMalformed  int64 // unparsable topic or property bag
	RefusedACL        int64 // not the client's own topic, or a filter it may not use
	RefusedQoS2       int64 // QoS 2 publish
	RefusedStoreFull  int64 // store.ErrFull
	RefusedStoreError int64 // any other store failure or StoreTimeout
	// Ignored counts twin requests (GET, reported patch) acknowledged and ignored because
	// the hub has no twin cache (Deps.Twins nil); with one it stays 0. Method responses are
	// never counted here.
	Ignored int64

	// Deliveries to module inputs and sends upstream that were acknowledged.
	Delivered, SentUpstream int64
	// DeliveryFailures counts unacknowledged module deliveries and failed upstream sends.
	DeliveryFailures int64
	// Deferred counts deliveries put off because the module was not connected or not
	// subscribed (or no upstream is configured, or its link was down); they are not
	// failures.
	Deferred int64
	// DeadLettered counts messages moved out of their queue after MaxDeliveryAttempts, an
	// ErrRejected from upstream, or an undecodable record.
	DeadLettered int64
	// Sent counts acknowledged deliveries by endpoint (its store queue name: "$upstream",
	// "/modules/{m}/inputs/{i}"), with every endpoint the hub has a pump for, 0 included.
	// Delivered and SentUpstream are its sums by kind.
	Sent map[string]int64
}

type counters struct {
	connected, authRefused, revoked                 atomic.Int64
	fromDevices, fromModules, stored, unrouted      atomic.Int64
	tooLarge, malformed, acl, qos2                  atomic.Int64
	storeFull, storeError, ignored                  atomic.Int64
	delivered, sentUpstream, failures, deadLettered atomic.Int64
	deferred                                        atomic.Int64
}

// received counts a telemetry publish from a module or a device. The two are counted
// apart, not as a total and a part, so that a snapshot taken meanwhile never shows the
// device count going down.
func (c *counters) received(fromModule bool) {
	if fromModule {
		c.fromModules.Add(1)
	} else {
		c.fromDevices.Add(1)
	}
}

func (c *counters) snapshot() Stats {
	devices, modules := c.fromDevices.Load(), c.fromModules.Load()
	return Stats{
		Connected:           c.connected.Load(),
		AuthRefused:         c.authRefused.Load(),
		Revoked:             c.revoked.Load(),
		Received:            devices + modules,
		ReceivedFromModules: modules,
		Stored:              c.stored.Load(),
		Unrouted:            c.unrouted.Load(),
		RefusedTooLarge:     c.tooLarge.Load(),
		RefusedMalformed:    c.malformed.Load(),
		RefusedACL:          c.acl.Load(),
		RefusedQoS2:         c.qos2.Load(),
		RefusedStoreFull:    c.storeFull.Load(),
		RefusedStoreError:   c.storeError.Load(),
		Ignored:             c.ignored.Load(),
		Delivered:           c.delivered.Load(),
		SentUpstream:        c.sentUpstream.Load(),
		DeliveryFailures:    c.failures.Load(),
		Deferred:            c.deferred.Load(),
		DeadLettered:        c.deadLettered.Load(),
	}
}

// count returns the number of established connections.
func (r *registry) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.active)
}

// sent returns every pump's acknowledged deliveries by endpoint.
func (ps *pumpSet) sent() map[string]int64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make(map[string]int64, len(ps.pumps))
	for id, p := range ps.pumps {
		out[id] = p.sent.Load()
	}
	return out
}
