package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/twincache"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/store"
	"github.com/outpost-edge/outpost/runtime/twin"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// The relay tests (twins, methods, C2D, $edgeHub configuration) run the hub with a twin
// cache and a Cloud: the fakeCloud below for unit tests, the real upstream client against
// the fake IoT Hub for the integration tests (relay_integration_test.go).

var edgeHubID = sas.Identity{DeviceID: edgeID, ModuleID: hub.HubModuleID}

// relayEnv is an env whose hub also has Deps.Twins and Deps.Cloud (and Presence, when
// set). The twin cache lives in the env's data dir, so it survives restarts.
type relayEnv struct {
	*env
	cloud    hub.Cloud
	presence hub.Presence
	twins    *twincache.Cache
}

// newRelayEnv starts a hub like newEnv (identities modA, modB, edge1, leaf1; a plain
// listener; the given routes) with a twin cache and cloud (nil: none).
func newRelayEnv(t *testing.T, cloud hub.Cloud, opts ...envOption) *relayEnv {
	t.Helper()
	return newRelayEnvWith(t, cloud, nil, opts...)
}

// newRelayEnvWith is newRelayEnv with a Presence as well.
func newRelayEnvWith(t *testing.T, cloud hub.Cloud, presence hub.Presence, opts ...envOption) *relayEnv {
	t.Helper()
	base := []envOption{withOptions(func(o *hub.Options) {
		o.ReportedSyncInterval = 50 * time.Millisecond
		o.TwinTimeout = 2 * time.Second
	})}
	e := newEnv(t, append(base, opts...)...)
	e.stop() // newEnv's hub has no relay; start ours on the same data dir
	r := &relayEnv{env: e, cloud: cloud, presence: presence}
	r.start()
	t.Cleanup(r.stop)
	return r
}

// start opens the store and the twin cache and starts the hub.
func (r *relayEnv) start() {
	t := r.t
	t.Helper()
	st, err := store.Open(r.sopts)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	r.store = st
	r.runStore()
	if r.twins, err = twincache.Open(twincache.Options{Path: filepath.Join(r.dir, "twins.db")}); err != nil {
		t.Fatalf("twincache.Open: %v", err)
	}
	srv, err := hub.New(r.opts, hub.Deps{Store: st, Identities: r.ids, Upstream: r.up, IdentityChanges: r.ids.Changes(),
		Twins: r.twins, Cloud: r.cloud, Presence: r.presence})
	if err != nil {
		t.Fatalf("hub.New: %v", err)
	}
	if err := srv.ApplyConfig(r.cfg); err != nil {
		t.Fatalf("ApplyConfig: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.hub, r.hubStop, r.hubDone = srv, cancel, make(chan error, 1)
	go func() { r.hubDone <- srv.Run(ctx) }()
}

// stop stops the hub, then closes the store and the twin cache (idempotent).
func (r *relayEnv) stop() {
	r.env.stop()
	if r.twins != nil {
		r.twins.Close()
		r.twins = nil
	}
}

func (r *relayEnv) restart() {
	r.stop()
	r.start()
}

// twinResponse waits for the next message on $iothub/twin/res/ and parses it.
func (c *client) twinResponse(t *testing.T) (iothub.Topic, []byte) {
	t.Helper()
	for {
		m := c.next(t)
		top, err := iothub.ParseTopic(m.Topic())
		if err != nil {
			t.Fatalf("received %q: %v", m.Topic(), err)
		}
		if top.Kind == iothub.KindTwinResponse {
			return top, m.Payload()
		}
		t.Logf("skipping %s while waiting for a twin response", m.Topic())
	}
}

// nextOf waits for the next message of kind, skipping others.
func (c *client) nextOf(t *testing.T, kind iothub.Kind) (iothub.Topic, []byte) {
	t.Helper()
	for {
		m := c.next(t)
		top, err := iothub.ParseTopic(m.Topic())
		if err != nil {
			t.Fatalf("received %q: %v", m.Topic(), err)
		}
		if top.Kind == kind {
			return top, m.Payload()
		}
		t.Logf("skipping %s while waiting for %s", m.Topic(), kind)
	}
}

// request publishes a twin request at QoS 1 and waits for its PUBACK.
func (c *client) request(t *testing.T, topic, body string) {
	t.Helper()
	tok := c.Publish(topic, 1, false, body)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("%v publish %s: no PUBACK (%v)", c.id, topic, tok.Error())
	}
}

// noMessage checks that nothing arrives within d (used only where a message would be a
// bug, never for synchronisation).
func (c *client) noMessage(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-c.msgs:
		t.Fatalf("%v received %s %s, want nothing", c.id, m.Topic(), m.Payload())
	case <-time.After(d):
	}
}

func mustDecode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	m, err := twin.DecodePatch(b)
	if err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

