package hub_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/runtime/deployment"
	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/store"
)

const (
	hubHost  = "test-hub.azure-devices.net"
	edgeHost = "edge1.local"
	edgeID   = "edge1"
)

// Keys used by the test identities.
const (
	keyModA = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
	keyModB = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="
	keyEdge = "RUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUU="
	keyLeaf = "TExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTEw="
	keyBad  = "WFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFg="
)

var (
	modA = sas.Identity{DeviceID: edgeID, ModuleID: "modA"}
	modB = sas.Identity{DeviceID: edgeID, ModuleID: "modB"}
	leaf = sas.Identity{DeviceID: "leaf1"}
)

// testLogger discards, unless OUTPOST_TEST_LOG is set: then the hub's debug logs go to
// stderr.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("OUTPOST_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// clock is a settable clock shared by the hub and the store.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// env is one hub with its store and identities, on a data dir that outlives restarts.
type env struct {
	t     *testing.T
	dir   string
	clock *clock
	ids   *identities.Cache
	up    *fakeUpstream
	opts  hub.Options
	cfg   *deployment.HubConfig
	sopts store.Options
	deps  func(*hub.Deps) // adjusts the Deps of every start (withDeps)

	store     *store.Store
	storeStop context.CancelFunc
	storeDone chan error
	hub       *hub.Server
	hubStop   context.CancelFunc
	hubDone   chan error
}

type envOption func(*env)

func withOptions(f func(*hub.Options)) envOption { return func(e *env) { f(&e.opts) } }

// withRoutes sets the routes ({name: text}); priorities and TTLs via withConfig.
func withRoutes(routes map[string]string) envOption {
	return func(e *env) {
		for name, text := range routes {
			e.cfg.Routes[name] = deployment.Route{Name: name, Expr: text, Priority: deployment.DefaultPriority}
		}
	}
}

func withConfig(f func(*deployment.HubConfig)) envOption { return func(e *env) { f(e.cfg) } }

func withStore(f func(*store.Options)) envOption { return func(e *env) { f(&e.sopts) } }

// storeNotRunning opens the store without running its committer.
type storeMode int

const (
	storeRunning storeMode = iota
	storeStopped
)

