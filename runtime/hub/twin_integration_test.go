package hub_test

import (
	"context"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// The integration tests run the hub against the fake IoT Hub through the real upstream
// client: one TLS connection as edge1/$edgeHub carrying every local client.

// cloudEnv is a hub linked to a fake IoT Hub.
type cloudEnv struct {
	*relayEnv
	iot *fakehub.Server
	up  *upstream.Client
}

// presenceAdapter attaches the hub's clients on the upstream link with what they
// subscribed to (the wiring in cmd/edgehub does the same).
type presenceAdapter struct{ up *upstream.Client }

func (p presenceAdapter) Attach(ctx context.Context, id sas.Identity, s hub.Subscriptions) error {
	return p.up.Attach(ctx, id, upstream.Subscriptions{Desired: s.Desired, Methods: s.Methods, C2D: s.C2D})
}

func (p presenceAdapter) Detach(ctx context.Context, id sas.Identity) error {
	return p.up.Detach(ctx, id)
}

// newCloudEnv registers edge1 (an IoT Edge device), its modules modA and modB and its leaf
// leaf1 in a fake IoT Hub, with the keys the hub's identity cache holds, and starts the
// upstream client and a hub using it.
func newCloudEnv(t *testing.T, opts ...envOption) *cloudEnv {
	t.Helper()
	iot := fakehubtest.New(t)
	sasAuth := func(k string) fakehub.Authentication {
		return fakehub.Authentication{Type: "sas", SymmetricKey: &fakehub.SymmetricKey{PrimaryKey: k, SecondaryKey: k}}
	}
	edge, err := iot.PutDevice(fakehub.Device{DeviceID: edgeID, Authentication: sasAuth(keyEdge), Capabilities: fakehub.Capabilities{IoTEdge: true}}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []sas.Identity{modA, modB} {
		if _, err := iot.PutModule(fakehub.Module{DeviceID: m.DeviceID, ModuleID: m.ModuleID, Authentication: sasAuth(keyOf(m))}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := iot.PutDevice(fakehub.Device{DeviceID: leaf.DeviceID, Authentication: sasAuth(keyLeaf), ParentScopes: []string{edge.DeviceScope}}, ""); err != nil {
		t.Fatal(err)
	}

	csText, err := iot.ModuleConnectionString(edgeID, hub.HubModuleID)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := sas.ParseConnectionString(csText)
	if err != nil {
		t.Fatal(err)
	}
	_, portText, _ := net.SplitHostPort(iot.MQTTAddress())
	port, _ := strconv.Atoi(portText)
	up, err := upstream.New(upstream.Options{ConnectionString: cs, CAFile: iot.CAFile(), Port: port,
		KeepAlive: time.Second, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
		RequestTimeout: 5 * time.Second, Logger: testLogger(t).With("component", "upstream")})
	if err != nil {
		t.Fatal(err)
	}
	r := newRelayEnvWith(t, up, presenceAdapter{up}, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- up.Run(ctx) }()
	t.Cleanup(func() {
		r.stop() // the hub first: it uses the link
		cancel()
		<-done
	})
	waitFor(t, "the link to come up", up.Connected)
	return &cloudEnv{relayEnv: r, iot: iot, up: up}
}

// carried reports whether the hub's one connection carries id.
func (c *cloudEnv) carried(id sas.Identity) bool {
	for _, conn := range c.iot.Connections() {
		if slices.Contains(conn.Identities, id.String()) {
			return true
		}
	}
	return false
}

// cut and restore the network between the hub and the fake IoT Hub, waiting until the
// link noticed.
func (c *cloudEnv) cut(t *testing.T) {
	t.Helper()
	c.iot.CutNetwork()
	waitFor(t, "the link to drop", func() bool { return !c.up.Connected() })
}

func (c *cloudEnv) restore(t *testing.T) {
	t.Helper()
	c.iot.RestoreNetwork()
	waitFor(t, "the link to come back", c.up.Connected)
}

// patchDesired changes desired properties in the fake IoT Hub (as an operator would).
func (c *cloudEnv) patchDesired(t *testing.T, id sas.Identity, desired string) {
	t.Helper()
	var p fakehub.TwinPatch
	p.Properties.Desired = mustDecode(t, []byte(desired))
	if _, err := c.iot.PatchTwin(id.DeviceID, id.ModuleID, p, ""); err != nil {
		t.Fatal(err)
	}
}

// reported returns the reported properties the fake IoT Hub holds for id.
func (c *cloudEnv) reported(t *testing.T, id sas.Identity) map[string]any {
	t.Helper()
	tw, err := c.iot.GetTwin(id.DeviceID, id.ModuleID)
	if err != nil {
		t.Fatal(err)
	}
	return tw.Properties.Reported
}

func TestIntegration_TwinsThroughTheLinkAndAcrossAnOutage(t *testing.T) {
	e := newCloudEnv(t)
	e.patchDesired(t, modA, `{"rate":5}`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// modA uses the SDK: GET, reported patches.
	a := sdkModule(t, e.relayEnv, modA, nil)
	desired, _, err := a.GetTwin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if desired["rate"] == nil {
		t.Fatalf("desired %v, want IoT Hub's", desired)
	}
	// modB never asks for its twin; it only subscribes to desired patches (raw MQTT).
	b := e.connect(modB)
	b.subscribe(t, iothub.DesiredPatchFilter)
	waitFor(t, "modB attached upstream", func() bool { return e.carried(modB) })

	e.cut(t)
	if _, err := a.UpdateReported(ctx, map[string]any{"temp": 21, "unit": "C"}); err != nil {
		t.Fatalf("reported patch while offline: %v", err)
	}
	if _, err := a.UpdateReported(ctx, map[string]any{"unit": nil, "fw": "1.2"}); err != nil {
		t.Fatalf("reported patch while offline: %v", err)
	}
	desired, reported, err := a.GetTwin(ctx)
	if err != nil {
		t.Fatalf("GET while offline: %v", err)
	}
	if desired["rate"] == nil || reported["temp"] == nil || reported["fw"] != "1.2" || reported["unit"] != nil {
		t.Fatalf("offline twin desired %v reported %v: want the cached twin with the patches merged", desired, reported)
	}
	e.patchDesired(t, modB, `{"mode":"eco"}`) // made while the hub is cut off

	e.restore(t)
	waitFor(t, "modA's reported properties in IoT Hub", func() bool {
		rep := e.reported(t, modA)
		_, unit := rep["unit"]
		return rep["temp"] != nil && rep["fw"] == "1.2" && !unit
	})
	v, body := b.desiredPatch(t)
	if body != `{"$version":2,"mode":"eco"}` || v != 2 {
		t.Fatalf("modB got v%d %s after the outage, want the change made meanwhile", v, body)
	}
}
