package store

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"
)

// laneWork is a lane's state inside one transaction.
type laneWork struct {
	key   laneKey
	rec   laneRec
	hint  expiryHint
	b     *bolt.Bucket // queues/{queue}/{priority}
	dirty bool         // rec changed: write it back and publish it
}

// txState is one write transaction: the buckets, the working copies of touched lanes and
// counters, and the per-op results. Nothing reaches memory unless the commit succeeds.
type txState struct {
	s   *Store
	now int64

	meta, bodies, refs, queues, ckpts *bolt.Bucket
	// bodyCur and refCur are the transaction's cursors on bodies and refs, made on first
	// use: deleting through one cursor spares Bucket.Delete's new cursor per call.
	bodyCur, refCur *bolt.Cursor

	lanes   map[laneKey]*laneWork
	deleted map[string]bool // queues deleted in this transaction
	grown   map[string]bool // queues appended to

	bytes, messages         int64
	dropped, deadLetters    map[string]uint64
	refused, appends, acked uint64
	results                 []error

	// trimStuck: trim found nothing to drop though usage is over trimLimit (see trim).
	trimStuck bool
	trimLimit int64
}

func (t *txState) begin(tx *bolt.Tx) {
	t.meta = tx.Bucket(bucketMeta)
	t.bodies = tx.Bucket(bucketBodies)
	t.bodies.FillPercent = fillPercent
	t.refs = tx.Bucket(bucketRefs)
	t.queues = tx.Bucket(bucketQueues)
	t.ckpts = tx.Bucket(bucketCheckpoints)
}

// end writes back the dirty lane records and the counters.
func (t *txState) end() error {
	for k, w := range t.lanes {
		if !w.dirty {
			continue
		}
		cb, err := t.ckpts.CreateBucketIfNotExists([]byte(k.queue))
		if err != nil {
			return fmt.Errorf("checkpoints/%q: %w", k.queue, err)
		}
		if err := cb.Put(prioKey(k.prio), w.rec.encode()); err != nil {
			return fmt.Errorf("checkpoints/%q/%d: %w", k.queue, k.prio, err)
		}
	}
	if t.bytes < 0 || t.messages < 0 {
		t.s.log.Error("byte accounting went negative; clamping", "bytes", t.bytes, "messages", t.messages)
		t.bytes, t.messages = max(t.bytes, 0), max(t.messages, 0)
	}
	if t.bytes != t.s.bytes {
		if err := t.meta.Put(keyBytes, u64Key(uint64(t.bytes))); err != nil {
			return err
		}
	}
	if t.messages != t.s.messages {
		if err := t.meta.Put(keyMessages, u64Key(uint64(t.messages))); err != nil {
			return err
		}
	}
	return nil
}

// lane returns the working copy of lane k, creating the lane if create is set; nil if
// the lane does not exist and create is not set.
func (t *txState) lane(k laneKey, create bool) (*laneWork, error) {
	if w := t.lanes[k]; w != nil {
		return w, nil
	}
	if l := t.s.lanes[k]; l != nil && !t.deleted[k.queue] {
		var pb *bolt.Bucket
		if qb := t.queues.Bucket([]byte(k.queue)); qb != nil {
			pb = qb.Bucket(prioKey(k.prio))
		}
		if pb == nil {
			return nil, fmt.Errorf("queues/%q/%d missing: %w", k.queue, k.prio, ErrCorrupt)
		}
		pb.FillPercent = fillPercent
		w := &laneWork{key: k, rec: l.rec, hint: l.hint, b: pb}
		t.lanes[k] = w
		return w, nil
	}
	if !create {
		return nil, nil
	}
	qb, err := t.queues.CreateBucketIfNotExists([]byte(k.queue))
	if err != nil {
		return nil, fmt.Errorf("queues/%q: %w", k.queue, err)
	}
	pb, err := qb.CreateBucket(prioKey(k.prio))
	if err != nil {
		return nil, fmt.Errorf("queues/%q/%d: %w", k.queue, k.prio, err)
	}
	pb.FillPercent = fillPercent
	w := &laneWork{key: k, rec: newLaneRec(), hint: freshHint(), b: pb, dirty: true}
	t.lanes[k] = w
	return w, nil
}

