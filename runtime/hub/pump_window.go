package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/store"
)

// Module input windows.
const (
	// DefaultInputWindow is how many deliveries to a module input the pump keeps
	// unacknowledged (Options.InputWindow). With one delivery at a time the pump spent two
	// thirds of a durable load waiting for each PUBACK and delivered 6,000-7,000 msg/s
	// whatever the store did (scripts/bench/findings.md). Mosquitto keeps 20
	// (max_inflight_messages); here, draining a backlog to one subscriber over loopback
	// (BenchmarkDrainInput) gave about 22,000 msg/s with 1, 50,000 with 20, 54,000 with 32
	// and 57,000 with 64 and with 128, and the durable throughput case (scripts/bench, 1 KB,
	// 16 publishers) 20,000 with 32 and 24,000-25,000 with 64 and 128. More than that only
	// adds duplicates after a failure (up to a window, once) and bytes in socket buffers.
	DefaultInputWindow = 64
	// maxInputWindow caps Options.InputWindow: packet ids are 16 bits, shared with the
	// hub's other deliveries to the same client, and a window far beyond the round trip
	// only adds duplicates after a failure.
	maxInputWindow = 4096
)

// runInput drains a module input's queue with up to window PUBLISHes unacknowledged on
// the module's connection:
//
//   - The window counts from the oldest unacknowledged delivery: a PUBACK that overtakes
//     an older one is noted, but frees no room until the older ones are acknowledged too.
//     The store is acknowledged up to the last delivery of the acknowledged prefix (one Ack
//     per priority per wake-up, not one per message), so a crash or a lost connection never
//     skips a message that was not acknowledged.
//   - New PUBLISHes are encoded into one buffer and written with one call
//     (deliver_write.go), once a quarter of the window is free (wantsMore); PUBACKs arrive
//     through one ackInbox, and one timer watches the oldest delivery's Options.AckTimeout.
//   - When the oldest delivery fails (no PUBACK within AckTimeout, the connection closed or
//     was replaced, a write failed) it alone counts an attempt (dead-lettered after
//     Options.MaxDeliveryAttempts); the rest of the window is given up and, after a
//     back-off (cut short when the module connects or subscribes) and a store Rewind, sent
//     again in order from the first unacknowledged message, with the DUP flag on those
//     written before. Until a PUBACK comes back the window is one message: a message the
//     module never acknowledges costs its attempts, not a window of duplicates each time.
//
// So each module input still gets its messages at least once and in the store's order,
// with duplicates only of the messages after a failed one.
func (p *pump) runInput(ctx context.Context, window int) {
	w := &inputPump{
		p: p, size: window,
		clientID: iothub.ClientID(p.s.opts.EdgeDeviceID, p.ep.Module),
		sub:      iothub.Topic{Kind: iothub.KindInput, DeviceID: p.s.opts.EdgeDeviceID, ModuleID: p.ep.Module, Input: p.ep.Input},
		rnd:      rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		inbox:    newAckInbox(),
		guard:    newWriteGuard(p.s.opts.AckTimeout),
		deadline: time.NewTimer(time.Hour),
		written:  map[int]uint64{},
	}
	w.deadline.Stop()
	defer w.stop()
	for ctx.Err() == nil {
		err := w.takeAcks()
		if err == nil {
			err = w.fill()
		}
		if err != nil {
			if !w.failed(ctx, err) {
				return
			}
			continue
		}
		w.flushAcks() // before waiting: the store commits them meanwhile
		var more <-chan struct{}
		if w.drained && w.wantsMore() {
			more = p.s.deps.Store.Wait(p.queue)
		}
		var expired <-chan time.Time
		if len(w.flights) > 0 {
			w.armDeadline()
			expired = w.deadline.C
		}
		select {
		case <-w.inbox.ready:
		case <-more:
			w.drained = false
		case <-expired:
			w.armed = time.Time{}
			err := w.takeAcks()
			if err == nil && len(w.flights) > 0 && !time.Now().Before(w.flights[0].sent.Add(p.s.opts.AckTimeout)) {
				err = fmt.Errorf("%w: no PUBACK from %q within %v", ErrNoAck, w.clientID, p.s.opts.AckTimeout)
			}
			if err != nil && !w.failed(ctx, err) {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// inFlight is one delivery in the window.
type inFlight struct {
	it   store.Item // its priority and seq only: the body is not kept once encoded
	id   uint16     // MQTT packet id; 0 at QoS 0
	done bool       // PUBACKed (or written at QoS 0), or dead-lettered when dead
	dead bool       // dead-lettered: done, but not delivered
	sent time.Time  // when it was written
}

// inputPump is the state of runInput, owned by its goroutine.
type inputPump struct {
	p        *pump
	size     int
	clientID string
	sub      iothub.Topic // what the module must be subscribed to (any input topic of it)
	rnd      *rand.Rand
	inbox    *ackInbox
	guard    *writeGuard
	deadline *time.Timer
	armed    time.Time // when deadline fires (an oldest delivery's deadline, maybe of one acknowledged since); zero when stopped or fired

	conn     *mqtt.Client   // the connection of the flights
	flights  []inFlight     // the window, oldest first; flights[0] is never done
	pending  []store.Item   // read from the store, not yet written
	slab     []byte         // the bodies of pending, when the store reads into a buffer (read)
	drained  bool           // the last Read found nothing: read again when the store signals
	written  map[int]uint64 // per priority, the highest seq written: a lower one goes out again with DUP
	acks     []store.Item   // per priority, the last delivered item not yet acked in the store
	head     attempts       // failed sends of the oldest unacknowledged item
	failures int            // consecutive failures, for the back-off
	probing  bool           // a delivery failed: a window of one until a PUBACK comes back

	buf     bytes.Buffer
	scratch []ackKey
}

// room is how many more PUBLISHes the window takes.
func (w *inputPump) room() int {
	if w.probing {
		return 1 - len(w.flights)
	}
	return w.size - len(w.flights)
}

// wantsMore reports whether to write now: the window has room, and either nothing is in
// flight or a quarter of the window is free. A window still three quarters full keeps the
// module busy while it waits, and the PUBLISHes then go out a quarter window per write
// rather than one write per PUBACK.
func (w *inputPump) wantsMore() bool {
	room := w.room()
	return room > 0 && (len(w.flights) == 0 || room >= max(1, w.size/4))
}

// takeAcks applies the PUBACKs that arrived, and fails the window if its connection closed.
func (w *inputPump) takeAcks() error {
	acked, lost := w.inbox.take(w.scratch)
	for _, k := range acked {
		if k.cl != w.conn {
			continue
		}
		for i := range w.flights {
			if w.flights[i].id == k.id && !w.flights[i].done {
				w.flights[i].done = true
				break
			}
		}
	}
	w.scratch = acked
	w.popDone()
	if len(w.flights) > 0 {
		for _, cl := range lost {
			if cl == w.conn {
				return fmt.Errorf("%w: %q disconnected before acknowledging", ErrNoAck, w.clientID)
			}
		}
	}
	return nil
}

// popDone removes the done deliveries at the head of the window, counting the delivered
// ones and noting them for the store's acknowledgement.
func (w *inputPump) popDone() {
	k := 0
	for k < len(w.flights) && w.flights[k].done {
		f := w.flights[k]
		w.noteAck(f.it)
		if !f.dead {
			w.p.sent.Add(1)
			w.p.s.stats.delivered.Add(1)
			w.failures, w.probing = 0, false
		}
		k++
	}
	if k > 0 {
		n := copy(w.flights, w.flights[k:])
		clear(w.flights[n:])
		w.flights = w.flights[:n]
	}
}

// noteAck records that it and everything before it in its lane are done with.
func (w *inputPump) noteAck(it store.Item) {
	for i := range w.acks {
		if w.acks[i].Priority == it.Priority {
			w.acks[i].Seq = max(w.acks[i].Seq, it.Seq)
			return
		}
	}
	w.acks = append(w.acks, store.Item{Priority: it.Priority, Seq: it.Seq})
}

// flushAcks acknowledges the noted items in the store: one Ack per priority.
func (w *inputPump) flushAcks() {
	for _, it := range w.acks {
		if err := w.p.s.deps.Store.Ack(w.p.queue, it.Priority, it.Seq); err != nil {
			w.p.log.Warn("acknowledging delivered messages failed; they may be delivered again", "priority", it.Priority, "seq", it.Seq, "err", err)
		}
	}
	w.acks = w.acks[:0]
}

// fill writes PUBLISHes while the window wants more and the queue has messages. Errors:
// ErrNotConnected (the module is away, nothing in flight), ErrNoAck (the window's
// connection is gone or a write failed) or a readError.
func (w *inputPump) fill() error {
	for w.wantsMore() && (len(w.pending) > 0 || !w.drained) {
		if len(w.pending) == 0 {
			items, err := w.read()
			if err != nil {
				return readError{err}
			}
			if len(items) == 0 {
				w.drained = true
				return nil
			}
			w.pending = items
		}
		cl, qos, err := w.p.s.delivery.route(w.clientID, w.sub)
		switch {
		case err != nil && len(w.flights) > 0:
			// Its connection closed (closed tells the inbox too): an attempt, as ever.
			return fmt.Errorf("%w: %q went away before acknowledging", ErrNoAck, w.clientID)
		case err != nil:
			return err
		case len(w.flights) > 0 && cl != w.conn:
			return fmt.Errorf("%w: %q reconnected before acknowledging", ErrNoAck, w.clientID)
		}
		w.conn = cl
		if err := w.writeBatch(cl, qos); err != nil {
			return err
		}
	}
	return nil
}

// intoReader is a Store that reads bodies into the caller's buffer, as
// store.Store.ReadInto does.
type intoReader interface {
	ReadInto(queue string, max int, buf []byte) ([]store.Item, []byte, error)
}

// maxSlab is the largest body buffer a pump keeps between reads: a batch of large
// messages gets a buffer of its own, left to the collector.
const maxSlab = 256 << 10

// read reads the next batch. With an intoReader the bodies go to the pump's slab, reused
// batch after batch: it is called with nothing pending, and no body is used once its
// PUBLISH is encoded (flights keep none).
func (w *inputPump) read() ([]store.Item, error) {
	r, ok := w.p.s.deps.Store.(intoReader)
	if !ok {
		return w.p.s.deps.Store.Read(w.p.queue, readBatch)
	}
	if cap(w.slab) > maxSlab {
		w.slab = nil
	}
	items, slab, err := r.ReadInto(w.p.queue, readBatch, w.slab[:0])
	w.slab = slab
	return items, err
}

// writeBatch encodes PUBLISHes of pending items while the window has room and writes
// them, in writes of about maxWriteBatch bytes.
func (w *inputPump) writeBatch(cl *mqtt.Client, qos byte) error {
	p := w.p
	w.buf.Reset()
	n, first := 0, len(w.flights)
	flush := func() error {
		if n == 0 {
			return nil
		}
		now := time.Now()
		for i := first; i < len(w.flights); i++ {
			w.flights[i].sent = now
		}
		err := w.guard.write(p.s.delivery, cl, w.buf.Bytes(), n)
		w.buf.Reset()
		n, first = 0, len(w.flights)
		if err != nil {
			return fmt.Errorf("%w: write to %q: %w", ErrNoAck, w.clientID, err)
		}
		return nil
	}
	for w.room() > 0 && len(w.pending) > 0 {
		it := w.pending[0]
		pk, err := p.publishOf(it)
		if err != nil {
			// Corrupt or rejected: no later delivery of it could succeed.
			w.pending = w.pending[1:]
			reason, _ := p.permanent(err, &w.head, it)
			p.deadLetter(it, reason, err)
			continue
		}
		pk.FixedHeader.Qos = qos
		pk.ProtocolVersion = cl.Properties.ProtocolVersion
		f := inFlight{it: store.Item{Priority: it.Priority, Seq: it.Seq}, done: qos == 0} // not its body
		if qos > 0 {
			// MQTT wants DUP on a PUBLISH that may have been received before [MQTT-3.3.1-1],
			// and never at QoS 0 [MQTT-3.3.1-2].
			pk.FixedHeader.Dup = it.Seq <= w.written[it.Priority]
			id, err := cl.NextPacketID()
			if err != nil {
				if ferr := flush(); ferr != nil {
					return ferr
				}
				return fmt.Errorf("%w: %q: no free packet id: %w", ErrNoAck, w.clientID, err)
			}
			pk.PacketID, f.id = uint16(id), uint16(id)
			p.s.delivery.expect(ackKey{cl, f.id}, w.inbox)
		}
		w.pending = w.pending[1:]
		if err := pk.PublishEncode(&w.buf); err != nil {
			p.s.delivery.forget(ackKey{cl, f.id})
			p.deadLetter(it, deadCorrupt, err)
			continue
		}
		// Noted before the write: a PUBLISH written in part may have been received.
		w.written[it.Priority] = max(w.written[it.Priority], it.Seq)
		w.flights = append(w.flights, f)
		n++
		if w.buf.Len() >= maxWriteBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	err := flush()
	if w.buf.Cap() > 4*maxWriteBatch {
		w.buf = bytes.Buffer{} // do not keep a large message's buffer
	}
	w.popDone() // QoS 0 deliveries are done once written
	return err
}

// armDeadline makes sure the timer fires by the oldest delivery's AckTimeout. A timer set
// for an earlier oldest delivery, acknowledged since, is left as it is: it fires early, the
// deadline is checked and the timer set again, once per AckTimeout rather than once per
// PUBACK.
func (w *inputPump) armDeadline() {
	if !w.armed.IsZero() {
		return
	}
	w.armed = w.flights[0].sent.Add(w.p.s.opts.AckTimeout)
	w.deadline.Reset(time.Until(w.armed))
}

// readError is a failed store Read: retried after a back-off, not a delivery attempt.
type readError struct{ err error }

func (e readError) Error() string { return "reading the queue: " + e.err.Error() }
func (e readError) Unwrap() error { return e.err }

// failed handles a failed window: err is a readError, ErrNotConnected (nothing in flight)
// or ErrNoAck for the oldest delivery. It reports false when ctx ended.
func (w *inputPump) failed(ctx context.Context, err error) bool {
	p := w.p
	if re := (readError{}); errors.As(err, &re) {
		p.log.Warn("reading the queue failed", "err", re.err)
		return w.retry(ctx, nil)
	}
	var it store.Item
	switch {
	case len(w.flights) > 0:
		it = w.flights[0].it
	case len(w.pending) > 0:
		it = w.pending[0]
	}
	if reason, dead := p.permanent(err, &w.head, it); dead {
		p.deadLetter(it, reason, err)
		if len(w.flights) > 0 {
			w.flights[0].done, w.flights[0].dead = true, true
			w.popDone() // and the acknowledged deliveries right after it
		}
		w.probing = true
		w.abandon()
		p.s.deps.Store.Rewind(p.queue)
		return ctx.Err() == nil
	}
	if !errors.Is(err, ErrNotConnected) {
		p.log.Info("delivery failed, will retry", "seq", it.Seq, "priority", it.Priority,
			"attempt", w.head.n, "in_flight", len(w.flights), "err", err)
		w.probing = true
	}
	// The module's connecting or subscribing cuts the wait short.
	return w.retry(ctx, p.wake)
}

// retry gives up the window, waits a back-off (or until wake fires) and rewinds the
// queue, so that reading starts again from the first unacknowledged item.
func (w *inputPump) retry(ctx context.Context, wake <-chan struct{}) bool {
	p := w.p
	w.abandon()
	if !p.sleep(ctx, backoff(w.failures, p.s.opts.RetryMin, p.s.opts.RetryMax, w.rnd), wake) {
		return false
	}
	w.failures++
	p.s.deps.Store.Rewind(p.queue)
	return true
}

// abandon gives up the deliveries in flight and the items read but not sent (they are
// read again after a Rewind), after acknowledging in the store what was delivered.
func (w *inputPump) abandon() {
	w.flushAcks()
	keys := w.scratch[:0]
	for _, f := range w.flights {
		if f.id != 0 && !f.done {
			keys = append(keys, ackKey{w.conn, f.id})
		}
	}
	w.p.s.delivery.forget(keys...)
	// PUBACKs of the abandoned deliveries already in the inbox are dropped with them.
	w.scratch, _ = w.inbox.take(keys)
	clear(w.flights)
	w.flights, w.pending, w.drained = w.flights[:0], nil, false
	w.deadline.Stop()
	w.armed = time.Time{}
}

// stop ends the pump: what was delivered is acknowledged, the rest stays stored.
func (w *inputPump) stop() {
	w.abandon()
	w.guard.stop()
}
