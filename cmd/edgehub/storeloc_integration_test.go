package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// Routes of the store folder tests: m1 to IoT Hub, m2 to the input of module sink.
const (
	routeUp    = "FROM /messages/modules/m1/* INTO $upstream"
	routeLocal = `FROM /messages/modules/m2/* INTO BrokeredEndpoint("/modules/sink/inputs/in")`
)

// hubDesired is the $edgeHub desired configuration of these tests, with storageFolder
// when folder is not nil.
func hubDesired(folder any) map[string]any {
	sf := map[string]any{"timeToLiveSecs": 7200}
	if folder != nil {
		sf["storageFolder"] = folder
	}
	return map[string]any{
		"schemaVersion":                "1.1",
		"routes":                       map[string]any{"up": routeUp, "local": routeLocal},
		"storeAndForwardConfiguration": sf,
	}
}

// patchHub patches the desired properties of edge1's $edgeHub twin, as an operator would.
func patchHub(t *testing.T, s *fakehub.Server, desired map[string]any) {
	t.Helper()
	var p fakehub.TwinPatch
	p.Properties.Desired = desired
	if _, err := s.PatchTwin("edge1", "$edgeHub", p, ""); err != nil {
		t.Fatal(err)
	}
}

// hubReported is what these tests read of the $edgeHub reported properties.
type hubReported struct {
	LastDesiredStatus struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"lastDesiredStatus"`
	StorageFolder struct {
		Current     string `json:"current"`
		Status      string `json:"status"`
		Description string `json:"description"`
	} `json:"storageFolder"`
}

func reportedHub(t *testing.T, s *fakehub.Server) hubReported {
	t.Helper()
	tw, err := s.GetTwin("edge1", "$edgeHub")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(tw.Properties.Reported)
	if err != nil {
		t.Fatal(err)
	}
	var r hubReported
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// sink receives the inputs of module sink and turns them into events for fleet.compare.
type sink struct {
	mu     sync.Mutex
	events []fakehub.Event
	c      paho.Client
}

func connectSink(t *testing.T, cs sas.ConnectionString, addr string) *sink {
	t.Helper()
	k := &sink{}
	c, err := connectAs(context.Background(), cs, addr)
	if err != nil {
		t.Fatal(err)
	}
	k.c = c
	t.Cleanup(func() { c.Disconnect(0) })
	tok := c.Subscribe(iothub.InputFilter(cs.DeviceID, cs.ModuleID), 1, func(_ paho.Client, m paho.Message) {
		from, _, _ := parseBody(m.Payload())
		device, module, _ := strings.Cut(from, "/")
		k.mu.Lock()
		k.events = append(k.events, fakehub.Event{Seq: int64(len(k.events) + 1), DeviceID: device, ModuleID: module,
			Body: append([]byte(nil), m.Payload()...)})
		k.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("sink subscribe: %v", tok.Error())
	}
	return k
}

func (k *sink) received() []fakehub.Event {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]fakehub.Event(nil), k.events...)
}

// TestStoreFolder_MoveWithStoredMessages moves the store through the $edgeHub twin while it
// holds messages: m1's, stored while the upstream link was down, and m2's, for a module
// that is not connected. Publishers keep going through the move and reconnect by
// themselves; afterwards every acknowledged message reaches IoT Hub or the module, the
// old folder holds no store, and the reported properties say where the store is.
func TestStoreFolder_MoveWithStoredMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the edgehub binary against a fake IoT Hub")
	}
	dir := t.TempDir()
	c := newCloud(t, dir, 2, 0) // m1, m2
	_, sinkText := fakehubtest.MustModule(t, c.s, "edge1", "sink")
	sinkCS, err := sas.ParseConnectionString(sinkText)
	if err != nil {
		t.Fatal(err)
	}
	dataDir, newFolder := filepath.Join(dir, "data"), filepath.Join(dir, "ssd", "edgehub")
	patchHub(t, c.s, hubDesired(nil))
	h := newHubRunner(t, dataDir, c.hubArgs...)
	h.start()
	waitUntil(t, 20*time.Second, "the configuration applied, the store in the data directory", func() bool {
		r := reportedHub(t, c.s)
		return r.LastDesiredStatus.Code == 200 && r.StorageFolder.Current == dataDir && r.StorageFolder.Status == "ok"
	})

	up := startPacedFleet(t, c.senders[:1], 64, 10*time.Millisecond, h.currentAddr)
	local := startPacedFleet(t, c.senders[1:], 64, 10*time.Millisecond, h.currentAddr)
	// Online first, so that IoT Hub vouches for m1 and m2 (they are cached for later).
	waitUntil(t, 20*time.Second, "both publishers acknowledged", func() bool {
		return up.eachAckedAtLeast(nil, 5) && local.eachAckedAtLeast(nil, 5)
	})

	// The link goes down: m1's messages stay stored too.
	lost := len(h.logLines(linkLostMsg))
	c.s.CutNetwork()
	waitUntil(t, 10*time.Second, "the hub to notice that the link is down", func() bool { return len(h.logLines(linkLostMsg)) > lost })
	base := up.ackedCounts()
	waitUntil(t, 20*time.Second, "messages stored while offline", func() bool { return up.eachAckedAtLeast(base, 30) })

	// The operator names another folder (the service API works while the device is cut
	// off); the hub reads it when the link is back.
	patchHub(t, c.s, hubDesired(newFolder))
	storedLocal := local.totalAcked() // m2's: they cannot leave the store, their module is not connected
	c.s.RestoreNetwork()
	waitUntil(t, 30*time.Second, "the store to move", func() bool { return len(h.logLines("store moved")) > 0 })
	stopping := h.logLines("stopping the hub to move the store")
	if len(stopping) != 1 {
		t.Fatalf("the hub stopped %d times to move the store, want 1", len(stopping))
	}
	if n, _ := stopping[0]["stored_messages"].(float64); n < float64(storedLocal) {
		t.Fatalf("the store held %v messages when it moved, want at least m2's %d", stopping[0]["stored_messages"], storedLocal)
	}
	t.Logf("the store moved holding %v messages (m2's alone: %d)", stopping[0]["stored_messages"], storedLocal)
	waitUntil(t, 20*time.Second, "the new folder reported", func() bool {
		r := reportedHub(t, c.s)
		return r.LastDesiredStatus.Code == 200 && r.StorageFolder.Current == newFolder && r.StorageFolder.Status == "ok"
	})

	// The publishers reconnected by themselves and go on.
	upBase, localBase := up.ackedCounts(), local.ackedCounts()
	waitUntil(t, 20*time.Second, "publishing after the move", func() bool {
		return up.eachAckedAtLeast(upBase, 10) && local.eachAckedAtLeast(localBase, 10)
	})
	k := connectSink(t, sinkCS, h.currentAddr())
	up.stop()
	local.stop()

	if d := up.waitDelivered(c.s, 30*time.Second); d.missingCount() > 0 || len(d.corrupt) > 0 {
		d.report(t, up)
	}
	var d delivery
	deadline := time.Now().Add(30 * time.Second)
	for {
		if d = local.compare(k.received()); d.missingCount() == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d.missingCount() > 0 || len(d.corrupt) > 0 {
		d.report(t, local)
	}
	for _, p := range append(up.pubs, local.pubs...) {
		if _, _, _, sessions := p.counts(); sessions < 2 {
			t.Errorf("%s connected %d times; the move should have made it reconnect", p.sender(), sessions)
		}
	}

	// Nothing left behind, and the location recorded for the next start.
	if exists(t, filepath.Join(dataDir, storeFile)) {
		t.Error("the old store file is still in the data directory")
	}
	if !exists(t, filepath.Join(newFolder, storeFile)) {
		t.Error("no store file in the new folder")
	}
	if rec := readLocation(t, dataDir); rec != (locationRecord{Folder: newFolder}) {
		t.Errorf("store location record %+v", rec)
	}
	h.stop()
	h.start()
	if got := h.logLines("edgehub ready"); got[len(got)-1]["store_folder"] != newFolder {
		t.Errorf("after a restart the hub serves the store of %v", got[len(got)-1]["store_folder"])
	}
}

// TestStoreFolder_Refused: folders the hub cannot use are refused with the reason in the
// reported properties; the store stays, and messages keep flowing.
func TestStoreFolder_Refused(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the edgehub binary against a fake IoT Hub")
	}
	dir := t.TempDir()
	c := newCloud(t, dir, 1, 0)
	dataDir := filepath.Join(dir, "data")
	holding := filepath.Join(dir, "holding")
	if err := os.Mkdir(holding, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(holding, storeFile), "another hub's store")
	aFile := filepath.Join(dir, "a-file")
	writeFile(t, aFile, "x")
	h := newHubRunner(t, dataDir, c.hubArgs...)
	h.start()
	f := startPacedFleet(t, c.senders, 64, 10*time.Millisecond, h.currentAddr)

	tests := []struct {
		name   string
		folder any
		reason string
	}{
		{name: "relative", folder: "edgehub/store", reason: "not an absolute path"},
		{name: "system directory", folder: "/proc/edgehub", reason: "forbidden place for the message store: inside /proc"},
		{name: "holds a store", folder: holding, reason: "already holds a store.db"},
		{name: "not writable", folder: filepath.Join(aFile, "store"), reason: "not writable"},
		{name: "not a string", folder: true, reason: "want a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			patchHub(t, c.s, hubDesired(tt.folder))
			var r hubReported
			waitUntil(t, 20*time.Second, "the refusal reported", func() bool {
				r = reportedHub(t, c.s)
				return r.LastDesiredStatus.Code == 400 && strings.Contains(r.LastDesiredStatus.Description, tt.reason)
			})
			if _, isString := tt.folder.(string); isString {
				if !strings.Contains(r.LastDesiredStatus.Description, `the store stays in "`+dataDir+`"`) {
					t.Errorf("description %q does not say where the store stays", r.LastDesiredStatus.Description)
				}
				if r.StorageFolder.Status != "refused" || r.StorageFolder.Current != dataDir {
					t.Errorf("storageFolder %+v, want refused, in the data directory", r.StorageFolder)
				}
			}
			base := f.ackedCounts()
			waitUntil(t, 20*time.Second, "messages still acknowledged", func() bool { return f.eachAckedAtLeast(base, 5) })
			if !exists(t, filepath.Join(dataDir, storeFile)) || exists(t, filepath.Join(dataDir, storeLocationFile)) {
				t.Error("the store moved, or a move was recorded")
			}
		})
	}
	f.stop()
	if d := f.waitDelivered(c.s, 30*time.Second); d.missingCount() > 0 || len(d.corrupt) > 0 {
		d.report(t, f)
	}
	if n := len(h.logLines("stopping the hub to move the store")); n != 0 {
		t.Errorf("the hub stopped %d times for a refused folder", n)
	}
}