// apply runs one ordered op. It returns the op's own result (ErrFull, ErrNotFound, ...)
// and, separately, an error that aborts the whole transaction.
func (t *txState) apply(o *op) (result, abort error) {
	switch o.kind {
	case opAppend:
		return t.append(o)
	case opDeadLetter:
		return t.deadLetter(o)
	case opDeleteQueue:
		return nil, t.deleteQueue(o.queue)
	default:
		return nil, nil
	}
}

func (t *txState) append(o *op) (error, error) {
	cost := Cost(len(o.body), len(o.targets))
	if limit := t.s.maxBytes.Load(); limit > 0 && t.bytes+cost > limit {
		if cost > limit {
			// The cap was lowered (SetMaxBytes) after Append checked it.
			return fmt.Errorf("message costs %d bytes, MaxBytes is %d: %w", cost, limit, ErrTooLarge), nil
		}
		if t.s.opts.FullPolicy == RejectNew {
			t.refused++
			return fmt.Errorf("message of %d bytes, %d of %d bytes used: %w", cost, t.bytes, limit, ErrFull), nil
		}
		// Make room under the cap; while a lowered cap is being trimmed to (usage over it),
		// make room for this message only, so that usage does not grow meanwhile.
		room := max(limit, t.bytes)
		if _, err := t.dropUntil(room-cost, -1); err != nil {
			return nil, err
		}
		if t.bytes+cost > room {
			t.refused++
			return fmt.Errorf("nothing left to drop, %d of %d bytes used: %w", t.bytes, limit, ErrFull), nil
		}
	}
	id, err := t.bodies.NextSequence()
	if err != nil {
		return nil, fmt.Errorf("bodies: next id: %w", err)
	}
	key := u64Key(id)
	if err := t.bodies.Put(key, o.body); err != nil {
		return nil, fmt.Errorf("bodies/%d: %w", id, err)
	}
	if n := len(o.targets); n > 1 {
		if err := t.refs.Put(key, encodeU32(uint32(n))); err != nil {
			return nil, fmt.Errorf("refs/%d: %w", id, err)
		}
	}
	e := entry{body: id, size: uint32(len(o.body)), enqueued: t.now}
	for _, tg := range o.targets {
		w, err := t.lane(laneKey{tg.Queue, tg.Priority}, true)
		if err != nil {
			return nil, err
		}
		e.expires = 0
		if tg.TTL > 0 && int64(tg.TTL) <= math.MaxInt64-t.now {
			e.expires = t.now + int64(tg.TTL)
		}
		seq := w.rec.next
		if err := w.b.Put(u64Key(seq), e.encode()); err != nil {
			return nil, fmt.Errorf("queues/%q/%d/%d: %w", tg.Queue, tg.Priority, seq, err)
		}
		w.rec.next++
		w.rec.len++
		w.rec.bytes += int64(e.size) + EntryOverhead
		w.hint.add(e)
		w.dirty = true
		t.grown[tg.Queue] = true
	}
	t.bytes += cost
	t.messages++
	t.appends++
	return nil, nil
}

// laneHead is the first entry of a non-empty lane, while dropUntil runs.
type laneHead struct {
	w   *laneWork
	seq uint64
	e   entry
}

