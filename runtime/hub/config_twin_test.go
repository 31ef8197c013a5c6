package hub_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/hub/twincache"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

const routeAToB = `FROM /messages/modules/modA/outputs/out INTO BrokeredEndpoint(\"/modules/modB/inputs/in\")`

// lastDesired returns the hub's reported lastDesiredVersion and lastDesiredStatus.
func lastDesired(t *testing.T, fc *fakeCloud) (version float64, code float64, desc string) {
	t.Helper()
	rep := fc.reportedOf(t, edgeHubID)
	if v, ok := rep["lastDesiredVersion"]; ok {
		version = number(t, v)
	}
	st, _ := rep["lastDesiredStatus"].(map[string]any)
	if c, ok := st["code"]; ok {
		code = number(t, c)
	}
	desc, _ = st["description"].(string)
	return version, code, desc
}

func number(t *testing.T, v any) float64 {
	t.Helper()
	n, ok := v.(interface{ Float64() (float64, error) })
	if !ok {
		t.Fatalf("%v (%T) is not a number", v, v)
	}
	f, _ := n.Float64()
	return f
}

// routed sends one output message from modA and reports whether modB got it.
func routed(t *testing.T, a, b *client, body string) {
	t.Helper()
	a.send(t, "out", nil, body)
	if m := b.next(t); string(m.Payload()) != body {
		t.Fatalf("modB received %q, want %q", m.Payload(), body)
	}
}

func TestConfig_DesiredRoutesAppliedAndReported(t *testing.T) {
	fc := newFakeCloud()
	fc.patchDesired(t, edgeHubID, `{"schemaVersion":"1.1","routes":{"aToB":"`+routeAToB+`"},
		"storeAndForwardConfiguration":{"timeToLiveSecs":60}}`, false)
	r := newRelayEnv(t, fc) // started without routes
	waitFor(t, "lastDesiredStatus 200", func() bool { v, code, _ := lastDesired(t, fc); return v == 2 && code == 200 })
	rep := fc.reportedOf(t, edgeHubID)
	if rep["schemaVersion"] != "1.0" {
		t.Errorf("schemaVersion %v", rep["schemaVersion"])
	}
	if subs := fc.attachment(edgeHubID); subs != (upstream.Subscriptions{Desired: true}) {
		t.Errorf("the hub's own twin attached with %+v", subs)
	}

	b := r.connect(modB)
	b.subscribeInputs(t)
	a := r.connect(modA)
	routed(t, a, b, "one")
	waitFor(t, "the clients to be reported", func() bool {
		return clientStatus(t, fc, "edge1/modA") == "Connected" && clientStatus(t, fc, "edge1/modB") == "Connected"
	})

	// A route that does not compile (application properties are strings): 400, and the
	// previous routes stay in force.
	fc.patchDesired(t, edgeHubID, `{"routes":{"aToB":"FROM /messages/* WHERE temp > 3 INTO $upstream"}}`, true)
	waitFor(t, "lastDesiredStatus 400", func() bool { v, code, _ := lastDesired(t, fc); return v == 3 && code == 400 })
	if _, _, desc := lastDesired(t, fc); !strings.Contains(desc, "routes.aToB") {
		t.Errorf("description %q does not name the route", desc)
	}
	routed(t, a, b, "two")

	// A valid change applies again.
	fc.patchDesired(t, edgeHubID, `{"routes":{"aToB":"`+routeAToB+`","more":"FROM /messages/modules/modB/* INTO $upstream"}}`, true)
	waitFor(t, "lastDesiredStatus 200 for version 4", func() bool { v, code, _ := lastDesired(t, fc); return v == 4 && code == 200 })
	routed(t, a, b, "three")
}

