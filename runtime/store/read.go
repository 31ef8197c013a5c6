package store

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxSkip bounds the expired entries one Read steps over, so Read stays short while the
// sweep catches up; Read then returns what it has and signals Wait.
const maxSkip = 4096

// laneCursor walks one lane during a Read.
type laneCursor struct {
	prio    int
	from    uint64 // first seq to consider
	limit   uint64 // first seq not to consider: the lane's next as published in memory
	c       *bolt.Cursor
	ok      bool // seq/e hold the next unexpired entry
	seq     uint64
	e       entry
	last    uint64   // highest seq consumed (returned or skipped); 0 = none
	expired []uint64 // skipped because expired
}

// settle moves the cursor from (k, v) to the first unexpired entry, recording the expired
// ones it steps over. It reports false when the skip budget ran out.
func (lc *laneCursor) settle(k, v []byte, now int64, skips *int) (bool, error) {
	lc.ok = false
	for ; k != nil; k, v = lc.c.Next() {
		seq, err := decodeU64(k)
		if err != nil {
			return true, err
		}
		e, err := decodeEntry(v)
		if err != nil {
			return true, fmt.Errorf("seq %d: %w", seq, err)
		}
		if seq >= lc.limit {
			return true, nil // committed but not yet published: read it next time
		}
		if !e.expired(now) {
			lc.ok, lc.seq, lc.e = true, seq, e
			return true, nil
		}
		if *skips == 0 {
			return false, nil
		}
		*skips--
		lc.expired = append(lc.expired, seq)
		lc.last = seq
	}
	return true, nil
}

// Read returns up to max items of queue after its read position, across priorities by
// the scheduling rule of the package doc, and moves the read position past them: the
// same item is not returned again until Ack (never) or Rewind (again, if not acked).
// Expired items are skipped and queued for deletion (Dropped[DropTTL]). Read does not
// block and does not need Run; an unknown queue has no items. Each item's Body is its
// own copy.
func (s *Store) Read(queue string, max int) ([]Item, error) {
	items, _, err := s.read(queue, max, nil)
	return items, err
}

// ReadInto is Read with the items' bodies copied into buf, after its length, instead of
// into an allocation each. It returns the buffer that holds them: buf, or a larger one
// when buf's capacity ran out (earlier items then keep the old one). A caller reading
// batch after batch passes it back, as buf[:0], once it no longer uses the previous
// batch's bodies, and so reuses one buffer.
func (s *Store) ReadInto(queue string, max int, buf []byte) ([]Item, []byte, error) {
	if buf == nil {
		buf = []byte{} // non-nil: read copies into it
	}
	return s.read(queue, max, buf)
}

