package identities_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// The cache is what cmd/edgehub hands the hub.
var _ hub.Identities = (*identities.Cache)(nil)

const keyA = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

func mustOpen(t *testing.T, path string) *identities.Cache {
	t.Helper()
	c, err := identities.Open(identities.Options{Path: path})
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCache_KeysLookup(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []string{"memory", "file"} {
		t.Run(mode, func(t *testing.T) {
			path := ""
			if mode == "file" {
				path = filepath.Join(t.TempDir(), "identities.db")
			}
			c := mustOpen(t, path)
			for _, r := range []identities.Record{
				{DeviceID: "edge1", ModuleID: "filter", Keys: sas.Keys{Primary: keyA}},
				{DeviceID: "leaf1", Keys: sas.Keys{Secondary: keyA}},
				{DeviceID: "leaf2", Keys: sas.Keys{Primary: keyA}, Disabled: true},
			} {
				if err := c.Put(ctx, r); err != nil {
					t.Fatalf("Put(%v): %v", r.Identity(), err)
				}
			}
			tests := []struct {
				name string
				id   sas.Identity
				want error
			}{
				{"module", sas.Identity{DeviceID: "edge1", ModuleID: "filter"}, nil},
				{"device", sas.Identity{DeviceID: "leaf1"}, nil},
				{"disabled", sas.Identity{DeviceID: "leaf2"}, identities.ErrDisabled},
				{"unknown module", sas.Identity{DeviceID: "edge1", ModuleID: "other"}, identities.ErrNotFound},
				{"device of a module is not implied", sas.Identity{DeviceID: "edge1"}, identities.ErrNotFound},
				{"case-sensitive", sas.Identity{DeviceID: "LEAF1"}, identities.ErrNotFound},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					keys, err := c.Keys(ctx, tt.id)
					if !errors.Is(err, tt.want) {
						t.Fatalf("Keys(%v) err = %v, want %v", tt.id, err, tt.want)
					}
					if err == nil && keys.Primary == "" && keys.Secondary == "" {
						t.Fatalf("Keys(%v) returned no key", tt.id)
					}
				})
			}
		})
	}
}

func TestCache_PersistsAcrossOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "identities.db")
	c, err := identities.Open(identities.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	m := identities.Record{DeviceID: "edge1", ModuleID: "filter", Keys: sas.Keys{Primary: keyA}, GenerationID: "g1"}
	gone := identities.Record{DeviceID: "leaf1", Keys: sas.Keys{Primary: keyA}}
	for _, r := range []identities.Record{m, gone} {
		if err := c.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Delete(ctx, gone.Identity()); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Keys(ctx, m.Identity()); !errors.Is(err, identities.ErrClosed) {
		t.Fatalf("Keys after Close: %v, want ErrClosed", err)
	}

	c2 := mustOpen(t, path)
	got := c2.List()
	if len(got) != 1 || got[0] != m {
		t.Fatalf("reopened cache holds %+v, want only %+v", got, m)
	}
}

func TestCache_RefusesUnknownVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identities.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		return b.Put([]byte("version"), []byte("99"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := identities.Open(identities.Options{Path: path}); !errors.Is(err, identities.ErrVersion) {
		t.Fatalf("Open = %v, want ErrVersion", err)
	}
}

func TestCache_PutRejectsInvalid(t *testing.T) {
	c := mustOpen(t, "")
	tests := []struct {
		name string
		r    identities.Record
	}{
		{"empty device", identities.Record{Keys: sas.Keys{Primary: keyA}}},
		{"slash in device", identities.Record{DeviceID: "a/b", Keys: sas.Keys{Primary: keyA}}},
		{"bad module", identities.Record{DeviceID: "d", ModuleID: "m m", Keys: sas.Keys{Primary: keyA}}},
		{"no key", identities.Record{DeviceID: "d"}},
		{"key not base64", identities.Record{DeviceID: "d", Keys: sas.Keys{Primary: "%%%"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.Put(context.Background(), tt.r); !errors.Is(err, identities.ErrInvalid) {
				t.Fatalf("Put = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestCache_ChangesCoalesced(t *testing.T) {
	ctx := context.Background()
	c := mustOpen(t, "")
	select {
	case <-c.Changes():
		t.Fatal("change signalled before any change")
	default:
	}
	for range 3 {
		if err := c.Put(ctx, identities.Record{DeviceID: "d", Keys: sas.Keys{Primary: keyA}}); err != nil {
			t.Fatal(err)
		}
	}
	<-c.Changes()
	select {
	case <-c.Changes():
		t.Fatal("three changes produced more than one pending signal")
	default:
	}
	if err := c.Delete(ctx, sas.Identity{DeviceID: "d"}); err != nil {
		t.Fatal(err)
	}
	<-c.Changes()
	if err := c.Delete(ctx, sas.Identity{DeviceID: "d"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Changes():
		t.Fatal("deleting an absent identity signalled a change")
	default:
	}
}
