package agent_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
)

// MustOpenStateDB opens a state database in a temporary directory and
// closes it at cleanup.
func MustOpenStateDB(t testing.TB, path string) *agent.StateDB {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "agent.db")
	}
	db, err := agent.OpenStateDB(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// fixtureRecords are the records in testdata/state-v1.db.
var fixtureRecords = map[string]agent.Record{
	"tempSensor": {History: restart.History{RestartCount: 3, LastRestart: time.Date(2026, 3, 1, 11, 59, 10, 0, time.UTC)}},
	"filter": {StoppedFor: agent.CauseStatus, Retry: agent.Retry{Failures: 2, Hash: "abc", Err: "pull failed",
		At: time.Date(2026, 3, 1, 12, 0, 30, 0, time.UTC), Last: time.Date(2026, 3, 1, 12, 0, 10, 0, time.UTC)}},
}

const fixtureDeployment = `{"$version":7,"schemaVersion":"1.1"}`

func TestStateDB_RoundTrip(t *testing.T) {
	db := MustOpenStateDB(t, "")
	if raw, err := db.Deployment(); err != nil || raw != nil {
		t.Fatalf("empty database: Deployment() = %q, %v", raw, err)
	}
	if err := db.PutDeployment([]byte(fixtureDeployment)); err != nil {
		t.Fatal(err)
	}
	if raw, err := db.Deployment(); err != nil || string(raw) != fixtureDeployment {
		t.Errorf("Deployment() = %q, %v", raw, err)
	}

	if err := db.PutRecords(fixtureRecords); err != nil {
		t.Fatal(err)
	}
	got, err := db.Records()
	if err != nil || !reflect.DeepEqual(got, fixtureRecords) {
		t.Errorf("Records() = %v, %v; want %v", got, err, fixtureRecords)
	}
	// PutRecords replaces: absent and zero records go.
	next := map[string]agent.Record{"filter": fixtureRecords["filter"], "zero": {}}
	if err := db.PutRecords(next); err != nil {
		t.Fatal(err)
	}
	got, _ = db.Records()
	if want := map[string]agent.Record{"filter": fixtureRecords["filter"]}; !reflect.DeepEqual(got, want) {
		t.Errorf("after replace: %v, want %v", got, want)
	}

	if err := db.PutIdentityInfo("$edgeHub", agent.IdentityInfo{GenerationID: "g1"}); err != nil {
		t.Fatal(err)
	}
	ids, err := db.IdentityInfos()
	if err != nil || ids["$edgeHub"].GenerationID != "g1" {
		t.Errorf("IdentityInfos() = %v, %v", ids, err)
	}
}

func TestStateDB_Reopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "agent.db")
	db, err := agent.OpenStateDB(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutDeployment([]byte(fixtureDeployment)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, %v; want 0600 (it holds registry passwords)", fi.Mode().Perm(), err)
	}
	db = MustOpenStateDB(t, path)
	if raw, _ := db.Deployment(); string(raw) != fixtureDeployment {
		t.Errorf("after reopen: %q", raw)
	}
}

// TestStateDB_Fixture opens a database written by schema version 1; -update
// rewrites the fixture (only ever for a new version, with a new file name).
func TestStateDB_Fixture(t *testing.T) {
	const fixture = "testdata/state-v1.db"
	if *update {
		os.Remove(fixture)
		db, err := agent.OpenStateDB(fixture)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.PutDeployment([]byte(fixtureDeployment)); err != nil {
			t.Fatal(err)
		}
		if err := db.PutRecords(fixtureRecords); err != nil {
			t.Fatal(err)
		}
		if err := db.PutIdentityInfo("tempSensor", agent.IdentityInfo{GenerationID: "638000000000000000"}); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	path := copyFile(t, fixture)
	db := MustOpenStateDB(t, path)
	if raw, _ := db.Deployment(); string(raw) != fixtureDeployment {
		t.Errorf("deployment %q", raw)
	}
	if got, err := db.Records(); err != nil || !reflect.DeepEqual(got, fixtureRecords) {
		t.Errorf("records %v, %v", got, err)
	}
	if ids, _ := db.IdentityInfos(); ids["tempSensor"].GenerationID != "638000000000000000" {
		t.Errorf("identities %v", ids)
	}
}

func copyFile(t *testing.T, src string) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestStateDB_Unusable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, path string)
	}{
		{"newer schema", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			err = db.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("meta"))
				if err != nil {
					return err
				}
				return b.Put([]byte("version"), []byte("99"))
			})
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"bad version", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.Update(func(tx *bolt.Tx) error {
				b, _ := tx.CreateBucket([]byte("meta"))
				return b.Put([]byte("version"), []byte("one"))
			})
		}},
		{"not a bbolt file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, make([]byte, 8192), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "agent.db")
			tc.setup(t, path)
			db, err := agent.OpenStateDB(path)
			if err == nil {
				db.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, agent.ErrStateDB) {
				t.Errorf("error %v does not wrap ErrStateDB", err)
			}
		})
	}
}

func TestStateDB_Locked(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the lock timeout")
	}
	path := filepath.Join(t.TempDir(), "agent.db")
	MustOpenStateDB(t, path)
	db, err := agent.OpenStateDB(path)
	if err == nil {
		db.Close()
		t.Fatal("a second OpenStateDB of the same file succeeded")
	}
}

func TestStateDB_DamagedRecordIsSkipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	db, err := agent.OpenStateDB(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutRecords(fixtureRecords); err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("records")).Put([]byte("filter"), []byte("{")) })
	raw.Close()
	db = MustOpenStateDB(t, path)
	got, err := db.Records()
	if !errors.Is(err, agent.ErrStateDB) {
		t.Errorf("error %v, want ErrStateDB naming the damaged record", err)
	}
	if want := map[string]agent.Record{"tempSensor": fixtureRecords["tempSensor"]}; !reflect.DeepEqual(got, want) {
		t.Errorf("records %v, want the readable one %v", got, want)
	}
}
