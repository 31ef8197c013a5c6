package main

// The end-to-end test of issue 3's "Done when": the fake IoT Hub, the real edgehub binary and
// module clients over real sockets, showing routing with conditions, priorities, TTL expiry,
// the byte cap and a hub killed with SIGKILL and started again, with no acknowledged message
// lost. The helpers it shares with the crash tests are in crash_helpers_test.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/store"
)

// e2eConfig is the hub's --config. m1 sends temperatures: above 30 to the sink module's
// "alerts" input, the rest to IoT Hub (a message whose body is not declared JSON matches
// neither condition). m2 sends on "urgent" (priority 0) and "bulk" (priority 5), m3 on
// "short" (a route TTL of 1 s) and "long" (the global TTL); m4 and leaf1 are the fleet of
// the byte cap and restart phases.
const e2eConfig = `{"edgeHub": {"schemaVersion": "1.1", "routes": {
  "alerts": "FROM /messages/modules/m1/outputs/temperature WHERE $body.temperature > 30 INTO BrokeredEndpoint(\"/modules/sink/inputs/alerts\")",
  "normal": "FROM /messages/modules/m1/outputs/temperature WHERE $body.temperature <= 30 INTO $upstream",
  "urgent": {"route": "FROM /messages/modules/m2/outputs/urgent INTO $upstream", "priority": 0},
  "bulk": {"route": "FROM /messages/modules/m2/outputs/bulk INTO $upstream", "priority": 5, "timeToLiveSecs": 3600},
  "short": {"route": "FROM /messages/modules/m3/outputs/short INTO $upstream", "timeToLiveSecs": 1},
  "long": "FROM /messages/modules/m3/outputs/long INTO $upstream",
  "fleet": "FROM /messages/modules/m4/* INTO $upstream",
  "leaves": "FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO $upstream"},
  "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}}}`

// e2eMaxBytes is the store's cap (reject-new): far above the backlogs of the routing phases,
// reached by the fleet's 1 KB messages in about 200.
const e2eMaxBytes = 256 << 10

// TestE2E_RoutingStoreAndRestart runs one edge hub through every aspect in turn, each a
// subtest that builds on the state the previous one left (a phase that fails stops the rest).
func TestE2E_RoutingStoreAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the edgehub binary, kills it and restarts it")
	}
	e := newE2E(t)
	for _, phase := range []struct {
		name string
		run  func(*e2e, *testing.T)
	}{
		{"where condition", (*e2e).whereCondition},
		{"priorities and ttl with the network cut", (*e2e).prioritiesAndTTL},
		{"byte cap refuses new messages", (*e2e).byteCap},
		{"sigkill and restart lose nothing acknowledged", (*e2e).killAndRestart},
	} {
		start := time.Now()
		ok := t.Run(phase.name, func(t *testing.T) { phase.run(e, t) })
		t.Logf("phase %q took %v", phase.name, time.Since(start).Round(10*time.Millisecond))
		if !ok {
			return
		}
	}
}

// e2e is the shared setup: the cloud, the hub, the module clients connected at the start
// (their first connection needs IoT Hub, which authenticates them) and the sink's inbox.
type e2e struct {
	c          *cloud
	h          *hubRunner
	m1, m2, m3 *moduleClient
	sinkCS     sas.ConnectionString
	sink       paho.Client
	inbox      *inbox
	fleet      *fleet // m4 and leaf1, from the byte cap phase on
}

func newE2E(t *testing.T) *e2e {
	dir := t.TempDir()
	c := newCloud(t, dir, 4, 1) // m1..m4, leaf1
	_, sinkText := fakehubtest.MustModule(t, c.s, "edge1", "sink")
	sinkCS, err := sas.ParseConnectionString(sinkText)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "e2e-config.json")
	writeFile(t, cfg, e2eConfig)
	args := slices.Clone(c.hubArgs)
	args[slices.Index(args, "--config")+1] = cfg
	args = append(args, "--store-max-bytes", strconv.Itoa(e2eMaxBytes), "--store-full-policy", "reject-new",
		"--metrics-addr", "127.0.0.1:0")
	h := newHubRunner(t, filepath.Join(dir, "data"), args...)
	h.start()
	e := &e2e{c: c, h: h, sinkCS: sinkCS, inbox: &inbox{}}
	e.m1 = dialModule(t, c.senders[0], h.currentAddr())
	e.m2 = dialModule(t, c.senders[1], h.currentAddr())
	e.m3 = dialModule(t, c.senders[2], h.currentAddr())
	e.sink = e.inbox.subscribe(t, sinkCS, h.currentAddr())
	return e
}