func TestConfig_CachedConfigRoutesAHubThatBootsOffline(t *testing.T) {
	fc := newFakeCloud()
	fc.patchDesired(t, edgeHubID, `{"schemaVersion":"1.1","routes":{"aToB":"`+routeAToB+`"},
		"storeAndForwardConfiguration":{"timeToLiveSecs":60,"storeLimits":{"maxSizeBytes":1000000}}}`, false)
	r := newRelayEnv(t, fc)
	waitFor(t, "lastDesiredStatus 200", func() bool { _, code, _ := lastDesired(t, fc); return code == 200 })
	if _, _, desc := lastDesired(t, fc); desc != "" {
		t.Errorf("description %q: the store takes its cap while open, nothing to say", desc)
	}
	if got := r.store.Stats().MaxBytes; got != 1000000 {
		t.Errorf("store cap %d, want storeLimits.maxSizeBytes 1000000 applied at once", got)
	}

	fc.setConnected(false)
	r.restart() // no routes in the env's own configuration: only the cache has them
	b := r.connect(modB)
	b.subscribeInputs(t)
	a := r.connect(modA)
	routed(t, a, b, "offline")

	r.stop()
	c, err := twincache.Open(twincache.Options{Path: r.dir + "/twins.db"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg, err := hub.CachedConfig(c)
	if err != nil || cfg == nil {
		t.Fatalf("CachedConfig = %v, %v", cfg, err)
	}
	if cfg.StoreAndForward.MaxSizeBytes != 1000000 || cfg.Routes["aToB"].Expr == "" {
		t.Fatalf("CachedConfig = %+v", cfg)
	}
}

func TestConfig_ReportedClients(t *testing.T) {
	fc := newFakeCloud()
	fc.patchDesired(t, edgeHubID, `{"schemaVersion":"1.1","routes":{},"storeAndForwardConfiguration":{}}`, false)
	r := newRelayEnv(t, fc)
	a := r.connect(modA)
	l := r.connect(leaf)
	waitFor(t, "both reported connected", func() bool {
		return clientStatus(t, fc, "edge1/modA") == "Connected" && clientStatus(t, fc, "leaf1") == "Connected"
	})
	a.Disconnect(0)
	l.Disconnect(0)
	waitFor(t, "the module Disconnected and the leaf removed", func() bool {
		clients, _ := fc.reportedOf(t, edgeHubID)["clients"].(map[string]any)
		_, leafThere := clients["leaf1"]
		return clientStatus(t, fc, "edge1/modA") == "Disconnected" && !leafThere
	})
	clients, _ := fc.reportedOf(t, edgeHubID)["clients"].(map[string]any)
	entry, _ := clients["edge1/modA"].(map[string]any)
	if entry["lastConnectedTimeUtc"] == nil || entry["lastDisconnectedTimeUtc"] == nil {
		t.Errorf("module entry %v lacks its times", entry)
	}

	// After a restart, the previous run's module entries are taken over as Disconnected.
	r.connect(modB)
	waitFor(t, "modB connected", func() bool { return clientStatus(t, fc, "edge1/modB") == "Connected" })
	r.restart()
	waitFor(t, "modB Disconnected after the restart", func() bool { return clientStatus(t, fc, "edge1/modB") == "Disconnected" })
	if clientStatus(t, fc, "edge1/modA") != "Disconnected" {
		t.Errorf("modA's entry was lost: %v", fc.reportedOf(t, edgeHubID)["clients"])
	}
}

func TestConfig_ReportedClientKeysAreEncoded(t *testing.T) {
	fc := newFakeCloud()
	fc.patchDesired(t, edgeHubID, `{"schemaVersion":"1.1","routes":{},"storeAndForwardConfiguration":{}}`, false)
	r := newRelayEnv(t, fc)
	odd := sas.Identity{DeviceID: edgeID, ModuleID: "mod.$#A"}
	if err := r.ids.Put(context.Background(), identities.Record{DeviceID: odd.DeviceID, ModuleID: odd.ModuleID, Keys: sas.Keys{Primary: keyModA}}); err != nil {
		t.Fatal(err)
	}
	c, code, err := r.dial(odd, iothub.FormatUsername(hubHost, odd.DeviceID, odd.ModuleID, nil), r.token(hubHost, odd, keyModA, r.clock.Now().Add(time.Hour)))
	if err != nil {
		t.Fatalf("connect: %d %v", code, err)
	}
	defer c.Disconnect(0)
	waitFor(t, "the encoded key reported", func() bool { return clientStatus(t, fc, "edge1/mod%2E%24%23A") == "Connected" })
}

// TestConfig_StoreLimitsAppliedLive: a desired patch that lowers
// storeLimits.maxSizeBytes takes effect in the running hub (no restart), is reported 200
// without a note, and the store then refuses what no longer fits (reject-new).
func TestConfig_StoreLimitsAppliedLive(t *testing.T) {
	fc := newFakeCloud()
	fc.patchDesired(t, edgeHubID, `{"schemaVersion":"1.1","routes":{"aToB":"`+routeAToB+`"},
		"storeAndForwardConfiguration":{"timeToLiveSecs":60,"storeLimits":{"maxSizeBytes":1000000}}}`, false)
	r := newRelayEnv(t, fc)
	waitFor(t, "lastDesiredStatus 200", func() bool { v, code, _ := lastDesired(t, fc); return v == 2 && code == 200 })
	a := r.connect(modA)
	a.send(t, "out", nil, "first") // modB is away: it stays stored
	used := r.store.Stats().Bytes
	if used == 0 {
		t.Fatal("the first message is not accounted in the store")
	}

	// Room for what is stored, not for one more message of the same size.
	limit := used + used/2
	v := fc.patchDesired(t, edgeHubID, fmt.Sprintf(`{"storeAndForwardConfiguration":{"timeToLiveSecs":60,"storeLimits":{"maxSizeBytes":%d}}}`, limit), true)
	waitFor(t, "lastDesiredStatus 200 for the new cap", func() bool { got, code, _ := lastDesired(t, fc); return got == float64(v) && code == 200 })
	if _, _, desc := lastDesired(t, fc); desc != "" {
		t.Errorf("description %q, want none: the cap applies without a restart", desc)
	}
	if got := r.store.Stats().MaxBytes; got != limit {
		t.Fatalf("store cap %d, want %d", got, limit)
	}
	tok := a.Publish(a.topic("out", nil), 1, false, "second")
	a.waitLost(t)
	if tok.WaitTimeout(10*time.Millisecond) && tok.Error() == nil {
		t.Fatal("a message over the lowered cap was acknowledged")
	}
	if st := r.hub.Stats(); st.RefusedStoreFull != 1 {
		t.Fatalf("RefusedStoreFull = %d, want 1", st.RefusedStoreFull)
	}
}
