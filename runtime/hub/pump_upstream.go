package hub

import (
	"context"
	"errors"
	"fmt"
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
	// upstreamTurn is how many messages the $upstream pump sends from one sender's queue
	// before the next sender with messages waiting gets its turn (and the size of one Read).
	// A sender's live message thus waits for at most one turn of every sender with a
	// backlog, not for the backlogs themselves; larger turns read the store in larger
	// batches.
	upstreamTurn = 64
)

// flight is one message in the window.
type flight struct {
	id   uint64 // in send order
	lane *upLane
	it   store.Item
	out  Outcome
	sent time.Time
}

// finished is an Outcome known at once (a message that could not be decoded, or one sent
// by syncUpstream).
type finished struct{ err error }

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (f finished) Done() <-chan struct{} { return closedCh }
func (f finished) Err() error            { return f.err }

// runUpstream drains the $upstream queues, one per sender (upstream_lanes.go), with up to
// window messages in flight on the one link, shared by all senders:
//
//	fill the window: senders with messages take turns of upstreamTurn messages, each
//	     ^           read in the store's order       --> wait for the oldest message
//	     |                                                         |
//	     |<---------- acknowledged: Ack it, count it --------------|
//	     |<---------- rejected or corrupt: dead-letter it ---------|
//	     |                                                         | any other failure
//	     |                                                         v
//	     |   that sender only: its other messages in flight finish, Rewind its queue, and
//	     +-- it waits for the link (ErrOffline) or a back-off (other errors); the others go on
//
// Outcomes are taken strictly oldest first (the link answers in order) and a sender's
// queue is acknowledged in that order, so a message is acknowledged only once everything
// before it in its lane was. After a failure, nothing more of that sender is sent before
// every message of it in flight has its outcome, and then it starts again from its first
// unacknowledged message: each sender's messages reach the cloud in order, with duplicates
// only of messages whose acknowledgement was lost (at least once). While the window has
// room, the pump also wakes for new messages (store.Watcher), so live traffic is sent at
// once rather than after the oldest message's answer, and a sender's live message waits
// for at most one turn of each sender with a backlog.
func (p *pump) runUpstream(ctx context.Context, up PipelinedUpstream, window int) {
	u := &upstreamPump{
		p: p, up: up, window: window,
		watch: p.s.deps.Store.Watch(upstreamID),
		rnd:   rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		lanes: make(map[string]*upLane),
	}
	defer u.watch.Stop()
	defer u.flushAcks()
	deadline := time.NewTimer(time.Hour)
	defer deadline.Stop()
	resume := time.NewTimer(time.Hour)
	defer resume.Stop()
	signalled := false // received from the Watcher's channel
	for ctx.Err() == nil {
		u.takeMarks(signalled)
		signalled = false
		u.resume()
		u.fill(ctx)

		var (
			marks   <-chan struct{} // new messages, while there is room for them
			link    <-chan struct{} // a lane waits for the link to come back
			resumed <-chan time.Time
			done    <-chan struct{}
			expired <-chan time.Time
		)
		if u.mayAdd() {
			marks = u.watch.C()
		}
		if u.onLink > 0 {
			link = u.linkChanged
		}
		if at, ok := u.nextResume(); ok {
			resetTimer(resume, time.Until(at))
			resumed = resume.C
		}
		var f flight
		if len(u.inflight) > 0 {
			f = u.inflight[0]
			done = f.out.Done()
			resetTimer(deadline, time.Until(f.sent.Add(p.s.opts.UpstreamTimeout)))
			expired = deadline.C
		}
		if done == nil || !isDone(f.out) || u.acks.n >= maxAckBatch {
			u.flushAcks() // before waiting: the store commits them meanwhile
		}
		var err error
		select {
		case <-done:
			err = f.out.Err()
		case <-expired:
			err = errUpstreamTimeout
		case <-marks:
			signalled = true
			continue
		case <-link:
			u.linkBack()
			continue
		case <-resumed:
			continue
		case <-ctx.Done():
			return
		}
		u.inflight = u.inflight[1:]
		u.outcome(f, err)
	}
}

// upstreamPump is the state of runUpstream, owned by its goroutine.
type upstreamPump struct {
	p      *pump
	up     PipelinedUpstream
	window int
	watch  *store.Watcher
	rnd    *rand.Rand

	lanes    map[string]*upLane // every upstream queue seen, by name
	ring     []*upLane          // the lanes in laneReady, in turn order
	turn     int                // index in ring of the lane holding the turn
	turnLeft int                // messages it may still send in this turn
	waiting  []*upLane          // the lanes in laneWaiting
	inflight []flight           // the window, oldest first
	flights  uint64             // messages handed to the link so far (the flights' ids)
	acks     ackBatch

	onLink      int             // waiting lanes that also wait for the link
	linkChanged <-chan struct{} // closed at the link's next change (PipelinedUpstream.LinkState)
}

// mayAdd reports whether the window takes another message: it has room and its oldest
// message is not overdue.
func (u *upstreamPump) mayAdd() bool {
	switch n := len(u.inflight); {
	case n == 0:
		return true
	case n >= u.window, time.Since(u.inflight[0].sent) >= overdueAfter:
		return false
	}
	return true
}

