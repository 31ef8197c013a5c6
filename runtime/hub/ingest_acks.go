package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/runtime/route"
	"github.com/outpost-edge/outpost/runtime/store"
)

// AsyncAppender is a Store that can append without waiting for the commit, as
// *store.Store does (see store.Store.AppendAsync for the contract): done is called once,
// with nil only after the message is durable, and in submission order except for appends
// abandoned because their ctx ended. With it the hub keeps up to Options.IngestWindow of
// a client's publishes in one group commit; without it each publish waits for its own
// commit in the client's read goroutine (see ingestHook).
type AsyncAppender interface {
	AppendAsync(ctx context.Context, body []byte, targets []store.Target, done func(error)) error
}

// errNotAcknowledged refuses a publish that was refused, or followed a refused publish of
// the same connection, after the read goroutine let go of it: the refusal was logged and
// counted then, the connection is closing, and no later publish of it may be acknowledged
// (PUBACKs go in receive order).
var errNotAcknowledged = fmt.Errorf("%w: this or an earlier publish of the connection was not stored", ErrStoreUnavailable)

// pubacks is one connection's publishes that await their commit, in receive order, and
// the writer of their PUBACKs. The client's read goroutine (OnPublish) adds to it; the
// store's callbacks mark entries done; whoever finds the head done starts flush, the one
// goroutine at a time that pops the done head entries and writes their PUBACKs. After the
// first failure nothing more is acknowledged and the connection is closed.
type pubacks struct {
	s     *Server
	cl    *mqtt.Client
	slots chan struct{} // one per entry: Options.IngestWindow
	// ctx is the connection's appends' context: it ends with the hub, when the watchdog
	// finds the oldest pending publish uncommitted after Options.StoreTimeout (the store
	// then abandons every append of the connection it has not started to commit), and
	// after close.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// routing is the read goroutine's scratch for what the routes see (routeMessage).
	routing route.Message

	mu      sync.Mutex
	changed sync.Cond   // on mu: an entry was popped, or failed was set
	queue   []*inflight // receive order
	writing bool        // flush runs
	buf     []byte      // flush's encoded PUBACKs
	failed  bool        // a publish was refused: nothing more is acknowledged
	// watchdog fires at the oldest pending publish's deadline (see watch); armed while
	// publishes are pending.
	watchdog *time.Timer
	armed    bool
}

// inflight is one publish that awaits its commit (or only its turn, when it was stored
// nowhere: unrouted).
type inflight struct {
	id       uint16
	qos      byte
	stored   bool // appended to the store: counted in Stats.Stored once committed
	done     bool
	err      error
	deadline time.Time     // received + Options.StoreTimeout
	settled  chan struct{} // QoS 0 only: closed once its outcome (err) is final
}

func newPubacks(s *Server, cl *mqtt.Client) *pubacks {
	q := &pubacks{s: s, cl: cl, slots: make(chan struct{}, s.opts.IngestWindow)}
	q.ctx, q.cancel = context.WithCancelCause(s.baseContext())
	q.changed.L = &q.mu
	return q
}

// errStoreTimeout ends a connection's appends when its oldest pending publish was not
// committed within Options.StoreTimeout.
var errStoreTimeout = fmt.Errorf("no commit within the store timeout: %w", context.DeadlineExceeded)

// watch is the watchdog: it ends the connection's appends once the oldest publish still
// awaiting its commit has passed its deadline, and otherwise sets itself for that
// deadline. One timer per connection, reset about once per StoreTimeout under load,
// instead of a timer and a context per publish.
func (q *pubacks) watch() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.armed = false
	for _, p := range q.queue {
		if p.done {
			continue
		}
		if d := time.Until(p.deadline); d > 0 {
			q.arm(d)
			return
		}
		q.cancel(errStoreTimeout)
		return
	}
}

// arm sets the watchdog to fire in d unless it is set already. On mu.
func (q *pubacks) arm(d time.Duration) {
	if q.armed {
		return
	}
	q.armed = true
	if q.watchdog == nil {
		q.watchdog = time.AfterFunc(d, q.watch)
		return
	}
	q.watchdog.Reset(d)
}

// idle reports whether a PUBACK written now, by mochi in the read goroutine, is in order:
// nothing is pending or being written, and nothing was refused. Read goroutine only (it
// alone adds entries).
func (q *pubacks) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue) == 0 && !q.writing && !q.failed
}

// drain waits until every pending publish is settled and its PUBACK written, so that a
// request handled next sees everything before it stored, as when each publish waited for
// its own commit. It returns errNotAcknowledged once one of them was refused. Read
// goroutine only.
func (q *pubacks) drain() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.failed && (len(q.queue) > 0 || q.writing) {
		q.changed.Wait()
	}
	if q.failed {
		return errNotAcknowledged
	}
	return nil
}

// fail stops acknowledging: the read goroutine refused a publish itself.
func (q *pubacks) fail() {
	q.mu.Lock()
	q.failed = true
	q.changed.Broadcast()
	q.mu.Unlock()
}

// add queues the entry for pk, waiting for a slot while IngestWindow publishes are
// pending (back-pressure: the client's next packet is not read meanwhile). Read goroutine
// only.
func (q *pubacks) add(ctx context.Context, pk packets.Packet, stored bool) (*inflight, error) {
	select {
	case q.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrStoreUnavailable, context.Cause(ctx))
	}
	p := &inflight{id: pk.PacketID, qos: pk.FixedHeader.Qos, stored: stored, deadline: time.Now().Add(q.s.opts.StoreTimeout)}
	if p.qos == 0 {
		p.settled = make(chan struct{})
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failed {
		<-q.slots
		return nil, errNotAcknowledged
	}
	q.queue = append(q.queue, p)
	q.arm(q.s.opts.StoreTimeout)
	return p, nil
}