// whereCondition: m1's temperatures above 30 reach the sink's "alerts" input, stamped with
// m1 as their sender, in order; the others reach IoT Hub and never the sink; a message
// whose body is not declared JSON matches neither condition and is dropped as unrouted.
func (e *e2e) whereCondition(t *testing.T) {
	temps := []float64{25, 31, 30, 45.5, 12, 99, 30.01, -40}
	for i, temp := range temps {
		e.m1.send(t, "temperature", reading(i, temp), true)
	}
	e.m1.send(t, "temperature", reading(100, 50), false) // no content type: $body is undefined
	// Markers, one per endpoint, sent last: once each has arrived, everything sent before
	// it on the same route has too (in order per endpoint), so what is missing never will.
	e.m1.send(t, "temperature", reading(101, 1000), true)
	e.m1.send(t, "temperature", reading(102, 0), true)
	var wantSink, wantCloud []int
	for i, temp := range temps {
		if temp > 30 {
			wantSink = append(wantSink, i)
		} else {
			wantCloud = append(wantCloud, i)
		}
	}
	wantSink, wantCloud = append(wantSink, 101), append(wantCloud, 102)

	waitUntil(t, 15*time.Second, "the sink's marker", func() bool { return slices.Contains(e.inbox.seqs(), 101) })
	for _, m := range e.inbox.all() {
		if m.input != "alerts" || m.cdid != "edge1" || m.cmid != "m1" {
			t.Errorf("the sink got a message on input %q from %s/%s, want alerts from edge1/m1", m.input, m.cdid, m.cmid)
		}
	}
	if got := firstReceptions(e.inbox.seqs()); !slices.Equal(got, wantSink) {
		t.Errorf("the sink got readings %v, want %v (those above 30, in order)", got, wantSink)
	}

	waitUntil(t, 15*time.Second, "IoT Hub's marker", func() bool { return slices.Contains(readingsFrom(e.c.s, "m1"), 102) })
	if got := firstReceptions(readingsFrom(e.c.s, "m1")); !slices.Equal(got, wantCloud) {
		t.Errorf("IoT Hub got m1's readings %v, want %v (those of 30 and below, in order)", got, wantCloud)
	}
	if n := e.metric(t, "outpost_edgehub_messages_dropped_total", `reason="no_route"`); n != 1 {
		t.Errorf("messages_dropped_total{reason=no_route} = %v, want 1 (the reading without a JSON content type)", n)
	}
}

