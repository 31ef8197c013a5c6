package store

import "fmt"

// trimBudget bounds the entries one transaction drops to bring the store under a lowered
// cap, so that a large trim does not hold back appends for long (as expireBudget does for
// expiries).
const trimBudget = 4096

// SetMaxBytes changes the byte cap (Options.MaxBytes) of the open store; 0 removes it. The
// new cap is in force when SetMaxBytes returns: appends committed from then on are checked
// against it, and a message that costs more than it gets ErrTooLarge. The cap is not
// stored: the next Open takes Options.MaxBytes again.
//
// Lowering the cap below Stats.Bytes deletes nothing under RejectNew: appends get ErrFull
// until delivery, TTL expiry or DeleteQueue bring the usage under the cap. Under DropOldest
// the committer deletes entries in the usual order (lowest priority, then oldest, across
// all queues), at most 4096 per transaction, until the usage is under the cap, counting
// them in Stats.Dropped[DropCap]; SetMaxBytes does not wait for it (poll Stats). Appends
// made meanwhile drop as much as they add, so the usage never grows while it is over.
//
// Errors: ErrInvalid for a negative n, ErrClosed once Run has returned or Close was called.
func (s *Store) SetMaxBytes(n int64) error {
	if n < 0 {
		return fmt.Errorf("set max bytes: %d is negative: %w", n, ErrInvalid)
	}
	select {
	case <-s.stopping:
		return fmt.Errorf("set max bytes: %w", ErrClosed)
	default:
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("set max bytes: %w", ErrClosed)
	}
	old := s.maxBytes.Swap(n)
	s.trimStuck = false
	trim := s.needTrimLocked()
	s.mu.Unlock()
	if old != n {
		s.log.Info("byte cap changed", "max_bytes", n, "was", old, "policy", s.opts.FullPolicy.String())
	}
	if trim {
		s.wake() // the committer trims (see commit); before Run starts, once it does
	}
	return nil
}

// needTrim reports whether the committer has to drop entries to get under the cap: the
// policy is DropOldest and the committed usage is over the cap.
func (s *Store) needTrim() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.needTrimLocked()
}

func (s *Store) needTrimLocked() bool {
	limit := s.maxBytes.Load()
	return s.opts.FullPolicy == DropOldest && limit > 0 && s.bytes > limit && !s.trimStuck
}

// trim drops up to trimBudget entries to bring the transaction's usage under the cap
// (DropOldest only). It records in t whether it had to and whether it got anywhere.
func (t *txState) trim() error {
	limit := t.s.maxBytes.Load()
	if t.s.opts.FullPolicy != DropOldest || limit <= 0 || t.bytes <= limit {
		return nil
	}
	n, err := t.dropUntil(limit, trimBudget)
	if err != nil {
		return err
	}
	t.trimStuck, t.trimLimit = n == 0, limit
	return nil
}
