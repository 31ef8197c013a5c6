package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// StateDB is what the agent keeps on disk between runs, in one bbolt file
// (see "State database" in the package documentation for the layout): the
// last valid deployment, the module Records and what it learnt about module
// identities. It is safe for concurrent use. Only one agent may have the
// file open: OpenStateDB fails while another process holds it.
type StateDB struct {
	db   *bolt.DB
	path string
}

// Buckets and keys of the state database.
var (
	bucketMeta       = []byte("meta")
	bucketDeployment = []byte("deployment")
	bucketRecords    = []byte("records")
	bucketIdentities = []byte("identities")

	keyVersion = []byte("version")
	keyDesired = []byte("desired")
)

// stateVersion is the schema version OpenStateDB migrates to.
var stateVersion = len(stateMigrations)

// stateMigrations[i] takes the database from version i to i+1, inside the
// transaction that then records version i+1. Never edit an entry once
// released: append a new one (and a fixture under testdata/).
var stateMigrations = []func(tx *bolt.Tx) error{
	// 0 -> 1: the initial layout.
	func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketDeployment, bucketRecords, bucketIdentities} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	},
}

// lockTimeout is how long OpenStateDB waits for another agent to release
// the file.
const lockTimeout = 2 * time.Second

// OpenStateDB opens (creating it and its directory if needed, mode 0600)
// the state database at path and migrates it to the current schema. A file
// written by a newer agent, or one that is not a bbolt file, is an error
// wrapping ErrStateDB; the agent does not guess at its content.
func OpenStateDB(path string) (*StateDB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state database %q: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("state database %q: locked by another process (is another agent running?): %w", path, err)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrChecksum):
		return nil, fmt.Errorf("state database %q: %w: %w", path, ErrStateDB, err)
	case err != nil:
		return nil, fmt.Errorf("state database %q: %w", path, err)
	}
	s := &StateDB{db: db, path: path}
	if err := db.Update(s.migrate); err != nil {
		db.Close()
		return nil, fmt.Errorf("state database %q: %w", path, err)
	}
	return s, nil
}

// migrate brings the schema to stateVersion.
func (s *StateDB) migrate(tx *bolt.Tx) error {
	v := 0
	if meta := tx.Bucket(bucketMeta); meta != nil {
		if raw := meta.Get(keyVersion); raw != nil {
			n, err := strconv.Atoi(string(raw))
			if err != nil || n < 1 {
				return fmt.Errorf("%w: schema version %q", ErrStateDB, raw)
			}
			v = n
		}
	}
	if v > stateVersion {
		return fmt.Errorf("%w: schema version %d is newer than this agent's %d", ErrStateDB, v, stateVersion)
	}
	for ; v < stateVersion; v++ {
		if err := stateMigrations[v](tx); err != nil {
			return fmt.Errorf("migration to schema version %d: %w", v+1, err)
		}
	}
	return tx.Bucket(bucketMeta).Put(keyVersion, []byte(strconv.Itoa(stateVersion)))
}

// Close closes the database.
func (s *StateDB) Close() error { return s.db.Close() }

// Path returns the file's path.
func (s *StateDB) Path() string { return s.path }

// Deployment returns the last valid $edgeAgent desired properties saved by
// PutDeployment (JSON, with "$version"), or nil when there are none.
func (s *StateDB) Deployment() ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketDeployment).Get(keyDesired); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state database %q: read deployment: %w", s.path, err)
	}
	return out, nil
}

// PutDeployment saves desired as the last valid deployment.
func (s *StateDB) PutDeployment(desired []byte) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDeployment).Put(keyDesired, desired)
	})
	if err != nil {
		return fmt.Errorf("state database %q: save deployment: %w", s.path, err)
	}
	return nil
}

// Records returns every saved module Record by module name. A record that
// cannot be decoded is left out (and reported in the error, which does not
// prevent the others from being returned): losing one module's restart
// history is better than refusing to start.
func (s *StateDB) Records() (map[string]Record, error) {
	out := make(map[string]Record)
	var bad []error
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				bad = append(bad, fmt.Errorf("record %q: %w", k, err))
				return nil
			}
			out[string(k)] = r
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("state database %q: read records: %w", s.path, err)
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("state database %q: %w: %w", s.path, ErrStateDB, errors.Join(bad...))
	}
	return out, nil
}

// PutRecords makes the saved records equal to records, in one transaction:
// zero records and records absent from the map are deleted.
func (s *StateDB) PutRecords(records map[string]Record) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		var stale [][]byte
		if err := b.ForEach(func(k, _ []byte) error {
			if r, ok := records[string(k)]; !ok || r.IsZero() {
				stale = append(stale, append([]byte(nil), k...))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		for name, r := range records {
			if r.IsZero() || name == "" {
				continue
			}
			v, err := json.Marshal(r)
			if err != nil {
				return fmt.Errorf("record %q: %w", name, err)
			}
			if err := b.Put([]byte(name), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state database %q: save records: %w", s.path, err)
	}
	return nil
}

// IdentityInfo is what the agent remembers about a module identity.
type IdentityInfo struct {
	// GenerationID is the identity's generation id in the hub, injected as
	// IOTEDGE_MODULEGENERATIONID; remembered so that an offline boot gives
	// modules the same environment as before.
	GenerationID string `json:"generationId,omitempty"`
}

// IdentityInfos returns what is saved about module identities, by identity.
func (s *StateDB) IdentityInfos() (map[string]IdentityInfo, error) {
	out := make(map[string]IdentityInfo)
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIdentities).ForEach(func(k, v []byte) error {
			var info IdentityInfo
			if json.Unmarshal(v, &info) == nil {
				out[string(k)] = info
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("state database %q: read identities: %w", s.path, err)
	}
	return out, nil
}

// PutIdentityInfo saves info for identity id.
func (s *StateDB) PutIdentityInfo(id string, info IdentityInfo) error {
	v, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("identity %q: %w", id, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIdentities).Put([]byte(id), v)
	})
	if err != nil {
		return fmt.Errorf("state database %q: save identity %q: %w", s.path, id, err)
	}
	return nil
}
