package hub_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/twincache"
	"github.com/outpost-edge/outpost/runtime/store"
)

// fakeMover is a hub.StoreMover that records the moves asked for; the owner's part (stop
// the hub, move, start a new one) is the test's.
type fakeMover struct {
	mu     sync.Mutex
	folder string
	refuse map[string]error // by requested folder
	moves  chan moveCall
}

type moveCall struct {
	folder  string
	version int64
}

const defaultFolder = "/var/lib/edgehub"

func newFakeMover() *fakeMover {
	return &fakeMover{folder: defaultFolder, refuse: map[string]error{}, moves: make(chan moveCall, 8)}
}

func (m *fakeMover) setFolder(f string) {
	m.mu.Lock()
	m.folder = f
	m.mu.Unlock()
}

// moverStore is a *store.Store with the fake mover's methods.
type moverStore struct {
	*store.Store
	m *fakeMover
}

func (s moverStore) StoreFolder() string {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return s.m.folder
}

func (s moverStore) PlanMove(requested string, _ int64) (string, error) {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if err := s.m.refuse[requested]; err != nil {
		return "", err
	}
	if requested == "" {
		return defaultFolder, nil
	}
	return requested, nil
}

func (s moverStore) MoveStore(folder string, version int64) { s.m.moves <- moveCall{folder, version} }

// folderEnv runs a hub with a twin cache, a fake cloud and a moverStore on one data dir.
type folderEnv struct {
	*env
	cloud *fakeCloud
	mover *fakeMover
	twins *twincache.Cache
}

func newFolderEnv(t *testing.T, fc *fakeCloud, m *fakeMover) *folderEnv {
	t.Helper()
	e := newEnv(t, withOptions(func(o *hub.Options) {
		o.ReportedSyncInterval = 50 * time.Millisecond
		o.TwinTimeout = 2 * time.Second
	}))
	e.stop()
	f := &folderEnv{env: e, cloud: fc, mover: m}
	f.start()
	t.Cleanup(f.stop)
	return f
}