// canon re-encodes JSON with sorted keys, for comparisons.
func canon(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// fakeCloud is an in-memory IoT Hub behind the hub's Cloud interface: twins, the link
// state, recorded reported patches and method answers, and handlers the tests fire.
type fakeCloud struct {
	mu        sync.Mutex
	connected bool
	twins     map[sas.Identity]*twin.Twin
	reported  []reportedCall
	answers   chan methodAnswer
	attached  map[sas.Identity]upstream.Subscriptions
	getErr    error // returned by GetTwin when set
	onDesired func(sas.Identity, []byte, int64)
	onMethod  func(sas.Identity, string, string, []byte)
	onC2D     func(sas.Identity, iothub.Message) error
}

type reportedCall struct {
	id    sas.Identity
	patch string
}

type methodAnswer struct {
	id      sas.Identity
	rid     string
	status  int
	payload string
}

var _ hub.Cloud = (*fakeCloud)(nil)

func newFakeCloud() *fakeCloud {
	return &fakeCloud{connected: true, twins: map[sas.Identity]*twin.Twin{}, answers: make(chan methodAnswer, 16),
		attached: map[sas.Identity]upstream.Subscriptions{}}
}

func (f *fakeCloud) Connected() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connected
}

func (f *fakeCloud) setConnected(up bool) {
	f.mu.Lock()
	f.connected = up
	f.mu.Unlock()
}

func (f *fakeCloud) Attach(_ context.Context, id sas.Identity, subs upstream.Subscriptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.connected {
		return upstream.ErrOffline
	}
	f.attached[id] = subs
	return nil
}

// attachment returns the subscriptions id was attached with.
func (f *fakeCloud) attachment(id sas.Identity) upstream.Subscriptions {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attached[id]
}

func (f *fakeCloud) twinLocked(id sas.Identity) *twin.Twin {
	tw := f.twins[id]
	if tw == nil {
		tw = twin.New()
		f.twins[id] = tw
	}
	return tw
}

func (f *fakeCloud) GetTwin(_ context.Context, id sas.Identity) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.connected {
		return nil, fmt.Errorf("get twin: %w", upstream.ErrOffline)
	}
	if f.getErr != nil {
		return nil, f.getErr
	}
	return f.twinLocked(id).DeviceJSON(), nil
}

func (f *fakeCloud) UpdateReported(_ context.Context, id sas.Identity, patch []byte) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.connected {
		return 0, fmt.Errorf("update reported: %w", upstream.ErrOffline)
	}
	p, err := twin.DecodePatch(patch)
	if err != nil {
		return 0, &upstream.StatusError{Status: 400, Body: []byte(err.Error())}
	}
	v, err := f.twinLocked(id).PatchReported(p, time.Now())
	if err != nil {
		return 0, &upstream.StatusError{Status: 400, Body: []byte(err.Error())}
	}
	f.reported = append(f.reported, reportedCall{id, string(patch)})
	return v, nil
}

func (f *fakeCloud) RespondMethod(_ context.Context, id sas.Identity, rid string, status int, payload []byte) error {
	f.answers <- methodAnswer{id, rid, status, string(payload)}
	return nil
}

func (f *fakeCloud) OnDesired(h func(sas.Identity, []byte, int64)) { f.onDesired = h }
func (f *fakeCloud) OnMethod(h func(sas.Identity, string, string, []byte)) {
	f.onMethod = h
}
func (f *fakeCloud) OnC2D(h func(sas.Identity, iothub.Message) error) { f.onC2D = h }

// patchDesired changes id's desired properties and, when push is set, notifies the hub as
// IoT Hub notifies an attached identity. It returns the new version.
func (f *fakeCloud) patchDesired(t *testing.T, id sas.Identity, patch string, push bool) int64 {
	t.Helper()
	p := mustDecode(t, []byte(patch))
	f.mu.Lock()
	v, err := f.twinLocked(id).PatchDesired(p, time.Now())
	h := f.onDesired
	f.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if push {
		h(id, twin.DesiredNotification(p, v), v)
	}
	return v
}

// reportedOf returns the reported section IoT Hub holds for id, as JSON.
func (f *fakeCloud) reportedOf(t *testing.T, id sas.Identity) map[string]any {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	return twin.Clone(f.twinLocked(id).Reported)
}

// reportedCalls returns the patches sent for id.
func (f *fakeCloud) reportedCalls(id sas.Identity) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.reported {
		if c.id == id {
			out = append(out, c.patch)
		}
	}
	return out
}

// answer waits for the hub's answer to a method call.
func (f *fakeCloud) answer(t *testing.T) methodAnswer {
	t.Helper()
	select {
	case a := <-f.answers:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no method answer within 10s")
		return methodAnswer{}
	}
}

// methodsOf subscribes a paho client to method requests and answers each with fn.
func methodsOf(t *testing.T, c *client, fn func(name string, payload []byte) (int, string)) {
	t.Helper()
	tok := c.Subscribe(iothub.MethodRequestFilter, 0, func(pc paho.Client, m paho.Message) {
		top, err := iothub.ParseTopic(m.Topic())
		if err != nil || top.Kind != iothub.KindMethodRequest {
			return
		}
		status, body := fn(top.Method, m.Payload())
		if status == 0 {
			return // no answer
		}
		pc.Publish(iothub.MethodResponseTopic(status, top.RequestID), 0, false, body)
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe methods: %v", tok.Error())
	}
}

// callMethod calls the hub's method API as module caller.
func callMethod(t *testing.T, hc *http.Client, base string, target sas.Identity, header, auth, body string) (int, string) {
	t.Helper()
	url := base + "/twins/" + target.DeviceID
	if target.ModuleID != "" {
		url += "/modules/" + target.ModuleID
	}
	req, err := http.NewRequest(http.MethodPost, url+"/methods?api-version=2021-04-12", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if header != "" {
		req.Header.Set("x-ms-edge-moduleId", header)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, sb.String()
}
