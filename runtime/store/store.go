package store

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// lockTimeout bounds how long Open waits for bbolt's file lock held by another process.
const lockTimeout = 2 * time.Second

// Drop reasons, the keys of Stats.Dropped.
const (
	DropTTL        = "ttl"        // expired before delivery
	DropCap        = "cap"        // removed by DropOldest to make room
	DropDeadLetter = "deadletter" // removed by DeadLetter (by reason in Stats.DeadLetters)
	DropDeleted    = "deleted"    // removed with its queue by DeleteQueue
)

// Store is the durable message store. Open it, run Run in a goroutine, use it from any
// number of goroutines, stop Run (cancel its ctx) and Close it. See the package doc.
type Store struct {
	opts Options
	db   *bolt.DB
	log  *slog.Logger

	ops      chan *op           // ordered writes: append, dead-letter, delete-queue, flush
	kick     chan struct{}      // size 1: pending acks or expiries wait for a commit
	ackTimer *time.Timer        // wakes the committer when lazy acks are due (AckDelay)
	sweepReq chan chan struct{} // tests: sweep now and close the channel when done
	quit     chan struct{}      // closed by Close
	stopping chan struct{}      // closed when Run stops taking work (or Close without Run)
	stopped  chan struct{}      // closed when Run has returned (or Close without Run)

	quitOnce, stoppingOnce, stoppedOnce sync.Once

	// Owned by the committer (Open, then the Run goroutine): lanes indexes every lane;
	// lane.rec is written here under mu and read elsewhere under mu.
	lanes      map[laneKey]*lane
	lastBatch  int          // appends in the previous transaction (group-commit target)
	failCommit func() error // test hook, called inside every write transaction

	// maxBytes is the byte cap in force (Options.MaxBytes, then SetMaxBytes); 0 = none.
	maxBytes atomic.Int64

	// mu guards everything below and the lanes' rec, acked and read fields. It is never
	// held across a bbolt transaction. Lock order: queueState.readMu, then mu.
	mu       sync.Mutex
	running  bool // Run is active
	ran      bool // Run was called
	closed   bool // Close was called
	queues   map[string]*queueState
	watchers []*Watcher // see Watch
	pend     pending
	// trimStuck: a trim to the cap found nothing to drop although the accounted bytes are
	// over it, so the committer stops trying until the cap changes (see needTrim).
	trimStuck bool
	bytes     int64
	messages  int64
	count     counters
}

// laneKey names a lane: one (queue, priority) pair, one append-only sequence.
type laneKey struct {
	queue string
	prio  int
}

// lane is the in-memory state of one lane.
type lane struct {
	key laneKey
	rec laneRec // committed state, mirrors checkpoints/{queue}/{priority}
	// acked (>= rec.ckpt) is the highest seq given to Ack, committed or not; read (>= acked)
	// is the highest seq Read handed out or skipped since the last Rewind.
	acked, read uint64
	hint        expiryHint // committer only
}

// queueState groups the lanes of one queue for Read, Rewind and Wait.
type queueState struct {
	name   string
	lanes  map[int]*lane
	prios  []int         // sorted ascending: highest priority first
	wait   chan struct{} // size 1, see Wait
	readMu sync.Mutex    // serialises Read on this queue
	gen    uint64        // bumped by Rewind and DeleteQueue: a racing Read keeps its positions to itself
	streak int           // pick's consecutive-higher-priority count
	// watchers are the Watchers whose prefix the name has (under Store.mu).
	watchers []*Watcher
}

// counters are process-lifetime statistics (they restart at zero on Open).
type counters struct {
	dropped     map[string]uint64
	deadLetters map[string]uint64
	refused     uint64
	commits     uint64
	appends     uint64
	acked       uint64
}

