package perclient_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
)

// Two modules and a leaf connect to the edge hub: the cloud sees one plain connection per
// identity (and the edge hub's own, carrying only itself: no $edgehub multiplexing), and
// each message is attributed to its sender with its own generation id.
func TestPerClient_OneConnectionPerIdentity(t *testing.T) {
	clk := newClock()
	s := newCloud(t, clk)
	e := startEdge(t, s, clk)
	waitFor(t, 10*time.Second, "the edge hub's own connection", e.link.Connected)

	mc1, mc2, lc := e.connect(m1), e.connect(m2), e.connect(leaf1)
	want := map[string][]string{
		"edge1/$edgeHub": {"edge1/$edgeHub"},
		"edge1/m1":       {"edge1/m1"},
		"edge1/m2":       {"edge1/m2"},
		"leaf1":          {"leaf1"},
	}
	waitFor(t, 10*time.Second, "one connection per identity", func() bool {
		return maps.EqualFunc(connectionsByClient(s), want, slices.Equal[[]string])
	})

	const perSender = 5
	for i := range perSender {
		send(t, mc1, i)
		send(t, mc2, i)
		send(t, lc, i)
	}
	waitFor(t, 10*time.Second, "every message in the cloud", func() bool {
		return arrived(s, "edge1/m1", seqs(0, perSender)) && arrived(s, "edge1/m2", seqs(0, perSender)) &&
			arrived(s, "leaf1", seqs(0, perSender))
	})
	gens := map[string]string{}
	for _, id := range []string{"m1", "m2"} {
		m, _ := s.GetModule("edge1", id)
		gens["edge1/"+id] = m.GenerationID
	}
	d, _ := s.GetDevice("leaf1")
	gens["leaf1"] = d.GenerationID
	for _, ev := range s.Events(0, 0) {
		who := iothub.ClientID(ev.DeviceID, ev.ModuleID)
		if g, ok := gens[who]; !ok || ev.SystemProperties["iothub-connection-auth-generation-id"] != g {
			t.Fatalf("event attributed to %q with generation id %q, want a sender with its own", who,
				ev.SystemProperties["iothub-connection-auth-generation-id"])
		}
		if strings.Contains(ev.SystemProperties["iothub-connection-auth-method"], `"issuer":"edgeHub"`) {
			t.Fatalf("event of %q sent through the $edgehub extension", who)
		}
	}
	for who := range gens {
		checkInOrder(t, s, who)
	}
	// The edge hub's own connection carries nothing else.
	if got := connectionsByClient(s)["edge1/$edgeHub"]; !slices.Equal(got, []string{"edge1/$edgeHub"}) {
		t.Fatalf("the edge hub's connection carries %v", got)
	}
}

