package twincache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/twin"
)

// schemaVersion is written under meta/version.
const schemaVersion = "1"

var (
	bucketMeta     = []byte("meta")
	bucketTwins    = []byte("twins")
	bucketReported = []byte("reported")
	bucketValues   = []byte("values")
	keyVersion     = []byte("version")
)

// DefaultMaxPending bounds the reported patches queued per identity (Options.MaxPending).
// Composition keeps the queue at one patch in the usual case; only patches that cannot be
// composed (see the package documentation) add entries.
const DefaultMaxPending = 256

// Options configure Open.
type Options struct {
	// Path is the bbolt file, created when missing. Required.
	Path string
	// Timeout bounds waiting for the file lock held by another process (default 5 s).
	Timeout time.Duration
	// MaxPending bounds the reported patches queued per identity; default
	// DefaultMaxPending.
	MaxPending int
}

// Entry is what the cache knows about one identity's twin.
type Entry struct {
	// Twin is the last twin known: IoT Hub's as last fetched, plus the reported patches
	// received since. Nil when nothing is known (never fetched, nothing reported).
	Twin *twin.Twin
	// Synced is when Twin was last fetched from IoT Hub; zero if never.
	Synced time.Time
	// Seen is the desired section as the client last received it (a twin GET answer or the
	// desired patches forwarded to it); nil until the client has received anything.
	Seen *Seen
}

// Seen is a desired section and its version, as a client received it.
type Seen struct {
	Desired map[string]any `json:"desired"`
	Version int64          `json:"version"`
}

// entryRecord is the stored form of an Entry.
type entryRecord struct {
	Twin   *twin.Twin `json:"twin,omitempty"`
	Synced time.Time  `json:"synced"`
	Seen   *Seen      `json:"seen,omitempty"`
}

// Cache is the twin cache. It is safe for concurrent use; every method is one bbolt
// transaction.
type Cache struct {
	db         *bolt.DB
	maxPending int

	mu     sync.RWMutex // guards closed against Close
	closed bool
}

// Open opens (creating if needed) the cache file.
func Open(opts Options) (*Cache, error) {
	if opts.Path == "" {
		return nil, errors.New("twin cache: Path is empty")
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	maxPending := opts.MaxPending
	if maxPending <= 0 {
		maxPending = DefaultMaxPending
	}
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("twin cache %q: %w", opts.Path, err)
	}
	if err := db.Update(initialize); err != nil {
		db.Close()
		return nil, fmt.Errorf("twin cache %q: %w", opts.Path, err)
	}
	return &Cache{db: db, maxPending: maxPending}, nil
}

// initialize checks the schema version, writing it into a new file, and creates the
// buckets.
func initialize(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	switch v := meta.Get(keyVersion); {
	case v == nil:
		if err := meta.Put(keyVersion, []byte(schemaVersion)); err != nil {
			return err
		}
	case string(v) != schemaVersion:
		return fmt.Errorf("%w: %q", ErrVersion, v)
	}
	for _, b := range [][]byte{bucketTwins, bucketReported, bucketValues} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the file. Later calls fail with ErrClosed.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.db.Close()
}

// view and update run fn in a read or write transaction unless the cache is closed.
func (c *Cache) view(fn func(tx *bolt.Tx) error) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	return c.db.View(fn)
}

func (c *Cache) update(fn func(tx *bolt.Tx) error) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	return c.db.Update(fn)
}

// Get returns the entry of id; ok is false when the cache holds nothing for it.
func (c *Cache) Get(id sas.Identity) (e Entry, ok bool, err error) {
	err = c.view(func(tx *bolt.Tx) error {
		e, ok, err = getEntry(tx, id)
		return err
	})
	if err != nil {
		return Entry{}, false, fmt.Errorf("twin of %q: %w", id, err)
	}
	return e, ok, nil
}

// Update reads the entry of id (zero when absent), lets fn change it and writes it back,
// in one transaction. An error from fn aborts without writing and is returned as is.
func (c *Cache) Update(id sas.Identity, fn func(e *Entry) error) error {
	var fnErr error
	err := c.update(func(tx *bolt.Tx) error {
		e, _, err := getEntry(tx, id)
		if err != nil {
			return err
		}
		if fnErr = fn(&e); fnErr != nil {
			return fnErr
		}
		return putEntry(tx, id, e)
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("twin of %q: %w", id, err)
	}
	return nil
}

// Delete forgets id: its entry and its pending reported patches.
func (c *Cache) Delete(id sas.Identity) error {
	err := c.update(func(tx *bolt.Tx) error {
		key := []byte(id.String())
		if err := tx.Bucket(bucketTwins).Delete(key); err != nil {
			return err
		}
		if tx.Bucket(bucketReported).Bucket(key) != nil {
			return tx.Bucket(bucketReported).DeleteBucket(key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("twin of %q: %w", id, err)
	}
	return nil
}

func getEntry(tx *bolt.Tx, id sas.Identity) (Entry, bool, error) {
	v := tx.Bucket(bucketTwins).Get([]byte(id.String()))
	if v == nil {
		return Entry{}, false, nil
	}
	var r entryRecord
	if err := decode(v, &r); err != nil {
		return Entry{}, false, err
	}
	return Entry(r), true, nil
}

func putEntry(tx *bolt.Tx, id sas.Identity, e Entry) error {
	v, err := json.Marshal(entryRecord(e))
	if err != nil {
		return err
	}
	return tx.Bucket(bucketTwins).Put([]byte(id.String()), v)
}

// decode reads JSON with numbers as json.Number, as package twin keeps them.
func decode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return nil
}

// Value returns the named value, or nil when it is not set.
func (c *Cache) Value(name string) ([]byte, error) {
	var out []byte
	err := c.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketValues).Get([]byte(name)); v != nil {
			out = bytes.Clone(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("value %q: %w", name, err)
	}
	return out, nil
}

// SetValue stores the named value (nil deletes it).
func (c *Cache) SetValue(name string, v []byte) error {
	if name == "" {
		return errors.New("value: empty name")
	}
	err := c.update(func(tx *bolt.Tx) error {
		if v == nil {
			return tx.Bucket(bucketValues).Delete([]byte(name))
		}
		return tx.Bucket(bucketValues).Put([]byte(name), v)
	})
	if err != nil {
		return fmt.Errorf("value %q: %w", name, err)
	}
	return nil
}
