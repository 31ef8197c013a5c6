package uplink_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/hub/twincache"
	"github.com/outpost-edge/outpost/runtime/hub/uplink"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/store"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// These tests run everything for real on loopback: the fake IoT Hub (fakehubtest), an edge
// hub wired as cmd/edgehub wires it (hub + store + identity cache + twin cache on a data
// dir, upstream client, uplink, the twin relay), and clients on the module SDK. Set OUTPOST_TEST_LOG=1 to see the logs.

// Identities registered in the fake hub by newCloud.
var (
	m1    = sas.Identity{DeviceID: "edge1", ModuleID: "m1"}
	m2    = sas.Identity{DeviceID: "edge1", ModuleID: "m2"}
	m3    = sas.Identity{DeviceID: "edge1", ModuleID: "m3"}
	leaf1 = sas.Identity{DeviceID: "leaf1"}
	leaf2 = sas.Identity{DeviceID: "leaf2"}
)

// newCloud starts a fake IoT Hub with the edge device edge1 (with $edgeHub), its modules
// m1..m3 and two leaf devices whose parent it is.
func newCloud(t *testing.T) *fakehub.Server {
	t.Helper()
	s := fakehubtest.New(t, fakehubtest.WithLogger(testLogger(t, "fakehub")))
	edge, _ := fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	for _, m := range []string{"m1", "m2", "m3"} {
		fakehubtest.MustModule(t, s, "edge1", m)
	}
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

// recorder is a slog handler that keeps every message (with its "err" attribute) for tests
// that wait for something to be logged, and passes records on.
type recorder struct {
	next slog.Handler
	mu   *sync.Mutex
	seen *[]string
}

func newRecorder(next slog.Handler) *recorder {
	return &recorder{next: next, mu: &sync.Mutex{}, seen: new([]string)}
}

func (r *recorder) Enabled(ctx context.Context, l slog.Level) bool { return true }

func (r *recorder) Handle(ctx context.Context, rec slog.Record) error {
	line := rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			line += " err=" + a.Value.String()
		}
		return true
	})
	r.mu.Lock()
	*r.seen = append(*r.seen, line)
	r.mu.Unlock()
	if r.next.Enabled(ctx, rec.Level) {
		return r.next.Handle(ctx, rec)
	}
	return nil
}

func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &recorder{next: r.next.WithAttrs(as), mu: r.mu, seen: r.seen}
}

func (r *recorder) WithGroup(name string) slog.Handler {
	return &recorder{next: r.next.WithGroup(name), mu: r.mu, seen: r.seen}
}