// Twins, direct methods and C2D go over each identity's own connection.
func TestPerClient_TwinsMethodsC2D(t *testing.T) {
	clk := newClock()
	s := newCloud(t, clk)
	e := startEdge(t, s, clk)
	waitFor(t, 10*time.Second, "the edge hub's own connection", e.link.Connected)
	ctx := ctxFor(t)

	patch := fakehub.TwinPatch{}
	patch.Properties.Desired = map[string]any{"rate": 5}
	if _, err := s.PatchTwin("edge1", "m1", patch, ""); err != nil {
		t.Fatal(err)
	}
	mc := e.newClient(m1, e.clientOptions(24*time.Hour))
	desired := make(chan string, 16)
	mc.OnDesired(func(p map[string]any, version int64) {
		b, _ := json.Marshal(p)
		desired <- fmt.Sprintf("%d %s", version, b)
	})
	mc.HandleMethod("reset", func(_ context.Context, payload []byte) (int, []byte) {
		return 200, []byte(fmt.Sprintf(`{"got":%s}`, payload))
	})
	if err := mc.Connect(ctx); err != nil {
		t.Fatal(err)
	}

	// Twin GET: the cloud's desired properties reach the module.
	d, _, err := mc.GetTwin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(d["rate"]) != "5" {
		t.Fatalf("twin GET through the edge hub: desired %v, want rate 5", d)
	}
	// Reported properties reach the cloud.
	if _, err := mc.UpdateReported(ctx, map[string]any{"temp": 21}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the reported property in the cloud", func() bool {
		tw, err := s.GetTwin("edge1", "m1")
		return err == nil && fmt.Sprint(tw.Properties.Reported["temp"]) == "21"
	})
	// A desired change made in the cloud reaches the module.
	patch.Properties.Desired = map[string]any{"rate": 7}
	if _, err := s.PatchTwin("edge1", "m1", patch, ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for got := ""; !strings.Contains(got, `"rate":7`); {
		select {
		case got = <-desired:
		case <-deadline:
			t.Fatalf("the desired change did not reach the module (last %q)", got)
		}
	}

	// A direct method from the cloud reaches the module, and its answer comes back.
	waitFor(t, 10*time.Second, "m1 subscribed to methods upstream", func() bool {
		r, err := s.InvokeMethod(ctx, "edge1", "m1", fakehub.MethodRequest{MethodName: "reset", Payload: json.RawMessage(`{"n":1}`), ResponseTimeoutInSeconds: 5})
		if err != nil {
			return false
		}
		if r.Status != 200 || string(r.Payload) != `{"got":{"n":1}}` {
			t.Fatalf("method answer %d %s", r.Status, r.Payload)
		}
		return true
	})

	// C2D to the leaf, through the hub's store.
	lc := e.newClient(leaf1, e.clientOptions(24*time.Hour))
	c2d := make(chan iothub.Message, 4)
	lc.OnC2D(func(m iothub.Message) { c2d <- m })
	if err := lc.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "leaf1 subscribed to C2D upstream", func() bool {
		return slices.Contains(connectionsByClient(s)["leaf1"], "leaf1")
	})
	if _, err := s.SendC2D("leaf1", fakehub.C2DMessage{Body: []byte("open the valve"), Properties: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-c2d:
		if string(m.Body) != "open the valve" || m.Properties["k"] != "v" {
			t.Fatalf("C2D message %q %v", m.Body, m.Properties)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the C2D message did not reach the leaf")
	}
	waitFor(t, 10*time.Second, "the C2D message completed in the cloud", func() bool { return s.PendingC2D("leaf1") == 0 })

	// A module that does not subscribe to methods locally is not subscribed upstream: the
	// cloud answers the call itself (device not online).
	e.connect(m2)
	if _, err := s.InvokeMethod(ctx, "edge1", "m2", fakehub.MethodRequest{MethodName: "reset", ResponseTimeoutInSeconds: 1}); err == nil {
		t.Fatal("a method on m2, which subscribed to none, was answered")
	}
}

// The network is cut: the clients keep getting PUBACKs (the hub stores), and once it
// returns each identity's backlog drains on its own connection, in order.
func TestPerClient_NetworkCut_BacklogDrainsPerIdentity(t *testing.T) {
	clk := newClock()
	s := newCloud(t, clk)
	e := startEdge(t, s, clk)
	waitFor(t, 10*time.Second, "the edge hub's own connection", e.link.Connected)
	clients := map[string]*moduleclient.Client{"edge1/m1": e.connect(m1), "edge1/m2": e.connect(m2), "leaf1": e.connect(leaf1)}
	for who, c := range clients {
		send(t, c, 0)
		waitFor(t, 10*time.Second, who+"'s first message", func() bool { return arrived(s, who, seqs(0, 1)) })
	}

	s.CutNetwork()
	waitFor(t, 5*time.Second, "the losses noticed", func() bool {
		st := e.link.Sessions()
		return !e.link.Connected() && st["edge1/m1"] == "down" && st["edge1/m2"] == "down" && st["leaf1"] == "down"
	})
	const n = 30
	for i := 1; i < n; i++ {
		for _, c := range clients {
			send(t, c, i)
		}
	}
	for who := range clients {
		if got := len(received(s)[who]); got != 1 {
			t.Fatalf("%s: %d messages in the cloud while the network was cut, want 1", who, got)
		}
	}
	s.RestoreNetwork()
	waitFor(t, 15*time.Second, "every backlog in the cloud", func() bool {
		for who := range clients {
			if !arrived(s, who, seqs(0, n)) {
				return false
			}
		}
		return true
	})
	for who := range clients {
		checkInOrder(t, s, who)
	}
	waitFor(t, 10*time.Second, "one connection per identity after the restore", func() bool {
		return maps.EqualFunc(connectionsByClient(s), map[string][]string{"edge1/$edgeHub": {"edge1/$edgeHub"}, "edge1/m1": {"edge1/m1"},
			"edge1/m2": {"edge1/m2"}, "leaf1": {"leaf1"}}, slices.Equal[[]string])
	})
}
