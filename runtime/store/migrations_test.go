package store

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	bolt "go.etcd.io/bbolt"
)

var (
	update  = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")
	fixture = flag.Bool("fixture", false, "write testdata/v{current}.db (only when introducing a schema version)")
)

func TestMigration_1_InitialLayout(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "m.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		from, err := migrate(tx, migrations[:1])
		if err != nil || from != 0 {
			return fmt.Errorf("migrate = %d, %v", from, err)
		}
		for _, b := range [][]byte{bucketMeta, bucketBodies, bucketRefs, bucketQueues, bucketCheckpoints} {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("bucket %s missing", b)
			}
		}
		if v, err := readVersion(tx); v != 1 || err != nil {
			return fmt.Errorf("version = %d, %v", v, err)
		}
		if err := checkTx(tx, nil); err != nil {
			return err
		}
		// Running the list again is a no-op.
		if from, err := migrate(tx, migrations[:1]); from != 1 || err != nil {
			return fmt.Errorf("second migrate = %d, %v", from, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMigrations_Ordered(t *testing.T) {
	for i, m := range migrations {
		if m.version != i+1 || m.apply == nil || m.name == "" {
			t.Errorf("migrations[%d] = %+v, want version %d with a name and a function", i, m, i+1)
		}
	}
}

func TestOpen_NewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyVersion, u64Key(uint64(currentVersion+1)))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(Options{Path: path}); !errors.Is(err, ErrSchema) {
		t.Errorf("Open of a newer schema = %v, want ErrSchema", err)
	}
}

func TestOpen_ForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("theirs")); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(Options{Path: path}); !errors.Is(err, ErrSchema) {
		t.Errorf("Open of a foreign bbolt file = %v, want ErrSchema", err)
	}
}

// fixtureTime is the fixed clock of the fixtures.
var fixtureTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// writeFixture builds the content every fixture holds, through the public API: shared
// bodies, two priorities, a TTL, an ack, a dead-letter and an empty lane.
func writeFixture(t *testing.T, path string) {
	o := Options{Path: path, Now: func() time.Time { return fixtureTime }}
	r := mustStart(t, o)
	defer r.stop()
	s := r.Store
	mustAppend(t, s, "acked", Target{Queue: "upstream"})
	mustAppend(t, s, `{"temp":21.5}`, Target{Queue: "upstream", TTL: 2 * time.Hour}, Target{Queue: "edge/filter/input1", Priority: 1})
	mustAppend(t, s, "no ttl", Target{Queue: "upstream"})
	mustAppend(t, s, "dead", Target{Queue: "edge/filter/input1", Priority: 3})
	mustAppend(t, s, "low", Target{Queue: "edge/filter/input1", Priority: 3})
	mustAppend(t, s, "drained", Target{Queue: "empty"})
	mustAck(t, s, "upstream", 0, 1)
	mustAck(t, s, "empty", 0, 1)
	if err := s.DeadLetter("edge/filter/input1", 3, 1, "fixture"); err != nil {
		t.Fatal(err)
	}
	mustFlush(t, s)
}

// TestOpen_FixtureV1 opens a file written by schema version 1 code and checks that it
// reads back through today's code, the upgrade path every later version must keep.
func TestOpen_FixtureV1(t *testing.T) {
	src := filepath.Join("testdata", "v1.db")
	if *fixture && currentVersion == 1 {
		os.Remove(src)
		writeFixture(t, src)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("%v (generate with: go test -run TestOpen_FixtureV1 -fixture)", err)
	}
	path := filepath.Join(t.TempDir(), "v1.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{Path: path, Now: func() time.Time { return fixtureTime.Add(time.Minute) }}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := check(s); err != nil {
		t.Fatalf("invariants: %v", err)
	}
	var dump string
	if err := s.db.View(func(tx *bolt.Tx) error { dump = dumpTx(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join("testdata", "v1.dump.golden"), dump)

	want := map[string][]string{
		"upstream":           {`{"temp":21.5}`, "no ttl"},
		"edge/filter/input1": {`{"temp":21.5}`, "low"},
		"empty":              nil,
	}
	for q, w := range want {
		if got := bodies(readAll(t, s, q)); !slices.Equal(got, w) {
			t.Errorf("queue %q = %q, want %q", q, got, w)
		}
	}
	st := s.Stats()
	if st.Messages != 3 || len(st.Queues) != 4 {
		t.Errorf("stats = %+v", st)
	}
	s.Close()

	// The upgraded file keeps working: seqs continue, acks apply.
	r := mustStart(t, o)
	defer r.stop()
	mustAppend(t, r.Store, "new", Target{Queue: "upstream"})
	items := readAll(t, r.Store, "upstream")
	if len(items) != 3 || items[2].Seq != 4 || !items[0].ExpiresAt.Equal(fixtureTime.Add(2*time.Hour)) {
		t.Errorf("upstream after upgrade = %+v", items)
	}
}

// golden compares got with the golden file, or rewrites it under -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (rewrite with -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (rewrite with -update if intended):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// dumpTx prints every bucket, key and value, as the schema in doc.go draws them.
func dumpTx(tx *bolt.Tx) string {
	var sb strings.Builder
	var walk func(b *bolt.Bucket, depth int)
	walk = func(b *bolt.Bucket, depth int) {
		_ = b.ForEach(func(k, v []byte) error {
			pad := strings.Repeat("    ", depth)
			if v == nil {
				fmt.Fprintf(&sb, "%s%s/", pad, show(k))
				if seq := b.Bucket(k).Sequence(); seq != 0 {
					fmt.Fprintf(&sb, " (sequence %d)", seq)
				}
				sb.WriteByte('\n')
				walk(b.Bucket(k), depth+1)
				return nil
			}
			fmt.Fprintf(&sb, "%s%s -> %s\n", pad, show(k), show(v))
			return nil
		})
	}
	_ = tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		fmt.Fprintf(&sb, "%s/", name)
		if seq := b.Sequence(); seq != 0 {
			fmt.Fprintf(&sb, " (sequence %d)", seq)
		}
		sb.WriteByte('\n')
		walk(b, 1)
		return nil
	})
	return sb.String()
}

// show prints printable bytes quoted and anything else as hex.
func show(b []byte) string {
	for _, r := range string(b) {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return fmt.Sprintf("%x", b)
		}
	}
	return strconv.Quote(string(b))
}
