package store

import (
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Policy says what Append does when a new message does not fit under Options.MaxBytes.
type Policy int

const (
	// RejectNew refuses the new message with ErrFull and keeps everything stored (the
	// sender gets an error instead of a PUBACK and may retry later). Counted in Stats.Refused.
	RejectNew Policy = iota
	// DropOldest deletes stored entries until the new message fits: the lowest priority
	// first (highest priority number), within it the entry enqueued first, across all
	// queues. Each deleted entry is counted in Stats.Dropped[DropCap].
	DropOldest
)

// String returns the policy's name as used in configuration and logs.
func (p Policy) String() string {
	switch p {
	case RejectNew:
		return "reject-new"
	case DropOldest:
		return "drop-oldest"
	default:
		return fmt.Sprintf("Policy(%d)", int(p))
	}
}

// Defaults applied by Open to zero-valued Options fields.
const (
	DefaultBatchDelay    = time.Millisecond
	DefaultMaxBatch      = 1024
	DefaultQueueDepth    = 8192
	DefaultSweepInterval = time.Second
	DefaultPriorityBurst = 8
	DefaultAckDelay      = 20 * time.Millisecond
	DefaultAckBatch      = 1000
)

// Limits on names and values.
const (
	// MaxQueueName is the longest queue name in bytes.
	MaxQueueName = 1024
	// MaxPriority is the largest priority number (priorities are stored as 4 bytes).
	MaxPriority = math.MaxInt32
	// maxTargets bounds the queues one message goes to (refs/ holds a uint32).
	maxTargets = 1 << 16
	// maxBody is bbolt's largest value (bbolt.MaxValueSize is 2^31-2).
	maxBody = 1<<31 - 2
)

// Accounting: what one message costs against Options.MaxBytes and in Stats.Bytes. The
// constants approximate bbolt's per-key footprint (a 16-byte leaf element header, the key
// and the fixed-size value); page fill and the freelist are not counted, so the file can
// be larger than Stats.Bytes (see Stats.FileBytes).
const (
	// BodyOverhead is added once per stored body to its length.
	BodyOverhead = 32
	// EntryOverhead is added once per queue entry (one per target).
	EntryOverhead = 64
)

// Cost returns what a message of bodyLen bytes routed to n targets costs against
// Options.MaxBytes: bodyLen + BodyOverhead + n*EntryOverhead.
func Cost(bodyLen, n int) int64 {
	return int64(bodyLen) + BodyOverhead + int64(n)*EntryOverhead
}

// Options configure Open. Only Path is required.
type Options struct {
	// Path is the bbolt file; it is created (mode 0600) when missing.
	Path string
	// MaxBytes caps Stats.Bytes, i.e. the sum of Cost over stored messages; 0 = unlimited.
	// SetMaxBytes changes it while the store is open.
	MaxBytes int64
	// FullPolicy applies when an Append does not fit under MaxBytes.
	FullPolicy Policy
	// BatchDelay is the group-commit window (default 1ms): the committer takes what is
	// queued and waits at most BatchDelay for more, stopping early once as many appends are
	// queued as the previous transaction held. Negative: never wait.
	BatchDelay time.Duration
	// MaxBatch caps the appends per transaction (default 1024).
	MaxBatch int
	// QueueDepth bounds the submission queue (default 8192); a full queue blocks Append
	// until its ctx is done.
	QueueDepth int
	// SweepInterval is the period of the TTL sweep (default 1s).
	SweepInterval time.Duration
	// PriorityBurst is K in the scheduling rule (doc.go, "Scheduling"): after K consecutive
	// items from the highest waiting priority while a lower one waits, Read takes one item
	// from the lower priority whose next item is oldest. Default 8; negative = strict
	// priority (lower priorities may starve, as in Azure IoT Edge).
	PriorityBurst int
	// AckDelay is how long an acknowledgement may wait for a transaction to ride on
	// (default 20ms): Ack applies at once in memory, the next transaction (an append's,
	// usually) commits it, and when none comes an acknowledgement-only transaction is
	// committed AckDelay after the oldest uncommitted Ack. Negative: commit every Ack at
	// once (one transaction per Ack when nothing else is written). See doc.go, "Lazy
	// acknowledgements".
	AckDelay time.Duration
	// AckBatch is the other trigger of an acknowledgement-only transaction (default
	// 1000): once this many items were acknowledged since the last commit, they are
	// committed without waiting for AckDelay.
	AckBatch int
	// NoSync skips fsync: for tests and benchmarks only. A crash of the machine (not only
	// of the process) can then lose or corrupt acknowledged messages.
	NoSync bool
	// Now is the clock for enqueue times and TTL (default time.Now).
	Now func() time.Time
	// Logger receives warnings about housekeeping failures (default: discard).
	Logger *slog.Logger
}

// withDefaults validates o and fills in defaults.
func (o Options) withDefaults() (Options, error) {
	if o.Path == "" {
		return o, fmt.Errorf("options: Path is empty: %w", ErrInvalid)
	}
	if o.MaxBytes < 0 {
		return o, fmt.Errorf("options: MaxBytes %d is negative: %w", o.MaxBytes, ErrInvalid)
	}
	if o.FullPolicy != RejectNew && o.FullPolicy != DropOldest {
		return o, fmt.Errorf("options: unknown FullPolicy %d: %w", int(o.FullPolicy), ErrInvalid)
	}
	if o.BatchDelay == 0 {
		o.BatchDelay = DefaultBatchDelay
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.QueueDepth <= 0 {
		o.QueueDepth = DefaultQueueDepth
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.AckDelay == 0 {
		o.AckDelay = DefaultAckDelay
	}
	if o.AckBatch <= 0 {
		o.AckBatch = DefaultAckBatch
	}
	if o.PriorityBurst == 0 {
		o.PriorityBurst = DefaultPriorityBurst
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