// dropUntil deletes entries in the order victim decides (lowest priority first, then the
// entry enqueued first, across all queues) until t.bytes <= target, deleting at most budget
// entries (negative: no bound). Each is counted as Dropped[DropCap]. It returns how many it
// deleted; it stops early when every lane is empty. The lanes' heads are read once and only
// the head of the lane dropped from is read again, so dropping n entries from L lanes costs
// O(n*L) comparisons, not O(n*L) cursor seeks.
func (t *txState) dropUntil(target int64, budget int) (int, error) {
	if t.bytes <= target || budget == 0 {
		return 0, nil
	}
	keys := make(map[laneKey]bool, len(t.s.lanes)+len(t.lanes))
	for k := range t.s.lanes {
		keys[k] = true
	}
	for k := range t.lanes {
		keys[k] = true
	}
	var (
		heads []head
		lanes []laneHead
	)
	for k := range keys {
		w, err := t.lane(k, false)
		if err != nil {
			return 0, err
		}
		if w == nil || w.rec.len == 0 {
			continue
		}
		lh, err := firstEntry(w)
		if err != nil {
			return 0, err
		}
		heads = append(heads, head{queue: k.queue, prio: k.prio, enqueued: lh.e.enqueued})
		lanes = append(lanes, lh)
	}
	n := 0
	for t.bytes > target && (budget < 0 || n < budget) {
		i := victim(heads)
		if i < 0 {
			break
		}
		lh := lanes[i]
		if err := t.remove(lh.w, lh.seq, lh.e, DropCap); err != nil {
			return n, err
		}
		n++
		if lh.w.rec.len == 0 {
			last := len(heads) - 1
			heads[i], lanes[i] = heads[last], lanes[last]
			heads, lanes = heads[:last], lanes[:last]
			continue
		}
		next, err := firstEntry(lh.w)
		if err != nil {
			return n, err
		}
		lanes[i], heads[i].enqueued = next, next.e.enqueued
	}
	return n, nil
}

// firstEntry reads the first entry of a lane that has some. The cursor is new each time:
// a bbolt cursor may skip an element after a deletion.
func firstEntry(w *laneWork) (laneHead, error) {
	k := w.key
	key, v := w.b.Cursor().First()
	if key == nil {
		return laneHead{}, fmt.Errorf("queues/%q/%d: %d entries recorded, none stored: %w", k.queue, k.prio, w.rec.len, ErrCorrupt)
	}
	seq, err := decodeU64(key)
	if err != nil {
		return laneHead{}, fmt.Errorf("queues/%q/%d: %w", k.queue, k.prio, err)
	}
	e, err := decodeEntry(v)
	if err != nil {
		return laneHead{}, fmt.Errorf("queues/%q/%d/%d: %w", k.queue, k.prio, seq, err)
	}
	return laneHead{w: w, seq: seq, e: e}, nil
}

// remove deletes one entry and drops its reference on the body. reason "" is an ack.
func (t *txState) remove(w *laneWork, seq uint64, e entry, reason string) error {
	if err := w.b.Delete(u64Key(seq)); err != nil {
		return fmt.Errorf("queues/%q/%d/%d: %w", w.key.queue, w.key.prio, seq, err)
	}
	return t.removed(w, e, reason)
}

// removed accounts for lane w's entry e, just deleted, and drops its body reference.
func (t *txState) removed(w *laneWork, e entry, reason string) error {
	w.rec.len--
	w.rec.bytes -= int64(e.size) + EntryOverhead
	w.dirty = true
	t.bytes -= EntryOverhead
	if reason == "" {
		t.acked++
	} else {
		t.dropped[reason]++
	}
	return t.deref(e.body, e.size)
}

// deref drops one reference on a body, deleting it with the last one.
func (t *txState) deref(id uint64, size uint32) error {
	key := u64Key(id)
	if t.refCur == nil {
		t.refCur, t.bodyCur = t.refs.Cursor(), t.bodies.Cursor()
	}
	if k, v := t.refCur.Seek(key); bytes.Equal(k, key) {
		n, err := decodeU32(v)
		if err != nil {
			return fmt.Errorf("refs/%d: %w", id, err)
		}
		if n > 2 {
			return t.refs.Put(key, encodeU32(n-1))
		}
		return t.refCur.Delete() // one reference left: implicit
	}
	if k, _ := t.bodyCur.Seek(key); bytes.Equal(k, key) {
		if err := t.bodyCur.Delete(); err != nil {
			return fmt.Errorf("bodies/%d: %w", id, err)
		}
	}
	t.bytes -= int64(size) + BodyOverhead
	t.messages--
	return nil
}

