package uplink_test

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// (a) Clients never seen before are authenticated upstream on their first connection and
// cached; the cloud sees one physical connection carrying all of them; their telemetry is
// attributed to them, not to the edge hub.
func TestOneLinkCarriesEveryClient_FirstAuthUpstream(t *testing.T) {
	s := newCloud(t)
	e := startEdge(t, s, t.TempDir())
	waitFor(t, 10*time.Second, "the upstream link", e.up.Connected)
	if n := len(e.ids.List()); n != 0 {
		t.Fatalf("the identity cache holds %d identities before any client connected", n)
	}

	senders := []sas.Identity{m1, m2, m3, leaf1, leaf2}
	clients := map[sas.Identity]*moduleclient.Client{}
	for _, id := range senders {
		clients[id] = e.connect(id)
	}
	if got := e.ids.List(); len(got) != len(senders) {
		t.Fatalf("the identity cache holds %d identities after the first connections, want %d", len(got), len(senders))
	}
	want := []string{"edge1/$edgeHub", "edge1/m1", "edge1/m2", "edge1/m3", "leaf1", "leaf2"}
	waitFor(t, 10*time.Second, "one connection carrying $edgeHub and the 5 clients", func() bool {
		return slices.Equal(carried(s), want)
	})

	const perSender = 3
	for i := range perSender {
		for _, id := range senders {
			send(t, clients[id], i)
		}
	}
	waitFor(t, 10*time.Second, "every message in the cloud", func() bool { return len(s.Events(0, 0)) >= perSender*len(senders) })
	gens := map[string]string{}
	for _, id := range senders {
		if id.ModuleID == "" {
			d, _ := s.GetDevice(id.DeviceID)
			gens[id.String()] = d.GenerationID
		} else {
			m, _ := s.GetModule(id.DeviceID, id.ModuleID)
			gens[iothub.ClientID(id.DeviceID, id.ModuleID)] = m.GenerationID
		}
	}
	for _, ev := range s.Events(0, 0) {
		who := iothub.ClientID(ev.DeviceID, ev.ModuleID)
		if g, ok := gens[who]; !ok || ev.SystemProperties["iothub-connection-auth-generation-id"] != g {
			t.Fatalf("event attributed to %q with generation id %q; want one of the senders with its own generation id",
				who, ev.SystemProperties["iothub-connection-auth-generation-id"])
		}
	}
	for who, got := range received(s) {
		if !slices.Equal(got, seqs(0, perSender)) {
			t.Fatalf("%s: captured %v, want %v", who, got, seqs(0, perSender))
		}
	}
	if conns := s.Connections(); len(conns) != 1 || conns[0].ClientID != "edge1/$edgeHub" {
		t.Fatalf("the cloud sees %d connections, want only the edge hub's: %+v", len(conns), conns)
	}

	// A client that leaves is detached.
	clients[leaf2].Close()
	waitFor(t, 10*time.Second, "leaf2 detached", func() bool {
		return slices.Equal(carried(s), slices.DeleteFunc(slices.Clone(want), func(s string) bool { return s == "leaf2" }))
	})
}

