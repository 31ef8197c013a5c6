package hub_test

import (
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/iothub"
)

const routeAtoB = `FROM /messages/modules/modA/outputs/out1 WHERE level = 'hot' INTO BrokeredEndpoint("/modules/modB/inputs/in1")`

func TestRoute_ModuleOutputToModuleInput(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAtoB}))
	a := e.connect(modA)
	b := e.connect(modB)
	b.subscribeInputs(t)

	// Condition false, then true: only the second is delivered.
	a.send(t, "out1", map[string]string{"level": "cold"}, "first")
	if got := e.hub.Stats().Unrouted; got != 1 {
		t.Fatalf("Stats.Unrouted = %d after a message the condition rejects, want 1", got)
	}
	// The same output without the property, and another output: not routed either.
	a.send(t, "out1", nil, "no level")
	a.send(t, "out2", map[string]string{"level": "hot"}, "other output")
	a.send(t, "out1", map[string]string{"level": "hot"}, "second")

	m := b.next(t)
	if string(m.Payload()) != "second" {
		t.Fatalf("B received %q, want %q", m.Payload(), "second")
	}
	top := parseInput(t, m)
	if top.DeviceID != edgeID || top.ModuleID != "modB" || top.Input != "in1" {
		t.Fatalf("delivered on %q", m.Topic())
	}
	msg := iothub.MessageFromBag(m.Payload(), top.Bag)
	want := map[string]string{iothub.SysConnDeviceID: edgeID, iothub.SysConnModuleID: "modA"}
	for k, v := range want {
		if msg.System[k] != v {
			t.Errorf("system property %q = %q, want %q (topic %q)", k, msg.System[k], v, m.Topic())
		}
	}
	if _, ok := msg.System[iothub.SysOutputName]; ok {
		t.Errorf("$.on forwarded to the input (topic %q)", m.Topic())
	}
	if msg.System[iothub.SysMessageID] == "" {
		t.Errorf("no $.mid added (topic %q)", m.Topic())
	}
	if msg.Properties["level"] != "hot" {
		t.Errorf("application property level = %q, want hot", msg.Properties["level"])
	}
	if m.Qos() != 1 {
		t.Errorf("delivered at QoS %d, want 1", m.Qos())
	}
	if st := e.hub.Stats(); st.Unrouted != 3 || st.Stored != 1 {
		t.Errorf("Stats: unrouted %d stored %d, want 3 and 1", st.Unrouted, st.Stored)
	}
}

func TestRoute_HubStampsTheSender(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAtoB}))
	a := e.connect(modA)
	b := e.connect(modB)
	b.subscribeInputs(t)
	forged := iothub.Message{
		Properties: map[string]string{"level": "hot"},
		System: map[string]string{
			iothub.SysOutputName: "out1", iothub.SysConnDeviceID: "evil", iothub.SysConnModuleID: "evilModule",
			iothub.SysMessageID: "my-id",
		},
	}
	tok := a.Publish(iothub.TelemetryTopic(edgeID, "modA", forged.Bag()), 1, false, "x")
	tok.Wait()
	if tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	m := b.next(t)
	msg := iothub.MessageFromBag(m.Payload(), parseInput(t, m).Bag)
	if msg.System[iothub.SysConnDeviceID] != edgeID || msg.System[iothub.SysConnModuleID] != "modA" {
		t.Fatalf("forged sender not overwritten: cdid %q cmid %q", msg.System[iothub.SysConnDeviceID], msg.System[iothub.SysConnModuleID])
	}
	if msg.System[iothub.SysMessageID] != "my-id" {
		t.Fatalf("$.mid = %q, want the client's %q", msg.System[iothub.SysMessageID], "my-id")
	}
}

func TestRoute_DeviceCannotForgeAModuleSender(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{
		"leafToB": `FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO BrokeredEndpoint("/modules/modB/inputs/leaf")`,
	}))
	l := e.connect(leaf)
	b := e.connect(modB)
	b.subscribeInputs(t)
	forged := iothub.Message{System: map[string]string{iothub.SysConnModuleID: "modA"}}
	l.Publish(iothub.TelemetryTopic("leaf1", "", forged.Bag()), 1, false, "from leaf").Wait()
	m := b.next(t)
	msg := iothub.MessageFromBag(m.Payload(), parseInput(t, m).Bag)
	if _, ok := msg.System[iothub.SysConnModuleID]; ok || msg.System[iothub.SysConnDeviceID] != "leaf1" {
		t.Fatalf("device message delivered with system properties %v", msg.System)
	}
}

func TestRoute_OfflineModuleReceivesEverythingInOrder(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{"aToB": `FROM /messages/modules/modA/* INTO BrokeredEndpoint("/modules/modB/inputs/in1")`}))
	a := e.connect(modA)
	const n = 30
	for i := range n {
		a.send(t, "out1", map[string]string{"n": strconv.Itoa(i)}, fmt.Sprint(i))
	}
	b := e.connect(modB)
	b.subscribeInputs(t)
	for i := range n {
		if got := string(b.next(t).Payload()); got != strconv.Itoa(i) {
			t.Fatalf("message %d: got %q", i, got)
		}
	}
	waitFor(t, "all delivered", func() bool { return e.hub.Stats().Delivered == n })
}

func TestApplyConfig_BadRouteKeepsPreviousRoutes(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{"aToB": routeAtoB}))
	bad := &deployment.HubConfig{SchemaVersion: "1.1", Routes: map[string]deployment.Route{
		"good":  {Name: "good", Expr: "FROM /messages/* INTO $upstream", Priority: deployment.DefaultPriority},
		"typed": {Name: "typed", Expr: "FROM /messages/* WHERE temperature > 30 INTO $upstream", Priority: deployment.DefaultPriority},
	}}
	err := e.hub.ApplyConfig(bad)
	var de *deployment.Error
	if !errors.As(err, &de) || de.Code != deployment.CodeInvalid || de.Field != "routes.typed" {
		t.Fatalf("ApplyConfig = %#v, want a *deployment.Error 400 on routes.typed", err)
	}
	if err := e.hub.ApplyConfig(nil); !errors.As(err, &de) || de.Code != deployment.CodeInvalid {
		t.Fatalf("ApplyConfig(nil) = %v, want a 400", err)
	}
	// The previous route still works.
	a := e.connect(modA)
	b := e.connect(modB)
	b.subscribeInputs(t)
	a.send(t, "out1", map[string]string{"level": "hot"}, "still routed")
	if got := string(b.next(t).Payload()); got != "still routed" {
		t.Fatalf("got %q", got)
	}
	if e.up.callCount() != 0 {
		t.Fatal("the rejected configuration's $upstream route was applied")
	}
}
