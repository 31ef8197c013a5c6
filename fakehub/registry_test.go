package fakehub_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
)

func TestRegistry_DeviceLifecycle(t *testing.T) {
	s := fakehubtest.New(t)
	d, err := s.PutDevice(fakehub.Device{DeviceID: "dev1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != "enabled" || d.Authentication.Type != "sas" || d.ConnectionState != "Disconnected" ||
		len(d.GenerationID) != 18 || d.Etag == "" {
		t.Fatalf("created = %+v", d)
	}
	for _, k := range []string{d.Authentication.SymmetricKey.PrimaryKey, d.Authentication.SymmetricKey.SecondaryKey} {
		if b, err := base64.StdEncoding.DecodeString(k); err != nil || len(b) != 32 {
			t.Fatalf("generated key %q", k)
		}
	}
	if _, err := s.PutDevice(fakehub.Device{DeviceID: "dev1"}, ""); !errors.Is(err, fakehub.ErrConflict) {
		t.Fatalf("create twice: %v", err)
	}
	if _, err := s.PutDevice(fakehub.Device{DeviceID: "ghost"}, "*"); !errors.Is(err, fakehub.ErrNotFound) {
		t.Fatalf("update absent: %v", err)
	}
	if _, err := s.PutDevice(fakehub.Device{DeviceID: "dev1", Status: "disabled"}, "stale"); !errors.Is(err, fakehub.ErrPreconditionFailed) {
		t.Fatalf("stale etag: %v", err)
	}
	upd := d
	upd.Status, upd.StatusReason = "disabled", "maintenance"
	u, err := s.PutDevice(upd, `"`+d.Etag+`"`)
	if err != nil {
		t.Fatal(err)
	}
	if u.Etag == d.Etag || u.GenerationID != d.GenerationID || u.Status != "disabled" || u.StatusUpdatedTime.IsZero() ||
		u.Authentication.SymmetricKey.PrimaryKey != d.Authentication.SymmetricKey.PrimaryKey {
		t.Fatalf("updated = %+v", u)
	}
	// Omitted keys on update keep the current ones.
	u2, err := s.PutDevice(fakehub.Device{DeviceID: "dev1", Status: "enabled"}, "*")
	if err != nil || u2.Authentication.SymmetricKey.PrimaryKey != d.Authentication.SymmetricKey.PrimaryKey {
		t.Fatalf("update without keys = %+v, %v", u2, err)
	}
	for _, bad := range []fakehub.Device{
		{DeviceID: "has/slash"},
		{DeviceID: strings.Repeat("a", 129)},
		{DeviceID: "x", Status: "paused"},
		{DeviceID: "x", Authentication: fakehub.Authentication{Type: "password"}},
		{DeviceID: "x", Authentication: fakehub.Authentication{SymmetricKey: &fakehub.SymmetricKey{PrimaryKey: "not base64!"}}},
		{DeviceID: "x", Authentication: fakehub.Authentication{Type: "selfSigned"}},
		{DeviceID: "x", ParentScopes: []string{"ms-azure-iot-edge://nobody-1"}},
	} {
		if _, err := s.PutDevice(bad, ""); !errors.Is(err, fakehub.ErrInvalid) {
			t.Errorf("PutDevice(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
	if got := s.ListDevices(); len(got) != 1 || got[0].DeviceID != "dev1" {
		t.Fatalf("list = %+v", got)
	}
	if err := s.DeleteDevice("dev1", "wrong"); !errors.Is(err, fakehub.ErrPreconditionFailed) {
		t.Fatalf("delete with stale etag: %v", err)
	}
	if err := s.DeleteDevice("dev1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetDevice("dev1"); !errors.Is(err, fakehub.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func TestRegistry_EdgeDeviceAndChildren(t *testing.T) {
	s := fakehubtest.New(t)
	edge, _ := fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	if want := "ms-azure-iot-edge://edge1-" + edge.GenerationID; edge.DeviceScope != want || len(edge.ParentScopes) != 0 {
		t.Fatalf("edge scope %q parents %v, want %q", edge.DeviceScope, edge.ParentScopes, want)
	}
	mods, err := s.ListModules("edge1")
	if err != nil || len(mods) != 2 || mods[0].ModuleID != "$edgeAgent" || mods[1].ModuleID != "$edgeHub" {
		t.Fatalf("edge modules = %+v, %v", mods, err)
	}
	if _, err := s.ModuleConnectionString("edge1", "$edgeHub"); err != nil {
		t.Fatal(err)
	}
	leaf, _ := fakehubtest.MustDevice(t, s, "leaf1", fakehubtest.Parent(edge))
	if leaf.DeviceScope != edge.DeviceScope || len(leaf.ParentScopes) != 1 || leaf.ParentScopes[0] != edge.DeviceScope {
		t.Fatalf("leaf scopes %q %v", leaf.DeviceScope, leaf.ParentScopes)
	}
	child, err := s.PutDevice(fakehub.Device{DeviceID: "child", Capabilities: fakehub.Capabilities{IoTEdge: true},
		ParentScopes: []string{edge.DeviceScope}}, "")
	if err != nil || child.DeviceScope == edge.DeviceScope || child.ParentScopes[0] != edge.DeviceScope {
		t.Fatalf("nested edge = %+v, %v", child, err)
	}
	tw, err := s.GetTwin("leaf1", "")
	if err != nil || tw.DeviceScope != edge.DeviceScope || tw.Capabilities == nil || tw.Capabilities.IoTEdge {
		t.Fatalf("leaf twin = %+v, %v", tw, err)
	}
	// Modules need their device, and deleting the device takes them along.
	if _, err := s.PutModule(fakehub.Module{DeviceID: "ghost", ModuleID: "m"}, ""); !errors.Is(err, fakehub.ErrNotFound) {
		t.Fatalf("module of unknown device: %v", err)
	}
	m, _ := fakehubtest.MustModule(t, s, "edge1", "filter")
	if _, err := s.PutModule(fakehub.Module{DeviceID: "edge1", ModuleID: "filter", ManagedBy: "IotEdge"}, "nope"); !errors.Is(err, fakehub.ErrPreconditionFailed) {
		t.Fatalf("stale module etag: %v", err)
	}
	m2, err := s.PutModule(fakehub.Module{DeviceID: "edge1", ModuleID: "filter", ManagedBy: "IotEdge"}, m.Etag)
	if err != nil || m2.ManagedBy != "IotEdge" || m2.Authentication.SymmetricKey.PrimaryKey != m.Authentication.SymmetricKey.PrimaryKey {
		t.Fatalf("module update = %+v, %v", m2, err)
	}
	if err := s.DeleteDevice("edge1", "*"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListModules("edge1"); !errors.Is(err, fakehub.ErrNotFound) {
		t.Fatalf("modules after delete: %v", err)
	}
	if _, err := s.GetTwin("edge1", "filter"); !errors.Is(err, fakehub.ErrNotFound) {
		t.Fatalf("module twin after delete: %v", err)
	}
	if _, err := s.PutDevice(fakehub.Device{DeviceID: "leaf2", DeviceScope: edge.DeviceScope}, ""); !errors.Is(err, fakehub.ErrInvalid) {
		t.Fatalf("scope of a deleted edge device: %v", err)
	}
}

func TestRegistry_DisableAndDeleteDropConnections(t *testing.T) {
	s := fakehubtest.New(t)
	_, devCS := fakehubtest.MustDevice(t, s, "dev1")
	_, modCS := fakehubtest.MustModule(t, s, "dev1", "m1")
	lost := make(chan string, 2)
	onLost := func(name string) paho.ConnectionLostHandler {
		return func(paho.Client, error) { lost <- name }
	}
	dial(t, pahoOptions(t, s, devCS).SetConnectionLostHandler(onLost("device")))
	dial(t, pahoOptions(t, s, modCS).SetConnectionLostHandler(onLost("module")))
	waitFor(t, "two connections", func() bool { return len(s.Connections()) == 2 })
	if _, err := s.PutDevice(fakehub.Device{DeviceID: "dev1", Status: "disabled"}, "*"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case <-lost:
		case <-time.After(10 * time.Second):
			t.Fatal("connections of a disabled device were not dropped")
		}
	}
	waitFor(t, "no connections", func() bool { return len(s.Connections()) == 0 })
	c := dialRaw(t, s)
	id, user, pass := credentials(t, modCS)
	if code, err := c.connect(id, user, pass, 4); err != nil || code != 5 {
		t.Fatalf("module of a disabled device: code %d, %v", code, err)
	}

	// Deleting drops the connection and forgets the session: a recreated identity starts
	// without the old subscriptions.
	_, cs2 := fakehubtest.MustDevice(t, s, "dev2")
	c2 := dial(t, pahoOptions(t, s, cs2).SetConnectionLostHandler(onLost("dev2")))
	subscribe(t, c2, &msgSink{}, "devices/dev2/messages/devicebound/#")
	if err := s.DeleteDevice("dev2", ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("connection of a deleted device was not dropped")
	}
	_, cs2 = fakehubtest.MustDevice(t, s, "dev2")
	if _, err := s.SendC2D("dev2", fakehubC2D("x")); err != nil {
		t.Fatal(err)
	}
	got := &msgSink{}
	c3 := dial(t, pahoOptions(t, s, cs2).SetDefaultPublishHandler(got.handler))
	probe := &msgSink{}
	subscribe(t, c3, probe, "$iothub/twin/res/#")
	publish(t, c3, "$iothub/twin/GET/?$rid=1", 0, "")
	probe.wait(t, "$iothub/twin/res/200/")
	if len(got.all()) != 0 {
		t.Fatalf("the recreated device inherited the old session: %v", got.all())
	}
}

func TestApplyConfigurationContent(t *testing.T) {
	s := fakehubtest.New(t)
	fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	fakehubtest.MustDevice(t, s, "plain")
	agentCS, err := s.ModuleConnectionString("edge1", "$edgeAgent")
	if err != nil {
		t.Fatal(err)
	}
	agent := dial(t, pahoOptions(t, s, agentCS))
	sink := &msgSink{}
	subscribe(t, agent, sink, "$iothub/twin/PATCH/properties/desired/#")

	var p fakehub.TwinPatch
	p.Properties.Desired = map[string]any{"old": 1}
	if _, err := s.PatchTwin("edge1", "$edgeAgent", p, ""); err != nil {
		t.Fatal(err)
	}
	sink.wait(t, "$iothub/twin/PATCH/properties/desired/?$version=2")

	content := map[string]json.RawMessage{
		"$edgeAgent": json.RawMessage(`{"properties.desired":{"schemaVersion":"1.1","modules":{"sensor":{"type":"docker"}}}}`),
		"$edgeHub":   json.RawMessage(`{"properties.desired":{"schemaVersion":"1.2","routes":{"r":"FROM /messages/* INTO $upstream"}}}`),
		"sensor":     json.RawMessage(`{"properties.desired":{"interval":10}}`),
	}
	if err := s.ApplyConfigurationContent("edge1", content); err != nil {
		t.Fatal(err)
	}
	msg := sink.wait(t, "$iothub/twin/PATCH/properties/desired/?$version=3")
	if string(msg.Payload()) != `{"modules":{"sensor":{"type":"docker"}},"schemaVersion":"1.1","$version":3}` {
		t.Fatalf("notification %s", msg.Payload())
	}
	tw, _ := s.GetTwin("edge1", "$edgeAgent")
	if _, ok := tw.Properties.Desired["old"]; ok {
		t.Fatalf("desired was merged, not replaced: %v", tw.Properties.Desired)
	}
	// The module that does not exist yet gets its document when it is created.
	if _, err := s.GetTwin("edge1", "sensor"); !errors.Is(err, fakehub.ErrNotFound) {
		t.Fatalf("twin before the identity exists: %v", err)
	}
	fakehubtest.MustModule(t, s, "edge1", "sensor")
	tw, err = s.GetTwin("edge1", "sensor")
	if err != nil || tw.Properties.Desired["interval"] == nil {
		t.Fatalf("sensor twin = %+v, %v", tw.Properties.Desired, err)
	}

	before, _ := s.GetTwin("edge1", "$edgeAgent")
	cases := []struct {
		name    string
		device  string
		content map[string]json.RawMessage
		want    error
		mention string
	}{
		{"not an edge device", "plain", content, fakehub.ErrInvalid, "not an edge device"},
		{"unknown device", "ghost", content, fakehub.ErrNotFound, "ghost"},
		{"entry not an object", "edge1", map[string]json.RawMessage{"$edgeHub": json.RawMessage(`[1]`)}, fakehub.ErrInvalid, "$edgeHub"},
		{"missing properties.desired", "edge1", map[string]json.RawMessage{"mod": json.RawMessage(`{"desired":{}}`)}, fakehub.ErrInvalid, `"mod"`},
		{"desired breaks a limit", "edge1", map[string]json.RawMessage{"mod2": json.RawMessage(`{"properties.desired":{"a b":1}}`)}, fakehub.ErrInvalid, "mod2"},
		{"invalid module id", "edge1", map[string]json.RawMessage{"a/b": json.RawMessage(`{"properties.desired":{}}`)}, fakehub.ErrInvalid, "a/b"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := s.ApplyConfigurationContent(tc.device, tc.content)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("err = %v, want %v mentioning %s", err, tc.want, tc.mention)
			}
		})
	}
	// A refused deployment changed nothing.
	if after, _ := s.GetTwin("edge1", "$edgeAgent"); after.Version != before.Version {
		t.Fatalf("a refused deployment changed the twin: version %d -> %d", before.Version, after.Version)
	}
	if _, err := s.GetTwin("edge1", "mod"); !errors.Is(err, fakehub.ErrNotFound) {
		t.Fatalf("refused entry created something: %v", err)
	}
}

func TestRegistry_PersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s1 := &fakehub.Server{DataDir: dir}
	if err := s1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	edge, err := s1.PutDevice(fakehub.Device{DeviceID: "edge1", Capabilities: fakehub.Capabilities{IoTEdge: true}}, "")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := s1.PutDevice(fakehub.Device{DeviceID: "leaf", ParentScopes: []string{edge.DeviceScope}}, "")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := s1.PutModule(fakehub.Module{DeviceID: "edge1", ModuleID: "filter", ManagedBy: "IotEdge"}, "")
	if err != nil {
		t.Fatal(err)
	}
	var p fakehub.TwinPatch
	p.Tags = map[string]any{"site": "lab"}
	p.Properties.Desired = map[string]any{"interval": 5}
	if _, err := s1.PatchTwin("leaf", "", p, ""); err != nil {
		t.Fatal(err)
	}
	// A reported patch from the device itself.
	leafCS, _ := s1.DeviceConnectionString("leaf")
	c := dial(t, pahoOptions(t, s1, leafCS))
	sink := &msgSink{}
	subscribe(t, c, sink, "$iothub/twin/res/#")
	publish(t, c, "$iothub/twin/PATCH/properties/reported/?$rid=1", 1, `{"fw":"2.0"}`)
	sink.wait(t, "$iothub/twin/res/204/")
	if err := s1.ApplyConfigurationContent("edge1", map[string]json.RawMessage{
		"later": json.RawMessage(`{"properties.desired":{"x":1}}`)}); err != nil {
		t.Fatal(err)
	}
	twin1, _ := s1.GetTwin("leaf", "")
	ca1, svc1 := s1.CAPEM(), s1.ServiceConnectionString()
	owner1, _ := s1.PolicyKeys("iothubowner")
	serverPEM1, _ := os.ReadFile(filepath.Join(dir, "server.pem"))
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := &fakehub.Server{DataDir: dir}
	if err := s2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if !bytes.Equal(s2.CAPEM(), ca1) {
		t.Fatal("CA regenerated on restart")
	}
	if serverPEM2, _ := os.ReadFile(filepath.Join(dir, "server.pem")); !bytes.Equal(serverPEM1, serverPEM2) {
		t.Fatal("server certificate regenerated although still valid")
	}
	if s2.ServiceConnectionString() != svc1 {
		t.Fatal("service connection string changed")
	}
	if owner2, _ := s2.PolicyKeys("iothubowner"); owner2 != owner1 {
		t.Fatal("policy keys changed")
	}
	if written, _ := os.ReadFile(filepath.Join(dir, "service-connection-string")); strings.TrimSpace(string(written)) != svc1 {
		t.Fatalf("service-connection-string file = %q", written)
	}
	got, err := s2.GetDevice("leaf")
	if err != nil || got.Etag != leaf.Etag || got.Authentication.SymmetricKey.PrimaryKey != leaf.Authentication.SymmetricKey.PrimaryKey ||
		got.ConnectionState != "Disconnected" || got.ParentScopes[0] != edge.DeviceScope {
		t.Fatalf("leaf after restart = %+v, %v", got, err)
	}
	gotMod, err := s2.GetModule("edge1", "filter")
	if err != nil || gotMod.GenerationID != mod.GenerationID || gotMod.ManagedBy != "IotEdge" {
		t.Fatalf("module after restart = %+v, %v", gotMod, err)
	}
	twin2, err := s2.GetTwin("leaf", "")
	if err != nil {
		t.Fatal(err)
	}
	j1, _ := json.Marshal(twin1.Properties)
	j2, _ := json.Marshal(twin2.Properties)
	if !bytes.Equal(j1, j2) || twin2.Tags["site"] != "lab" || twin2.Version != twin1.Version {
		t.Fatalf("twin after restart:\n%s\n%s", j1, j2)
	}
	if _, err := s2.PutModule(fakehub.Module{DeviceID: "edge1", ModuleID: "later"}, ""); err != nil {
		t.Fatal(err)
	}
	if tw, _ := s2.GetTwin("edge1", "later"); tw.Properties.Desired["x"] == nil {
		t.Fatalf("pending deployment lost on restart: %v", tw.Properties.Desired)
	}
	// The old connection string still works against the restarted hub.
	dial(t, pahoOptions(t, s2, leafCS))
}