// fill sends messages while the window takes them, the lanes taking turns.
func (u *upstreamPump) fill(ctx context.Context) {
	skipped := 0 // lanes passed over in a row without sending
	for u.mayAdd() && len(u.ring) > 0 && skipped < len(u.ring) {
		l := u.ring[u.turn]
		if u.turnLeft <= 0 {
			u.nextTurn()
			continue
		}
		if failedAtOnce(l.last) {
			// Its newest message failed at once: anything sent after it could overtake it
			// once it is sent again.
			u.nextTurn()
			skipped++
			continue
		}
		if len(l.pending) == 0 {
			items, err := u.p.s.deps.Store.Read(l.queue, u.turnLeft)
			if err != nil {
				u.p.log.Warn("reading the queue failed", "queue", l.queue, "err", err)
				u.dropFromRing(l)
				u.wait(l, backoff(l.failures, u.p.s.opts.RetryMin, u.p.s.opts.RetryMax, u.rnd), false)
				l.failures++
				continue
			}
			if len(items) == 0 {
				u.dropFromRing(l) // idle until the Watcher marks its queue again
				l.state = laneIdle
				continue
			}
			l.pending = items
		}
		it := l.pending[0]
		l.pending = l.pending[1:]
		out := u.p.sendAsync(ctx, u.up, it)
		u.flights++
		u.inflight = append(u.inflight, flight{id: u.flights, lane: l, it: it, out: out, sent: time.Now()})
		l.inflight++
		l.last, l.lastID = out, u.flights
		u.turnLeft--
		skipped = 0
	}
}

// outcome handles the outcome of the oldest message in flight.
func (u *upstreamPump) outcome(f flight, err error) {
	p, l := u.p, f.lane
	l.inflight--
	if l.lastID == f.id {
		l.last = nil // none of its messages in flight failed at once
	}
	switch {
	case l.state == laneSettling:
		// An earlier message of its sender failed: this one is sent again whatever its
		// outcome, after the rewind.
	case err == nil:
		l.failures = 0
		p.sent.Add(1)
		p.s.stats.sentUpstream.Add(1)
		u.acks.add(f.it)
	default:
		offline := errors.Is(err, ErrOffline)
		if offline {
			p.s.stats.deferred.Add(1)
		} else if reason, dead := p.permanent(err, &l.head, f.it); dead {
			p.deadLetter(f.it, reason, err)
			break
		}
		u.fail(l, err, offline)
	}
	if l.state == laneSettling && l.inflight == 0 {
		u.rewind(l)
	}
}

// maxAckBatch bounds the acknowledgements the pipelined pump holds before passing them to
// the store.
const maxAckBatch = 256

// ackBatch collects the acknowledgements of a run of delivered messages: the highest seq
// per queue and priority, which acknowledges the lane up to it (store.Ack). Passing one per
// run rather than one per message saves the store's committer a wake-up per message.
type ackBatch struct {
	n     int
	lanes []store.Item // the last delivered item of each (queue, priority), in no order
}

func (a *ackBatch) add(it store.Item) {
	a.n++
	for i := range a.lanes {
		if a.lanes[i].Priority == it.Priority && a.lanes[i].Queue == it.Queue {
			a.lanes[i].Seq = max(a.lanes[i].Seq, it.Seq)
			return
		}
	}
	a.lanes = append(a.lanes, store.Item{Queue: it.Queue, Priority: it.Priority, Seq: it.Seq})
}

// flushAcks acknowledges the batch in the store and empties it.
func (u *upstreamPump) flushAcks() {
	a := &u.acks
	for _, it := range a.lanes {
		if err := u.p.s.deps.Store.Ack(it.Queue, it.Priority, it.Seq); err != nil {
			u.p.log.Warn("acknowledging delivered messages failed; they may be delivered again", "queue", it.Queue, "priority", it.Priority, "seq", it.Seq, "err", err)
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
func failedAtOnce(out Outcome) bool { return out != nil && isDone(out) && out.Err() != nil }

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

// syncUpstream adapts an Upstream that sends one message at a time (or none: nil) to the
// $upstream pump, which then runs with a window of one: SendAsync sends at once, within
// Options.UpstreamTimeout, and returns the outcome known.
type syncUpstream struct {
	up      Upstream
	timeout time.Duration
}

func (u syncUpstream) Send(ctx context.Context, id sas.Identity, m iothub.Message) error {
	if u.up == nil {
		return fmt.Errorf("%w: no upstream configured", ErrNotConnected)
	}
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	if err := u.up.Send(ctx, id, m); err != nil {
		return fmt.Errorf("upstream send: %w", err)
	}
	return nil
}

func (u syncUpstream) SendAsync(ctx context.Context, id sas.Identity, m iothub.Message) Outcome {
	return finished{u.Send(ctx, id, m)}
}

// LinkState says the link is up: failures are retried after a back-off.
func (u syncUpstream) LinkState() (bool, <-chan struct{}) { return true, nil }
