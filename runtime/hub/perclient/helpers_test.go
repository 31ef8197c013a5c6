package perclient_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/hub/perclient"
	"github.com/outpost-edge/outpost/runtime/hub/twincache"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/store"
)

// These tests run everything for real on loopback: the fake IoT Hub (fakehubtest), an edge
// hub wired as cmd/edgehub wires it in per-client mode (hub + store + identity cache + twin
// cache on a data dir, the per-client link as upstream, resolver, presence, identities and
// cloud), and clients on the module SDK. Set OUTPOST_TEST_LOG=1 to see the logs.

// Identities registered in the fake hub by newCloud.
var (
	hubID = sas.Identity{DeviceID: "edge1", ModuleID: "$edgeHub"}
	m1    = sas.Identity{DeviceID: "edge1", ModuleID: "m1"}
	m2    = sas.Identity{DeviceID: "edge1", ModuleID: "m2"}
	leaf1 = sas.Identity{DeviceID: "leaf1"}
	leaf2 = sas.Identity{DeviceID: "leaf2"}
)

// clock is the time of every party of a test (fake hub, edge hub, link, clients): the real
// time plus an offset the test moves forward.
type clock struct{ offset atomic.Int64 }

func newClock() *clock                   { return &clock{} }
func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }
func (c *clock) opt() fakehubtest.Option { return fakehubtest.WithNow(c.Now) }

// newCloud starts a fake IoT Hub on clk with the edge device edge1 (with $edgeHub), its
// modules m1 and m2 and two leaf devices whose parent it is.
func newCloud(t *testing.T, clk *clock) *fakehub.Server {
	t.Helper()
	s := fakehubtest.New(t, fakehubtest.WithLogger(testLogger(t, "fakehub")), clk.opt())
	edge, _ := fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	fakehubtest.MustModule(t, s, "edge1", "m1")
	fakehubtest.MustModule(t, s, "edge1", "m2")
	fakehubtest.MustDevice(t, s, "leaf1", fakehubtest.Parent(edge))
	fakehubtest.MustDevice(t, s, "leaf2", fakehubtest.Parent(edge))
	return s
}

// testLogger writes debug logs to stderr when OUTPOST_TEST_LOG is set and discards them
// otherwise.
func testLogger(t *testing.T, component string) *slog.Logger {
	var h slog.Handler = slog.DiscardHandler
	if os.Getenv("OUTPOST_TEST_LOG") != "" {
		h = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
	}
	return slog.New(h).With("test", t.Name(), "side", component)
}

// edgeHub is one edge hub in per-client mode: hub, store, identity and twin caches on dir,
// and the per-client link, all running until stop.
type edgeHub struct {
	t      *testing.T
	cloud  *fakehub.Server
	clk    *clock
	ids    *identities.Cache
	twins  *twincache.Cache
	st     *store.Store
	link   *perclient.Link
	srv    *hub.Server
	cancel context.CancelFunc
	done   []chan error
	stopSt context.CancelFunc
	stores chan error
}

// edgeOptions adjust the link's options of startEdge.
type edgeOption func(*perclient.Options)

func withIdleTimeout(d time.Duration) edgeOption {
	return func(o *perclient.Options) { o.IdleTimeout = d }
}

// startEdge starts the edge hub of edge1 in per-client mode, routing every telemetry
// message to $upstream. Its identity cache holds the keys of every identity of newCloud, as
// cmd/edgehub's --config identities put them there.
func startEdge(t *testing.T, s *fakehub.Server, clk *clock, opts ...edgeOption) *edgeHub {
	t.Helper()
	dir := t.TempDir()
	e := &edgeHub{t: t, cloud: s, clk: clk}
	log := testLogger(t, "edge")
	var err error
	if e.ids, err = identities.Open(identities.Options{Path: filepath.Join(dir, "identities.db")}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []sas.Identity{m1, m2, leaf1, leaf2} {
		keys, err := s.IdentityKeys(id)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.ids.Put(context.Background(), identities.Record{DeviceID: id.DeviceID, ModuleID: id.ModuleID, Keys: keys}); err != nil {
			t.Fatal(err)
		}
	}
	if e.twins, err = twincache.Open(twincache.Options{Path: filepath.Join(dir, "twins.db")}); err != nil {
		t.Fatal(err)
	}
	if e.st, err = store.Open(store.Options{Path: filepath.Join(dir, "store.db"), NoSync: true, Logger: log}); err != nil {
		t.Fatal(err)
	}
	csText, err := s.ModuleConnectionString("edge1", "$edgeHub")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := sas.ParseConnectionString(csText)
	if err != nil {
		t.Fatal(err)
	}
	lo := perclient.Options{
		Hub:          cs,
		Keys:         e.ids,
		KeyChanges:   e.ids.Changes(),
		CAFile:       s.CAFile(),
		Port:         portOf(t, s.MQTTAddress()),
		KeepAlive:    5 * time.Second,
		ReconnectMin: 50 * time.Millisecond,
		ReconnectMax: 300 * time.Millisecond,
		Logger:       log,
		Now:          clk.Now,
		OnLinkChange: func(up bool) { e.srv.CloudStateChanged(up) },
	}
	for _, o := range opts {
		o(&lo)
	}
	if e.link, err = perclient.New(lo); err != nil {
		t.Fatal(err)
	}
	e.srv, err = hub.New(hub.Options{
		IoTHubHostName:       s.Hostname,
		EdgeDeviceID:         "edge1",
		PlainAddr:            "127.0.0.1:0",
		RetryMin:             20 * time.Millisecond,
		RetryMax:             300 * time.Millisecond,
		ReportedSyncInterval: 50 * time.Millisecond,
		TwinTimeout:          2 * time.Second,
		Logger:               log,
		Now:                  clk.Now,
	}, hub.Deps{Store: e.st, Identities: e.link, IdentityChanges: e.link.Changes(), Upstream: e.link,
		Resolver: e.link, Presence: e.link, Twins: e.twins, Cloud: e.link.Cloud()})
	if err != nil {
		t.Fatal(err)
	}
	err = e.srv.ApplyConfig(&deployment.HubConfig{
		SchemaVersion:   "1.1",
		Routes:          map[string]deployment.Route{"up": {Name: "up", Expr: "FROM /messages/* INTO $upstream", Priority: deployment.DefaultPriority}},
		StoreAndForward: deployment.StoreAndForward{TimeToLiveSecs: 7200},
	})
	if err != nil {
		t.Fatal(err)
	}
	var sctx context.Context
	sctx, e.stopSt = context.WithCancel(context.Background())
	e.stores = make(chan error, 1)
	go func() { e.stores <- e.st.Run(sctx) }()
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	for _, run := range []func(context.Context) error{e.link.Run, e.srv.Run} {
		done := make(chan error, 1)
		e.done = append(e.done, done)
		go func() { done <- run(ctx) }()
	}
	t.Cleanup(e.stop)
	return e
}

// stop stops the edge hub and closes its files (idempotent).
func (e *edgeHub) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	for _, done := range e.done {
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("edge hub component: %v", err)
			}
		case <-time.After(10 * time.Second):
			e.t.Fatal("edge hub component did not stop within 10 s")
		}
	}
	e.stopSt()
	<-e.stores
	for _, c := range []interface{ Close() error }{e.st, e.ids, e.twins} {
		if err := c.Close(); err != nil {
			e.t.Errorf("close: %v", err)
		}
	}
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// clientOptions returns moduleclient options for the edge hub's plain listener, on the
// test's clock, with tokens valid for ttl.
func (e *edgeHub) clientOptions(ttl time.Duration) moduleclient.Options {
	return moduleclient.Options{
		Plain:        true,
		Port:         portOf(e.t, e.srv.PlainAddr()),
		KeepAlive:    5 * time.Second,
		ReconnectMin: 20 * time.Millisecond,
		ReconnectMax: 200 * time.Millisecond,
		TokenTTL:     ttl,
		Now:          e.clk.Now,
		Logger:       testLogger(e.t, "client "+fmt.Sprint(ttl)),
	}
}