// count returns how many recorded lines contain every one of parts.
func (r *recorder) count(parts ...string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, line := range *r.seen {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// edgeHub is one edge hub process: hub, store and identity cache on dir, upstream client
// and uplink, all running until stop.
type edgeHub struct {
	t      *testing.T
	dir    string
	cloud  *fakehub.Server
	ids    *identities.Cache
	twins  *twincache.Cache
	st     *store.Store
	up     *upstream.Client
	link   *uplink.Link
	srv    *hub.Server
	logs   *recorder
	cancel context.CancelFunc
	done   []chan error
	stores chan error
	stopSt context.CancelFunc
}

// Test timings: a keep-alive of 1 s, quick back-offs, 1.5 s for an answer.
const (
	requestTimeout  = 1500 * time.Millisecond
	refreshInterval = 300 * time.Millisecond
)

// startEdge starts an edge hub for edge1 on dir (reused across restarts), routing every
// telemetry message to $upstream, and stops it when the test ends.
func startEdge(t *testing.T, s *fakehub.Server, dir string) *edgeHub {
	t.Helper()
	e := &edgeHub{t: t, dir: dir, cloud: s}
	e.logs = newRecorder(testLogger(t, "edge").Handler())
	log := slog.New(e.logs)

	ids, err := identities.Open(identities.Options{Path: filepath.Join(dir, "identities.db")})
	if err != nil {
		t.Fatal(err)
	}
	e.ids = ids
	e.twins, err = twincache.Open(twincache.Options{Path: filepath.Join(dir, "twins.db")})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Path: filepath.Join(dir, "store.db"), NoSync: true, Logger: log})
	if err != nil {
		ids.Close()
		t.Fatal(err)
	}
	e.st = st
	csText, err := s.ModuleConnectionString("edge1", "$edgeHub")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := sas.ParseConnectionString(csText)
	if err != nil {
		t.Fatal(err)
	}
	e.up, err = upstream.New(upstream.Options{
		ConnectionString: cs,
		CAFile:           s.CAFile(),
		Port:             portOf(t, s.MQTTAddress()),
		KeepAlive:        time.Second,
		ReconnectMin:     50 * time.Millisecond,
		ReconnectMax:     300 * time.Millisecond,
		RequestTimeout:   requestTimeout,
		Logger:           log,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.link = uplink.New(e.up, ids, uplink.Options{RefreshInterval: refreshInterval, RetryInterval: refreshInterval, Logger: log,
		OnLinkChange: func(up bool) { e.srv.CloudStateChanged(up) }})
	e.srv, err = hub.New(hub.Options{
		IoTHubHostName: s.Hostname,
		EdgeDeviceID:   "edge1",
		PlainAddr:      "127.0.0.1:0",
		RetryMin:       20 * time.Millisecond,
		RetryMax:       300 * time.Millisecond,
		Logger:         log,
	}, hub.Deps{Store: st, Identities: ids, IdentityChanges: ids.Changes(), Upstream: e.link, Resolver: e.link, Presence: e.link,
		Twins: e.twins, Cloud: e.up})
	if err != nil {
		t.Fatal(err)
	}
	err = e.srv.ApplyConfig(&deployment.HubConfig{
		SchemaVersion:   "1.1",
		Routes:          map[string]deployment.Route{"up": {Name: "up", Expr: "FROM /messages/* INTO $upstream", Priority: deployment.DefaultPriority}},
		StoreAndForward: deployment.StoreAndForward{TimeToLiveSecs: 3600},
	})
	if err != nil {
		t.Fatal(err)
	}

	var sctx context.Context
	sctx, e.stopSt = context.WithCancel(context.Background())
	e.stores = make(chan error, 1)
	go func() { e.stores <- st.Run(sctx) }()
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	for _, run := range []func(context.Context) error{e.up.Run, e.link.Run, e.srv.Run} {
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
	if err := e.st.Close(); err != nil {
		e.t.Errorf("store: %v", err)
	}
	if err := e.ids.Close(); err != nil {
		e.t.Errorf("identities: %v", err)
	}
	if err := e.twins.Close(); err != nil {
		e.t.Errorf("twins: %v", err)
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

// clientOptions returns moduleclient options that connect to the edge hub's plain listener.
func (e *edgeHub) clientOptions() moduleclient.Options {
	return moduleclient.Options{
		Plain:        true,
		Port:         portOf(e.t, e.srv.PlainAddr()),
		KeepAlive:    5 * time.Second,
		ReconnectMin: 20 * time.Millisecond,
		ReconnectMax: 200 * time.Millisecond,
		Logger:       testLogger(e.t, "client"),
	}
}

// newClient returns a client of id for the edge hub, with the identity's connection string
// from the cloud (its gateway being the edge hub), not connected yet; it is closed when the
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

// connect connects id to the edge hub and fails the test if it is refused.
func (e *edgeHub) connect(id sas.Identity) *moduleclient.Client {
	e.t.Helper()
	c := e.newClient(id, e.clientOptions())
	if err := c.Connect(ctxFor(e.t)); err != nil {
		e.t.Fatalf("connect %v: %v", id, err)
	}
	return c
}

// send sends message number seq from c (a module sends to its output "out") and fails the
// test without a PUBACK.
func send(t *testing.T, c *moduleclient.Client, seq int) {
	t.Helper()
	if err := trySend(ctxFor(t), c, seq); err != nil {
		t.Fatalf("send %d: %v", seq, err)
	}
}

func trySend(ctx context.Context, c *moduleclient.Client, seq int) error {
	m := iothub.Message{Body: []byte(fmt.Sprintf("message %d", seq)), Properties: map[string]string{"seq": strconv.Itoa(seq)}}
	if _, mod := c.Identity(); mod != "" {
		return c.SendOutput(ctx, "out", m)
	}
	return c.SendEvent(ctx, m)
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

// checkDelivery checks one sender's captured seqs against what its client had
// acknowledged: every acknowledged seq arrived; first arrivals are in increasing order; it
// returns how many duplicates there were.
func checkDelivery(t *testing.T, who string, got, acked []int) (dups int) {
	t.Helper()
	seen := map[int]bool{}
	last := -1
	for _, seq := range got {
		if seen[seq] {
			dups++
			continue
		}
		seen[seq] = true
		if seq < last {
			t.Fatalf("%s: message %d arrived after %d: out of order (captured %v)", who, seq, last, got)
		}
		last = seq
	}
	for _, seq := range acked {
		if !seen[seq] {
			t.Fatalf("%s: acknowledged message %d never arrived (captured %d distinct of %d acknowledged)", who, seq, len(seen), len(acked))
		}
	}
	return dups
}

// allArrived reports whether the cloud captured every seq in acked from who.
func allArrived(s *fakehub.Server, who string, acked []int) bool {
	got := received(s)[who]
	seen := map[int]bool{}
	for _, seq := range got {
		seen[seq] = true
	}
	for _, seq := range acked {
		if !seen[seq] {
			return false
		}
	}
	return true
}

// carried returns the identities of the only connection to the cloud, or nil when there is
// not exactly one.
func carried(s *fakehub.Server) []string {
	conns := s.Connections()
	if len(conns) != 1 {
		return nil
	}
	return conns[0].Identities
}

func seqs(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}
