package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
// order, then append order), one message at a time:
//
//	read a batch --empty--> wait for the queue's signal
//	     |
//	     v
//	send the next item --ok--> Ack, next item
//	     |--permanent failure--> DeadLetter (counted), next item
//	     |--module away--------> wait for it to connect or subscribe (or a back-off tick), Rewind, read again
//	     '--transient failure--> wait a back-off (or the module's return), Rewind, read again
//
// Rewinding after a wait re-reads from the first unacknowledged item, so newer items of a
// higher priority overtake it and items that expired meanwhile are skipped by the store.
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
// the pump never moves past an item that failed without acknowledging or dead-lettering it.
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
	if p.ep.Kind == route.Upstream { // pump_upstream.go
		if up, ok := p.s.deps.Upstream.(PipelinedUpstream); ok {
			p.runUpstream(ctx, up, p.s.opts.UpstreamWindow)
		} else {
			p.runUpstream(ctx, syncUpstream{up: p.s.deps.Upstream, timeout: p.s.opts.UpstreamTimeout}, 1)
		}
		return
	}
	rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	var head attempts // failed sends of the item the pump is stuck on
	failures := 0     // consecutive waits, for the back-off
	for ctx.Err() == nil {
		items, err := p.s.deps.Store.Read(p.queue, readBatch)
		if err != nil {
			p.log.Warn("reading the queue failed", "err", err)
			if !p.sleep(ctx, backoff(failures, p.s.opts.RetryMin, p.s.opts.RetryMax, rnd), nil) {
				return
			}
			failures++
			continue
		}
		if len(items) == 0 {
			select {
			case <-p.s.deps.Store.Wait(p.queue):
			case <-ctx.Done():
				return
			}
			continue
		}
		for _, it := range items {
			err := p.send(ctx, it)
			if err == nil {
				failures = 0
				p.sent.Add(1)
				if err := p.s.deps.Store.Ack(p.queue, it.Priority, it.Seq); err != nil {
					p.log.Warn("acknowledging a delivered message failed; it may be delivered again", "seq", it.Seq, "err", err)
				}
				continue
			}
			if ctx.Err() != nil {
				return
			}
			if reason, dead := p.permanent(err, &head, it); dead {
				p.deadLetter(it, reason, err)
				continue
			}
			// Transient: wait, then read again from the first unacknowledged item.
			away := errors.Is(err, ErrNotConnected)
			if !away {
				p.log.Info("delivery failed, will retry", "seq", it.Seq, "priority", it.Priority,
					"attempt", head.n, "err", err)
			}
			var wake <-chan struct{}
			if p.ep.Kind == route.ModuleInput {
				wake = p.wake
			}
			if !p.sleep(ctx, backoff(failures, p.s.opts.RetryMin, p.s.opts.RetryMax, rnd), wake) {
				return
			}
			failures++
			p.s.deps.Store.Rewind(p.queue)
			break
		}
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

// send delivers one item to the endpoint.
func (p *pump) send(ctx context.Context, it store.Item) error {
	e, err := decodeEnvelope(it.Body)
	if err != nil {
		return err
	}
	switch p.ep.Kind {
	case route.ModuleInput:
		clientID := iothub.ClientID(p.s.opts.EdgeDeviceID, p.ep.Module)
		topic := inputTopic(p.s.opts.EdgeDeviceID, p.ep, e.Message)
		// Percent-encoding can make the bag up to three times longer than the one received.
		if n := len(topic.String()); n > iothub.MaxTopicLength {
			return fmt.Errorf("%w: input topic of %d bytes, MQTT allows %d", ErrRejected, n, iothub.MaxTopicLength)
		}
		err = p.s.delivery.deliver(ctx, clientID, topic, e.Message.Body, p.s.opts.AckTimeout)
		if err == nil {
			p.s.stats.delivered.Add(1)
		}
		return err
	}
	return fmt.Errorf("%w: endpoint kind %d", ErrCorrupt, p.ep.Kind)
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
// module sender) always among them since ingest stamped them.
func inputTopic(edge string, ep route.Endpoint, m iothub.Message) iothub.Topic {
	out := iothub.Message{Properties: m.Properties, System: make(map[string]string, len(m.System))}
	for k, v := range m.System {
		if forwardedSystem[k] {
			out.System[k] = v
		}
	}
	return iothub.Topic{Kind: iothub.KindInput, DeviceID: edge, ModuleID: ep.Module, Input: ep.Input, Bag: out.Bag()}
}
