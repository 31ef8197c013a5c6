package fakehub

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.etcd.io/bbolt"

	"github.com/outpost-edge/outpost/runtime/twin"
)

// The bbolt layout is drawn in doc.go ("Persistence"). Keys of the modules, twins and
// configurations buckets are identity keys: "{d}" or "{d}/{m}" (ids never contain '/').
var (
	bucketMeta           = []byte("meta")
	bucketPolicies       = []byte("policies")
	bucketDevices        = []byte("devices")
	bucketModules        = []byte("modules")
	bucketTwins          = []byte("twins")
	bucketConfigurations = []byte("configurations")

	keyVersion = []byte("version")
)

// schemaVersion is the layout version this code reads and writes.
const schemaVersion = 1

// migrations upgrade a store from version i+1 to i+2 (migrations[0] takes 1 to 2). There are
// none yet; a change to the stored bytes appends one, with its own test and a fixture.
var migrations []func(tx *bbolt.Tx) error

// policyRecord is a shared access policy as stored.
type policyRecord struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// twinRecord is a twin as stored: the document plus the model id the identity last
// announced in its CONNECT username.
type twinRecord struct {
	Twin    *twin.Twin `json:"twin"`
	ModelID string     `json:"modelId,omitempty"`
}

// snapshot is everything the store holds, loaded at Start.
type snapshot struct {
	policies map[string]policyRecord
	devices  map[string]*Device
	modules  map[string]*Module // identity key "{d}/{m}"
	twins    map[string]*twinRecord
	configs  map[string]json.RawMessage // identity key "{d}/{m}" -> desired document
}

// openStore opens (creating if needed) the registry database and upgrades its layout.
func openStore(path string) (*bbolt.DB, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open registry %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketPolicies, bucketDevices, bucketModules, bucketTwins, bucketConfigurations} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := 0
		if raw := meta.Get(keyVersion); raw != nil {
			n, err := strconv.Atoi(string(raw))
			if err != nil {
				return fmt.Errorf("schema version %q: %w", raw, err)
			}
			v = n
		} else {
			v = schemaVersion // a new store starts at the current layout
		}
		if v > schemaVersion+len(migrations) || v < 1 {
			return fmt.Errorf("schema version %d is not supported (this build knows 1..%d)", v, schemaVersion+len(migrations))
		}
		for ; v < schemaVersion+len(migrations); v++ {
			if err := migrations[v-1](tx); err != nil {
				return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
			}
		}
		return meta.Put(keyVersion, []byte(strconv.Itoa(v)))
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("registry %s: %w", path, err)
	}
	return db, nil
}

// load reads every record.
func load(db *bbolt.DB) (snapshot, error) {
	s := snapshot{
		policies: map[string]policyRecord{},
		devices:  map[string]*Device{},
		modules:  map[string]*Module{},
		twins:    map[string]*twinRecord{},
		configs:  map[string]json.RawMessage{},
	}
	err := db.View(func(tx *bbolt.Tx) error {
		if err := forEachJSON(tx, bucketPolicies, func(k string) any {
			return new(policyRecord)
		}, func(k string, v any) { s.policies[k] = *v.(*policyRecord) }); err != nil {
			return err
		}
		if err := forEachJSON(tx, bucketDevices, func(string) any { return new(Device) },
			func(k string, v any) { s.devices[k] = v.(*Device) }); err != nil {
			return err
		}
		if err := forEachJSON(tx, bucketModules, func(string) any { return new(Module) },
			func(k string, v any) { s.modules[k] = v.(*Module) }); err != nil {
			return err
		}
		if err := forEachJSON(tx, bucketTwins, func(string) any { return new(twinRecord) },
			func(k string, v any) { s.twins[k] = v.(*twinRecord) }); err != nil {
			return err
		}
		return tx.Bucket(bucketConfigurations).ForEach(func(k, v []byte) error {
			s.configs[string(k)] = json.RawMessage(append([]byte(nil), v...))
			return nil
		})
	})
	if err != nil {
		return snapshot{}, fmt.Errorf("load registry: %w", err)
	}
	for k, t := range s.twins {
		if t.Twin == nil {
			return snapshot{}, fmt.Errorf("load registry: twin %q: empty record", k)
		}
	}
	return s, nil
}

func forEachJSON(tx *bbolt.Tx, bucket []byte, alloc func(string) any, put func(string, any)) error {
	return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		dst := alloc(string(k))
		if err := json.Unmarshal(v, dst); err != nil {
			return fmt.Errorf("%s %q: %w", bucket, k, err)
		}
		put(string(k), dst)
		return nil
	})
}

// batch is a set of writes applied in one transaction.
type batch struct {
	puts    []write
	deletes []write
}

type write struct {
	bucket []byte
	key    string
	value  any // marshalled with encoding/json; json.RawMessage is stored as is
}

func (b *batch) put(bucket []byte, key string, v any) {
	b.puts = append(b.puts, write{bucket, key, v})
}

func (b *batch) del(bucket []byte, key string) {
	b.deletes = append(b.deletes, write{bucket: bucket, key: key})
}

// commit applies the batch in one transaction.
func (b *batch) commit(db *bbolt.DB) error {
	if db == nil {
		return errors.New("registry is not open (Start the server first)")
	}
	encoded := make([][]byte, len(b.puts))
	for i, w := range b.puts {
		raw, err := json.Marshal(w.value)
		if err != nil {
			return fmt.Errorf("encode %s %q: %w", w.bucket, w.key, err)
		}
		encoded[i] = raw
	}
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, w := range b.deletes {
			if err := tx.Bucket(w.bucket).Delete([]byte(w.key)); err != nil {
				return err
			}
		}
		for i, w := range b.puts {
			if err := tx.Bucket(w.bucket).Put([]byte(w.key), encoded[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write registry: %w", err)
	}
	return nil
}
