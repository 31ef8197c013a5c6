package store

import (
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"
)

// expiryHint is what the committer knows about the expiries stored in one lane, so that
// the sweep skips lanes with nothing expired and scans only the head of lanes whose
// entries expire in seq order (one TTL per lane, the common case).
type expiryHint struct {
	known  bool  // the fields below describe the lane; false: scan it whole
	min    int64 // earliest expiry (a lower bound once entries were deleted); never if none
	max    int64 // latest expiry of an entry added so far (never counts as latest)
	sorted bool  // expiries do not decrease with seq: the expired entries are a prefix
}

// freshHint describes an empty lane.
func freshHint() expiryHint {
	return expiryHint{known: true, min: never, max: math.MinInt64, sorted: true}
}

// add records an appended entry (appends have the highest seq so far).
func (h *expiryHint) add(e entry) {
	x := e.expiry()
	if x < h.max {
		h.sorted = false
	}
	h.max = max(h.max, x)
	h.min = min(h.min, x)
}

// sweep finds expired entries in every lane that may hold some (all of a lane whose TTLs
// are mixed, only the head of a sorted lane) and queues them for deletion by the next
// transactions, which count them as Dropped[DropTTL]. It reports whether it stopped at its
// budget and should run again soon. Committer goroutine only.
func (s *Store) sweep() (more bool, err error) {
	now := s.opts.Now().UnixNano()
	budget := sweepBudget
	found := make(map[laneKey][]uint64)
	hints := make(map[*lane]expiryHint)
	err = s.db.View(func(tx *bolt.Tx) error {
		queues := tx.Bucket(bucketQueues)
		for k, l := range s.lanes {
			if l.rec.len == 0 || (l.hint.known && l.hint.min > now) {
				continue
			}
			if budget == 0 {
				more = true
				return nil
			}
			var pb *bolt.Bucket
			if qb := queues.Bucket([]byte(k.queue)); qb != nil {
				pb = qb.Bucket(prioKey(k.prio))
			}
			if pb == nil {
				return fmt.Errorf("queues/%q/%d missing: %w", k.queue, k.prio, ErrCorrupt)
			}
			h, complete, err := scanExpired(pb, l.hint, now, &budget, func(seq uint64) {
				found[k] = append(found[k], seq)
			})
			if err != nil {
				return fmt.Errorf("queues/%q/%d: %w", k.queue, k.prio, err)
			}
			if complete {
				hints[l] = h
			} else {
				more = true
				hints[l] = expiryHint{} // rescan whole next time
			}
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	for l, h := range hints {
		l.hint = h
	}
	if len(found) > 0 {
		s.mu.Lock()
		for k, seqs := range found {
			s.pend.addExpired(k, seqs)
		}
		s.mu.Unlock()
	}
	return more, nil
}

// scanExpired calls expired for each expired entry of a lane, at most *budget times. A
// sorted lane is scanned up to its first live entry, any other lane whole. It returns the
// lane's new hint (valid once the found entries are deleted) and whether the scan
// finished within the budget.
func scanExpired(b *bolt.Bucket, old expiryHint, now int64, budget *int, expired func(uint64)) (expiryHint, bool, error) {
	sorted := old.known && old.sorted
	h := freshHint()
	if sorted {
		h = old
		h.min = never
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		seq, err := decodeU64(k)
		if err != nil {
			return h, false, err
		}
		e, err := decodeEntry(v)
		if err != nil {
			return h, false, fmt.Errorf("seq %d: %w", seq, err)
		}
		if !e.expired(now) {
			if sorted {
				h.min = e.expiry()
				return h, true, nil
			}
			h.add(e)
			continue
		}
		if *budget == 0 {
			return h, false, nil
		}
		*budget--
		expired(seq)
	}
	return h, true, nil
}