// prioritiesAndTTL cuts the network and has m3 send messages with a route TTL of 1 s and
// with the global TTL, and m2 messages of priority 5 and 0, interleaved. The short-lived
// ones expire in the store (counted as ttl_expiry) and never reach IoT Hub. When the
// network returns, m2's priority-0 messages drain first, as the store's scheduling rule
// says (runtime/store doc.go, "Scheduling"): after K = store.DefaultPriorityBurst
// consecutive items of the higher priority while a lower one waits, one of the lower.
func (e *e2e) prioritiesAndTTL(t *testing.T) {
	const ttlPairs, prioPairs = 20, 60
	e.cutNetwork(t)
	for i := range ttlPairs {
		e.m3.send(t, "short", reading(2*i, 0), true)
		e.m3.send(t, "long", reading(2*i+1, 0), true)
	}
	// Bulk first in each pair: in arrival order, every bulk message precedes an urgent one.
	for i := range prioPairs {
		e.m2.send(t, "bulk", reading(2*i, 0), true)
		e.m2.send(t, "urgent", reading(2*i+1, 0), true)
	}
	waitUntil(t, 15*time.Second, fmt.Sprintf("%d messages dropped for ttl_expiry", ttlPairs), func() bool {
		return e.metric(t, "outpost_edgehub_messages_dropped_total", `reason="ttl_expiry"`) >= ttlPairs
	})
	if got := readingsFrom(e.c.s, "m2"); len(got) > 0 {
		t.Fatalf("IoT Hub got %d of m2's messages with the network cut: the cut did not hold", len(got))
	}
	e.c.s.RestoreNetwork()

	waitUntil(t, 30*time.Second, "m2's and m3's backlogs to reach IoT Hub", func() bool {
		return len(firstReceptions(readingsFrom(e.c.s, "m2"))) >= 2*prioPairs &&
			slices.Contains(readingsFrom(e.c.s, "m3"), 2*ttlPairs-1)
	})

	// TTL: the long-lived readings (odd) all arrived, in order, after the short-lived
	// (even), which were interleaved with them in the same lane, so none can still come.
	var wantLong []int
	for i := range ttlPairs {
		wantLong = append(wantLong, 2*i+1)
	}
	if got := firstReceptions(readingsFrom(e.c.s, "m3")); !slices.Equal(got, wantLong) {
		t.Errorf("IoT Hub got m3's readings %v, want only the long-lived ones %v", got, wantLong)
	}
	if n := e.metric(t, "outpost_edgehub_messages_dropped_total", `reason="ttl_expiry"`); n != ttlPairs {
		t.Errorf("messages_dropped_total{reason=ttl_expiry} = %v, want %d", n, ttlPairs)
	}

	// Priorities: in the order IoT Hub received them, each priority in its own order, and
	// the bulk messages that came before the last urgent one are as few as the rule allows.
	got := firstReceptions(readingsFrom(e.c.s, "m2"))
	var urgent, bulk []int
	bulkBeforeLastUrgent := 0
	for _, seq := range got {
		if seq%2 == 1 {
			urgent = append(urgent, seq)
			bulkBeforeLastUrgent = len(bulk)
		} else {
			bulk = append(bulk, seq)
		}
	}
	if len(urgent) != prioPairs || len(bulk) != prioPairs || !slices.IsSorted(urgent) || !slices.IsSorted(bulk) {
		t.Errorf("m2's %d urgent and %d bulk messages arrived as %v: want %d of each, each in order", len(urgent), len(bulk), got, prioPairs)
	}
	// The rule, from an unknown streak s in [0, K] (Read keeps it from earlier reads): the
	// first K-s urgent messages, then one bulk, then K urgent, one bulk, and so on. So
	// ceil(n/K)-1 or ceil(n/K) bulk messages precede the last of n urgent ones; arrival order
	// would give n, and strict priority 0.
	k := store.DefaultPriorityBurst
	hi := (prioPairs + k - 1) / k
	t.Logf("IoT Hub got m2's messages in this order (odd: urgent, priority 0; even: bulk, priority 5): %v", got)
	if bulkBeforeLastUrgent < hi-1 || bulkBeforeLastUrgent > hi {
		t.Errorf("%d bulk messages reached IoT Hub before the last urgent one, want %d or %d (priority burst %d, %d urgent)",
			bulkBeforeLastUrgent, hi-1, hi, k, prioPairs)
	}
}

// byteCap starts the fleet (m4, leaf1: 1 KB messages as fast as acknowledged), cuts the
// network and lets the store fill up to its cap: the hub refuses the publishes that do not
// fit (closing the connection without a PUBACK, at once), counts them, keeps no more than
// the cap, and stays up.
func (e *e2e) byteCap(t *testing.T) {
	e.fleet = startFleet(t, e.c.senders[3:], 1024, e.h.currentAddr)
	waitUntil(t, 20*time.Second, "every fleet sender accepted and acknowledged once", func() bool { return e.fleet.eachAckedAtLeast(nil, 1) })
	e.fleet.cutQuietly(t, e.c.s, e.h)
	cutAt := e.fleet.totalAcked()
	refusedBefore := len(e.h.logLines(refusalMsg))
	waitUntil(t, 30*time.Second, "the store to reach its cap and the hub to refuse publishes", func() bool {
		return len(e.h.logLines(refusalMsg)) >= refusedBefore+3*len(e.fleet.pubs)
	})
	e.fleet.stop()
	stored := e.fleet.totalAcked() - cutAt
	t.Logf("store full after %d acknowledged messages of 1 KB (cap %d bytes)", stored, e2eMaxBytes)
	assertRefusedCleanly(t, e.h, e.fleet, "store: full")
	if stored*1024 > e2eMaxBytes {
		t.Errorf("%d messages of 1 KB acknowledged with the network cut, under a cap of %d bytes", stored, e2eMaxBytes)
	}
	if stored < e2eMaxBytes/(4*1024) {
		t.Errorf("only %d messages of 1 KB stored before the hub refused, under a cap of %d bytes", stored, e2eMaxBytes)
	}
	if n := e.metric(t, "outpost_edgehub_messages_refused_total", `reason="store_full"`); n < 1 {
		t.Errorf("messages_refused_total{reason=store_full} = %v, want at least 1", n)
	}
	if used := e.metric(t, "outpost_edgehub_store_bytes", ""); used > e2eMaxBytes {
		t.Errorf("store_bytes = %v, above the cap %d", used, e2eMaxBytes)
	}
	if !e.h.alive() {
		t.Fatal("edgehub exited when its store was full")
	}
}