// Open opens or creates the store file, checks its schema version and runs pending
// migrations. It returns ErrSchema for a file written by newer code (or not a store).
// Writes are committed only while Run runs; Read, Rewind, Wait and Stats work without it.
func Open(opts Options) (*Store, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	db, err := bolt.Open(o.Path, 0o600, &bolt.Options{
		Timeout: lockTimeout,
		// The freelist is rebuilt by scanning on open instead of being rewritten on every
		// commit: a queue that drained a large backlog leaves a large freelist, and writing
		// it out each commit would cost more than the messages themselves (as in etcd).
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		NoSync:         o.NoSync,
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open %q: locked by another process: %w", o.Path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open %q: %w", o.Path, err)
	}
	s := &Store{
		opts:     o,
		db:       db,
		log:      o.Logger.With("component", "store"),
		ops:      make(chan *op, o.QueueDepth),
		kick:     make(chan struct{}, 1),
		sweepReq: make(chan chan struct{}),
		quit:     make(chan struct{}),
		stopping: make(chan struct{}),
		stopped:  make(chan struct{}),
		lanes:    make(map[laneKey]*lane),
		queues:   make(map[string]*queueState),
		count:    counters{dropped: make(map[string]uint64), deadLetters: make(map[string]uint64)},
	}
	s.maxBytes.Store(o.MaxBytes)
	s.pend.reset()
	s.ackTimer = time.AfterFunc(time.Hour, s.wake)
	s.ackTimer.Stop()
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := migrate(tx, migrations)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %q: %w", o.Path, err)
	}
	if err := db.View(s.load); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %q: %w", o.Path, err)
	}
	return s, nil
}

// load reads the counters and lane records into memory.
func (s *Store) load(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	b, err := decodeU64(meta.Get(keyBytes))
	if err != nil {
		return fmt.Errorf("meta/bytes: %w", err)
	}
	m, err := decodeU64(meta.Get(keyMessages))
	if err != nil {
		return fmt.Errorf("meta/messages: %w", err)
	}
	s.bytes, s.messages = int64(b), int64(m)
	queues := tx.Bucket(bucketQueues)
	return tx.Bucket(bucketCheckpoints).ForEachBucket(func(name []byte) error {
		q := string(name)
		qb := queues.Bucket(name)
		return tx.Bucket(bucketCheckpoints).Bucket(name).ForEach(func(k, v []byte) error {
			prio, err := decodePrio(k)
			if err != nil {
				return fmt.Errorf("checkpoints/%q: %w", q, err)
			}
			rec, err := decodeLaneRec(v)
			if err != nil {
				return fmt.Errorf("checkpoints/%q/%d: %w", q, prio, err)
			}
			if qb == nil || qb.Bucket(k) == nil {
				return fmt.Errorf("queues/%q/%d missing: %w", q, prio, ErrCorrupt)
			}
			l := s.addLane(laneKey{q, prio}, rec)
			if rec.len > 0 {
				l.hint = expiryHint{} // unknown until the first sweep scans the lane
			}
			return nil
		})
	})
}

// addLane creates the in-memory lane for a committed record (caller holds mu or owns s).
func (s *Store) addLane(k laneKey, rec laneRec) *lane {
	l := &lane{key: k, rec: rec, acked: rec.ckpt, read: rec.ckpt, hint: freshHint()}
	s.lanes[k] = l
	q := s.queueLocked(k.queue)
	q.lanes[k.prio] = l
	i, _ := slices.BinarySearch(q.prios, k.prio)
	q.prios = slices.Insert(q.prios, i, k.prio)
	return l
}

// queueLocked returns the state of queue name, creating it (caller holds mu).
func (s *Store) queueLocked(name string) *queueState {
	q := s.queues[name]
	if q == nil {
		q = &queueState{name: name, lanes: make(map[int]*lane), wait: make(chan struct{}, 1)}
		for _, w := range s.watchers {
			if strings.HasPrefix(name, w.prefix) {
				q.watchers = append(q.watchers, w)
			}
		}
		s.queues[name] = q
	}
	return q
}

// signal wakes whoever waits on q (coalesced) and marks it in its Watchers (caller holds
// mu).
func (q *queueState) signal() {
	select {
	case q.wait <- struct{}{}:
	default:
	}
	for _, w := range q.watchers {
		w.mark(q.name)
	}
}

