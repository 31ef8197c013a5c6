package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/route"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/store"
)

// readBatch is how many items a pump reads at a time.
const readBatch = 64

// Dead-letter reasons (store.Stats.DeadLetters keys).
const (
	deadCorrupt  = "corrupt"
	deadNoAck    = "unacknowledged"
	deadRejected = "rejected"
)

// pumpSet owns one pump per endpoint. Endpoints are added by ApplyConfig (every sink of
// the routes), by ingest (every target a message was stored for) and by Run (every queue
// already in the store, so that messages of removed routes still drain). A pump is never
// stopped before Run returns: an idle one costs a goroutine blocked on its queue's signal.
type pumpSet struct {
	s *Server

	mu    sync.Mutex
	pumps map[string]*pump // by endpoint ID (the store queue name)
	ctx   context.Context  // nil until Run starts the set
	wg    sync.WaitGroup
}

func newPumpSet(s *Server) *pumpSet {
	return &pumpSet{s: s, pumps: map[string]*pump{}}
}

// ensure registers ep, starting its pump if Run is running.
func (ps *pumpSet) ensure(ep route.Endpoint) {
	id := ep.ID()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if _, ok := ps.pumps[id]; ok {
		return
	}
	p := &pump{s: ps.s, ep: ep, queue: id, wake: make(chan struct{}, 1),
		log: ps.s.log.With("endpoint", id)}
	ps.pumps[id] = p
	if ps.ctx != nil {
		ps.startLocked(p)
	}
}

// run starts every registered pump under ctx; later ensure calls start theirs at once.
func (ps *pumpSet) run(ctx context.Context) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.ctx = ctx
	for _, p := range ps.pumps {
		ps.startLocked(p)
	}
}

func (ps *pumpSet) startLocked(p *pump) {
	ps.wg.Add(1)
	go func() {
		defer ps.wg.Done()
		p.run(ps.ctx)
	}()
}

// wait returns once every pump has returned (after Run's ctx ended).
func (ps *pumpSet) wait() { ps.wg.Wait() }

// wake tells the pumps delivering to id's inputs that id connected or subscribed.
func (ps *pumpSet) wake(id sas.Identity) {
	if id.ModuleID == "" || id.DeviceID != ps.s.opts.EdgeDeviceID {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.pumps {
		if p.ep.Kind == route.ModuleInput && p.ep.Module == id.ModuleID {
			p.signal()
		}
	}
}

// endpointOf turns a store queue name back into an endpoint: "$upstream" and its senders'
// queues "$upstream/..." (upstream_lanes.go), or "/modules/{m}/inputs/{i}"
// (route.Endpoint.ID; module ids and input names contain no '/').
func endpointOf(queue string) (route.Endpoint, bool) {
	if isUpstreamQueue(queue) {
		return route.Endpoint{Kind: route.Upstream}, true
	}
	rest, ok := strings.CutPrefix(queue, "/modules/")
	if !ok {
		return route.Endpoint{}, false
	}
	m, in, ok := strings.Cut(rest, "/inputs/")
	if !ok || m == "" || in == "" || strings.Contains(m, "/") || strings.Contains(in, "/") {
		return route.Endpoint{}, false
	}
	return route.Endpoint{Kind: route.ModuleInput, Module: m, Input: in}, true
}

// pump drains one endpoint's queue, in the order the store hands items out (priority
// order, then append order). A module input's pump keeps a window of deliveries in
// flight (pump_window.go):
//
//	read a batch --empty--> wait for the queue's signal (and for PUBACKs)
//	     |
//	     v
//	write PUBLISHes while fewer than Options.InputWindow are unacknowledged
//	     |--PUBACKs----------------> Ack the store up to the last contiguous one, write more
//	     |--permanent failure------> DeadLetter (counted), next item
//	     |--module away------------> wait for it to connect or subscribe (or a back-off tick), Rewind, read again
//	     '--no PUBACK, disconnect--> the oldest unacknowledged delivery failed: count an attempt,
//	                                 give up the rest of the window; at Options.MaxDeliveryAttempts
//	                                 DeadLetter it and Rewind at once, else wait a back-off (or the
//	                                 module's return), Rewind, read again (a window of one until a
//	                                 PUBACK comes back)
//
// Rewinding after a wait re-reads from the first unacknowledged item, so newer items of a
// higher priority overtake it and items that expired meanwhile are skipped by the store.
// The $upstream pump runs the loop of pump_upstream.go instead.
type pump struct {
	s     *Server
	ep    route.Endpoint
	queue string
	wake  chan struct{} // size 1: the module connected or subscribed
	log   *slog.Logger
	sent  atomic.Int64 // acknowledged deliveries, for Stats.Sent
}

func (p *pump) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// attempts counts the failed sends of one item. Only the item a pump is stuck on matters:
// after a failure the pump starts again from that item, and acknowledges nothing past it
// before it is acknowledged or dead-lettered.
type attempts struct {
	prio int
	seq  uint64
	n    int
}

// failed records a failed send of it and returns how many there were in a row.
func (a *attempts) failed(it store.Item) int {
	if a.n == 0 || a.prio != it.Priority || a.seq != it.Seq {
		*a = attempts{prio: it.Priority, seq: it.Seq}
	}
	a.n++
	return a.n
}

func (p *pump) run(ctx context.Context) {
	switch p.ep.Kind {
	case route.Upstream: // pump_upstream.go
		if up, ok := p.s.deps.Upstream.(PipelinedUpstream); ok {
			p.runUpstream(ctx, up, p.s.opts.UpstreamWindow)
		} else {
			p.runUpstream(ctx, syncUpstream{up: p.s.deps.Upstream, timeout: p.s.opts.UpstreamTimeout}, 1)
		}
	case route.ModuleInput: // pump_window.go
		p.runInput(ctx, p.s.opts.InputWindow)
	default: // endpointOf and the routes make no other kind
		p.log.Error("no pump for this endpoint kind; its messages stay stored", "kind", p.ep.Kind)
	}
}

// permanent decides whether a failed item is dead-lettered, counting the attempt.
func (p *pump) permanent(err error, head *attempts, it store.Item) (string, bool) {
	switch {
	case errors.Is(err, ErrCorrupt):
		return deadCorrupt, true
	case errors.Is(err, ErrRejected):
		p.s.stats.failures.Add(1)
		return deadRejected, true
	case errors.Is(err, ErrNotConnected):
		p.s.stats.deferred.Add(1)
		return "", false // the module is away: not an attempt
	}
	p.s.stats.failures.Add(1)
	if n := head.failed(it); p.ep.Kind == route.ModuleInput && n >= p.s.opts.MaxDeliveryAttempts {
		return deadNoAck, true
	}
	return "", false
}

func (p *pump) deadLetter(it store.Item, reason string, cause error) {
	p.s.stats.deadLettered.Add(1)
	p.log.Warn("message dead-lettered", "seq", it.Seq, "priority", it.Priority, "reason", reason, "err", cause)
	if err := p.s.deps.Store.DeadLetter(p.queue, it.Priority, it.Seq, reason); err != nil && !errors.Is(err, store.ErrNotFound) {
		p.log.Warn("dead-lettering failed", "seq", it.Seq, "err", err)
	}
}

// sleep waits d, or until wake fires, and reports false when ctx ended.
func (p *pump) sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-wake:
	case <-ctx.Done():
		return false
	}
	return true
}