// ack deletes the lane's entries up to seq and moves its checkpoint there.
func (t *txState) ack(k laneKey, upto uint64) error {
	w, err := t.lane(k, false)
	if err != nil || w == nil || upto <= w.rec.ckpt {
		return err
	}
	upto = min(upto, w.rec.next-1)
	c := w.b.Cursor()
	// Re-seek after each delete: a bbolt cursor may skip an element after a deletion.
	for key, v := c.First(); key != nil; key, v = c.First() {
		seq, err := decodeU64(key)
		if err != nil {
			return fmt.Errorf("queues/%q/%d: %w", k.queue, k.prio, err)
		}
		if seq > upto {
			break
		}
		e, err := decodeEntry(v)
		if err != nil {
			return fmt.Errorf("queues/%q/%d/%d: %w", k.queue, k.prio, seq, err)
		}
		if err := c.Delete(); err != nil {
			return fmt.Errorf("queues/%q/%d/%d: %w", k.queue, k.prio, seq, err)
		}
		if err := t.removed(w, e, ""); err != nil {
			return err
		}
	}
	w.rec.ckpt = upto
	w.dirty = true
	return nil
}

// expire deletes the listed entries of lane k that are (still) expired.
func (t *txState) expire(k laneKey, seqs []uint64) error {
	w, err := t.lane(k, false)
	if err != nil || w == nil {
		return err
	}
	for _, seq := range seqs {
		v := w.b.Get(u64Key(seq))
		if v == nil {
			continue // acked, dropped or expired already
		}
		e, err := decodeEntry(v)
		if err != nil {
			return fmt.Errorf("queues/%q/%d/%d: %w", k.queue, k.prio, seq, err)
		}
		if !e.expired(t.now) {
			continue
		}
		if err := t.remove(w, seq, e, DropTTL); err != nil {
			return err
		}
	}
	return nil
}

func (t *txState) deadLetter(o *op) (error, error) {
	k := laneKey{o.queue, o.prio}
	w, err := t.lane(k, false)
	if err != nil {
		return nil, err
	}
	if w == nil {
		return fmt.Errorf("no such lane: %w", ErrNotFound), nil
	}
	v := w.b.Get(u64Key(o.seq))
	if v == nil {
		return fmt.Errorf("no such item: %w", ErrNotFound), nil
	}
	e, err := decodeEntry(v)
	if err != nil {
		return nil, fmt.Errorf("queues/%q/%d/%d: %w", o.queue, o.prio, o.seq, err)
	}
	if err := t.remove(w, o.seq, e, DropDeadLetter); err != nil {
		return nil, err
	}
	t.deadLetters[o.reason]++
	return nil, nil
}

// deleteQueue removes a queue's buckets and references.
func (t *txState) deleteQueue(queue string) error {
	name := []byte(queue)
	if qb := t.queues.Bucket(name); qb != nil {
		err := qb.ForEachBucket(func(pk []byte) error {
			return qb.Bucket(pk).ForEach(func(k, v []byte) error {
				e, err := decodeEntry(v)
				if err != nil {
					return fmt.Errorf("queues/%q/%x/%x: %w", queue, pk, k, err)
				}
				t.bytes -= EntryOverhead
				t.dropped[DropDeleted]++
				return t.deref(e.body, e.size)
			})
		})
		if err != nil {
			return err
		}
		if err := t.queues.DeleteBucket(name); err != nil {
			return fmt.Errorf("queues/%q: %w", queue, err)
		}
	}
	if err := t.ckpts.DeleteBucket(name); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
		return fmt.Errorf("checkpoints/%q: %w", queue, err)
	}
	for k := range t.lanes {
		if k.queue == queue {
			delete(t.lanes, k)
		}
	}
	t.deleted[queue] = true
	return nil
}