// (b) The network is cut during steady traffic from two senders: the clients keep getting
// PUBACKs (the hub stores), and after the network returns every acknowledged message
// arrives, in order per sender (duplicates counted).
func TestNetworkCut_StoreAndForwardInOrder(t *testing.T) {
	s := newCloud(t)
	e := startEdge(t, s, t.TempDir())
	waitFor(t, 10*time.Second, "the upstream link", e.up.Connected)
	senders := map[string]*moduleclient.Client{"edge1/m1": e.connect(m1), "leaf1": e.connect(leaf1)}

	var mu sync.Mutex
	acked := map[string][]int{}
	ackedCount := func(who string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked[who])
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for who, c := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(2 * time.Millisecond) // about 500 messages per second each
			defer tick.Stop()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if err := trySend(ctxFor(t), c, seq); err != nil {
					t.Errorf("%s: send %d: %v", who, seq, err)
					return
				}
				mu.Lock()
				acked[who] = append(acked[who], seq)
				mu.Unlock()
			}
		}()
	}
	waitFor(t, 10*time.Second, "traffic reaching the cloud", func() bool { return len(s.Events(0, 0)) >= 100 })

	s.CutNetwork()
	cutAt := time.Now()
	waitFor(t, 5*time.Second, "the link loss noticed", func() bool { return !e.up.Connected() })
	t.Logf("link loss noticed after %v", time.Since(cutAt).Round(time.Millisecond))
	before := map[string]int{}
	for who := range senders {
		before[who] = ackedCount(who)
	}
	waitFor(t, 10*time.Second, "PUBACKs to continue while offline", func() bool {
		for who := range senders {
			if ackedCount(who) < before[who]+300 {
				return false
			}
		}
		return true
	})
	captured := len(s.Events(0, 0))
	s.RestoreNetwork()
	restoredAt := time.Now()
	waitFor(t, 10*time.Second, "the first delivery after the network returned", func() bool { return len(s.Events(0, 0)) > captured })
	t.Logf("network restored: first delivery after %v", time.Since(restoredAt).Round(time.Millisecond))
	waitFor(t, 10*time.Second, "more live traffic after the restore", func() bool { return ackedCount("leaf1") > before["leaf1"]+600 })
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	waitFor(t, 20*time.Second, "every acknowledged message in the cloud", func() bool {
		for who, a := range acked {
			if !allArrived(s, who, a) {
				return false
			}
		}
		return true
	})
	got := received(s)
	for who, a := range acked {
		dups := checkDelivery(t, who, got[who], a)
		t.Logf("%s: %d acknowledged, %d captured, %d duplicates", who, len(a), len(got[who]), dups)
	}
}

// (c) The edge hub restarts while offline: a client it knows reconnects with a renewed
// token and is accepted from the cache; the backlog of before and after the restart drains
// once the network returns.
func TestHubRestartOffline_KnownClientRenewedTokenAndBacklog(t *testing.T) {
	s := newCloud(t)
	dir := t.TempDir()
	e := startEdge(t, s, dir)
	waitFor(t, 10*time.Second, "the upstream link", e.up.Connected)
	c := e.connect(leaf1)
	for i := range 5 {
		send(t, c, i)
	}
	waitFor(t, 10*time.Second, "the first messages in the cloud", func() bool { return allArrived(s, "leaf1", seqs(0, 5)) })

	s.CutNetwork()
	waitFor(t, 5*time.Second, "the link loss noticed", func() bool { return !e.up.Connected() })
	for i := 5; i < 10; i++ {
		send(t, c, i)
	}
	c.Close()
	e.stop()

	e = startEdge(t, s, dir)
	opts := e.clientOptions()
	opts.Now = func() time.Time { return time.Now().Add(20 * time.Minute) } // a token that expires later
	c = e.newClient(leaf1, opts)
	if err := c.Connect(ctxFor(t)); err != nil {
		t.Fatalf("known client with a renewed token refused while offline: %v", err)
	}
	if e.up.Connected() {
		t.Fatal("the link is up: the test proves nothing")
	}
	for i := 10; i < 15; i++ {
		send(t, c, i)
	}
	if n := len(received(s)["leaf1"]); n != 5 {
		t.Fatalf("%d messages of leaf1 in the cloud while offline, want 5", n)
	}

	s.RestoreNetwork()
	waitFor(t, 10*time.Second, "the backlog of both runs in the cloud", func() bool { return allArrived(s, "leaf1", seqs(0, 15)) })
	checkDelivery(t, "leaf1", received(s)["leaf1"], seqs(0, 15))
}