// append submits a routed message, its stored form in a buffer of bodies, and returns
// once the store has taken it (QoS 1) or has committed it (QoS 0, which gets no PUBACK and
// keeps its synchronous store). The buffer goes back to bodies once the store is done
// with it. Read goroutine only.
func (q *pubacks) append(pk packets.Packet, body *[]byte, targets []store.Target) error {
	s := q.s
	p, err := q.add(q.ctx, pk, true)
	if err != nil {
		releaseBody(body)
		return err
	}
	if as, ok := s.deps.Store.(AsyncAppender); ok {
		err := as.AppendAsync(q.ctx, *body, targets, func(err error) {
			releaseBody(body)
			q.complete(p, err)
		})
		if err != nil {
			releaseBody(body) // not taken: done is not called
			q.complete(p, err)
		}
	} else {
		err := s.deps.Store.Append(q.ctx, *body, targets)
		releaseBody(body)
		q.complete(p, err)
	}
	return p.wait()
}

// skip queues the PUBACK of a publish that needs no commit (matched no route) behind the
// pending ones. Read goroutine only.
func (q *pubacks) skip(pk packets.Packet) error {
	p, err := q.add(q.ctx, pk, false)
	if err != nil {
		return err
	}
	q.complete(p, nil)
	return p.wait()
}

// wait waits for a QoS 0 publish to be settled (a QoS 1 publish is left to flush) and
// returns errNotAcknowledged if it failed: flush has reported it.
func (p *inflight) wait() error {
	if p.settled == nil {
		return nil
	}
	<-p.settled
	if p.err != nil {
		return errNotAcknowledged
	}
	return nil
}

// complete records p's outcome and starts flush if p made the head of the queue done. It
// runs on the store's committer goroutine, so it never blocks.
func (q *pubacks) complete(p *inflight, err error) {
	q.mu.Lock()
	p.done, p.err = true, err
	start := !q.writing && len(q.queue) > 0 && q.queue[0].done
	if start {
		q.writing = true
	}
	q.mu.Unlock()
	if start {
		go q.flush()
	}
}

// flush pops the done entries at the head of the queue and acknowledges them in order,
// until the head is not done. The first refused publish closes the connection; it and
// everything after it get no PUBACK.
func (q *pubacks) flush() {
	for {
		q.mu.Lock()
		n := 0
		for n < len(q.queue) && q.queue[n].done {
			n++
		}
		if n == 0 {
			q.writing = false
			q.changed.Broadcast()
			q.mu.Unlock()
			return
		}
		batch := q.queue[:n:n]
		q.queue = q.queue[n:]
		var refused error // the first refusal, in this batch
		ack := batch[:0:0]
		stored := int64(0)
		for _, p := range batch {
			if p.stored && p.err == nil {
				stored++ // durable, acknowledged or not
			}
			switch {
			case q.failed:
				p.err = errNotAcknowledged
			case p.err != nil:
				q.failed, refused = true, p.err
			default:
				ack = append(ack, p)
			}
		}
		q.changed.Broadcast()
		q.mu.Unlock()

		q.s.stats.stored.Add(stored)
		if refused != nil {
			q.refuse(refused)
		}
		if err := q.writeAcks(ack); err != nil {
			// The connection is gone: none of them counts as acknowledged, and no later
			// PUBACK may follow a missing one.
			q.fail()
			for _, p := range ack {
				p.err = errNotAcknowledged
			}
		}
		for _, p := range batch {
			if p.settled != nil {
				close(p.settled)
			}
			<-q.slots
		}
	}
}

// writeAcks writes the PUBACKs of the QoS 1 publishes in ack, in order, with one write
// (deliver_write.go). Flush only: buf is the flush's own.
func (q *pubacks) writeAcks(ack []*inflight) error {
	q.buf = q.buf[:0]
	for _, p := range ack {
		if p.qos == 1 {
			// PUBACK: fixed header 0x40, remaining length 2, packet id (MQTT 3.1.1, 3.4).
			q.buf = append(q.buf, packets.Puback<<4, 2, byte(p.id>>8), byte(p.id))
		}
	}
	if len(q.buf) == 0 {
		return nil
	}
	n := len(q.buf) / pubackSize
	return writeEncoded(q.s.mochi, q.cl, q.buf, n, 0)
}

// pubackSize is the length of an MQTT 3.1.1 PUBACK.
const pubackSize = 4

// refuse counts and logs a publish the store did not take, and closes the connection: the
// client publishes it again after reconnecting (CleanSession=0).
func (q *pubacks) refuse(err error) {
	s := q.s
	if errors.Is(err, store.ErrFull) {
		s.stats.storeFull.Add(1)
	} else {
		s.stats.storeError.Add(1)
	}
	s.log.Warn("message not stored, refused without PUBACK, closing connection", "client_id", q.cl.ID, "err", err)
	q.cl.Stop(fmt.Errorf("%w: %w", ErrStoreUnavailable, err))
}

// close waits until every pending publish of a connection that ended is settled, so that
// the hub's shutdown (mochi waits for OnDisconnect) leaves no append or PUBACK behind.
func (q *pubacks) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.queue) > 0 || q.writing {
		q.changed.Wait()
	}
	if q.watchdog != nil {
		q.watchdog.Stop()
	}
	q.cancel(nil)
}