// newEnv starts a hub on a fresh data dir, with identities modA, modB (modules of edge1),
// edge1 itself and leaf1, a plain listener, and the given routes.
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := &env{
		t:     t,
		dir:   t.TempDir(),
		clock: newClock(t0),
		up:    &fakeUpstream{},
		cfg: &deployment.HubConfig{
			SchemaVersion:   "1.1",
			Routes:          map[string]deployment.Route{},
			StoreAndForward: deployment.StoreAndForward{TimeToLiveSecs: deployment.DefaultTimeToLiveSecs},
		},
	}
	e.opts = hub.Options{
		IoTHubHostName:  hubHost,
		GatewayHostName: edgeHost,
		EdgeDeviceID:    edgeID,
		PlainAddr:       "127.0.0.1:0",
		RetryMin:        10 * time.Millisecond,
		RetryMax:        200 * time.Millisecond,
		AckTimeout:      2 * time.Second,
		Logger:          testLogger(t),
		Now:             e.clock.Now,
	}
	e.sopts = store.Options{Path: filepath.Join(e.dir, "store.db"), Now: e.clock.Now, NoSync: true}
	for _, o := range opts {
		o(e)
	}
	ids, err := identities.Open(identities.Options{Path: filepath.Join(e.dir, "identities.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ids.Close() })
	e.ids = ids
	for _, r := range []identities.Record{
		{DeviceID: edgeID, ModuleID: "modA", Keys: sas.Keys{Primary: keyModA}},
		{DeviceID: edgeID, ModuleID: "modB", Keys: sas.Keys{Primary: keyModB}},
		{DeviceID: edgeID, Keys: sas.Keys{Primary: keyEdge}},
		{DeviceID: "leaf1", Keys: sas.Keys{Secondary: keyLeaf}},
		{DeviceID: "leaf2", Keys: sas.Keys{Primary: keyLeaf}, Disabled: true},
	} {
		if err := ids.Put(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	<-ids.Changes() // drain the signal of the setup itself
	e.start(storeRunning)
	t.Cleanup(e.stop)
	return e
}

// start opens the store and starts the hub; with storeStopped the store's committer is
// not running (see runStore).
func (e *env) start(mode storeMode) {
	t := e.t
	t.Helper()
	st, err := store.Open(e.sopts)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	e.store = st
	if mode == storeRunning {
		e.runStore()
	}
	deps := hub.Deps{Store: st, Identities: e.ids, Upstream: e.up, IdentityChanges: e.ids.Changes()}
	if e.deps != nil {
		e.deps(&deps)
	}
	srv, err := hub.New(e.opts, deps)
	if err != nil {
		t.Fatalf("hub.New: %v", err)
	}
	if err := srv.ApplyConfig(e.cfg); err != nil {
		t.Fatalf("ApplyConfig: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.hub, e.hubStop, e.hubDone = srv, cancel, make(chan error, 1)
	go func() { e.hubDone <- srv.Run(ctx) }()
}

// runStore starts the store's committer.
func (e *env) runStore() {
	ctx, cancel := context.WithCancel(context.Background())
	e.storeStop, e.storeDone = cancel, make(chan error, 1)
	go func() { e.storeDone <- e.store.Run(ctx) }()
}

// stop stops the hub and closes the store (idempotent).
func (e *env) stop() {
	if e.hub == nil {
		return
	}
	e.hubStop()
	select {
	case err := <-e.hubDone:
		if err != nil {
			e.t.Errorf("hub Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		e.t.Fatal("hub Run did not return within 10s of cancel")
	}
	if e.storeStop != nil {
		e.storeStop()
		<-e.storeDone
	}
	if err := e.store.Close(); err != nil {
		e.t.Errorf("store Close: %v", err)
	}
	e.hub, e.storeStop = nil, nil
}

// restart stops the hub and starts a new one on the same data dir.
func (e *env) restart() {
	e.stop()
	e.start(storeRunning)
}

func (e *env) addr() string { return "tcp://" + e.hub.PlainAddr() }

// token signs a token for audience identity aud with key, valid one hour from the clock.
func (e *env) token(host string, aud sas.Identity, key string, expiry time.Time) string {
	uri := host + "/devices/" + aud.DeviceID
	if aud.ModuleID != "" {
		uri += "/modules/" + aud.ModuleID
	}
	tok, err := sas.Sign(uri, key, "", expiry)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func keyOf(id sas.Identity) string {
	switch id {
	case modA:
		return keyModA
	case modB:
		return keyModB
	case leaf:
		return keyLeaf
	}
	return keyEdge
}

// client is a paho client with what the tests look at.
type client struct {
	paho.Client
	id   sas.Identity
	lost chan error // connection lost (buffered)
	msgs chan paho.Message
}

type clientOption func(*paho.ClientOptions)

func noAutoAck(o *paho.ClientOptions)    { o.SetAutoAckDisabled(true) }
func cleanSession(o *paho.ClientOptions) { o.SetCleanSession(true) }

// connect connects as id with a valid token and fails the test if it is refused.
func (e *env) connect(id sas.Identity, opts ...clientOption) *client {
	e.t.Helper()
	c, code, err := e.dial(id, iothub.FormatUsername(hubHost, id.DeviceID, id.ModuleID, nil),
		e.token(hubHost, id, keyOf(id), e.clock.Now().Add(time.Hour)), opts...)
	if err != nil {
		e.t.Fatalf("connect %v: CONNACK %d: %v", id, code, err)
	}
	return c
}

// dial connects with the given username and password, returning the CONNACK code.
func (e *env) dial(id sas.Identity, username, password string, opts ...clientOption) (*client, byte, error) {
	c := &client{id: id, lost: make(chan error, 4), msgs: make(chan paho.Message, 256)}
	o := paho.NewClientOptions().
		AddBroker(e.addr()).
		SetClientID(iothub.ClientID(id.DeviceID, id.ModuleID)).
		SetUsername(username).
		SetPassword(password).
		SetCleanSession(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetProtocolVersion(4).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.lost <- err }).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { c.msgs <- m })
	for _, f := range opts {
		f(o)
	}
	c.Client = paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, 0, errors.New("CONNECT timed out")
	}
	code := tok.(*paho.ConnectToken).ReturnCode()
	if err := tok.Error(); err != nil {
		return nil, code, err
	}
	e.t.Cleanup(func() { c.Disconnect(0) })
	return c, code, nil
}

// subscribe subscribes to filter at QoS 1 and returns the granted code.
func (c *client) subscribe(t *testing.T, filter string) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, nil)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %q: %v", filter, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

// subscribeInputs subscribes a module to its inputs.
func (c *client) subscribeInputs(t *testing.T) {
	t.Helper()
	if got := c.subscribe(t, iothub.InputFilter(c.id.DeviceID, c.id.ModuleID)); got != 1 {
		t.Fatalf("input subscription granted %#x, want 1", got)
	}
}

// send publishes telemetry (an output when out is not "") at QoS 1 and waits for the PUBACK.
func (c *client) send(t *testing.T, out string, props map[string]string, body string) {
	t.Helper()
	tok := c.Publish(c.topic(out, props), 1, false, body)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("%v publish: no PUBACK (%v)", c.id, tok.Error())
	}
}

func (c *client) topic(out string, props map[string]string) string {
	m := iothub.Message{Properties: map[string]string{}, System: map[string]string{}}
	for k, v := range props {
		m.Properties[k] = v
	}
	if out != "" {
		m.System[iothub.SysOutputName] = out
	}
	return iothub.TelemetryTopic(c.id.DeviceID, c.id.ModuleID, m.Bag())
}

// next returns the next message the client received.
func (c *client) next(t *testing.T) paho.Message {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("%v received nothing within 10s", c.id)
		return nil
	}
}

// waitLost waits for the connection to be closed by the hub.
func (c *client) waitLost(t *testing.T) {
	t.Helper()
	select {
	case <-c.lost:
	case <-time.After(10 * time.Second):
		t.Fatalf("%v: connection not closed within 10s", c.id)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeUpstream records Send calls; failures can be scripted.
type fakeUpstream struct {
	mu    sync.Mutex
	calls []upCall
	fail  func(n int, m iothub.Message) error // n: 0-based call number
}

type upCall struct {
	id  sas.Identity
	msg iothub.Message
	err error
}

func (f *fakeUpstream) Send(_ context.Context, id sas.Identity, m iothub.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var err error
	if f.fail != nil {
		err = f.fail(len(f.calls), m)
	}
	f.calls = append(f.calls, upCall{id, m, err})
	return err
}

func (f *fakeUpstream) setFail(fn func(n int, m iothub.Message) error) {
	f.mu.Lock()
	f.fail = fn
	f.mu.Unlock()
}

// succeeded returns the bodies sent successfully, in order.
func (f *fakeUpstream) succeeded() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if c.err == nil {
			out = append(out, string(c.msg.Body))
		}
	}
	return out
}

func (f *fakeUpstream) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// parseInput parses a received module input topic.
func parseInput(t *testing.T, m paho.Message) iothub.Topic {
	t.Helper()
	top, err := iothub.ParseTopic(m.Topic())
	if err != nil || top.Kind != iothub.KindInput {
		t.Fatalf("received topic %q is not a module input: %v", m.Topic(), err)
	}
	return top
}
