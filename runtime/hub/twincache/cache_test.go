package twincache_test

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outpost-edge/outpost/runtime/hub/twincache"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/twin"
)

var (
	mod  = sas.Identity{DeviceID: "edge1", ModuleID: "m1"}
	leaf = sas.Identity{DeviceID: "leaf1"}
	t0   = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func mustOpen(t *testing.T, path string, opts ...func(*twincache.Options)) *twincache.Cache {
	t.Helper()
	o := twincache.Options{Path: path}
	for _, f := range opts {
		f(&o)
	}
	c, err := twincache.Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func pendingPatches(t *testing.T, c *twincache.Cache, id sas.Identity) []string {
	t.Helper()
	ps, err := c.PendingReported(id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		out = append(out, encode(t, p.Patch))
	}
	return out
}

func TestAddReported_MergesComposesAndSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "twins.db")
	c := mustOpen(t, path)
	for i, p := range []string{`{"a":1,"o":{"x":1}}`, `{"a":null,"o":{"y":2}}`, `{"o":{"x":null}}`} {
		v, err := c.AddReported(mod, mustPatch(t, p), t0)
		if err != nil {
			t.Fatalf("AddReported %d: %v", i, err)
		}
		if want := int64(i + 2); v != want { // a new twin starts at reported version 1
			t.Errorf("patch %d: version %d, want %d", i, v, want)
		}
	}
	want := []string{`{"a":null,"o":{"x":null,"y":2}}`}
	if got := pendingPatches(t, c, mod); !slices.Equal(got, want) {
		t.Fatalf("pending %v, want %v (composed into one, nulls kept)", got, want)
	}
	// An object over the scalar the pending patch wrote cannot be composed: queued apart.
	if _, err := c.AddReported(mod, mustPatch(t, `{"a":{"deep":true}}`), t0); err != nil {
		t.Fatal(err)
	}
	want = append(want, `{"a":{"deep":true}}`)
	if got := pendingPatches(t, c, mod); !slices.Equal(got, want) {
		t.Fatalf("pending %v, want %v", got, want)
	}
	c.Close()

	c = mustOpen(t, path)
	if got := pendingPatches(t, c, mod); !slices.Equal(got, want) {
		t.Fatalf("after reopen: pending %v, want %v", got, want)
	}
	e, ok, err := c.Get(mod)
	if err != nil || !ok {
		t.Fatalf("Get: %v %v", ok, err)
	}
	if got := encode(t, e.Twin.Reported); got != `{"a":{"deep":true},"o":{"y":2}}` {
		t.Errorf("cached reported %s", got)
	}
	if e.Twin.ReportedVersion != 5 {
		t.Errorf("cached reported version %d, want 5", e.Twin.ReportedVersion)
	}
	ids, err := c.PendingIdentities()
	if err != nil || !slices.Equal(ids, []sas.Identity{mod}) {
		t.Fatalf("PendingIdentities = %v, %v", ids, err)
	}
}

func TestAckReported_KeepsAPatchThatGrewWhileInFlight(t *testing.T) {
	c := mustOpen(t, filepath.Join(t.TempDir(), "twins.db"))
	if _, err := c.AddReported(leaf, mustPatch(t, `{"a":1}`), t0); err != nil {
		t.Fatal(err)
	}
	ps, _ := c.PendingReported(leaf)
	sent := ps[0]
	// Another patch arrives while sent is on its way to IoT Hub.
	if _, err := c.AddReported(leaf, mustPatch(t, `{"b":2}`), t0); err != nil {
		t.Fatal(err)
	}
	if removed, err := c.AckReported(leaf, sent.Seq, sent.Rev); err != nil || removed {
		t.Fatalf("AckReported of the old revision = %v, %v; want kept", removed, err)
	}
	ps, _ = c.PendingReported(leaf)
	if len(ps) != 1 || encode(t, ps[0].Patch) != `{"a":1,"b":2}` {
		t.Fatalf("pending %+v", ps)
	}
	if removed, err := c.AckReported(leaf, ps[0].Seq, ps[0].Rev); err != nil || !removed {
		t.Fatalf("AckReported of the current revision = %v, %v", removed, err)
	}
	if ids, _ := c.PendingIdentities(); len(ids) != 0 {
		t.Fatalf("PendingIdentities = %v after the last ack", ids)
	}
}

