package uplink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

const (
	keyA = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
	keyB = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="
)

// cloudRecord is IoT Hub's record of a leaf with the given key and status.
func cloudRecord(id sas.Identity, key, status, gen string) upstream.Identity {
	r := upstream.Identity{OBOIdentity: iothub.OBOIdentity{DeviceID: id.DeviceID, ModuleID: id.ModuleID, Status: status, GenerationID: gen}}
	r.Authentication.Type = "sas"
	r.Authentication.SymmetricKey = &iothub.OBOSymmetricKey{PrimaryKey: key}
	return r
}

func TestDecide(t *testing.T) {
	leaf := sas.Identity{DeviceID: "leaf1"}
	cached := identities.Record{DeviceID: "leaf1", Keys: sas.Keys{Primary: keyA}, GenerationID: "g1"}
	x509 := upstream.Identity{OBOIdentity: iothub.OBOIdentity{DeviceID: "leaf1", Status: "enabled"}}
	x509.Authentication.Type = "selfSigned"
	tests := []struct {
		name string
		got  upstream.Identity
		err  error
		want action
		rec  identities.Record
	}{
		{"unchanged", cloudRecord(leaf, keyA, "enabled", "g1"), nil, keep, cached},
		{"keys rolled", cloudRecord(leaf, keyB, "enabled", "g1"), nil, update,
			identities.Record{DeviceID: "leaf1", Keys: sas.Keys{Primary: keyB}, GenerationID: "g1"}},
		{"disabled", cloudRecord(leaf, keyA, "disabled", "g1"), nil, update,
			identities.Record{DeviceID: "leaf1", Keys: sas.Keys{Primary: keyA}, GenerationID: "g1", Disabled: true}},
		{"deleted and created again", cloudRecord(leaf, keyA, "enabled", "g2"), nil, update,
			identities.Record{DeviceID: "leaf1", Keys: sas.Keys{Primary: keyA}, GenerationID: "g2"}},
		{"now an X.509 identity", x509, nil, remove, identities.Record{}},
		{"deleted (404)", upstream.Identity{}, &upstream.StatusError{Status: 404}, remove, identities.Record{}},
		{"out of scope (403)", upstream.Identity{}, &upstream.StatusError{Status: 403}, remove, identities.Record{}},
		{"offline", upstream.Identity{}, fmt.Errorf("get identity: %w", upstream.ErrOffline), stop, identities.Record{}},
		{"throttled (429)", upstream.Identity{}, &upstream.StatusError{Status: 429}, retry, identities.Record{}},
		{"timeout", upstream.Identity{}, upstream.ErrTimeout, retry, identities.Record{}},
		{"server error", upstream.Identity{}, &upstream.StatusError{Status: 500}, retry, identities.Record{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, act := decide(cached, tt.got, tt.err)
			if act != tt.want || rec != tt.rec {
				t.Fatalf("decide = %v %+v, want %v %+v", act, rec, tt.want, tt.rec)
			}
		})
	}
}

func TestHubError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error // hub sentinel it must match, nil: none
	}{
		{"rejected", fmt.Errorf("send: %w: %w", upstream.ErrRejected, upstream.ErrNotFound), hub.ErrRejected},
		{"offline", fmt.Errorf("send: %w", upstream.ErrOffline), hub.ErrOffline},
		{"timeout stays transient", upstream.ErrTimeout, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := hubError(tt.err)
			if !errors.Is(got, tt.err) || got.Error() != tt.err.Error() {
				t.Fatalf("hubError(%v) = %v: lost the original", tt.err, got)
			}
			for _, s := range []error{hub.ErrRejected, hub.ErrOffline} {
				if errors.Is(got, s) != (s == tt.want) {
					t.Fatalf("hubError(%v) matches %v: %v, want %v", tt.err, s, errors.Is(got, s), s == tt.want)
				}
			}
		})
	}
	if hubError(nil) != nil {
		t.Fatal("hubError(nil) is not nil")
	}
}

// fakeCloud answers Authenticate and GetIdentity from a registry of records; ids in
// offline fail with ErrOffline.
type fakeCloud struct {
	Cloud // the methods these tests do not use panic

	mu      sync.Mutex
	records map[sas.Identity]upstream.Identity
	errs    map[sas.Identity]error
	asked   []sas.Identity
}

func (f *fakeCloud) answer(id sas.Identity) (upstream.Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, id)
	if err := f.errs[id]; err != nil {
		return upstream.Identity{}, err
	}
	r, ok := f.records[id]
	if !ok {
		return upstream.Identity{}, &upstream.StatusError{Status: 404}
	}
	return r, nil
}

func (f *fakeCloud) Authenticate(_ context.Context, id sas.Identity, _ string) (upstream.Identity, error) {
	return f.answer(id)
}

func (f *fakeCloud) GetIdentity(_ context.Context, id sas.Identity) (upstream.Identity, error) {
	return f.answer(id)
}

func (f *fakeCloud) Connected() bool { return true }

