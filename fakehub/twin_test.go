package fakehub_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
)

func TestTwin_DeviceFlow(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	c := dial(t, pahoOptions(t, s, cs))
	sink := &msgSink{}
	subscribe(t, c, sink, "$iothub/twin/res/#", "$iothub/twin/PATCH/properties/desired/#")

	expect := func(topic, body string) {
		t.Helper()
		msg := sink.wait(t, topic)
		if msg.Topic() != topic || string(msg.Payload()) != body {
			t.Fatalf("got %s %q\nwant %s %q", msg.Topic(), msg.Payload(), topic, body)
		}
	}

	// GET with the single-space body Node and Python send.
	publish(t, c, "$iothub/twin/GET/?$rid=get-1", 0, " ")
	expect("$iothub/twin/res/200/?$rid=get-1", `{"desired":{"$version":1},"reported":{"$version":1}}`)

	publish(t, c, "$iothub/twin/PATCH/properties/reported/?$rid=p1", 1, `{"fw":{"version":"1.2"},"temp":21.5}`)
	expect("$iothub/twin/res/204/?$rid=p1&$version=2", "")

	publish(t, c, "$iothub/twin/PATCH/properties/reported/?$rid=p2", 1, `{"temp":null}`)
	expect("$iothub/twin/res/204/?$rid=p2&$version=3", "")

	publish(t, c, "$iothub/twin/PATCH/properties/reported/?$rid=bad", 1, `{"temp":`)
	msg := sink.wait(t, "$iothub/twin/res/400/?$rid=bad")
	var e struct {
		ErrorCode int    `json:"errorCode"`
		Message   string `json:"message"`
	}
	if err := json.Unmarshal(msg.Payload(), &e); err != nil || e.ErrorCode != 400006 || e.Message == "" {
		t.Fatalf("error body %q: %v", msg.Payload(), err)
	}
	publish(t, c, "$iothub/twin/PATCH/properties/reported/?$rid=limit", 1, `{"$bad":1}`)
	msg = sink.wait(t, "$iothub/twin/res/400/?$rid=limit")
	if err := json.Unmarshal(msg.Payload(), &e); err != nil || e.ErrorCode != 400004 || !strings.Contains(e.Message, "$bad") {
		t.Fatalf("error body %q: %v", msg.Payload(), err)
	}

	// The service sees the reported properties.
	tw, err := s.GetTwin("dev1", "")
	if err != nil {
		t.Fatal(err)
	}
	if tw.Properties.Reported["$version"] != int64(3) || tw.Properties.Reported["fw"] == nil || tw.Properties.Reported["temp"] != nil {
		t.Fatalf("reported = %v", tw.Properties.Reported)
	}
	if _, ok := tw.Properties.Reported["$metadata"]; !ok {
		t.Fatalf("service view has no $metadata: %v", tw.Properties.Reported)
	}

	// A desired patch is pushed with $version in the topic and the body.
	var p fakehub.TwinPatch
	p.Properties.Desired = map[string]any{"interval": 5, "mode": "eco"}
	if _, err := s.PatchTwin("dev1", "", p, ""); err != nil {
		t.Fatal(err)
	}
	expect("$iothub/twin/PATCH/properties/desired/?$version=2", `{"interval":5,"mode":"eco","$version":2}`)
	p.Properties.Desired = map[string]any{"mode": nil}
	if _, err := s.PatchTwin("dev1", "", p, ""); err != nil {
		t.Fatal(err)
	}
	expect("$iothub/twin/PATCH/properties/desired/?$version=3", `{"mode":null,"$version":3}`)

	publish(t, c, "$iothub/twin/GET/?$rid=get-2", 0, "")
	expect("$iothub/twin/res/200/?$rid=get-2", `{"desired":{"interval":5,"$version":3},"reported":{"fw":{"version":"1.2"},"$version":3}}`)

	// Replacing desired sends the whole new document.
	if _, err := s.ReplaceTwin("dev1", "", fakehub.Twin{Tags: map[string]any{"site": "b"},
		Properties: fakehub.TwinProperties{Desired: map[string]any{"only": true, "$version": 99}}}, "*"); err != nil {
		t.Fatal(err)
	}
	expect("$iothub/twin/PATCH/properties/desired/?$version=4", `{"only":true,"$version":4}`)
}