// killAndRestart kills the hub with SIGKILL while its store is full and the network cut,
// starts it again and restores the network: the fleet's backlog drains and publishes are
// acknowledged again. Then, with the sink away, m1 sends alerts and the fleet publishes,
// the hub is killed mid-traffic and started again: the sink gets every alert once it is
// back, and IoT Hub every message the fleet had acknowledged.
func (e *e2e) killAndRestart(t *testing.T) {
	e.h.kill()
	e.h.start()
	e.c.s.RestoreNetwork()
	if d := e.fleet.waitDelivered(e.c.s, 30*time.Second); d.missingCount() > 0 {
		d.report(t, e.fleet)
		t.FailNow()
	}

	e.sink.Disconnect(0)
	e.m1 = dialModule(t, e.m1.cs, e.h.currentAddr()) // its connection died with the hub
	const alerts = 30
	for i := range alerts {
		e.m1.send(t, "temperature", reading(1000+i, 80), true)
	}
	base := e.fleet.ackedCounts()
	e.fleet.resume()
	waitUntil(t, 30*time.Second, "publishes acknowledged again once the backlog drained", func() bool { return e.fleet.eachAckedAtLeast(base, 20) })
	e.h.kill()
	e.h.start()
	base = e.fleet.ackedCounts()
	waitUntil(t, 30*time.Second, "publishes acknowledged after the restart", func() bool { return e.fleet.eachAckedAtLeast(base, 20) })
	e.fleet.stop()

	e.sink = e.inbox.subscribe(t, e.sinkCS, e.h.currentAddr())
	var want []int
	for i := range alerts {
		want = append(want, 1000+i)
	}
	waitUntil(t, 20*time.Second, "the alerts stored for the sink while it was away", func() bool {
		return slices.Contains(e.inbox.seqs(), 1000+alerts-1)
	})
	if got := slices.DeleteFunc(firstReceptions(e.inbox.seqs()), func(s int) bool { return s < 1000 }); !slices.Equal(got, want) {
		t.Errorf("after the restart the sink got alerts %v, want %v", got, want)
	}
	e.fleet.waitDelivered(e.c.s, 30*time.Second).report(t, e.fleet)
	if starts := len(e.h.logLines("edgehub ready")); starts != 3 {
		t.Errorf("the hub's log shows %d starts, want 3 (the first and two after SIGKILL)", starts)
	}
}

// cutNetwork cuts IoT Hub off once nothing is on its way to it, and waits until the hub
// has noticed.
func (e *e2e) cutNetwork(t *testing.T) {
	t.Helper()
	lost := len(e.h.logLines(linkLostMsg))
	e.c.s.CutNetwork()
	waitUntil(t, 10*time.Second, "the hub to notice that the link is down", func() bool { return len(e.h.logLines(linkLostMsg)) > lost })
}

// metric returns the value of the hub's series name whose labels contain label (any series
// of name when label is ""), 0 when it has none.
func (e *e2e) metric(t *testing.T, name, label string) float64 {
	t.Helper()
	body := scrape(t, "http://"+e.h.current().metrics+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		series, value, ok := strings.Cut(line, " ")
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) || !strings.Contains(series, label) {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		return v
	}
	return 0
}

// reading is the JSON body of the test's routed messages.
func reading(seq int, temperature float64) []byte {
	b, _ := json.Marshal(map[string]any{"seq": seq, "temperature": temperature})
	return b
}

// readingSeq returns the seq of a body made by reading.
func readingSeq(body []byte) (int, bool) {
	var r struct {
		Seq *int `json:"seq"`
	}
	if json.Unmarshal(body, &r) != nil || r.Seq == nil {
		return 0, false
	}
	return *r.Seq, true
}