func newCache(t *testing.T, recs ...identities.Record) *identities.Cache {
	t.Helper()
	c, err := identities.Open(identities.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, r := range recs {
		if err := c.Put(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestResolve(t *testing.T) {
	leaf := sas.Identity{DeviceID: "leaf1"}
	cached := identities.Record{DeviceID: "leaf1", Keys: sas.Keys{Primary: keyA}, GenerationID: "g1"}
	tests := []struct {
		name      string
		cached    bool
		record    *upstream.Identity
		err       error
		wantErr   error // nil: Resolve succeeds
		wantCache *identities.Record
	}{
		{name: "first connection: cached", record: ptr(cloudRecord(leaf, keyA, "enabled", "g1")), wantCache: &cached},
		{name: "rolled keys: replaced", cached: true, record: ptr(cloudRecord(leaf, keyB, "enabled", "g1")),
			wantCache: &identities.Record{DeviceID: "leaf1", Keys: sas.Keys{Primary: keyB}, GenerationID: "g1"}},
		{name: "offline", err: fmt.Errorf("auth: %w", upstream.ErrOffline), wantErr: hub.ErrOffline},
		{name: "offline, cached record kept", cached: true, err: fmt.Errorf("auth: %w", upstream.ErrOffline), wantErr: hub.ErrOffline, wantCache: &cached},
		{name: "bad token (401): cache untouched", cached: true, err: &upstream.StatusError{Status: 401}, wantErr: upstream.ErrUnauthorized, wantCache: &cached},
		{name: "deleted (404): removed", cached: true, err: &upstream.StatusError{Status: 404}, wantErr: upstream.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var recs []identities.Record
			if tt.cached {
				recs = append(recs, cached)
			}
			cache := newCache(t, recs...)
			cloud := &fakeCloud{records: map[sas.Identity]upstream.Identity{}, errs: map[sas.Identity]error{leaf: tt.err}}
			if tt.record != nil {
				cloud.records[leaf] = *tt.record
			}
			err := New(cloud, cache, Options{}).Resolve(context.Background(), leaf, "SharedAccessSignature sr=x&sig=y&se=1")
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Resolve = %v, want %v", err, tt.wantErr)
			}
			got, ok := cache.Get(leaf)
			if (tt.wantCache != nil) != ok || (ok && got != *tt.wantCache) {
				t.Fatalf("cache holds %+v (%v), want %+v", got, ok, tt.wantCache)
			}
		})
	}
}

func TestRefresh_AppliesDecisionsAndStopsWhenOffline(t *testing.T) {
	a, b, c, d := sas.Identity{DeviceID: "a"}, sas.Identity{DeviceID: "b"}, sas.Identity{DeviceID: "c"}, sas.Identity{DeviceID: "d"}
	rec := func(id sas.Identity, key string) identities.Record {
		return identities.Record{DeviceID: id.DeviceID, Keys: sas.Keys{Primary: key}, GenerationID: "g"}
	}
	cache := newCache(t, rec(a, keyA), rec(b, keyA), rec(c, keyA), rec(d, keyA))
	cloud := &fakeCloud{
		records: map[sas.Identity]upstream.Identity{
			a: cloudRecord(a, keyA, "enabled", "g"),  // kept
			b: cloudRecord(b, keyB, "disabled", "g"), // updated
			// c: deleted
			d: cloudRecord(d, keyA, "enabled", "g"),
		},
		errs: map[sas.Identity]error{},
	}
	l := New(cloud, cache, Options{})
	if err := l.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r, _ := cache.Get(a); r != rec(a, keyA) {
		t.Fatalf("a: %+v, want it untouched", r)
	}
	if r, _ := cache.Get(b); !r.Disabled || r.Keys.Primary != keyB {
		t.Fatalf("b: %+v, want disabled with the new key", r)
	}
	if _, ok := cache.Get(c); ok {
		t.Fatal("c still cached after IoT Hub answered 404")
	}

	// Offline at b: the round stops there (c, d are not asked) and says so.
	cloud.errs[b] = fmt.Errorf("get: %w", upstream.ErrOffline)
	cloud.asked = nil
	if err := l.Refresh(context.Background()); !errors.Is(err, hub.ErrOffline) {
		t.Fatalf("Refresh while offline = %v, want ErrOffline", err)
	}
	if len(cloud.asked) != 2 {
		t.Fatalf("asked about %v, want a then b only", cloud.asked)
	}
	// A transient error on one identity: the others are refreshed, the round is incomplete.
	cloud.errs[b] = &upstream.StatusError{Status: 429}
	cloud.records[d] = cloudRecord(d, keyB, "enabled", "g")
	if err := l.Refresh(context.Background()); !errors.Is(err, upstream.ErrThrottled) {
		t.Fatalf("Refresh with a 429 = %v, want it reported", err)
	}
	if r, _ := cache.Get(d); r.Keys.Primary != keyB {
		t.Fatalf("d: %+v, want refreshed despite b's 429", r)
	}
}

func ptr[T any](v T) *T { return &v }
