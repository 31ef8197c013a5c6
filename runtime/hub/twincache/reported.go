package twincache

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/twin"
)

// Pending is a reported patch waiting to be accepted by IoT Hub.
type Pending struct {
	// Seq orders the identity's pending patches (oldest first).
	Seq uint64
	// Rev counts the patches composed into this one; pass it back to AckReported.
	Rev uint64
	// Patch is the merge patch to send (null members delete).
	Patch map[string]any
}

type pendingRecord struct {
	Rev   uint64         `json:"rev"`
	Patch map[string]any `json:"patch"`
}

// AddReported records a reported patch from id's client, in one transaction: it merges the
// patch into the cached twin (twin.Twin.PatchReported: the patch's limits, then the merged
// document's size; a breach is a *twin.LimitError and nothing changes), creating an empty
// twin when none is cached, and queues it for IoT Hub, composed into the newest pending
// patch when that is exact. It returns the cached twin's new reported version, which counts
// every patch received (IoT Hub's version will differ when patches were composed).
// ErrFull reports MaxPending patches already queued.
func (c *Cache) AddReported(id sas.Identity, patch map[string]any, now time.Time) (int64, error) {
	var version int64
	err := c.update(func(tx *bolt.Tx) error {
		e, _, err := getEntry(tx, id)
		if err != nil {
			return err
		}
		if e.Twin == nil {
			e.Twin = twin.New()
		}
		if version, err = e.Twin.PatchReported(patch, now); err != nil {
			return err
		}
		if err := c.queue(tx, id, patch); err != nil {
			return err
		}
		return putEntry(tx, id, e)
	})
	if err != nil {
		return 0, fmt.Errorf("reported patch of %q: %w", id, err)
	}
	return version, nil
}

// queue appends patch to id's pending patches, composing it into the newest when exact.
func (c *Cache) queue(tx *bolt.Tx, id sas.Identity, patch map[string]any) error {
	b, err := tx.Bucket(bucketReported).CreateBucketIfNotExists([]byte(id.String()))
	if err != nil {
		return err
	}
	if k, v := b.Cursor().Last(); k != nil {
		var last pendingRecord
		if err := decode(v, &last); err != nil {
			return err
		}
		composed := twin.Clone(last.Patch)
		if Compose(composed, patch) && twin.Size(composed) <= twin.MaxReportedBytes {
			return putPending(b, k, pendingRecord{Rev: last.Rev + 1, Patch: composed})
		}
	}
	if n := b.Stats().KeyN; n >= c.maxPending {
		return fmt.Errorf("%w: %d waiting", ErrFull, n)
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	return putPending(b, seqKey(seq), pendingRecord{Rev: 1, Patch: twin.Clone(patch)})
}

func putPending(b *bolt.Bucket, k []byte, r pendingRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put(k, v)
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// PendingReported returns id's pending patches, oldest first.
func (c *Cache) PendingReported(id sas.Identity) ([]Pending, error) {
	var out []Pending
	err := c.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReported).Bucket([]byte(id.String()))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("%w: pending key %x", ErrCorrupt, k)
			}
			var r pendingRecord
			if err := decode(v, &r); err != nil {
				return err
			}
			out = append(out, Pending{Seq: binary.BigEndian.Uint64(k), Rev: r.Rev, Patch: r.Patch})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("pending reported patches of %q: %w", id, err)
	}
	return out, nil
}

// AckReported removes the pending patch seq of id if it is still at revision rev (nothing
// was composed into it since it was read), and reports whether it did. A patch that grew
// stays queued: sending it again is harmless (see the package documentation).
func (c *Cache) AckReported(id sas.Identity, seq, rev uint64) (bool, error) {
	removed := false
	err := c.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReported).Bucket([]byte(id.String()))
		if b == nil {
			return nil
		}
		v := b.Get(seqKey(seq))
		if v == nil {
			return nil
		}
		var r pendingRecord
		if err := decode(v, &r); err != nil {
			return err
		}
		if r.Rev != rev {
			return nil
		}
		removed = true
		return deletePending(tx, id, b, seq)
	})
	if err != nil {
		return false, fmt.Errorf("pending reported patch %d of %q: %w", seq, id, err)
	}
	return removed, nil
}

// DropReported removes the pending patch seq of id whatever its revision: IoT Hub refused
// it for good.
func (c *Cache) DropReported(id sas.Identity, seq uint64) error {
	err := c.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReported).Bucket([]byte(id.String()))
		if b == nil {
			return nil
		}
		return deletePending(tx, id, b, seq)
	})
	if err != nil {
		return fmt.Errorf("pending reported patch %d of %q: %w", seq, id, err)
	}
	return nil
}

// DropAllReported removes every pending patch of id (the identity is gone from IoT Hub).
func (c *Cache) DropAllReported(id sas.Identity) error {
	err := c.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketReported).Bucket([]byte(id.String())) == nil {
			return nil
		}
		return tx.Bucket(bucketReported).DeleteBucket([]byte(id.String()))
	})
	if err != nil {
		return fmt.Errorf("pending reported patches of %q: %w", id, err)
	}
	return nil
}

// deletePending deletes one patch and the identity's bucket once it is empty.
func deletePending(tx *bolt.Tx, id sas.Identity, b *bolt.Bucket, seq uint64) error {
	if err := b.Delete(seqKey(seq)); err != nil {
		return err
	}
	if k, _ := b.Cursor().First(); k == nil {
		return tx.Bucket(bucketReported).DeleteBucket([]byte(id.String()))
	}
	return nil
}

// PendingIdentities returns the identities that have pending reported patches.
func (c *Cache) PendingIdentities() ([]sas.Identity, error) {
	var out []sas.Identity
	err := c.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReported).ForEachBucket(func(k []byte) error {
			d, m, _ := strings.Cut(string(k), "/")
			out = append(out, sas.Identity{DeviceID: d, ModuleID: m})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("pending reported patches: %w", err)
	}
	return out, nil
}

// Refresh replaces id's cached twin with fresh, IoT Hub's current twin, re-applying on top
// of its reported section the patches still pending (IoT Hub does not have them yet), and
// records now as the time of the last sync; in one transaction, so a patch added meanwhile
// is either in the pending list it reads or not yet added. It returns the entry as stored.
// fresh is not modified.
func (c *Cache) Refresh(id sas.Identity, fresh *twin.Twin, now time.Time) (Entry, error) {
	var out Entry
	err := c.update(func(tx *bolt.Tx) error {
		e, _, err := getEntry(tx, id)
		if err != nil {
			return err
		}
		t := fresh.Clone()
		if t.Reported == nil {
			t.Reported = map[string]any{}
		}
		if b := tx.Bucket(bucketReported).Bucket([]byte(id.String())); b != nil {
			err := b.ForEach(func(_, v []byte) error {
				var r pendingRecord
				if err := decode(v, &r); err != nil {
					return err
				}
				twin.Merge(t.Reported, r.Patch)
				return nil
			})
			if err != nil {
				return err
			}
		}
		e.Twin, e.Synced = t, now
		out = e
		return putEntry(tx, id, e)
	})
	if err != nil {
		return Entry{}, fmt.Errorf("twin of %q: %w", id, err)
	}
	return out, nil
}