func TestAddReported_Refusals(t *testing.T) {
	c := mustOpen(t, filepath.Join(t.TempDir(), "twins.db"), func(o *twincache.Options) { o.MaxPending = 2 })
	big := `{"s":"` + strings.Repeat("x", 4000) + `"}`
	tests := []struct {
		name  string
		patch string
		want  error
	}{
		{"invalid key", `{"a.b":1}`, twin.ErrLimit},
		{"too deep", `{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":{"k":{}}}}}}}}}}}}`, twin.ErrLimit},
		{"fits", big, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.AddReported(mod, mustPatch(t, tt.patch), t0)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("merged document over 32 KB", func(t *testing.T) {
		var err error
		for i := 0; i < 10 && err == nil; i++ {
			_, err = c.AddReported(mod, mustPatch(t, `{"k`+string(rune('a'+i))+`":"`+strings.Repeat("y", 4000)+`"}`), t0)
		}
		var le *twin.LimitError
		if !errors.As(err, &le) || le.Limit != twin.LimitSize {
			t.Fatalf("err = %v, want a size LimitError", err)
		}
	})
	t.Run("queue full", func(t *testing.T) {
		// Object over scalar: each patch needs its own entry.
		if _, err := c.AddReported(leaf, mustPatch(t, `{"x":1}`), t0); err != nil {
			t.Fatal(err)
		}
		if _, err := c.AddReported(leaf, mustPatch(t, `{"x":{"y":1}}`), t0); err != nil {
			t.Fatal(err)
		}
		if _, err := c.AddReported(leaf, mustPatch(t, `{"x":2}`), t0); err != nil {
			t.Fatalf("a composable patch is always taken: %v", err)
		}
		if _, err := c.AddReported(leaf, mustPatch(t, `{"x":{"z":1}}`), t0); !errors.Is(err, twincache.ErrFull) {
			t.Fatalf("err = %v, want ErrFull", err)
		}
		e, _, _ := c.Get(leaf)
		if got := encode(t, e.Twin.Reported); got != `{"x":2}` {
			t.Fatalf("a refused patch changed the cached twin: %s", got)
		}
	})
}

func TestUpdateAndValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "twins.db")
	c := mustOpen(t, path)
	doc := twin.New()
	if _, err := doc.PatchDesired(mustPatch(t, `{"rate":5}`), t0); err != nil {
		t.Fatal(err)
	}
	err := c.Update(mod, func(e *twincache.Entry) error {
		e.Twin, e.Synced = doc, t0
		e.Seen = &twincache.Seen{Desired: mustPatch(t, `{"rate":4}`), Version: 1}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	if err := c.Update(mod, func(e *twincache.Entry) error { e.Seen = nil; return stop }); err != stop {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if err := c.SetValue("config", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	c.Close()

	c = mustOpen(t, path)
	e, ok, err := c.Get(mod)
	if err != nil || !ok {
		t.Fatalf("Get = %v, %v", ok, err)
	}
	if e.Twin.DesiredVersion != 2 || encode(t, e.Twin.Desired) != `{"rate":5}` || !e.Synced.Equal(t0) {
		t.Errorf("twin %+v synced %v", e.Twin, e.Synced)
	}
	if e.Seen == nil || e.Seen.Version != 1 || encode(t, e.Seen.Desired) != `{"rate":4}` {
		t.Errorf("seen %+v (an aborted Update must not write)", e.Seen)
	}
	if v, err := c.Value("config"); err != nil || string(v) != `{"v":1}` {
		t.Errorf("Value = %s, %v", v, err)
	}
	if v, err := c.Value("absent"); err != nil || v != nil {
		t.Errorf("Value(absent) = %s, %v", v, err)
	}
	if _, ok, _ := c.Get(leaf); ok {
		t.Error("Get of an unknown identity reports ok")
	}
	if err := c.Delete(mod); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Get(mod); ok {
		t.Error("Delete left the entry")
	}
}

func TestOpen_RefusesAnUnknownSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "twins.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("meta"))
		if err != nil {
			return err
		}
		return b.Put([]byte("version"), []byte("2"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := twincache.Open(twincache.Options{Path: path}); !errors.Is(err, twincache.ErrVersion) {
		t.Fatalf("Open = %v, want ErrVersion", err)
	}
}

func TestClosed(t *testing.T) {
	c := mustOpen(t, filepath.Join(t.TempDir(), "twins.db"))
	c.Close()
	if _, _, err := c.Get(mod); !errors.Is(err, twincache.ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
	if _, err := c.AddReported(mod, map[string]any{}, t0); !errors.Is(err, twincache.ErrClosed) {
		t.Fatalf("AddReported after Close = %v", err)
	}
}

func TestRefresh_ReappliesPendingPatchesOnIoTHubsTwin(t *testing.T) {
	c := mustOpen(t, filepath.Join(t.TempDir(), "twins.db"))
	if _, err := c.AddReported(mod, mustPatch(t, `{"temp":21,"old":null}`), t0); err != nil {
		t.Fatal(err)
	}
	fresh := twin.New()
	if _, err := fresh.PatchDesired(mustPatch(t, `{"rate":5}`), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.PatchReported(mustPatch(t, `{"old":1,"temp":19,"keep":true}`), t0); err != nil {
		t.Fatal(err)
	}
	before := encode(t, fresh.Reported)
	e, err := c.Refresh(mod, fresh, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if encode(t, fresh.Reported) != before {
		t.Error("Refresh modified its argument")
	}
	if got := encode(t, e.Twin.Reported); got != `{"keep":true,"temp":21}` {
		t.Errorf("reported %s: the pending patch must win over IoT Hub's stale values", got)
	}
	if e.Twin.DesiredVersion != 2 || encode(t, e.Twin.Desired) != `{"rate":5}` || !e.Synced.Equal(t0.Add(time.Minute)) {
		t.Errorf("entry %+v", e)
	}
	if got, _, _ := c.Get(mod); encode(t, got.Twin.Reported) != `{"keep":true,"temp":21}` {
		t.Error("Refresh did not store what it returned")
	}
}
