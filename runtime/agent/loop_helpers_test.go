package agent_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/agenttest"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/twin"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeTwin is an in-memory $edgeAgent twin with moduleclient's delivery
// rules: the whole desired document on connect, merge patches after.
type fakeTwin struct {
	mu         sync.Mutex
	connectErr error
	connected  bool
	connects   int
	desired    map[string]any
	version    int64
	reported   map[string]any
	patches    []map[string]any
	updateErr  error
	onDesired  func(map[string]any, int64)
	methods    map[string]moduleclient.MethodHandler
}

var _ agent.Twin = (*fakeTwin)(nil)

func newFakeTwin() *fakeTwin {
	return &fakeTwin{desired: map[string]any{}, version: 1, reported: map[string]any{}, methods: map[string]moduleclient.MethodHandler{}}
}

func (f *fakeTwin) Connect(ctx context.Context) error {
	f.mu.Lock()
	f.connects++
	if f.connectErr != nil {
		err := f.connectErr
		f.mu.Unlock()
		return err
	}
	f.connected = true
	h, doc, v := f.onDesired, twin.Clone(f.desired), f.version
	f.mu.Unlock()
	if h != nil {
		h(doc, v)
	}
	return nil
}

// SetConnectErr makes Connect fail with err (nil: succeed).
func (f *fakeTwin) SetConnectErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connectErr = err
}

// SetDesired replaces the desired document and notifies a connected agent
// with the merge patch, as the hub does.
func (f *fakeTwin) SetDesired(doc map[string]any) {
	f.mu.Lock()
	patch := twin.Diff(f.desired, doc)
	f.desired = twin.Clone(doc)
	f.version++
	h, v, conn := f.onDesired, f.version, f.connected
	f.mu.Unlock()
	if conn && h != nil {
		h(patch, v)
	}
}

func (f *fakeTwin) GetTwin(ctx context.Context) (map[string]any, map[string]any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.connected {
		return nil, nil, moduleclient.ErrNotConnected
	}
	d := twin.Clone(f.desired)
	d["$version"] = json.Number(fmt.Sprint(f.version))
	r := twin.Clone(f.reported)
	r["$version"] = json.Number("1")
	return d, r, nil
}

func (f *fakeTwin) UpdateReported(ctx context.Context, patch map[string]any) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.connected {
		return 0, moduleclient.ErrNotConnected
	}
	if f.updateErr != nil {
		return 0, f.updateErr
	}
	// Round-trip as the hub would store it.
	b, err := json.Marshal(patch)
	if err != nil {
		return 0, err
	}
	p, err := twin.DecodePatch(b)
	if err != nil {
		return 0, err
	}
	twin.Merge(f.reported, p)
	f.patches = append(f.patches, p)
	return int64(len(f.patches)), nil
}

func (f *fakeTwin) OnDesired(h func(map[string]any, int64)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onDesired = h
}

func (f *fakeTwin) HandleMethod(name string, h moduleclient.MethodHandler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.methods[name] = h
}

// Call invokes a registered method.
func (f *fakeTwin) Call(t testing.TB, name, payload string) (int, string) {
	t.Helper()
	f.mu.Lock()
	h := f.methods[name]
	f.mu.Unlock()
	if h == nil {
		t.Fatalf("no handler for method %q", name)
	}
	status, body := h(context.Background(), []byte(payload))
	return status, string(body)
}

// Reported returns a copy of the reported properties.
func (f *fakeTwin) Reported() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return twin.Clone(f.reported)
}

// Patches returns the reported patches received so far.
func (f *fakeTwin) Patches() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]map[string]any, len(f.patches))
	for i, p := range f.patches {
		out[i] = twin.Clone(p)
	}
	return out
}

// fakeIdentities derives fixed keys and records EnsureModule calls.
type fakeIdentities struct {
	mu      sync.Mutex
	fail    map[string]error
	ensured map[string]int
}

var _ agent.Identities = (*fakeIdentities)(nil)

func newFakeIdentities() *fakeIdentities {
	return &fakeIdentities{fail: map[string]error{}, ensured: map[string]int{}}
}

// keyOf is the key fakeIdentities gives identity id.
func keyOf(id string) string {
	return base64.StdEncoding.EncodeToString([]byte("module-key-of-" + id + "-0123456789"))
}

func (f *fakeIdentities) ModuleKey(id string) (string, error) { return keyOf(id), nil }

func (f *fakeIdentities) EnsureModule(ctx context.Context, id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail[id]; err != nil {
		return "", err
	}
	f.ensured[id]++
	return "gen-" + id, nil
}

func (f *fakeIdentities) SetFail(id string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fail, id)
	} else {
		f.fail[id] = err
	}
}