func (f *folderEnv) start() {
	t := f.t
	t.Helper()
	st, err := store.Open(f.sopts)
	if err != nil {
		t.Fatal(err)
	}
	f.store = st
	f.runStore()
	if f.twins, err = twincache.Open(twincache.Options{Path: filepath.Join(f.dir, "twins.db")}); err != nil {
		t.Fatal(err)
	}
	srv, err := hub.New(f.opts, hub.Deps{Store: moverStore{Store: st, m: f.mover}, Identities: f.ids, Upstream: f.up,
		IdentityChanges: f.ids.Changes(), Twins: f.twins, Cloud: f.cloud})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ApplyConfig(f.cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.hub, f.hubStop, f.hubDone = srv, cancel, make(chan error, 1)
	go func() { f.hubDone <- srv.Run(ctx) }()
}

func (f *folderEnv) stop() {
	f.env.stop()
	if f.twins != nil {
		f.twins.Close()
		f.twins = nil
	}
}

// storage returns the reported storageFolder.
func storage(t *testing.T, fc *fakeCloud) (current, status, desc string) {
	t.Helper()
	sf, _ := fc.reportedOf(t, edgeHubID)["storageFolder"].(map[string]any)
	current, _ = sf["current"].(string)
	status, _ = sf["status"].(string)
	desc, _ = sf["description"].(string)
	return current, status, desc
}

// nextMove waits for the hub to ask for a move.
func nextMove(t *testing.T, m *fakeMover) moveCall {
	t.Helper()
	select {
	case c := <-m.moves:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the hub did not ask for the store to move")
	}
	return moveCall{}
}

// noMove checks that the hub asks for no move within d (used only where a move would be a
// bug, never for synchronisation).
func noMove(t *testing.T, m *fakeMover, d time.Duration) {
	t.Helper()
	select {
	case c := <-m.moves:
		t.Fatalf("the hub asked for a move to %q", c.folder)
	case <-time.After(d):
	}
}

const folderConfig = `{"schemaVersion":"1.1","routes":{"aToB":"` + routeAToB + `"},
	"storeAndForwardConfiguration":{"timeToLiveSecs":60,"storageFolder":%s}}`

func withFolder(folderJSON string) string { return strings.Replace(folderConfig, "%s", folderJSON, 1) }

func TestConfig_StorageFolderMove(t *testing.T) {
	fc := newFakeCloud()
	m := newFakeMover()
	fc.patchDesired(t, edgeHubID, withFolder(`null`), false)
	f := newFolderEnv(t, fc, m)
	waitFor(t, "the default folder reported ok", func() bool {
		v, code, _ := lastDesired(t, fc)
		cur, status, _ := storage(t, fc)
		return v == 2 && code == 200 && cur == defaultFolder && status == "ok"
	})
	noMove(t, m, 0)

	v := fc.patchDesired(t, edgeHubID, `{"storeAndForwardConfiguration":{"timeToLiveSecs":60,"storageFolder":"/mnt/ssd/hub"}}`, true)
	// The move is reported before it is asked for: the hub is stopped right after.
	waitFor(t, "the move reported in progress", func() bool {
		cur, status, desc := storage(t, fc)
		return cur == defaultFolder && status == "moving" && strings.Contains(desc, `"/mnt/ssd/hub"`)
	})
	if got := nextMove(t, m); got != (moveCall{"/mnt/ssd/hub", v}) {
		t.Fatalf("move asked = %+v, want /mnt/ssd/hub at version %d", got, v)
	}
	if gotV, code, desc := lastDesired(t, fc); gotV != float64(v) || code != 200 || !strings.Contains(desc, "moving the store") {
		t.Fatalf("lastDesired = %v %v %q", gotV, code, desc)
	}
	// Asked once only, whatever else comes in before the hub is stopped.
	fc.patchDesired(t, edgeHubID, `{"storeAndForwardConfiguration":{"timeToLiveSecs":60,"storageFolder":"/elsewhere"}}`, true)
	noMove(t, m, 200*time.Millisecond)

	// The owner moves the store and starts a new hub on it, which reports the outcome.
	f.stop()
	fc.patchDesired(t, edgeHubID, `{"storeAndForwardConfiguration":{"timeToLiveSecs":60,"storageFolder":"/mnt/ssd/hub"}}`, false)
	m.setFolder("/mnt/ssd/hub")
	f.start()
	waitFor(t, "the new folder reported ok", func() bool {
		_, code, desc := lastDesired(t, fc)
		cur, status, sdesc := storage(t, fc)
		return code == 200 && desc == "" && cur == "/mnt/ssd/hub" && status == "ok" && sdesc == ""
	})
	noMove(t, m, 0)

	// Back to the default: null.
	fc.patchDesired(t, edgeHubID, `{"storeAndForwardConfiguration":{"timeToLiveSecs":60,"storageFolder":null}}`, true)
	if got := nextMove(t, m); got.folder != defaultFolder {
		t.Fatalf("move asked to %q, want the default %q", got.folder, defaultFolder)
	}
}

func TestConfig_StorageFolderRefused(t *testing.T) {
	fc := newFakeCloud()
	m := newFakeMover()
	m.refuse["rel/dir"] = errors.New("not an absolute path")
	fc.patchDesired(t, edgeHubID, `{"schemaVersion":"1.1","routes":{},"storeAndForwardConfiguration":{"timeToLiveSecs":60}}`, false)
	f := newFolderEnv(t, fc, m)
	waitFor(t, "version 2 applied", func() bool { v, code, _ := lastDesired(t, fc); return v == 2 && code == 200 })

	tests := []struct {
		name     string
		folder   string // JSON
		wantDesc []string
		applied  bool // the routes of the version apply
	}{
		{name: "refused by the mover", folder: `"rel/dir"`, applied: true,
			wantDesc: []string{`storeAndForwardConfiguration.storageFolder "rel/dir" refused: not an absolute path`,
				`the store stays in "` + defaultFolder + `"`}},
		{name: "not a string", folder: `42`,
			wantDesc: []string{"storeAndForwardConfiguration.storageFolder: want a string (an absolute folder), got a number"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Start from no routes, so that whether the version applied shows.
			v0 := fc.patchDesired(t, edgeHubID, `{"routes":{"aToB":null},"storeAndForwardConfiguration":{"timeToLiveSecs":60,"storageFolder":null}}`, true)
			waitFor(t, "routes removed", func() bool { v, code, _ := lastDesired(t, fc); return v == float64(v0) && code == 200 })

			v := fc.patchDesired(t, edgeHubID, `{"routes":{"aToB":"`+routeAToB+`"},"storeAndForwardConfiguration":{"timeToLiveSecs":60,"storageFolder":`+tt.folder+`}}`, true)
			waitFor(t, "400", func() bool { gotV, code, _ := lastDesired(t, fc); return gotV == float64(v) && code == 400 })
			_, _, desc := lastDesired(t, fc)
			for _, w := range tt.wantDesc {
				if !strings.Contains(desc, w) {
					t.Errorf("description %q does not say %q", desc, w)
				}
			}
			noMove(t, m, 0)
			cur, status, sdesc := storage(t, fc)
			if tt.applied {
				if cur != defaultFolder || status != "refused" || !strings.Contains(sdesc, "not an absolute path") {
					t.Errorf("storageFolder = %q %q %q, want the default folder, refused, and the reason", cur, status, sdesc)
				}
			} else if cur != defaultFolder || status != "ok" {
				t.Errorf("storageFolder = %q %q, want the default folder, ok (a malformed version changes nothing)", cur, status)
			}

			b := f.connect(modB)
			b.subscribeInputs(t)
			a := f.connect(modA)
			defer a.Disconnect(0)
			defer b.Disconnect(0)
			a.send(t, "out", nil, "after")
			if tt.applied {
				if got := b.next(t); string(got.Payload()) != "after" {
					t.Fatalf("modB got %q", got.Payload())
				}
			} else {
				b.noMessage(t, 300*time.Millisecond)
			}
		})
	}
}

// TestConfig_StorageFolderMoveOffline: a hub that starts offline with a cached
// configuration naming another folder (a move rolled back by a crash, say) asks for the
// move at once, with nobody to report it to.
func TestConfig_StorageFolderMoveOffline(t *testing.T) {
	fc := newFakeCloud()
	m := newFakeMover()
	v := fc.patchDesired(t, edgeHubID, withFolder(`"/mnt/ssd/hub"`), false)
	f := newFolderEnv(t, fc, m)
	if got := nextMove(t, m); got != (moveCall{"/mnt/ssd/hub", v}) {
		t.Fatalf("move asked = %+v", got)
	}
	f.stop()
	fc.setConnected(false)
	f.start()
	if got := nextMove(t, m); got != (moveCall{"/mnt/ssd/hub", v}) {
		t.Fatalf("offline: move asked = %+v", got)
	}
}

// TestConfig_StorageFolderWithoutMover: with a plain store the property is ignored.
func TestConfig_StorageFolderWithoutMover(t *testing.T) {
	fc := newFakeCloud()
	fc.patchDesired(t, edgeHubID, withFolder(`"/mnt/ssd/hub"`), false)
	newRelayEnv(t, fc)
	waitFor(t, "200", func() bool { v, code, _ := lastDesired(t, fc); return v == 2 && code == 200 })
	if _, ok := fc.reportedOf(t, edgeHubID)["storageFolder"]; ok {
		t.Error("storageFolder reported without a StoreMover")
	}
}
