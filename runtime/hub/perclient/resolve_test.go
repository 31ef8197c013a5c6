package perclient_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/hub/perclient"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// bareLink runs a per-client link against s without a hub; its identity cache holds the
// keys of known.
func bareLink(t *testing.T, s *fakehub.Server, clk *clock, known ...sas.Identity) *perclient.Link {
	t.Helper()
	ids, err := identities.Open(identities.Options{Path: filepath.Join(t.TempDir(), "identities.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ids.Close() })
	for _, id := range known {
		keys, err := s.IdentityKeys(id)
		if err != nil {
			t.Fatal(err)
		}
		if err := ids.Put(context.Background(), identities.Record{DeviceID: id.DeviceID, ModuleID: id.ModuleID, Keys: keys}); err != nil {
			t.Fatal(err)
		}
	}
	csText, err := s.ModuleConnectionString("edge1", "$edgeHub")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := sas.ParseConnectionString(csText)
	if err != nil {
		t.Fatal(err)
	}
	l, err := perclient.New(perclient.Options{Hub: cs, Keys: ids, KeyChanges: ids.Changes(), CAFile: s.CAFile(),
		Port: portOf(t, s.MQTTAddress()), KeepAlive: 5 * time.Second, ReconnectMin: 50 * time.Millisecond,
		ReconnectMax: 300 * time.Millisecond, Logger: testLogger(t, "link"), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return l
}

// token returns a token of id signed with its key in the cloud, valid for ttl from clk.
func token(t *testing.T, s *fakehub.Server, clk *clock, id sas.Identity, ttl time.Duration) string {
	t.Helper()
	keys, err := s.IdentityKeys(id)
	if err != nil {
		t.Fatal(err)
	}
	cs := sas.ConnectionString{HostName: s.Hostname, DeviceID: id.DeviceID, ModuleID: id.ModuleID, SharedAccessKey: keys.Primary}
	tok, err := cs.Token(clk.Now(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// authCtx is what the hub gives a resolver: its authentication deadline (AuthTimeout).
func authCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hub.DefaultAuthTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestResolve(t *testing.T) {
	const otherKey = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
	tests := []struct {
		name      string
		id        sas.Identity
		cached    bool          // the identity cache holds its keys
		signer    *sas.Identity // the token is signed with this identity's key (cached), not id's
		password  func(t *testing.T, s *fakehub.Server, clk *clock) string
		prepare   func(t *testing.T, s *fakehub.Server) // before Resolve
		wantErr   error                                 // nil: accepted
		connected bool                                  // the cloud then shows its connection
	}{
		{name: "known, accepted by the cloud", id: leaf1, cached: true, connected: true},
		{name: "module, accepted by the cloud", id: m1, cached: true, connected: true},
		{name: "module with its device's token", id: m1, signer: &sas.Identity{DeviceID: "edge1"}, connected: true},
		{name: "no keys in the cache: refused without asking the cloud", id: leaf2, wantErr: perclient.ErrNoKeys},
		{name: "token the cached keys do not verify", id: leaf1, cached: true, wantErr: perclient.ErrNoKeys,
			password: func(t *testing.T, s *fakehub.Server, clk *clock) string {
				cs := sas.ConnectionString{HostName: s.Hostname, DeviceID: "leaf1", SharedAccessKey: otherKey}
				tok, _ := cs.Token(clk.Now(), time.Hour)
				return tok
			}},
		{name: "token for the gateway's host name", id: leaf1, cached: true, wantErr: sas.ErrAudience,
			password: func(t *testing.T, s *fakehub.Server, clk *clock) string {
				keys, _ := s.IdentityKeys(leaf1)
				cs := sas.ConnectionString{HostName: "edge1.local", DeviceID: "leaf1", SharedAccessKey: keys.Primary}
				tok, _ := cs.Token(clk.Now(), time.Hour)
				return tok
			}},
		{name: "disabled in the cloud: refused by the cloud", id: leaf1, cached: true, wantErr: perclient.ErrRefused,
			prepare: func(t *testing.T, s *fakehub.Server) {
				d, _ := s.GetDevice("leaf1")
				d.Status = "disabled"
				if _, err := s.PutDevice(d, "*"); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "cloud unreachable, keys cached: accepted on the cache's word", id: leaf1, cached: true,
			prepare: func(t *testing.T, s *fakehub.Server) { s.CutNetwork() }},
		{name: "cloud unreachable, no keys: refused", id: leaf2, wantErr: perclient.ErrNoKeys,
			prepare: func(t *testing.T, s *fakehub.Server) { s.CutNetwork() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			s := newCloud(t, clk)
			var known []sas.Identity
			if tt.cached {
				known = append(known, tt.id)
			}
			password := ""
			if tt.signer != nil {
				known = append(known, *tt.signer)
				password = token(t, s, clk, *tt.signer, time.Hour)
			}
			l := bareLink(t, s, clk, known...)
			if password == "" {
				password = token(t, s, clk, tt.id, time.Hour)
			}
			if tt.password != nil {
				password = tt.password(t, s, clk)
			}
			if tt.prepare != nil {
				tt.prepare(t, s)
			}
			err := l.Resolve(authCtx(t), tt.id, password)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Resolve = %v, want %v", err, tt.wantErr)
			}
			signer := tt.id
			if tt.signer != nil {
				signer = *tt.signer
			}
			_, kerr := l.Keys(context.Background(), signer)
			if (kerr == nil) != (err == nil) {
				t.Fatalf("Keys after Resolve = %v; want keys exactly when Resolve accepted", kerr)
			}
			if kerr != nil && !errors.Is(kerr, perclient.ErrNoSession) {
				t.Fatalf("Keys = %v, want ErrNoSession", kerr)
			}
			if tt.connected {
				waitFor(t, 5*time.Second, "the identity's own connection in the cloud", func() bool {
					_, ok := findConnection(s, iothub.ClientID(tt.id.DeviceID, tt.id.ModuleID))
					return ok
				})
			} else if _, ok := findConnection(s, iothub.ClientID(tt.id.DeviceID, tt.id.ModuleID)); ok {
				t.Fatal("the cloud shows a connection of a client that was not accepted")
			}
		})
	}
}

// Offline acceptance is provisional: when the cloud, reachable again, refuses the token,
// Keys stops vouching and Changes tells the hub to look at its clients again.
func TestResolve_OfflineAcceptanceWithdrawnOnRefusal(t *testing.T) {
	clk := newClock()
	s := newCloud(t, clk)
	l := bareLink(t, s, clk, leaf1)
	s.CutNetwork()
	if err := l.Resolve(authCtx(t), leaf1, token(t, s, clk, leaf1, time.Hour)); err != nil {
		t.Fatalf("Resolve while offline: %v", err)
	}
	if _, err := l.Keys(context.Background(), leaf1); err != nil {
		t.Fatalf("Keys after an offline acceptance: %v", err)
	}
	drain(l.Changes())
	d, _ := s.GetDevice("leaf1")
	d.Status = "disabled"
	if _, err := s.PutDevice(d, "*"); err != nil {
		t.Fatal(err)
	}
	s.RestoreNetwork()
	select {
	case <-l.Changes():
	case <-time.After(10 * time.Second):
		t.Fatal("no Changes signal after the cloud refused the token")
	}
	waitFor(t, 5*time.Second, "the session refused", func() bool { return l.Sessions()["leaf1"] == "refused" })
	if _, err := l.Keys(context.Background(), leaf1); !errors.Is(err, perclient.ErrNoSession) {
		t.Fatalf("Keys after the refusal = %v, want ErrNoSession", err)
	}
}

// SendAsync and LinkState: an identity without a connection fails offline and takes the
// link down until it is back; one the cache does not know is rejected; a connected one
// gets its PUBACK.
func TestSendAsync_OfflineRejectedAndLinkState(t *testing.T) {
	clk := newClock()
	s := newCloud(t, clk)
	l := bareLink(t, s, clk, leaf1)
	ctx := context.Background()
	msg := iothub.Message{Body: []byte("x"), Properties: map[string]string{"seq": "0"}}

	if up, _ := l.LinkState(); !up {
		t.Fatal("LinkState down before any failure")
	}
	out := l.SendAsync(ctx, leaf1, msg) // known, never connected in this run
	<-out.Done()
	if err := out.Err(); !errors.Is(err, hub.ErrOffline) || !errors.Is(err, upstream.ErrOffline) {
		t.Fatalf("send for a client not connected yet: %v, want offline", err)
	}
	up, changed := l.LinkState()
	if up {
		t.Fatal("LinkState up while leaf1 is unreachable")
	}
	out = l.SendAsync(ctx, leaf2, msg) // not in the cache at all
	<-out.Done()
	if err := out.Err(); !errors.Is(err, hub.ErrRejected) {
		t.Fatalf("send for an identity the cache does not know: %v, want rejected", err)
	}

	if err := l.Resolve(authCtx(t), leaf1, token(t, s, clk, leaf1, time.Hour)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("LinkState's channel not closed when leaf1 came back")
	}
	waitFor(t, 5*time.Second, "LinkState up", func() bool { up, _ := l.LinkState(); return up })
	out = l.SendAsync(ctx, leaf1, msg)
	select {
	case <-out.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("no outcome")
	}
	if err := out.Err(); err != nil {
		t.Fatalf("send on leaf1's connection: %v", err)
	}
	if evs := s.Events(0, 0); len(evs) != 1 || evs[0].DeviceID != "leaf1" {
		t.Fatalf("cloud captured %+v, want one message of leaf1", evs)
	}
}

func drain(c <-chan struct{}) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}
