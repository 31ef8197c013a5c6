package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Target is one queue a message is appended to.
type Target struct {
	Queue    string        // endpoint id
	Priority int           // 0 is the highest; 0..MaxPriority
	TTL      time.Duration // 0 = never expires
}

// Item is one entry handed out by Read.
type Item struct {
	Queue      string
	Priority   int
	Seq        uint64 // per (Queue, Priority), starts at 1, increases by append order
	Body       []byte // a copy, owned by the caller
	EnqueuedAt time.Time
	ExpiresAt  time.Time // zero = never
}

type opKind uint8

const (
	opAppend opKind = iota
	opDeadLetter
	opDeleteQueue
	opFlush
)

// op states: the committer claims a queued op before using it; a caller that gives up
// abandons it first. Exactly one of the two wins, so an abandoned op is never committed
// and a claimed op always gets its result.
const (
	opQueued int32 = iota
	opClaimed
	opAbandoned
)

// op is one ordered write submitted to the committer.
type op struct {
	kind    opKind
	body    []byte
	targets []Target
	queue   string
	prio    int
	seq     uint64
	reason  string

	state atomic.Int32
	err   error         // set by the committer before done is closed
	done  chan struct{} // closed by the committer; nil for an AppendAsync op

	// AppendAsync: cb receives the result instead of done; stopWatch ends the watch on
	// the caller's ctx (context.AfterFunc).
	cb        func(error)
	stopWatch func() bool
}

func newOp(kind opKind) *op { return &op{kind: kind, done: make(chan struct{})} }

func (o *op) claim() bool   { return o.state.CompareAndSwap(opQueued, opClaimed) }
func (o *op) abandon() bool { return o.state.CompareAndSwap(opQueued, opAbandoned) }

// finish publishes the op's result: to its waiter, or to its AppendAsync callback.
func (o *op) finish(err error) {
	if o.cb != nil {
		if o.stopWatch != nil {
			o.stopWatch()
		}
		if err != nil {
			err = fmt.Errorf("append: %w", err)
		}
		o.body, o.targets = nil, nil
		o.cb(err)
		return
	}
	o.err = err
	close(o.done)
}

// Append stores body once, with one entry per target, and returns nil only after the
// transaction holding it is committed (fsynced): the message then survives a crash and is
// read from every target queue until acknowledged there. Concurrent callers share
// transactions (group commit). body is not retained after Append returns.
//
// Errors: ErrInvalid (no targets, a bad target, the same queue twice), ErrTooLarge (the
// message costs more than MaxBytes), ErrFull (cap reached under RejectNew), ErrDisk (the
// transaction failed), ErrClosed (Run has returned or Close was called), or ctx's error if
// ctx ends before the committer took the message. In every error case nothing of the
// message is stored. Once the committer has taken the message, Append waits for the commit
// even if ctx ends, so that its result is always true. Appends made before Run starts wait
// for it.
func (s *Store) Append(ctx context.Context, body []byte, targets []Target) error {
	if err := s.validAppend(body, targets); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	o := newOp(opAppend)
	o.body, o.targets = body, targets
	if err := s.submit(ctx, o); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	return nil
}

// AppendAsync is Append without the wait, for a caller that keeps several appends in
// flight (the hub, for a client that pipelines its publishes). It validates the message
// and hands it to the committer, blocking only while the submission queue is full
// (Options.QueueDepth), and returns. Then done is called exactly once with the result
// Append would have returned: nil once the transaction holding the message is committed
// (fsynced), else ErrFull, ErrTooLarge, ErrDisk, ErrClosed or ctx's error (ctx ended
// before the committer took the message; once taken, the commit decides, as for Append).
//
// When AppendAsync returns an error (ErrInvalid, ErrTooLarge, ErrClosed, or ctx's error
// while the queue was full) the message was not submitted and done is never called.
//
// Appends are committed in submission order, and done is called in that order for every
// message the committer took; only a message abandoned because its ctx ended gets its
// done (with ctx's error, from another goroutine) before earlier messages' results. A
// later message may thus be stored although an earlier one was refused (ErrFull, say):
// a caller that acknowledges in order must stop at the first failure.
//
// done runs on the committer's goroutine (or on the one that ended ctx or closed the
// store): it must return quickly and must not wait for the store (Append, Flush,
// DeadLetter and DeleteQueue would deadlock; Ack and Read are fine). body must not be
// modified until done is called.
func (s *Store) AppendAsync(ctx context.Context, body []byte, targets []Target, done func(error)) error {
	if done == nil {
		return fmt.Errorf("append: no done callback: %w", ErrInvalid)
	}
	if err := s.validAppend(body, targets); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	o := &op{kind: opAppend, body: body, targets: targets, cb: done}
	if ctx.Done() != nil {
		// Registered before the op is visible to the committer, so that stopWatch is set
		// when finish reads it.
		o.stopWatch = context.AfterFunc(ctx, func() {
			if o.abandon() {
				o.body, o.targets = nil, nil
				done(fmt.Errorf("append: %w", context.Cause(ctx)))
			}
		})
	}
	if err := s.enqueue(ctx, o); err != nil {
		if o.stopWatch != nil && !o.stopWatch() {
			// ctx ended meanwhile and its callback runs: if it abandoned the op, done is
			// being called; claim it first so that exactly one of the two reports.
			if !o.claim() {
				return nil // done reports ctx's error
			}
		}
		return fmt.Errorf("append: %w", err)
	}
	return nil
}

