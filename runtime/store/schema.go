package store

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Bucket and key names; the tree is drawn in doc.go.
var (
	bucketMeta        = []byte("meta")
	bucketBodies      = []byte("bodies")
	bucketRefs        = []byte("refs")
	bucketQueues      = []byte("queues")
	bucketCheckpoints = []byte("checkpoints")

	keyVersion  = []byte("version")
	keyBytes    = []byte("bytes")
	keyMessages = []byte("messages")
)

const (
	entryLen = 28 // bodyID u64 | size u32 | enqueued i64 | expires i64
	laneLen  = 32 // checkpoint u64 | next u64 | len u64 | bytes u64
)

// fillPercent packs pages full: bodies and queue entries are keyed by increasing numbers,
// so new keys always land in the right-most page and half-empty splits only waste space.
const fillPercent = 1.0

// never is the in-memory expiry of an entry without TTL: later than every real expiry.
const never = math.MaxInt64

// entry is the value of queues/{queue}/{priority}/{seq}.
type entry struct {
	body     uint64 // key in bodies/
	size     uint32 // body length, so accounting never has to load the body
	enqueued int64  // unix nanoseconds
	expires  int64  // unix nanoseconds; 0 = never
}

func (e entry) encode() []byte {
	b := make([]byte, entryLen)
	binary.BigEndian.PutUint64(b[0:], e.body)
	binary.BigEndian.PutUint32(b[8:], e.size)
	binary.BigEndian.PutUint64(b[12:], uint64(e.enqueued))
	binary.BigEndian.PutUint64(b[20:], uint64(e.expires))
	return b
}

func decodeEntry(v []byte) (entry, error) {
	if len(v) != entryLen {
		return entry{}, fmt.Errorf("entry of %d bytes, want %d: %w", len(v), entryLen, ErrCorrupt)
	}
	return entry{
		body:     binary.BigEndian.Uint64(v[0:]),
		size:     binary.BigEndian.Uint32(v[8:]),
		enqueued: int64(binary.BigEndian.Uint64(v[12:])),
		expires:  int64(binary.BigEndian.Uint64(v[20:])),
	}, nil
}

// expiry returns the expiry for ordering purposes (never for entries without TTL).
func (e entry) expiry() int64 {
	if e.expires == 0 {
		return never
	}
	return e.expires
}

// expired reports whether the entry's TTL has run out at now (unix nanoseconds).
func (e entry) expired(now int64) bool { return e.expires != 0 && e.expires <= now }

// laneRec is the value of checkpoints/{queue}/{priority}: the persisted state of one lane,
// i.e. one (queue, priority) pair.
type laneRec struct {
	ckpt  uint64 // every seq <= ckpt is acknowledged and deleted
	next  uint64 // the seq the next append gets (seqs start at 1 and are never reused)
	len   uint64 // entries stored
	bytes int64  // sum of size+EntryOverhead over the entries
}

func newLaneRec() laneRec { return laneRec{next: 1} }

func (r laneRec) encode() []byte {
	b := make([]byte, laneLen)
	binary.BigEndian.PutUint64(b[0:], r.ckpt)
	binary.BigEndian.PutUint64(b[8:], r.next)
	binary.BigEndian.PutUint64(b[16:], r.len)
	binary.BigEndian.PutUint64(b[24:], uint64(r.bytes))
	return b
}

func decodeLaneRec(v []byte) (laneRec, error) {
	if len(v) != laneLen {
		return laneRec{}, fmt.Errorf("lane record of %d bytes, want %d: %w", len(v), laneLen, ErrCorrupt)
	}
	r := laneRec{
		ckpt:  binary.BigEndian.Uint64(v[0:]),
		next:  binary.BigEndian.Uint64(v[8:]),
		len:   binary.BigEndian.Uint64(v[16:]),
		bytes: int64(binary.BigEndian.Uint64(v[24:])),
	}
	if r.next == 0 || r.ckpt >= r.next {
		return laneRec{}, fmt.Errorf("lane record checkpoint %d, next %d: %w", r.ckpt, r.next, ErrCorrupt)
	}
	return r, nil
}

// u64Key encodes a body id, a seq or a counter big-endian, so byte order is numeric order.
func u64Key(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func decodeU64(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("%d-byte number, want 8: %w", len(v), ErrCorrupt)
	}
	return binary.BigEndian.Uint64(v), nil
}

// prioKey encodes a priority as 4 bytes big-endian, so lanes iterate highest priority first.
func prioKey(p int) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, uint32(p))
	return b
}

func decodePrio(k []byte) (int, error) {
	if len(k) != 4 {
		return 0, fmt.Errorf("%d-byte priority key, want 4: %w", len(k), ErrCorrupt)
	}
	p := binary.BigEndian.Uint32(k)
	if p > MaxPriority {
		return 0, fmt.Errorf("priority %d out of range: %w", p, ErrCorrupt)
	}
	return int(p), nil
}

func encodeU32(v uint32) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, v)
	return b
}

func decodeU32(v []byte) (uint32, error) {
	if len(v) != 4 {
		return 0, fmt.Errorf("%d-byte count, want 4: %w", len(v), ErrCorrupt)
	}
	return binary.BigEndian.Uint32(v), nil
}