// publishOf builds the PUBLISH of a stored message for the module input (QoS, packet id
// and DUP are the caller's): ErrCorrupt when it cannot be decoded, ErrRejected when its
// topic is too long for MQTT.
func (p *pump) publishOf(it store.Item) (packets.Packet, error) {
	e, err := decodeEnvelope(it.Body)
	if err != nil {
		return packets.Packet{}, err
	}
	topic := inputTopic(p.s.opts.EdgeDeviceID, p.ep, e.Message).String()
	// Percent-encoding can make the bag up to three times longer than the one received.
	if n := len(topic); n > iothub.MaxTopicLength {
		return packets.Packet{}, fmt.Errorf("%w: input topic of %d bytes, MQTT allows %d", ErrRejected, n, iothub.MaxTopicLength)
	}
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     e.Message.Body,
	}, nil
}

// forwardedSystem are the system properties a module input message carries (edgeHub's
// OutgoingSystemPropertiesMap): not $.on, which named the sender's output, nor tracing and
// interface ids.
var forwardedSystem = map[string]bool{
	iothub.SysMessageID: true, iothub.SysCorrelationID: true, iothub.SysUserID: true,
	iothub.SysTo: true, iothub.SysExpiry: true, iothub.SysContentType: true,
	iothub.SysContentEncoding: true, iothub.SysCreationTime: true, iothub.SysConnDeviceID: true,
	iothub.SysConnModuleID: true, iothub.SysSchema: true, iothub.SysComponent: true,
	iothub.SysAck: true, iothub.SysOperation: true,
}

// inputTopic builds devices/{edge}/modules/{m}/inputs/{input}/{bag} for a stored message:
// every application property and the forwarded system properties, $.cdid (and $.cmid for a
// module sender) always among them since ingest stamped them. It deletes the other system
// properties from m.System: the caller's copy, decoded for this delivery.
func inputTopic(edge string, ep route.Endpoint, m iothub.Message) iothub.Topic {
	for k := range m.System {
		if !forwardedSystem[k] {
			delete(m.System, k)
		}
	}
	return iothub.Topic{Kind: iothub.KindInput, DeviceID: edge, ModuleID: ep.Module, Input: ep.Input, Bag: m.Bag()}
}
