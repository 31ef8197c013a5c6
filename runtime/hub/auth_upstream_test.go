package hub_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// fakeResolver plays the cloud: it knows some identities' keys and, when asked about one
// whose token verifies with them, puts it into the cache.
type fakeResolver struct {
	ids   *identities.Cache
	known map[sas.Identity]string // key
	err   error                   // returned instead, when set
	// lazy: answer nil without caching anything.
	lazy bool

	mu    sync.Mutex
	asked []string // "identity password"
}

func (f *fakeResolver) Resolve(ctx context.Context, id sas.Identity, password string) error {
	f.mu.Lock()
	f.asked = append(f.asked, id.String()+" "+password)
	f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if f.lazy {
		return nil
	}
	key, ok := f.known[id]
	if !ok {
		return fmt.Errorf("404: %q unknown", id)
	}
	return f.ids.Put(ctx, identities.Record{DeviceID: id.DeviceID, ModuleID: id.ModuleID, Keys: sas.Keys{Primary: key}})
}

func (f *fakeResolver) questions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.asked...)
}

const keyNew = "Tk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk4="

func TestResolve_AskedOnlyWhenTheCloudMayKnowBetter(t *testing.T) {
	leaf3 := sas.Identity{DeviceID: "leaf3"}
	tests := []struct {
		name      string
		id        sas.Identity
		key       string
		expiresIn time.Duration
		host      string
		resolver  func(*fakeResolver)
		wantCode  byte // CONNACK
		wantAsked bool
	}{
		{name: "known identity, good token: cache only", id: leaf, key: keyLeaf, wantCode: 0},
		{name: "unknown identity: asked and cached", id: leaf3, key: keyNew, wantCode: 0, wantAsked: true},
		{name: "rolled key: asked and cached", id: leaf, key: keyNew, wantCode: 0, wantAsked: true},
		{name: "unknown to the cloud too", id: sas.Identity{DeviceID: "ghost"}, key: keyNew, wantCode: 5, wantAsked: true},
		{name: "cloud offline", id: leaf3, key: keyNew, resolver: func(f *fakeResolver) { f.err = fmt.Errorf("%w: link down", hub.ErrOffline) }, wantCode: 5, wantAsked: true},
		{name: "cloud says yes but caches nothing", id: leaf3, key: keyNew, resolver: func(f *fakeResolver) { f.lazy = true }, wantCode: 5, wantAsked: true},
		{name: "expired token: not asked", id: leaf3, key: keyNew, expiresIn: -time.Hour, wantCode: 5},
		{name: "token for another hub: not asked", id: leaf3, key: keyNew, host: "other.azure-devices.net", wantCode: 5},
		{name: "disabled in the cache: asked", id: sas.Identity{DeviceID: "leaf2"}, key: keyLeaf, resolver: func(f *fakeResolver) { f.err = fmt.Errorf("401: disabled") }, wantCode: 5, wantAsked: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeResolver{known: map[sas.Identity]string{leaf3: keyNew, leaf: keyNew}}
			if tt.resolver != nil {
				tt.resolver(r)
			}
			e := newEnv(t, withDeps(func(d *hub.Deps) { d.Resolver = r }))
			r.ids = e.ids
			host := hubHost
			if tt.host != "" {
				host = tt.host
			}
			expiresIn := time.Hour
			if tt.expiresIn != 0 {
				expiresIn = tt.expiresIn
			}
			password := e.token(host, tt.id, tt.key, e.clock.Now().Add(expiresIn))
			_, code, err := e.dial(tt.id, iothub.FormatUsername(hubHost, tt.id.DeviceID, tt.id.ModuleID, nil), password)
			if code != tt.wantCode {
				t.Fatalf("CONNACK %d (%v), want %d", code, err, tt.wantCode)
			}
			asked := r.questions()
			if tt.wantAsked != (len(asked) > 0) {
				t.Fatalf("resolver asked %q, want asked: %v", asked, tt.wantAsked)
			}
			if tt.wantAsked && asked[0] != tt.id.String()+" "+password {
				t.Fatalf("resolver asked %q, want the identity and the token as presented", asked[0])
			}
			if tt.wantCode == 0 {
				if keys, err := e.ids.Keys(context.Background(), tt.id); err != nil || keys.Primary != tt.key && keys.Secondary != tt.key {
					t.Fatalf("cache holds %+v (%v) for %v, want the key the client used", keys, err, tt.id)
				}
			}
		})
	}
}
