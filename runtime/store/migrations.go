package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// migration upgrades a database from schema version-1 to version, inside the transaction
// Open runs it in. Any change to stored bytes appends a migration here, a fixture
// testdata/v{N}.db made by the previous version's code, and a test of the migration.
type migration struct {
	version int
	name    string
	apply   func(tx *bolt.Tx) error
}

// migrations is ordered: migrations[i].version == i+1.
var migrations = []migration{
	{version: 1, name: "initial layout", apply: migrateV1},
}

// currentVersion is the schema version this code writes.
var currentVersion = migrations[len(migrations)-1].version

// migrateV1 creates the buckets of doc.go on an empty file.
func migrateV1(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketMeta, bucketBodies, bucketRefs, bucketQueues, bucketCheckpoints} {
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("create bucket %q: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	for _, k := range [][]byte{keyBytes, keyMessages} {
		if err := meta.Put(k, u64Key(0)); err != nil {
			return err
		}
	}
	return nil
}

// readVersion returns the schema version stored in meta/version, 0 for an empty file.
func readVersion(tx *bolt.Tx) (int, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if !empty {
			return 0, fmt.Errorf("file has buckets but no meta/version, not a store: %w", ErrSchema)
		}
		return 0, nil
	}
	v := meta.Get(keyVersion)
	if v == nil {
		return 0, fmt.Errorf("meta/version missing: %w", ErrCorrupt)
	}
	n, err := decodeU64(v)
	if err != nil {
		return 0, fmt.Errorf("meta/version: %w", err)
	}
	return int(min(n, 1<<31)), nil
}

// migrate brings tx up to the last version of list and returns the version it started at.
func migrate(tx *bolt.Tx, list []migration) (int, error) {
	from, err := readVersion(tx)
	if err != nil {
		return 0, err
	}
	if from > len(list) {
		return from, fmt.Errorf("schema version %d, this code knows up to %d: %w", from, len(list), ErrSchema)
	}
	for _, m := range list[from:] {
		if err := m.apply(tx); err != nil {
			return from, fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		if err := tx.Bucket(bucketMeta).Put(keyVersion, u64Key(uint64(m.version))); err != nil {
			return from, fmt.Errorf("migration %d (%s): write version: %w", m.version, m.name, err)
		}
	}
	return from, nil
}