// read is Read, and ReadInto when buf is not nil.
func (s *Store) read(queue string, max int, buf []byte) ([]Item, []byte, error) {
	if err := validQueue(queue); err != nil {
		return nil, buf, fmt.Errorf("read: %w", err)
	}
	if max < 1 {
		return nil, buf, fmt.Errorf("read queue %q: max %d is less than 1: %w", queue, max, ErrInvalid)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, buf, fmt.Errorf("read queue %q: %w", queue, ErrClosed)
	}
	q := s.queues[queue]
	s.mu.Unlock()
	if q == nil {
		return nil, buf, nil
	}
	q.readMu.Lock()
	defer q.readMu.Unlock()

	s.mu.Lock()
	gen, streak := q.gen, q.streak
	curs := make([]laneCursor, 0, len(q.prios))
	for _, p := range q.prios {
		l := q.lanes[p]
		curs = append(curs, laneCursor{prio: p, from: l.read + 1, limit: l.rec.next})
	}
	s.mu.Unlock()
	if len(curs) == 0 {
		return nil, buf, nil
	}

	now := s.opts.Now().UnixNano()
	var items []Item
	truncated := false
	err := s.db.View(func(tx *bolt.Tx) error {
		qb := tx.Bucket(bucketQueues).Bucket([]byte(queue))
		if qb == nil {
			return nil
		}
		bodies := tx.Bucket(bucketBodies).Cursor() // one cursor for every body: Get makes one per call
		skips := maxSkip
		for i := range curs {
			lc := &curs[i]
			pb := qb.Bucket(prioKey(lc.prio))
			if pb == nil {
				continue
			}
			lc.c = pb.Cursor()
			k, v := lc.c.Seek(u64Key(lc.from))
			done, err := lc.settle(k, v, now, &skips)
			if err != nil {
				return fmt.Errorf("queues/%q/%d: %w", queue, lc.prio, err)
			}
			if !done {
				truncated = true
				return nil
			}
		}
		cands := make([]candidate, 0, len(curs))
		idx := make([]int, 0, len(curs))
		for len(items) < max {
			cands, idx = cands[:0], idx[:0]
			for i := range curs {
				if curs[i].ok {
					cands = append(cands, candidate{prio: curs[i].prio, enqueued: curs[i].e.enqueued})
					idx = append(idx, i)
				}
			}
			if len(cands) == 0 {
				return nil
			}
			var j int
			j, streak = pick(cands, streak, s.opts.PriorityBurst)
			lc := &curs[idx[j]]
			key := u64Key(lc.e.body)
			if k, body := bodies.Seek(key); bytes.Equal(k, key) && body != nil {
				items = append(items, lc.item(queue, body, &buf))
			} else {
				s.log.Error("queue entry without body; skipped", "queue", queue, "priority", lc.prio, "seq", lc.seq, "body", lc.e.body)
			}
			lc.last = lc.seq
			k, v := lc.c.Next()
			done, err := lc.settle(k, v, now, &skips)
			if err != nil {
				return fmt.Errorf("queues/%q/%d: %w", queue, lc.prio, err)
			}
			if !done {
				truncated = true
				return nil
			}
		}
		return nil
	})
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return nil, buf, fmt.Errorf("read queue %q: %w", queue, ErrClosed)
	}
	if err != nil {
		return nil, buf, fmt.Errorf("read queue %q: %w", queue, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if q.gen == gen {
		q.streak = streak
		for i := range curs {
			if l := q.lanes[curs[i].prio]; l != nil && curs[i].last > l.read {
				l.read = curs[i].last
			}
		}
	}
	expiredAny := false
	for i := range curs {
		// After a Rewind or DeleteQueue raced this Read, leave expiries to the sweep: the
		// lane may have been recreated with the same seqs.
		if q.gen == gen && len(curs[i].expired) > 0 {
			s.pend.addExpired(laneKey{queue, curs[i].prio}, curs[i].expired)
			expiredAny = true
		}
	}
	if expiredAny {
		s.wake()
	}
	if truncated {
		q.signal()
	}
	return items, buf, nil
}

func (lc *laneCursor) item(queue string, body []byte, buf *[]byte) Item {
	it := Item{
		Queue:      queue,
		Priority:   lc.prio,
		Seq:        lc.seq,
		EnqueuedAt: time.Unix(0, lc.e.enqueued).UTC(),
	}
	if *buf == nil {
		it.Body = bytes.Clone(body)
	} else {
		from := len(*buf)
		*buf = append(*buf, body...)
		it.Body = (*buf)[from:len(*buf):len(*buf)]
	}
	if it.Body == nil {
		it.Body = []byte{}
	}
	if lc.e.expires != 0 {
		it.ExpiresAt = time.Unix(0, lc.e.expires).UTC()
	}
	return it
}

// Ack confirms delivery of every item of (queue, priority) up to and including seq: they
// are not read again (Rewind included), and a later transaction deletes them, moves the
// lane's checkpoint and frees their bytes. Ack returns without waiting for that commit,
// and the commit is lazy: the next transaction takes it (an append's, usually, which then
// also sees the freed bytes under the cap), or an acknowledgement-only transaction once
// Options.AckBatch items are waiting or the oldest has waited Options.AckDelay, or Run's
// shutdown. Flush waits for it. After a crash, items acked since the last commit are
// delivered again. Acking a seq at or below an earlier ack does nothing. Errors:
// ErrNotFound for an unknown lane, ErrInvalid for a seq never appended, ErrClosed once
// Run has returned.
func (s *Store) Ack(queue string, priority int, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.stopping:
		return fmt.Errorf("ack queue %q priority %d: %w", queue, priority, ErrClosed)
	default:
	}
	q := s.queues[queue]
	if q == nil || q.lanes[priority] == nil {
		return fmt.Errorf("ack queue %q priority %d: %w", queue, priority, ErrNotFound)
	}
	l := q.lanes[priority]
	if seq == 0 || seq >= l.rec.next {
		return fmt.Errorf("ack queue %q priority %d: seq %d was never appended (next is %d): %w", queue, priority, seq, l.rec.next, ErrInvalid)
	}
	if seq <= l.acked {
		return nil
	}
	n := seq - l.acked
	l.acked = seq
	l.read = max(l.read, seq)
	now := time.Now()
	if s.pend.addAck(laneKey{queue, priority}, seq, n, now) && s.opts.AckDelay > 0 {
		s.ackTimer.Reset(s.opts.AckDelay) // the delay starts with the oldest uncommitted ack
	}
	if s.pend.acksDue(&s.opts, now) {
		s.wake()
	}
	return nil
}

// Rewind forgets the read positions of queue, so that Read returns its unacknowledged
// items again, oldest first (after a failed delivery or a reconnect). It signals Wait.
func (s *Store) Rewind(queue string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[queue]
	if q == nil {
		return
	}
	for _, l := range q.lanes {
		l.read = l.acked
	}
	q.gen++
	q.streak = 0
	q.signal()
}

// Wait returns the queue's wake-up channel: it receives a value (coalesced, capacity 1)
// after a commit that appended to the queue, after Rewind, and when a Read stopped early.
// A pump reads until Read returns nothing, then waits on the channel (and on its own
// ctx); a signal sent between the two is kept, so no wake-up is lost. The channel is the
// same for the life of the Store, and the queue need not exist yet.
func (s *Store) Wait(queue string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queueLocked(queue).wait
}
