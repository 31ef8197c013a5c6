package store

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bounds on the housekeeping done per transaction, so that a large expiry does not hold
// back appends for long.
const (
	expireBudget = 4096  // expiry deletions per transaction
	sweepBudget  = 16384 // expired entries one sweep collects
)

// Back-off between retries of housekeeping that failed to commit.
const (
	minRetry = 10 * time.Millisecond
	maxRetry = time.Second
)

// ready is a closed channel: a select case on it is always ready.
var ready = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Run is the committer: it group-commits appends and the other writes, commits
// acknowledgements and runs the TTL sweep every SweepInterval. Writes are committed only
// while Run runs. Run returns nil when ctx is done or Close is called, after committing
// what was already submitted; writes submitted later fail with ErrClosed. Run may be
// called once; a second call returns ErrRunning while the first runs, ErrClosed after.
func (s *Store) Run(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.running:
		s.mu.Unlock()
		return ErrRunning
	case s.closed, s.ran:
		s.mu.Unlock()
		return ErrClosed
	}
	s.running, s.ran = true, true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
		s.stoppedOnce.Do(func() { close(s.stopped) })
		s.failQueued()
	}()
	s.loop(ctx)
	return nil
}

func (s *Store) loop(ctx context.Context) {
	if s.needTrim() {
		s.wake() // opened over the cap, or SetMaxBytes was called before Run
	}
	sweepTick := time.NewTicker(s.opts.SweepInterval)
	defer sweepTick.Stop()
	window := time.NewTimer(time.Hour)
	window.Stop()
	var (
		batch    []*op
		retry    <-chan time.Time
		backoff  time.Duration
		sweepNow chan struct{} // ready while a sweep stopped at its budget
	)
	for {
		var (
			first     *op
			doSweep   bool
			sweepDone chan struct{}
		)
		select {
		case <-ctx.Done():
			s.shutdown()
			return
		case <-s.quit:
			s.shutdown()
			return
		case first = <-s.ops:
		case <-s.kick:
		case <-retry:
			retry = nil
		case <-sweepTick.C:
			doSweep = true
		case <-sweepNow:
			doSweep = true
		case sweepDone = <-s.sweepReq:
			doSweep = true
		}
		if doSweep {
			sweepNow = nil
			more, err := s.sweep()
			if err != nil {
				s.log.Warn("TTL sweep failed", "err", err)
			}
			if more {
				sweepNow = ready
			}
		}
		batch = s.gather(ctx, batch[:0], first, window)
		if s.cycle(batch, false) {
			backoff = 0
		} else {
			backoff = min(max(2*backoff, minRetry), maxRetry)
			retry = time.After(backoff)
		}
		clear(batch) // do not keep bodies alive
		if sweepDone != nil {
			close(sweepDone)
		}
		s.mu.Lock()
		now := time.Now()
		more := s.pend.nExpire > 0 || s.pend.acksDue(&s.opts, now) || s.needTrimLocked()
		if !more && len(s.pend.acks) > 0 {
			// Lazy acks wait for the next append or their delay. Ack armed the timer when
			// they started waiting; re-arm it for acks a failed transaction put back.
			s.ackTimer.Reset(s.pend.ackSince.Add(s.opts.AckDelay).Sub(now))
		}
		s.mu.Unlock()
		if more && retry == nil {
			s.wake()
		}
	}
}