func TestTwin_NotificationsOnlyToSubscribers(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	c := dial(t, pahoOptions(t, s, cs))
	sink := &msgSink{}
	subscribe(t, c, sink, "$iothub/twin/res/#")
	var p fakehub.TwinPatch
	p.Properties.Desired = map[string]any{"x": 1}
	if _, err := s.PatchTwin("dev1", "", p, ""); err != nil {
		t.Fatal(err)
	}
	// The hub writes a connection's packets in order: had the patch been sent, it would
	// arrive before the answer to this GET.
	publish(t, c, "$iothub/twin/GET/?$rid=1", 0, "")
	sink.wait(t, "$iothub/twin/res/200/?$rid=1")
	if n := len(sink.all()); n != 1 {
		t.Fatalf("received %d messages: %v", n, sink.all())
	}
}

func TestTwin_ModuleTwinAndServiceRules(t *testing.T) {
	s := fakehubtest.New(t)
	fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	_, cs := fakehubtest.MustModule(t, s, "edge1", "filter")
	c := dial(t, pahoOptions(t, s, cs))
	sink := &msgSink{}
	subscribe(t, c, sink, "$iothub/twin/res/#", "$iothub/twin/PATCH/properties/desired/#")
	publish(t, c, "$iothub/twin/PATCH/properties/reported/?$rid=1", 1, `{"status":"ok"}`)
	sink.wait(t, "$iothub/twin/res/204/?$rid=1&$version=2")

	tw, err := s.GetTwin("edge1", "filter")
	if err != nil {
		t.Fatal(err)
	}
	if tw.ModuleID != "filter" || tw.ConnectionState != "Connected" || tw.Capabilities != nil || tw.Version != 2 || tw.Etag != "AAAAAAAAAAI=" {
		t.Fatalf("module twin = %+v", tw)
	}
	var p fakehub.TwinPatch
	p.Tags = map[string]any{"env": "test"}
	if _, err := s.PatchTwin("edge1", "filter", p, "AAAAAAAAAAE="); !errors.Is(err, fakehub.ErrPreconditionFailed) {
		t.Fatalf("stale etag: %v", err)
	}
	tw, err = s.PatchTwin("edge1", "filter", p, `"AAAAAAAAAAI="`)
	if err != nil || tw.Tags["env"] != "test" || tw.Version != 3 {
		t.Fatalf("patch tags = %+v, %v", tw, err)
	}
	p = fakehub.TwinPatch{}
	p.Properties.Desired = map[string]any{"deep": nest(11)}
	if _, err := s.PatchTwin("edge1", "filter", p, ""); !errors.Is(err, fakehub.ErrInvalid) {
		t.Fatalf("too deep: %v", err)
	}
	if _, err := s.GetTwin("edge1", "ghost"); !errors.Is(err, fakehub.ErrNotFound) {
		t.Fatalf("unknown module: %v", err)
	}
	// Nothing was sent for the tags-only patch and the refused one.
	publish(t, c, "$iothub/twin/GET/?$rid=2", 0, "")
	sink.wait(t, "$iothub/twin/res/200/?$rid=2")
	for _, m := range sink.all() {
		if strings.HasPrefix(m.Topic(), "$iothub/twin/PATCH/") {
			t.Fatalf("unexpected notification %s %s", m.Topic(), m.Payload())
		}
	}
}

// nest returns {"l":{"l":...}} with depth levels of objects.
func nest(depth int) map[string]any {
	m := map[string]any{"leaf": 1}
	for range depth - 1 {
		m = map[string]any{"l": m}
	}
	return m
}

func TestTwin_ThrottledAnswers429(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	c := dial(t, pahoOptions(t, s, cs))
	sink := &msgSink{}
	subscribe(t, c, sink, "$iothub/twin/res/#")
	s.SetThrottle(true)
	defer s.SetThrottle(false)
	publish(t, c, "$iothub/twin/GET/?$rid=1", 0, "")
	sink.wait(t, "$iothub/twin/res/429/?$rid=1")
	publish(t, c, "$iothub/twin/PATCH/properties/reported/?$rid=2", 0, `{"a":1}`)
	sink.wait(t, "$iothub/twin/res/429/?$rid=2")
	s.SetThrottle(false)
	publish(t, c, "$iothub/twin/GET/?$rid=3", 0, "")
	if msg := sink.wait(t, "$iothub/twin/res/200/?$rid=3"); string(msg.Payload()) != `{"desired":{"$version":1},"reported":{"$version":1}}` {
		t.Fatalf("after throttling: %s", msg.Payload())
	}
}