// Close stops Run if it is running (committing what was already submitted), waits for it
// and closes the file. Calls after the first return nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ran := s.ran
	s.mu.Unlock()
	s.quitOnce.Do(func() { close(s.quit) })
	if ran {
		<-s.stopped
	} else {
		s.stoppingOnce.Do(func() { close(s.stopping) })
		s.stoppedOnce.Do(func() { close(s.stopped) })
		s.failQueued() // submitted before Run, which will never run now
	}
	s.ackTimer.Stop()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close %q: %w", s.opts.Path, err)
	}
	return nil
}

// QueueStats describes one lane (queue, priority) as committed.
type QueueStats struct {
	Queue      string
	Priority   int
	Len        int    // entries stored
	Bytes      int64  // sum of body length + EntryOverhead over the entries (shared bodies count in every lane)
	Checkpoint uint64 // highest acknowledged seq that is committed
}

// Stats is a snapshot of the store. Bytes, Messages and Queues reflect committed state
// (Ack is committed asynchronously; Flush waits for it). The counters count since Open.
type Stats struct {
	Bytes       int64 // accounted bytes, the quantity MaxBytes caps (see Cost)
	MaxBytes    int64 // the cap in force (Options.MaxBytes or the last SetMaxBytes); 0 = none
	Messages    int   // bodies stored (a body shared by several queues counts once)
	FileBytes   int64 // size of the bbolt file; bbolt reuses freed pages but never shrinks the file
	Queues      []QueueStats
	Dropped     map[string]uint64 // entries removed undelivered, by reason: DropTTL, DropCap, DropDeadLetter, DropDeleted
	DeadLetters map[string]uint64 // DeadLetter calls by the caller's reason
	Refused     uint64            // appends refused with ErrFull
	Commits     uint64            // write transactions committed
	Appends     uint64            // messages appended (committed)
	Acked       uint64            // entries removed by Ack
}

// Stats returns a snapshot of the counters and lanes.
func (s *Store) Stats() Stats {
	var fileBytes int64
	if fi, err := os.Stat(s.opts.Path); err == nil {
		fileBytes = fi.Size()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		Bytes:       s.bytes,
		MaxBytes:    s.maxBytes.Load(),
		Messages:    int(s.messages),
		FileBytes:   fileBytes,
		Dropped:     map[string]uint64{DropTTL: 0, DropCap: 0, DropDeadLetter: 0, DropDeleted: 0},
		DeadLetters: maps.Clone(s.count.deadLetters),
		Refused:     s.count.refused,
		Commits:     s.count.commits,
		Appends:     s.count.appends,
		Acked:       s.count.acked,
	}
	maps.Copy(st.Dropped, s.count.dropped)
	for _, name := range slices.Sorted(maps.Keys(s.queues)) {
		q := s.queues[name]
		for _, p := range q.prios {
			l := q.lanes[p]
			st.Queues = append(st.Queues, QueueStats{
				Queue: name, Priority: p, Len: int(l.rec.len), Bytes: l.rec.bytes, Checkpoint: l.rec.ckpt,
			})
		}
	}
	return st
}

// Queues returns the names of the queues that have at least one lane on disk, sorted.
func (s *Store) Queues() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for name, q := range s.queues {
		if len(q.prios) > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// validQueue checks a queue name argument.
func validQueue(queue string) error {
	if queue == "" {
		return fmt.Errorf("queue name is empty: %w", ErrInvalid)
	}
	if len(queue) > MaxQueueName {
		return fmt.Errorf("queue name of %d bytes, longer than %d: %w", len(queue), MaxQueueName, ErrInvalid)
	}
	return nil
}

// validPriority checks a priority argument.
func validPriority(p int) error {
	if p < 0 || p > MaxPriority {
		return fmt.Errorf("priority %d outside 0..%d: %w", p, MaxPriority, ErrInvalid)
	}
	return nil
}