func (s *Store) validAppend(body []byte, targets []Target) error {
	if len(targets) == 0 {
		return fmt.Errorf("no targets: %w", ErrInvalid)
	}
	if len(targets) > maxTargets {
		return fmt.Errorf("%d targets, at most %d: %w", len(targets), maxTargets, ErrInvalid)
	}
	for i, t := range targets {
		if err := validQueue(t.Queue); err != nil {
			return fmt.Errorf("target %d: %w", i, err)
		}
		if err := validPriority(t.Priority); err != nil {
			return fmt.Errorf("target %d (queue %q): %w", i, t.Queue, err)
		}
		if t.TTL < 0 {
			return fmt.Errorf("target %d (queue %q): negative TTL %v: %w", i, t.Queue, t.TTL, ErrInvalid)
		}
	}
	if dup, ok := duplicateQueue(targets); ok {
		return fmt.Errorf("queue %q targeted twice (route to each queue once, at the best priority): %w", dup, ErrInvalid)
	}
	if len(body) > maxBody {
		return fmt.Errorf("body of %d bytes, bbolt holds at most %d: %w", len(body), maxBody, ErrTooLarge)
	}
	if c, limit := Cost(len(body), len(targets)), s.maxBytes.Load(); limit > 0 && c > limit {
		return fmt.Errorf("message costs %d bytes, MaxBytes is %d: %w", c, limit, ErrTooLarge)
	}
	return nil
}

func duplicateQueue(targets []Target) (string, bool) {
	if len(targets) <= 16 {
		for i := range targets {
			for j := i + 1; j < len(targets); j++ {
				if targets[i].Queue == targets[j].Queue {
					return targets[i].Queue, true
				}
			}
		}
		return "", false
	}
	seen := make(map[string]bool, len(targets))
	for _, t := range targets {
		if seen[t.Queue] {
			return t.Queue, true
		}
		seen[t.Queue] = true
	}
	return "", false
}

// DeadLetter removes one item as undeliverable and counts it under reason (in
// Stats.DeadLetters, and in Stats.Dropped[DropDeadLetter]). It returns after the removal
// is committed; ErrNotFound if the item is not stored (already acked, expired or dropped).
func (s *Store) DeadLetter(queue string, priority int, seq uint64, reason string) error {
	if err := validQueue(queue); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	if err := validPriority(priority); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	o := newOp(opDeadLetter)
	o.queue, o.prio, o.seq, o.reason = queue, priority, seq, reason
	if err := s.submit(context.Background(), o); err != nil {
		return fmt.Errorf("dead-letter queue %q priority %d seq %d: %w", queue, priority, seq, err)
	}
	return nil
}

// DeleteQueue removes a queue (an endpoint that no longer exists): all its lanes, entries
// and checkpoints; bodies no other queue references are deleted. Entries are counted in
// Stats.Dropped[DropDeleted]. Appends submitted after DeleteQueue recreate the queue.
// Deleting a queue that does not exist is not an error.
func (s *Store) DeleteQueue(queue string) error {
	if err := validQueue(queue); err != nil {
		return fmt.Errorf("delete queue: %w", err)
	}
	o := newOp(opDeleteQueue)
	o.queue = queue
	if err := s.submit(context.Background(), o); err != nil {
		return fmt.Errorf("delete queue %q: %w", queue, err)
	}
	return nil
}

// Flush returns once every Ack made before the call is committed (or the commit failed).
// Use it before reading Stats in tests, or to make acknowledgements durable at a
// checkpoint of the caller's choosing.
func (s *Store) Flush(ctx context.Context) error {
	if err := s.submit(ctx, newOp(opFlush)); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// enqueue hands o to the committer. An op that lands in the queue after Run returned is
// failed with ErrClosed here or by failQueued: the two check each other's side.
func (s *Store) enqueue(ctx context.Context, o *op) error {
	select {
	case <-s.stopping:
		return ErrClosed
	default:
	}
	select {
	case s.ops <- o:
	case <-s.stopping:
		return ErrClosed
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	select {
	case <-s.stopped:
		s.failQueued()
	default:
	}
	return nil
}

// failQueued fails with ErrClosed the ops left in the queue once Run has returned (or
// will never run): nobody else would ever finish them. It is called after stopped is
// closed, by Run and Close, and by enqueue when it finds stopped closed after queueing.
func (s *Store) failQueued() {
	for {
		select {
		case o := <-s.ops:
			if o.claim() {
				o.finish(ErrClosed)
			}
		default:
			return
		}
	}
}

// submit hands o to the committer and waits for its result.
func (s *Store) submit(ctx context.Context, o *op) error {
	if err := s.enqueue(ctx, o); err != nil {
		return err
	}
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		if o.abandon() {
			return ctx.Err()
		}
	case <-s.stopped:
		if o.abandon() {
			return ErrClosed
		}
	}
	<-o.done // claimed: the commit is under way
	return o.err
}
