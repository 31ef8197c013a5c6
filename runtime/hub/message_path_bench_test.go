package hub

import (
	"bytes"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/route"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/store"
)

// BenchmarkMessagePath measures the hub's own per-message work for a routed 1 KB module
// message, without sockets or the store: on ingest, parsing the topic, splitting the bag,
// stamping, evaluating the routes and encoding the envelope (Server.ingest); on delivery,
// decoding the envelope and building the module input's topic (pump.publishOf). "bench" is
// the message scripts/bench sends ($.on only); "sdk" one as the device SDKs send it.
//
//	go test -run '^$' -bench MessagePath -benchmem ./runtime/hub/
func BenchmarkMessagePath(b *testing.B) {
	tbl, err := route.Compile([]route.Spec{
		{Name: "r1", Text: `FROM /messages/modules/pub000/outputs/o1 INTO BrokeredEndpoint("/modules/sink/inputs/input1")`, Priority: route.DefaultPriority},
		{Name: "r2", Text: `FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO $upstream`, Priority: route.DefaultPriority},
	})
	if err != nil {
		b.Fatal(err)
	}
	sender := sas.Identity{DeviceID: "edge1", ModuleID: "pub000"}
	body := bytes.Repeat([]byte("x"), 1024)
	ep := route.Endpoint{Kind: route.ModuleInput, Module: "sink", Input: "input1"}
	for _, c := range []struct {
		name string
		bag  iothub.Bag
	}{
		{"bench", iothub.Bag{{Key: "$.on", Value: "o1"}}},
		{"sdk", iothub.Bag{
			{Key: "$.on", Value: "o1"}, {Key: "$.mid", Value: "6f1c2a4e-8d2b-4b7e-9a55-3c1d2e4f5a6b"},
			{Key: "$.ct", Value: "application/json"}, {Key: "$.ce", Value: "utf-8"},
			{Key: "level", Value: "critical"}, {Key: "site", Value: "plant-7"},
		}},
	} {
		topic := iothub.TelemetryTopic(sender.DeviceID, sender.ModuleID, c.bag)
		b.Run("ingest/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			var rm route.Message
			for range b.N {
				t, err := iothub.ParseTopic(topic)
				if err != nil {
					b.Fatal(err)
				}
				e := envelope{Sender: sender, Enqueued: time.Now().UTC(), Message: iothub.MessageFromBag(body, t.Bag)}
				stamp(&e, false)
				if targets := tbl.Evaluate(routeMessage(&e, &rm)); len(targets) != 1 {
					b.Fatalf("%d targets, want 1", len(targets))
				}
				_ = e.encode()
			}
		})
		e := envelope{Sender: sender, Enqueued: time.Now().UTC(), Message: iothub.MessageFromBag(body, c.bag)}
		stamp(&e, false)
		p := &pump{s: &Server{opts: Options{EdgeDeviceID: "edge1"}}, ep: ep}
		it := store.Item{Queue: "q", Seq: 1, Body: e.encode()}
		b.Run("deliver/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				pk, err := p.publishOf(it)
				if err != nil || len(pk.Payload) != len(body) {
					b.Fatalf("publishOf: %v, %d bytes", err, len(pk.Payload))
				}
			}
		})
	}
}