func (f *fakeIdentities) Ensured(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ensured[id]
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness runs an Agent on fakes.
type harness struct {
	t      testing.TB
	rt     *agenttest.FakeRuntime
	wrap   func(agent.Runtime) agent.Runtime // wraps rt when set
	twin   *fakeTwin
	ids    *fakeIdentities
	clock  *fakeClock
	now    func() time.Time // the agent's and the runtime's clock when set; clock.Now otherwise
	dbPath string
	db     *agent.StateDB
	logs   *syncBuffer
	opts   agent.Options
	a      *agent.Agent
	cancel context.CancelFunc
	done   chan error
}

// newHarness prepares fakes with the test deployment's images available;
// nothing runs until start.
func newHarness(t testing.TB) *harness {
	t.Helper()
	clock := &fakeClock{t: now}
	rt := &agenttest.FakeRuntime{Now: clock.Now}
	rt.AddImage("localhost:5000/archiver:latest") // imagePullPolicy never
	h := &harness{
		t:      t,
		rt:     rt,
		twin:   newFakeTwin(),
		ids:    newFakeIdentities(),
		clock:  clock,
		dbPath: filepath.Join(t.TempDir(), "agent.db"),
		logs:   &syncBuffer{},
		opts: agent.Options{
			DeviceID:        "edge1",
			IoTHubHostName:  "hub.example.net",
			GatewayHostName: "edge1.local",
			ModuleCAFile:    "/certs/edge-ca.pem",
			UpstreamCAFile:  "/certs/hub-ca.pem",
			Period:          10 * time.Millisecond,
			Info:            agent.AgentInfo{Version: "0.1.0"},
		},
	}
	return h
}

// start opens the state database and runs the agent.
func (h *harness) start() {
	h.t.Helper()
	db, err := agent.OpenStateDB(h.dbPath)
	if err != nil {
		h.t.Fatal(err)
	}
	h.db = db
	logger := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var rt agent.Runtime = h.rt
	if h.wrap != nil {
		rt = h.wrap(rt)
	}
	clock := h.clock.Now
	if h.now != nil {
		clock = h.now
		h.rt.Now = h.now
	}
	a, err := agent.New(h.opts, agent.Deps{Runtime: rt, Twin: h.twin, Identities: h.ids, State: db, Logger: logger, Now: clock})
	if err != nil {
		h.t.Fatal(err)
	}
	h.a = a
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- a.Run(ctx) }()
	h.t.Cleanup(h.stop)
}

// stop cancels Run, waits for it and closes the database; idempotent.
func (h *harness) stop() {
	h.t.Helper()
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Fatal("Run did not return after its context was cancelled")
	}
	if err := h.db.Close(); err != nil {
		h.t.Error(err)
	}
}

// deploymentDoc is testdata/deployment.json as a desired document (without
// $version: the fake twin numbers versions itself), with edits applied.
func deploymentDoc(t testing.TB, edits ...func(map[string]any)) map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/deployment.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := twin.DecodePatch(b)
	if err != nil {
		t.Fatal(err)
	}
	delete(doc, "$version")
	for _, e := range edits {
		e(doc)
	}
	return doc
}

// at returns the object at path in doc, creating nothing.
func at(doc map[string]any, path ...string) map[string]any {
	cur := doc
	for _, p := range path {
		next, _ := cur[p].(map[string]any)
		if next == nil {
			return nil
		}
		cur = next
	}
	return cur
}

// lastStatus returns reported lastDesiredStatus code and description.
func lastStatus(rep map[string]any) (string, string) {
	s := at(rep, "lastDesiredStatus")
	if s == nil {
		return "", ""
	}
	code := fmt.Sprint(s["code"])
	desc, _ := s["description"].(string)
	return code, desc
}

// runtimeStatus returns a module's reported runtimeStatus.
func runtimeStatus(rep map[string]any, module string) string {
	section := "modules"
	if module == "edgeHub" || module == "edgeAgent" {
		section = "systemModules"
	}
	m := at(rep, section, module)
	if m == nil {
		return ""
	}
	s, _ := m["runtimeStatus"].(string)
	return s
}

// waitStatus waits until the reported lastDesiredStatus code is code.
func (h *harness) waitStatus(code string) {
	h.t.Helper()
	waitFor(h.t, "lastDesiredStatus.code "+code, func() bool {
		c, _ := lastStatus(h.twin.Reported())
		return c == code
	})
}

// waitConverged waits until every module of the test deployment runs as
// desired and the status is 200.
func (h *harness) waitConverged() {
	h.t.Helper()
	waitFor(h.t, "the test deployment to converge", func() bool {
		rep := h.twin.Reported()
		c, _ := lastStatus(rep)
		return c == "200" && runtimeStatus(rep, "edgeHub") == "running" &&
			runtimeStatus(rep, "tempSensor") == "running" && runtimeStatus(rep, "filter") == "running" &&
			runtimeStatus(rep, "archiver") == "stopped"
	})
}

// mutating returns the runtime calls that change modules.
func mutating(calls []string) []string {
	var out []string
	for _, c := range calls {
		if !strings.HasPrefix(c, "logs ") {
			out = append(out, c)
		}
	}
	return out
}