// readingsFrom returns the seqs of the readings IoT Hub received from module edge1/{module},
// in the order received (duplicates included).
func readingsFrom(s *fakehub.Server, module string) []int {
	var out []int
	for _, ev := range s.Events(0, 0) {
		if ev.DeviceID != "edge1" || ev.ModuleID != module {
			continue
		}
		seq, ok := readingSeq(ev.Body)
		if !ok {
			seq = -1 // not a reading: fails any comparison
		}
		out = append(out, seq)
	}
	return out
}

// firstReceptions drops repeated seqs (at-least-once delivery may deliver a message
// again), keeping the first of each.
func firstReceptions(seqs []int) []int {
	seen := map[int]bool{}
	var out []int
	for _, s := range seqs {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// moduleClient is a module connected to the hub over plain MQTT.
type moduleClient struct {
	cs sas.ConnectionString
	c  paho.Client
}

// dialModule connects as cs, retrying for a while (a first CONNECT may race the hub's link
// to IoT Hub, which authenticates it); the connection is closed on cleanup.
func dialModule(t *testing.T, cs sas.ConnectionString, addr string) *moduleClient {
	t.Helper()
	c := dialRetry(t, cs, addr)
	t.Cleanup(func() { c.Disconnect(0) })
	return &moduleClient{cs: cs, c: c}
}

func dialRetry(t *testing.T, cs sas.ConnectionString, addr string) paho.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var err error
	for ctx.Err() == nil {
		var c paho.Client
		if c, err = connectAs(ctx, cs, addr); err == nil {
			return c
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	t.Fatalf("connecting as %s/%s: %v", cs.DeviceID, cs.ModuleID, err)
	return nil
}

// send publishes body on output at QoS 1 and fails the test unless the hub acknowledges it.
// With asJSON the message declares a JSON body (content type and encoding), which the
// routes' $body queries need.
func (m *moduleClient) send(t *testing.T, output string, body []byte, asJSON bool) {
	t.Helper()
	bag := iothub.Bag{{Key: "$.on", Value: output}}
	if asJSON {
		bag = append(bag, iothub.Property{Key: "$.ct", Value: "application/json"}, iothub.Property{Key: "$.ce", Value: "utf-8"})
	}
	tok := m.c.Publish(iothub.TelemetryTopic(m.cs.DeviceID, m.cs.ModuleID, bag), 1, false, body)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("%s/%s: publish of %s on %q not acknowledged: %v", m.cs.DeviceID, m.cs.ModuleID, body, output, tok.Error())
	}
}

// inputMessage is a message a module received on one of its inputs.
type inputMessage struct {
	input, cdid, cmid string
	seq               int
}

// inbox collects the messages the sink receives, across its connections.
type inbox struct {
	mu   sync.Mutex
	msgs []inputMessage
}

// subscribe connects as cs and subscribes to all of its inputs at QoS 1; paho acknowledges
// each message once the inbox has it.
func (in *inbox) subscribe(t *testing.T, cs sas.ConnectionString, addr string) paho.Client {
	t.Helper()
	c := dialRetry(t, cs, addr)
	t.Cleanup(func() { c.Disconnect(0) })
	filter := fmt.Sprintf("devices/%s/modules/%s/inputs/#", cs.DeviceID, cs.ModuleID)
	tok := c.Subscribe(filter, 1, func(_ paho.Client, msg paho.Message) {
		m := inputMessage{seq: -1}
		if tp, err := iothub.ParseTopic(msg.Topic()); err == nil && tp.Kind == iothub.KindInput {
			m.input = tp.Input
			m.cdid, _ = tp.Bag.Get("$.cdid")
			m.cmid, _ = tp.Bag.Get("$.cmid")
		}
		if seq, ok := readingSeq(msg.Payload()); ok {
			m.seq = seq
		}
		in.mu.Lock()
		in.msgs = append(in.msgs, m)
		in.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribing to %s: %v", filter, tok.Error())
	}
	if granted := tok.(*paho.SubscribeToken).Result()[filter]; granted != 1 {
		t.Fatalf("subscription to %s granted QoS %#x, want 1", filter, granted)
	}
	return c
}

func (in *inbox) all() []inputMessage {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.msgs)
}

// seqs returns the seqs received, in order, duplicates included.
func (in *inbox) seqs() []int {
	var out []int
	for _, m := range in.all() {
		out = append(out, m.seq)
	}
	return out
}