// (d) The cloud restarts (same registry): the link comes back on its own, the client is
// attached again, and nothing sent meanwhile is lost.
func TestCloudRestart_LinkBackNothingLost(t *testing.T) {
	s := newCloud(t)
	e := startEdge(t, s, t.TempDir())
	waitFor(t, 10*time.Second, "the upstream link", e.up.Connected)
	c := e.connect(m1)
	send(t, c, 0)
	waitFor(t, 10*time.Second, "the first message", func() bool { return allArrived(s, "edge1/m1", seqs(0, 1)) })
	waitFor(t, 10*time.Second, "m1 attached", func() bool { return slices.Equal(carried(s), []string{"edge1/$edgeHub", "edge1/m1"}) })

	mqttAddr, plainAddr := s.MQTTAddress(), s.PlainMQTTAddress()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the link loss noticed", func() bool { return !e.up.Connected() })
	for i := 1; i < 20; i++ {
		send(t, c, i)
	}
	s.MQTTAddr, s.PlainMQTTAddr = mqttAddr, plainAddr // same ports: the edge hub dials the same address
	if err := s.Start(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the link back, m1 attached again", func() bool {
		return slices.Equal(carried(s), []string{"edge1/$edgeHub", "edge1/m1"})
	})
	waitFor(t, 10*time.Second, "everything in the cloud", func() bool { return allArrived(s, "edge1/m1", seqs(0, 20)) })
	checkDelivery(t, "edge1/m1", received(s)["edge1/m1"], seqs(0, 20))
}

// (e) The cloud refuses the edge hub's CONNECTs for a while: messages wait in the store,
// then arrive once it accepts again.
func TestRefuseAuth_MessagesWaitThenArrive(t *testing.T) {
	s := newCloud(t)
	e := startEdge(t, s, t.TempDir())
	waitFor(t, 10*time.Second, "the upstream link", e.up.Connected)
	c := e.connect(leaf1)
	send(t, c, 0)
	waitFor(t, 10*time.Second, "the first message", func() bool { return allArrived(s, "leaf1", seqs(0, 1)) })

	s.SetRefuseAuth(true)
	s.CutNetwork() // established connections are not affected by SetRefuseAuth: drop it
	waitFor(t, 5*time.Second, "the link loss noticed", func() bool { return !e.up.Connected() })
	s.RestoreNetwork()
	for i := 1; i < 10; i++ {
		send(t, c, i)
	}
	waitFor(t, 10*time.Second, "two refused reconnections", func() bool {
		return e.logs.count("connecting to IoT Hub failed", "0x05") >= 2
	})
	if n := len(received(s)["leaf1"]); n != 1 {
		t.Fatalf("%d messages in the cloud while it refused the link, want 1", n)
	}
	s.SetRefuseAuth(false)
	waitFor(t, 10*time.Second, "everything in the cloud", func() bool { return allArrived(s, "leaf1", seqs(0, 10)) })
	checkDelivery(t, "leaf1", received(s)["leaf1"], seqs(0, 10))
}

// (f) The cloud throttles (drops telemetry without PUBACK): the sends time out, the
// messages stay stored and arrive, in order, once the throttling ends.
func TestThrottle_MessagesWaitThenArriveInOrder(t *testing.T) {
	s := newCloud(t)
	e := startEdge(t, s, t.TempDir())
	waitFor(t, 10*time.Second, "the upstream link", e.up.Connected)
	c := e.connect(leaf1)
	send(t, c, 0)
	waitFor(t, 10*time.Second, "the first message", func() bool { return allArrived(s, "leaf1", seqs(0, 1)) })

	s.SetThrottle(true)
	failures := e.srv.Stats().DeliveryFailures
	for i := 1; i < 30; i++ {
		send(t, c, i)
	}
	waitFor(t, 10*time.Second, "a send timing out", func() bool { return e.srv.Stats().DeliveryFailures > failures })
	if n := len(received(s)["leaf1"]); n != 1 {
		t.Fatalf("%d messages in the cloud while it throttled, want 1", n)
	}
	s.SetThrottle(false)
	waitFor(t, 10*time.Second, "everything in the cloud", func() bool { return allArrived(s, "leaf1", seqs(0, 30)) })
	checkDelivery(t, "leaf1", received(s)["leaf1"], seqs(0, 30))
}

