package hub

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/store"
)

// Outcome is a message handed to PipelinedUpstream.SendAsync: Done is closed once the
// outcome is known, and Err then returns it (nil: the cloud acknowledged the message),
// with the meaning Upstream.Send's errors have.
type Outcome interface {
	Done() <-chan struct{}
	Err() error
}

// PipelinedUpstream is an Upstream that keeps many messages in flight on one link, so that
// a backlog drains at the link's throughput instead of one round trip per message. When
// Deps.Upstream implements it, the $upstream pump keeps Options.UpstreamWindow messages in
// flight (pump_upstream.go).
type PipelinedUpstream interface {
	Upstream
	// SendAsync starts sending m on behalf of identity and returns once it is queued for
	// the link. The pump calls it from its one goroutine, in queue order; the
	// implementation must deliver messages of successive calls in that order (MQTT does,
	// on one connection), report each outcome on its own Outcome, and fail every message
	// in flight when the link drops. Errors wrap ErrRejected (dead-lettered), ErrOffline
	// (the pump waits for LinkState) or are transient (retried with back-off).
	SendAsync(ctx context.Context, identity sas.Identity, m iothub.Message) Outcome
	// LinkState reports whether the link is up now and returns a channel that is closed at its
	// next change, so that the pump resumes as soon as the link is back.
	LinkState() (up bool, changed <-chan struct{})
}

// Pipelining parameters.
const (
	// DefaultUpstreamWindow is how many messages the $upstream pump keeps in flight. The
	// link's round trip (0.2 ms on loopback, 20-200 ms to a cloud region) divided into the
	// window bounds the drain rate: 256 messages per 50 ms is 5,000 msg/s on a slow path
	// and the CPU, not the window, is the limit on a fast one (see BenchmarkDrainUpstream).
	DefaultUpstreamWindow = 256
	// overdueAfter: once the oldest message in flight has waited this long, the pump stops
	// adding messages to the window until it is answered. A message the cloud dropped
	// without acknowledging it (IoT Hub throttling) is only known lost after the link's
	// request timeout; everything sent meanwhile would reach the cloud before its retry, out
	// of order. Holding back after a second keeps that to what was sent in the first
	// second, and costs nothing while the cloud answers in time.
	overdueAfter = time.Second
	// maxUpstreamRead caps one Read of the pipelined pump.
	maxUpstreamRead = 256
)

// flight is one message in the window.
type flight struct {
	it   store.Item
	out  Outcome
	sent time.Time
}

// finished is an Outcome known at once (a message that could not be decoded).
type finished struct{ err error }

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (f finished) Done() <-chan struct{} { return closedCh }
func (f finished) Err() error            { return f.err }

