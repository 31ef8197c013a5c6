package fakehub

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// decideSubscribe decides every filter of a SUBSCRIBE (mochi then asks subscribeAllowed for
// each and answers the SUBACK, 0x80 for a refused filter):
//
//   - only the dialect's filters (iothub.ParseFilter), and only the identity's own: C2D for
//     a device ("devices/{d}/messages/devicebound/#" or the embedded SDK's
//     "devices/+/messages/devicebound/#"), module inputs for a module (granted so that SDKs
//     that always subscribe keep working, though IoT Hub itself delivers no inputs), the
//     twin response, desired patch and method filters for both;
//   - at most iothub.MaxSubscriptionsPerClient (5) distinct filters per identity, counting
//     the ones the session already holds; filters beyond that are refused;
//   - QoS 2 is granted as QoS 1.
func (s *Server) decideSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conns[cl]
	if c == nil {
		return pk
	}
	var held, requested []string
	for f := range cl.State.Subscriptions.GetAll() {
		held = append(held, f)
	}
	for i := range pk.Filters {
		pk.Filters[i].Qos = min(pk.Filters[i].Qos, 1)
		requested = append(requested, pk.Filters[i].Filter)
	}
	grants := grantFilters(c.ident, held, requested)
	c.subDecisions = make(map[string]bool, len(requested))
	for i, f := range requested {
		c.subDecisions[f] = grants[i]
	}
	return pk
}

// grantFilters decides the filters of one SUBSCRIBE for an identity whose session already
// holds the filters in held: a filter is granted when filterAllowed accepts it and, unless
// the session already holds it, fewer than iothub.MaxSubscriptionsPerClient distinct filters
// would be held with it. A filter repeated within the packet gets the answer of its first
// occurrence.
func grantFilters(id sas.Identity, held, requested []string) []bool {
	holding := make(map[string]bool, len(held))
	for _, f := range held {
		holding[f] = true
	}
	decided := map[string]bool{}
	out := make([]bool, len(requested))
	for i, f := range requested {
		if ok, seen := decided[f]; seen {
			out[i] = ok
			continue
		}
		ok := filterAllowed(id, f)
		if ok && !holding[f] {
			if len(holding) >= iothub.MaxSubscriptionsPerClient {
				ok = false
			} else {
				holding[f] = true
			}
		}
		decided[f], out[i] = ok, ok
	}
	return out
}

// subscribeAllowed answers mochi's per-filter check with decideSubscribe's decision.
func (s *Server) subscribeAllowed(cl *mqtt.Client, filter string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conns[cl]
	return c != nil && c.subDecisions[filter]
}

// subscriptionsChanged runs after the SUBACK (or UNSUBACK) was written: pending C2D messages
// may now be deliverable, and method invocations may be waiting for the subscription.
func (s *Server) subscriptionsChanged(cl *mqtt.Client) {
	s.mu.Lock()
	c := s.conns[cl]
	if c == nil {
		s.mu.Unlock()
		return
	}
	c.subDecisions = nil
	s.signalLocked()
	s.mu.Unlock()
	if c.ident.ModuleID == "" {
		s.deliverC2D(c.ident.DeviceID)
	}
	if c.obo != nil {
		s.oboPumpC2D(c)
	}
}

// filterAllowed reports whether an identity may subscribe to filter. The module $edgeHub may
// also take the two filters of the edge multiplexing extension (obo.go); they only deliver
// anything on an edge device's connection.
func filterAllowed(id sas.Identity, filter string) bool {
	if id.ModuleID == moduleEdgeHub && (filter == iothub.OBOFilter || filter == iothub.OBOC2DFilter) {
		return true
	}
	f, err := iothub.ParseFilter(filter)
	if err != nil {
		return false
	}
	switch f.Kind {
	case iothub.KindC2D:
		return id.ModuleID == "" && (f.AnyDevice || f.DeviceID == id.DeviceID)
	case iothub.KindInput:
		return id.ModuleID != "" && f.DeviceID == id.DeviceID && f.ModuleID == id.ModuleID
	case iothub.KindTwinResponse, iothub.KindTwinPatchDesired, iothub.KindMethodRequest:
		return true
	}
	return false
}

// subscription reports whether the client's session holds a filter of the given kind that
// receives the identity's messages, and the QoS to deliver them at (the granted QoS, at most
// 1).
func subscription(cl *mqtt.Client, kind iothub.Kind, id sas.Identity) (byte, bool) {
	for filter, sub := range cl.State.Subscriptions.GetAll() {
		f, err := iothub.ParseFilter(filter)
		if err != nil || f.Kind != kind || !filterAllowed(id, filter) {
			continue
		}
		return min(sub.Qos, 1), true
	}
	return 0, false
}