// newClient returns a client of id for the edge hub, not connected yet, closed when the
// test ends.
func (e *edgeHub) newClient(id sas.Identity, opts moduleclient.Options) *moduleclient.Client {
	e.t.Helper()
	var csText string
	var err error
	if id.ModuleID == "" {
		csText, err = e.cloud.DeviceConnectionString(id.DeviceID)
	} else {
		csText, err = e.cloud.ModuleConnectionString(id.DeviceID, id.ModuleID)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	cs, err := sas.ParseConnectionString(csText)
	if err != nil {
		e.t.Fatal(err)
	}
	cs.GatewayHostName = "127.0.0.1"
	c, err := moduleclient.New(cs, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// connect connects id with day-long tokens and fails the test if it is refused.
func (e *edgeHub) connect(id sas.Identity) *moduleclient.Client {
	e.t.Helper()
	c := e.newClient(id, e.clientOptions(24*time.Hour))
	if err := c.Connect(ctxFor(e.t)); err != nil {
		e.t.Fatalf("connect %v: %v", id, err)
	}
	return c
}

// send sends message number seq from c (a module to its output "out") and fails the test
// without a PUBACK.
func send(t *testing.T, c *moduleclient.Client, seq int) {
	t.Helper()
	m := iothub.Message{Body: []byte(fmt.Sprintf("message %d", seq)), Properties: map[string]string{"seq": strconv.Itoa(seq)}}
	var err error
	if _, mod := c.Identity(); mod != "" {
		err = c.SendOutput(ctxFor(t), "out", m)
	} else {
		err = c.SendEvent(ctxFor(t), m)
	}
	if err != nil {
		t.Fatalf("send %d: %v", seq, err)
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond every 5 ms until it holds, failing the test after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// received returns, per sender ("leaf1", "edge1/m1"), the seq numbers the cloud captured,
// in capture order (duplicates included).
func received(s *fakehub.Server) map[string][]int {
	out := map[string][]int{}
	for _, ev := range s.Events(0, 0) {
		seq, err := strconv.Atoi(ev.Properties["seq"])
		if err != nil {
			continue
		}
		who := iothub.ClientID(ev.DeviceID, ev.ModuleID)
		out[who] = append(out[who], seq)
	}
	return out
}

// arrived reports whether the cloud captured every seq in want from who.
func arrived(s *fakehub.Server, who string, want []int) bool {
	seen := map[int]bool{}
	for _, seq := range received(s)[who] {
		seen[seq] = true
	}
	for _, seq := range want {
		if !seen[seq] {
			return false
		}
	}
	return true
}

// checkInOrder fails the test when who's first arrivals are not in increasing order.
func checkInOrder(t *testing.T, s *fakehub.Server, who string) {
	t.Helper()
	got := received(s)[who]
	seen, last := map[int]bool{}, -1
	for _, seq := range got {
		if seen[seq] {
			continue
		}
		seen[seq] = true
		if seq < last {
			t.Fatalf("%s: message %d arrived after %d: out of order (captured %v)", who, seq, last, got)
		}
		last = seq
	}
}

func seqs(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// connectionsByClient returns the cloud's connections by client id, each with the
// identities it carries.
func connectionsByClient(s *fakehub.Server) map[string][]string {
	out := map[string][]string{}
	for _, c := range s.Connections() {
		out[c.ClientID] = slices.Clone(c.Identities)
	}
	return out
}