// (g) A leaf disabled in the cloud is disconnected at the next refresh of the cache, and
// cannot connect again.
func TestRefresh_DisabledLeafDisconnected(t *testing.T) {
	s := newCloud(t)
	e := startEdge(t, s, t.TempDir())
	waitFor(t, 10*time.Second, "the upstream link", e.up.Connected)
	lost := make(chan error, 16)
	c := e.newClient(leaf1, e.clientOptions())
	c.OnConnectionChange(func(connected bool, err error) {
		if !connected {
			lost <- err
		}
	})
	if err := c.Connect(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	other := e.connect(m1)

	d, err := s.GetDevice("leaf1")
	if err != nil {
		t.Fatal(err)
	}
	d.Status = "disabled"
	if _, err := s.PutDevice(d, "*"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the disabled leaf was not disconnected")
	}
	if r, ok := e.ids.Get(leaf1); !ok || !r.Disabled {
		t.Fatalf("cached record of leaf1: %+v (cached %v), want it disabled", r, ok)
	}
	refused := e.srv.Stats().AuthRefused
	waitFor(t, 10*time.Second, "the leaf's reconnection refused", func() bool { return e.srv.Stats().AuthRefused > refused })
	send(t, other, 0) // the other client is untouched
}

// (h) A client the hub has never seen cannot connect while the cloud is unreachable.
func TestUnknownIdentityOffline_Refused(t *testing.T) {
	s := newCloud(t)
	e := startEdge(t, s, t.TempDir())
	waitFor(t, 10*time.Second, "the upstream link", e.up.Connected)
	e.connect(leaf1)
	s.CutNetwork()
	waitFor(t, 5*time.Second, "the link loss noticed", func() bool { return !e.up.Connected() })

	c := e.newClient(leaf2, e.clientOptions())
	err := c.Connect(ctxFor(t))
	if !errors.Is(err, moduleclient.ErrNotAuthorized) {
		t.Fatalf("unknown leaf2 while offline: Connect = %v, want ErrNotAuthorized", err)
	}
	if _, ok := e.ids.Get(leaf2); ok {
		t.Fatal("leaf2 cached although the cloud was never asked")
	}
	// leaf1, known, still connects.
	e.connect(leaf1)
}

// A client whose key was rolled in the cloud connects with a token of the new key: the
// cached keys do not verify it, so the hub asks the cloud and caches the new keys.
func TestRolledKey_AskedUpstreamAndCached(t *testing.T) {
	s := newCloud(t)
	e := startEdge(t, s, t.TempDir())
	waitFor(t, 10*time.Second, "the upstream link", e.up.Connected)
	c := e.connect(leaf1)
	old, _ := e.ids.Get(leaf1)
	c.Close()

	d, err := s.GetDevice("leaf1")
	if err != nil {
		t.Fatal(err)
	}
	d.Authentication.SymmetricKey = &fakehub.SymmetricKey{
		PrimaryKey: "TmV3UHJpbWFyeUtleU5ld1ByaW1hcnlLZXlOZXdQcmk=", SecondaryKey: "TmV3U2Vjb25kYXJ5S2V5TmV3U2Vjb25kYXJ5S2V5TmU=",
	}
	if _, err := s.PutDevice(d, "*"); err != nil {
		t.Fatal(err)
	}
	c = e.connect(leaf1) // newClient reads the connection string with the new key
	if r, _ := e.ids.Get(leaf1); r.Keys == old.Keys || r.Keys.Primary != d.Authentication.SymmetricKey.PrimaryKey {
		t.Fatalf("cached keys %+v, want the rolled ones", r.Keys)
	}
	send(t, c, 0)
	waitFor(t, 10*time.Second, "the message in the cloud", func() bool { return allArrived(s, "leaf1", seqs(0, 1)) })
}