// wake asks the committer for a transaction (coalesced).
func (s *Store) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// gather collects the ordered ops of one transaction. It takes first and whatever is
// queued; if first is an append it then waits at most BatchDelay for more, up to the
// target of waitTarget: the writers the last commit released have come back. A lone
// writer thus never waits, and many writers fill each transaction without paying the
// whole window. Close and the end of ctx cut the wait short: what was gathered is
// committed, then Run stops.
func (s *Store) gather(ctx context.Context, batch []*op, first *op, window *time.Timer) []*op {
	appends := 0
	add := func(o *op) {
		if o.claim() {
			batch = append(batch, o)
			if o.kind == opAppend {
				appends++
			}
		}
	}
	if first != nil {
		add(first)
	}
drain:
	for appends < s.opts.MaxBatch {
		select {
		case o := <-s.ops:
			add(o)
		default:
			break drain
		}
	}
	target := waitTarget(s.lastBatch, s.opts.MaxBatch)
	if first == nil || first.kind != opAppend || s.opts.BatchDelay <= 0 || appends >= target {
		return batch
	}
	window.Reset(s.opts.BatchDelay)
	defer window.Stop()
	for appends < target {
		select {
		case o := <-s.ops:
			add(o)
		case <-window.C:
			return batch
		case <-s.quit:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}

// minWaitBatch is the smallest previous transaction after which gather waits for more
// appends. A transaction of a few appends is what arrives by chance during one commit at
// a modest rate (a lone client at 1,000 msg/s gets two every few commits): waiting up to
// BatchDelay to repeat it saves a commit or two and holds every message behind it back
// by up to the whole window, and the next transaction catches the messages that came
// meanwhile, so the waits sustain themselves (p99 at 1,000 msg/s 2.2 ms instead of 1.0,
// scripts/bench). From eight appends per transaction on, the writers come back in
// numbers and the commits are what the load waits for: the window pays for itself.
const minWaitBatch = 8

// waitTarget is how many appends gather waits for after a transaction of last appends
// (capped at maxBatch): as many again, or 0 (do not wait) after a small one.
func waitTarget(last, maxBatch int) int {
	if last < minWaitBatch {
		return 0
	}
	return min(last, maxBatch)
}

// cycle commits one transaction: the pending housekeeping plus batch. Pending acks go
// along whenever there is a transaction anyway (any op, expiries, a trim), and on their
// own only when due or when force is set (shutdown). It reports whether everything was
// committed.
func (s *Store) cycle(batch []*op, force bool) bool {
	s.mu.Lock()
	trim := s.needTrimLocked() // a later SetMaxBytes wakes the committer again
	acks := force || len(batch) > 0 || s.pend.nExpire > 0 || trim || s.pend.acksDue(&s.opts, time.Now())
	work := s.pend.take(expireBudget, acks)
	s.mu.Unlock()
	appends, writes := 0, false
	for _, o := range batch {
		switch o.kind {
		case opAppend:
			appends++
			writes = true
		case opDeadLetter, opDeleteQueue:
			writes = true
		}
	}
	if appends > 0 {
		s.lastBatch = appends
	}
	if !writes && work.empty() && !trim {
		for _, o := range batch {
			o.finish(nil)
		}
		return true
	}
	t, err := s.commit(batch, work)
	if err == nil {
		s.publish(t)
		for i, o := range batch {
			o.finish(t.results[i])
		}
		return true
	}
	derr := fmt.Errorf("%w: %w", ErrDisk, err)
	for _, o := range batch {
		o.finish(derr)
	}
	if writes && !work.empty() {
		// Acks and expiries alone may commit where appends could not: deleting frees pages.
		if t, err2 := s.commit(nil, work); err2 == nil {
			s.publish(t)
			return false
		}
	}
	s.mu.Lock()
	s.pend.restore(work)
	s.mu.Unlock()
	if !work.empty() {
		s.log.Warn("commit of acknowledgements and expiries failed, will retry", "err", err)
	}
	return false
}

// commit runs one write transaction.
func (s *Store) commit(batch []*op, work pending) (*txState, error) {
	t := &txState{
		s:           s,
		now:         s.opts.Now().UnixNano(),
		lanes:       make(map[laneKey]*laneWork),
		deleted:     make(map[string]bool),
		grown:       make(map[string]bool),
		bytes:       s.bytes,
		messages:    s.messages,
		dropped:     make(map[string]uint64),
		deadLetters: make(map[string]uint64),
		results:     make([]error, len(batch)),
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		t.begin(tx)
		// Acks first: an entry acknowledged (lazily) and then found expired by the sweep
		// was delivered, so it counts as acked, not as dropped.
		for k, seq := range work.acks {
			if err := t.ack(k, seq); err != nil {
				return err
			}
		}
		for k, seqs := range work.expires {
			if err := t.expire(k, seqs); err != nil {
				return err
			}
		}
		if err := t.trim(); err != nil { // under a lowered cap (cap.go)
			return err
		}
		for i, o := range batch {
			res, err := t.apply(o)
			if err != nil {
				return err
			}
			t.results[i] = res
		}
		if s.failCommit != nil {
			if err := s.failCommit(); err != nil {
				return err
			}
		}
		return t.end()
	})
	return t, err
}

// publish makes a committed transaction visible in memory and wakes the queues' waiters.
func (s *Store) publish(t *txState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for q := range t.deleted {
		s.pend.dropQueue(q)
		qs := s.queues[q]
		if qs == nil {
			continue
		}
		for _, l := range qs.lanes {
			delete(s.lanes, l.key)
		}
		clear(qs.lanes)
		qs.prios = nil
		qs.gen++
		qs.streak = 0
	}
	for k, w := range t.lanes {
		if !w.dirty {
			continue
		}
		l := s.lanes[k]
		if l == nil {
			l = s.addLane(k, w.rec)
		}
		l.rec = w.rec
		l.hint = w.hint
		if w.rec.len == 0 {
			l.hint = freshHint()
		}
		l.acked = max(l.acked, l.rec.ckpt)
		l.read = max(l.read, l.acked)
	}
	s.bytes, s.messages = t.bytes, t.messages
	if t.trimStuck && t.trimLimit == s.maxBytes.Load() && !s.trimStuck {
		s.trimStuck = true
		s.log.Error("over the byte cap with nothing left to drop; the accounting is off", "bytes", t.bytes, "max_bytes", t.trimLimit)
	}
	for r, n := range t.dropped {
		s.count.dropped[r] += n
	}
	for r, n := range t.deadLetters {
		s.count.deadLetters[r] += n
	}
	s.count.refused += t.refused
	s.count.appends += t.appends
	s.count.acked += t.acked
	s.count.commits++
	for q := range t.grown {
		if qs := s.queues[q]; qs != nil {
			qs.signal()
		}
	}
}

// shutdown stops taking work and commits what was already submitted.
func (s *Store) shutdown() {
	s.stoppingOnce.Do(func() { close(s.stopping) })
	for {
		var batch []*op
	drain:
		for len(batch) < s.opts.MaxBatch {
			select {
			case o := <-s.ops:
				if o.claim() {
					batch = append(batch, o)
				}
			default:
				break drain
			}
		}
		if !s.cycle(batch, true) {
			return // the callers got the error; unacked items will be delivered again
		}
		s.mu.Lock()
		more := !s.pend.empty()
		s.mu.Unlock()
		if len(batch) == 0 && !more {
			return
		}
	}
}
