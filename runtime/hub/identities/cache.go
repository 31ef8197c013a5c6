package identities

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// schemaVersion is written under meta/version.
const schemaVersion = "1"

var (
	bucketMeta       = []byte("meta")
	bucketIdentities = []byte("identities")
	keyVersion       = []byte("version")
)

// Record is one identity with what is needed to verify its tokens.
type Record struct {
	DeviceID string `json:"deviceId"`
	ModuleID string `json:"moduleId,omitempty"`
	// Keys are the identity's symmetric keys (base64); at least one must be set.
	Keys sas.Keys `json:"keys"`
	// Disabled mirrors the registry status "disabled": such an identity cannot connect.
	Disabled bool `json:"disabled,omitempty"`
	// GenerationID is the registry's generation id, kept for the
	// iothub-connection-auth-generation-id property; may be empty.
	GenerationID string `json:"generationId,omitempty"`
}

// Identity returns the record's identity.
func (r Record) Identity() sas.Identity {
	return sas.Identity{DeviceID: r.DeviceID, ModuleID: r.ModuleID}
}

func (r Record) validate() error {
	if err := iothub.ValidateDeviceID(r.DeviceID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if r.ModuleID != "" {
		if err := iothub.ValidateModuleID(r.ModuleID); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if r.Keys.Primary == "" && r.Keys.Secondary == "" {
		return fmt.Errorf("identity %q: %w: no key", r.Identity(), ErrInvalid)
	}
	for name, k := range map[string]string{"primary": r.Keys.Primary, "secondary": r.Keys.Secondary} {
		if k == "" {
			continue
		}
		if _, err := base64.StdEncoding.DecodeString(k); err != nil {
			return fmt.Errorf("identity %q: %w: %s key is not base64", r.Identity(), ErrInvalid, name)
		}
	}
	return nil
}

// Options configures Open.
type Options struct {
	// Path is the bbolt file; "" keeps the cache in memory only.
	Path string
	// Timeout bounds waiting for the file lock held by another process (default 5 s).
	Timeout time.Duration
}

// Cache is an identity cache: an in-memory map, written through to a bbolt file when one
// is configured. It is safe for concurrent use.
type Cache struct {
	db      *bolt.DB // nil for a memory-only cache
	changes chan struct{}

	mu      sync.RWMutex
	records map[string]Record // keyed by sas.Identity.String()
	closed  bool
}

// Open opens (creating if needed) the cache file at opts.Path and loads it, or returns an
// empty memory-only cache when opts.Path is "".
func Open(opts Options) (*Cache, error) {
	c := &Cache{changes: make(chan struct{}, 1), records: map[string]Record{}}
	if opts.Path == "" {
		return c, nil
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("identity cache %q: %w", opts.Path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return c.load(tx) }); err != nil {
		db.Close()
		return nil, fmt.Errorf("identity cache %q: %w", opts.Path, err)
	}
	c.db = db
	return c, nil
}

// load checks the schema version (writing it into a new file) and reads every record.
func (c *Cache) load(tx *bolt.Tx) error {
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
	ids, err := tx.CreateBucketIfNotExists(bucketIdentities)
	if err != nil {
		return err
	}
	return ids.ForEach(func(k, v []byte) error {
		var r Record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("record %q: %w", k, err)
		}
		if r.Identity().String() != string(k) {
			return fmt.Errorf("record %q holds identity %q", k, r.Identity())
		}
		c.records[string(k)] = r
		return nil
	})
}

// Close closes the file. Later calls fail with ErrClosed.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.db != nil {
		return c.db.Close()
	}
	return nil
}

// Keys returns the keys that verify tokens for id. It is the hub's Identities.Keys: it
// fails with ErrNotFound for an unknown identity and ErrDisabled for a disabled one. ctx is
// not used: lookups are in memory.
func (c *Cache) Keys(_ context.Context, id sas.Identity) (sas.Keys, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return sas.Keys{}, ErrClosed
	}
	r, ok := c.records[id.String()]
	switch {
	case !ok:
		return sas.Keys{}, fmt.Errorf("identity %q: %w", id, ErrNotFound)
	case r.Disabled:
		return sas.Keys{}, fmt.Errorf("identity %q: %w", id, ErrDisabled)
	}
	return r.Keys, nil
}

// Get returns the record of id.
func (c *Cache) Get(id sas.Identity) (Record, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.records[id.String()]
	return r, ok
}

// List returns every record, sorted by identity.
func (c *Cache) List() []Record {
	c.mu.RLock()
	defer c.mu.RUnlock()
	keys := slices.Sorted(maps.Keys(c.records))
	out := make([]Record, 0, len(keys))
	for _, k := range keys {
		out = append(out, c.records[k])
	}
	return out
}

// Put adds or replaces a record. With a file, it returns once the record is committed.
func (c *Cache) Put(_ context.Context, r Record) error {
	if err := r.validate(); err != nil {
		return err
	}
	key := r.Identity().String()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.db != nil {
		v, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("identity %q: %w", key, err)
		}
		err = c.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketIdentities).Put([]byte(key), v)
		})
		if err != nil {
			return fmt.Errorf("identity %q: %w", key, err)
		}
	}
	c.records[key] = r
	c.notify()
	return nil
}

// Delete removes id; deleting an unknown identity is not an error. Deleting a device does
// not delete its modules (the registry does that, and sends each deletion).
func (c *Cache) Delete(_ context.Context, id sas.Identity) error {
	key := id.String()
	if strings.TrimSpace(id.DeviceID) == "" {
		return fmt.Errorf("%w: empty device id", ErrInvalid)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if _, ok := c.records[key]; !ok {
		return nil
	}
	if c.db != nil {
		err := c.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketIdentities).Delete([]byte(key))
		})
		if err != nil {
			return fmt.Errorf("identity %q: %w", key, err)
		}
	}
	delete(c.records, key)
	c.notify()
	return nil
}

// Changes returns the channel that receives a value after Put or Delete changed the
// cache. Sends are coalesced: a slow reader sees one value for several changes.
func (c *Cache) Changes() <-chan struct{} { return c.changes }

func (c *Cache) notify() {
	select {
	case c.changes <- struct{}{}:
	default:
	}
}