// runPipelined drains the $upstream queue with up to Options.UpstreamWindow messages in
// flight:
//
//	fill the window from the store (in the store's order) --> wait for the oldest message
//	     ^                                                         |
//	     |<---------- acknowledged: Ack it, count it --------------|
//	     |<---------- rejected or corrupt: dead-letter it ---------|
//	     |                                                         | any other failure
//	     |                                                         v
//	     +-- Rewind <-- wait: for the link (ErrOffline) <-- let the rest of the window finish
//	                    or a back-off (other errors)
//
// Outcomes are taken strictly oldest first and the store is acknowledged in that order, so
// a message is acknowledged only once everything before it in its lane was. After a
// failure, nothing is sent again before every message in flight has its outcome, and then
// the pump starts again from the first unacknowledged message: messages reach the cloud in
// order, with duplicates only of messages whose acknowledgement was lost (at least once).
// While the window has room and the backlog is read out, the pump also wakes for new
// messages, so live traffic is sent at once rather than after the oldest message's answer.
func (p *pump) runPipelined(ctx context.Context, up PipelinedUpstream) {
	rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	window := p.s.opts.UpstreamWindow
	var (
		inflight []flight     // oldest first
		pending  []store.Item // read from the store, not sent yet
		head     attempts     // failed sends of the message the pump is stuck on
		failures int          // consecutive waits, for the back-off
	)
	var acks ackBatch
	defer p.flushAcks(&acks)
	deadline := time.NewTimer(time.Hour)
	defer deadline.Stop()
	for ctx.Err() == nil {
		var readErr error
		for p.mayAdd(inflight, window) {
			if len(pending) == 0 {
				pending, readErr = p.s.deps.Store.Read(p.queue, min(window, maxUpstreamRead))
				if readErr != nil || len(pending) == 0 {
					break
				}
			}
			it := pending[0]
			pending = pending[1:]
			out := p.sendAsync(ctx, up, it)
			inflight = append(inflight, flight{it: it, out: out, sent: time.Now()})
		}
		if len(inflight) == 0 {
			if readErr != nil {
				p.log.Warn("reading the queue failed", "err", readErr)
				if !p.sleep(ctx, backoff(failures, p.s.opts.RetryMin, p.s.opts.RetryMax, rnd), nil) {
					return
				}
				failures++
				continue
			}
			select {
			case <-p.s.deps.Store.Wait(p.queue):
			case <-ctx.Done():
				return
			}
			continue
		}

		f := inflight[0]
		var more <-chan struct{} // new messages, while there is room for them
		if p.mayAdd(inflight, window) && len(pending) == 0 && readErr == nil {
			more = p.s.deps.Store.Wait(p.queue)
		}
		if !isDone(f.out) || acks.n >= maxAckBatch {
			p.flushAcks(&acks) // before waiting: the store commits them meanwhile
		}
		deadline.Reset(time.Until(f.sent.Add(p.s.opts.UpstreamTimeout)))
		var err error
		select {
		case <-f.out.Done():
			err = f.out.Err()
		case <-more:
			continue
		case <-deadline.C:
			err = errUpstreamTimeout
		case <-ctx.Done():
			return
		}
		inflight = inflight[1:]
		if err == nil {
			failures = 0
			p.sent.Add(1)
			p.s.stats.sentUpstream.Add(1)
			acks.add(f.it)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		offline := errors.Is(err, ErrOffline)
		if offline {
			p.s.stats.deferred.Add(1)
		} else if reason, dead := p.permanent(err, &head, f.it); dead {
			p.deadLetter(f.it, reason, err)
			continue
		}

		// Transient: once the rest of the window has its outcomes, start again from the
		// first unacknowledged message.
		p.flushAcks(&acks)
		if !p.settle(ctx, inflight) {
			return
		}
		inflight, pending = inflight[:0], nil
		if !p.waitToResend(ctx, up, err, offline, &head, &failures, rnd) {
			return
		}
		p.s.deps.Store.Rewind(p.queue)
	}
}

// mayAdd reports whether the window takes another message: it has room, its oldest message
// is not overdue, and its newest did not fail at once (anything sent after it could
// overtake it once it is sent again).
func (p *pump) mayAdd(inflight []flight, window int) bool {
	switch n := len(inflight); {
	case n == 0:
		return true
	case n >= window, time.Since(inflight[0].sent) >= overdueAfter, failedAtOnce(inflight[n-1].out):
		return false
	}
	return true
}

// maxAckBatch bounds the acknowledgements the pipelined pump holds before passing them to
// the store.
const maxAckBatch = 256

// ackBatch collects the acknowledgements of a run of delivered messages: the highest seq
// per priority, which acknowledges the lane up to it (store.Ack). Passing one per run rather
// than one per message saves the store's committer a wake-up per message.
type ackBatch struct {
	n     int
	lanes []store.Item // the last delivered item of each priority, in no order
}

func (a *ackBatch) add(it store.Item) {
	a.n++
	for i := range a.lanes {
		if a.lanes[i].Priority == it.Priority {
			a.lanes[i].Seq = max(a.lanes[i].Seq, it.Seq)
			return
		}
	}
	a.lanes = append(a.lanes, store.Item{Priority: it.Priority, Seq: it.Seq})
}

// flushAcks acknowledges the batch in the store and empties it.
func (p *pump) flushAcks(a *ackBatch) {
	for _, it := range a.lanes {
		if err := p.s.deps.Store.Ack(p.queue, it.Priority, it.Seq); err != nil {
			p.log.Warn("acknowledging delivered messages failed; they may be delivered again", "priority", it.Priority, "seq", it.Seq, "err", err)
		}
	}
	a.n, a.lanes = 0, a.lanes[:0]
}

func isDone(out Outcome) bool {
	select {
	case <-out.Done():
		return true
	default:
		return false
	}
}

// failedAtOnce reports whether an outcome is already a failure (refused before it was
// sent: offline, a transient identity check, a rejection).
func failedAtOnce(out Outcome) bool { return isDone(out) && out.Err() != nil }

// errUpstreamTimeout is the failure of a message without an outcome within
// Options.UpstreamTimeout (the implementation's own timeout should come first).
var errUpstreamTimeout = errors.New("no outcome from upstream within UpstreamTimeout")

// sendAsync hands one stored message to the upstream.
func (p *pump) sendAsync(ctx context.Context, up PipelinedUpstream, it store.Item) Outcome {
	e, err := decodeEnvelope(it.Body)
	if err != nil {
		return finished{err}
	}
	return up.SendAsync(ctx, e.Sender, e.Message)
}

// settle waits until every message in flight has its outcome (their results no longer
// matter: they are sent again), at most Options.UpstreamTimeout. It reports false when
// ctx ended.
func (p *pump) settle(ctx context.Context, inflight []flight) bool {
	t := time.NewTimer(p.s.opts.UpstreamTimeout)
	defer t.Stop()
	for _, f := range inflight {
		select {
		case <-f.out.Done():
		case <-t.C:
			p.log.Warn("messages still in flight after UpstreamTimeout; sending them again anyway")
			return true
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// waitToResend waits after a transient failure: for the link to come back when it is down,
// otherwise a back-off. It reports false when ctx ended.
func (p *pump) waitToResend(ctx context.Context, up PipelinedUpstream, err error, offline bool, head *attempts, failures *int, rnd *rand.Rand) bool {
	d := backoff(*failures, p.s.opts.RetryMin, p.s.opts.RetryMax, rnd)
	*failures++
	if !offline {
		p.log.Info("upstream delivery failed, will retry", "attempt", head.n, "retry_in", d, "err", err)
		return p.sleep(ctx, d, nil)
	}
	isUp, changed := up.LinkState()
	if isUp {
		// The link is already back (or its state is not updated yet): retry after the
		// back-off, which stays short unless this repeats.
		return p.sleep(ctx, d, nil)
	}
	p.log.Debug("upstream link down; messages wait in the store", "err", err)
	// The link's own reconnection is the back-off; RetryMax is a fallback in case a change
	// is missed.
	return p.sleep(ctx, p.s.opts.RetryMax, changed)
}
