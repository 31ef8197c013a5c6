package fakehub_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// These tests drive the edge multiplexing extension with a bare paho client, byte for byte as
// docs/upstream.md specifies it (runtime/upstream's tests cover the same ground through the
// real client).

// oboEdge is an edge hub's connection: {edge}/$edgeHub, subscribed to the extension's filters.
type oboEdge struct {
	c    paho.Client
	sink *msgSink
	rid  atomic.Int64
}

// oboWorld registers edge1 (an edge device), its module m1, leaf1 (a child of edge1),
// other (a plain device) and the edge hub connection.
func oboWorld(t *testing.T) (*fakehub.Server, *oboEdge) {
	t.Helper()
	s := fakehubtest.New(t)
	edge, _ := fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	fakehubtest.MustModule(t, s, "edge1", "m1")
	fakehubtest.MustDevice(t, s, "leaf1", fakehubtest.Parent(edge))
	fakehubtest.MustDevice(t, s, "other")
	return s, dialEdge(t, s, "edge1")
}

func dialEdge(t *testing.T, s *fakehub.Server, edge string) *oboEdge {
	t.Helper()
	cs, err := s.ModuleConnectionString(edge, "$edgeHub")
	if err != nil {
		t.Fatal(err)
	}
	o := pahoOptions(t, s, cs).SetAutoAckDisabled(true)
	e := &oboEdge{sink: &msgSink{}}
	o.SetDefaultPublishHandler(e.sink.handler)
	e.c = dial(t, o)
	granted := subscribe(t, e.c, e.sink, iothub.OBOFilter, iothub.OBOC2DFilter)
	for f, qos := range granted {
		if qos != 1 {
			t.Fatalf("filter %q granted %#x", f, qos)
		}
	}
	return e
}

// request publishes an extension request and waits for its answer.
func (e *oboEdge) request(t *testing.T, kind iothub.OBOKind, id sas.Identity, body string) (int, []byte) {
	t.Helper()
	req := iothub.OBOTopic{Kind: kind, DeviceID: id.DeviceID, ModuleID: id.ModuleID,
		RequestID: "r" + strconv.FormatInt(e.rid.Add(1), 10)}
	publish(t, e.c, req.String(), 1, body)
	var got paho.Message
	waitFor(t, "the answer to "+req.String(), func() bool {
		for _, m := range e.sink.all() {
			if tp, err := iothub.ParseOBOTopic(m.Topic()); err == nil && tp.RequestID == req.RequestID && tp.Kind == kind.Response() {
				got = m
				return true
			}
		}
		return false
	})
	tp, _ := iothub.ParseOBOTopic(got.Topic())
	if tp.DeviceID != id.DeviceID || tp.ModuleID != id.ModuleID {
		t.Fatalf("answer %q is for another identity", got.Topic())
	}
	return tp.Status, got.Payload()
}

func password(t *testing.T, s *fakehub.Server, d, m string) string {
	t.Helper()
	var cs string
	var err error
	if m == "" {
		cs, err = s.DeviceConnectionString(d)
	} else {
		cs, err = s.ModuleConnectionString(d, m)
	}
	if err != nil {
		t.Fatal(err)
	}
	_, _, pass := credentials(t, cs)
	return pass
}

func authBody(pass string) string {
	b, _ := json.Marshal(iothub.OBOCredentials{Password: pass})
	return string(b)
}

var (
	leaf1   = sas.Identity{DeviceID: "leaf1"}
	m1      = sas.Identity{DeviceID: "edge1", ModuleID: "m1"}
	other   = sas.Identity{DeviceID: "other"}
	edgeDev = sas.Identity{DeviceID: "edge1"}
)

func TestOBO_Auth(t *testing.T) {
	s, e := oboWorld(t)
	leaf, _ := s.GetDevice("leaf1")
	module, _ := s.GetModule("edge1", "m1")
	forged, _ := sas.Sign("localhost/devices/leaf1", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "", time.Now().Add(time.Hour))
	unknownModule := sas.Identity{DeviceID: "edge1", ModuleID: "nope"}
	leafModule := sas.Identity{DeviceID: "leaf1", ModuleID: "x"}

	cases := []struct {
		name   string
		id     sas.Identity
		body   string
		status int
	}{
		{"leaf with its own token", leaf1, authBody(password(t, s, "leaf1", "")), 200},
		{"module with its own token", m1, authBody(password(t, s, "edge1", "m1")), 200},
		{"module with its device's token", m1, authBody(password(t, s, "edge1", "")), 200},
		{"forged signature", leaf1, authBody(forged), 401},
		{"another identity's token", leaf1, authBody(password(t, s, "edge1", "m1")), 401},
		{"garbage password", leaf1, authBody("not a token"), 401},
		{"unknown thumbprint on a sas identity", leaf1, `{"x509Thumbprint":"AB"}`, 401},
		{"malformed body", leaf1, `{"password":1}`, 400},
		{"both credentials", leaf1, `{"password":"x","x509Thumbprint":"AB"}`, 400},
		{"device outside the scope", other, authBody(password(t, s, "other", "")), 403},
		{"edge device's own identity", edgeDev, authBody(password(t, s, "edge1", "")), 403},
		{"module of a leaf", leafModule, authBody(password(t, s, "leaf1", "")), 403},
		{"unknown device", sas.Identity{DeviceID: "ghost"}, authBody("x"), 404},
		{"unknown module of the edge", unknownModule, authBody("x"), 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := e.request(t, iothub.OBOAuth, c.id, c.body)
			if status != c.status {
				t.Fatalf("status %d (%s), want %d", status, body, c.status)
			}
			if status != 200 {
				var eb iothub.OBOError
				if err := json.Unmarshal(body, &eb); err != nil || eb.ErrorCode == 0 || eb.Message == "" {
					t.Fatalf("error body %s: %v", body, err)
				}
				return
			}
			r, err := iothub.ParseOBOIdentity(body)
			if err != nil {
				t.Fatal(err)
			}
			want := leaf
			if c.id.ModuleID != "" {
				if r.GenerationID != module.GenerationID || r.Authentication.SymmetricKey.PrimaryKey != module.Authentication.SymmetricKey.PrimaryKey {
					t.Fatalf("record %+v, module %+v", r, module)
				}
				return
			}
			if r.DeviceID != "leaf1" || r.GenerationID != want.GenerationID || !r.Enabled() ||
				r.Authentication.SymmetricKey.PrimaryKey != want.Authentication.SymmetricKey.PrimaryKey ||
				r.Authentication.SymmetricKey.SecondaryKey != want.Authentication.SymmetricKey.SecondaryKey ||
				!slices.Equal(r.ParentScopes, want.ParentScopes) || r.DeviceScope != want.DeviceScope || r.Etag != want.Etag {
				t.Fatalf("record %+v, registry %+v", r, want)
			}
		})
	}
}

func TestOBO_AuthThumbprintAndThrottle(t *testing.T) {
	s, e := oboWorld(t)
	const tp = "0123456789ABCDEF0123456789ABCDEF01234567"
	edge, _ := s.GetDevice("edge1")
	_, err := s.PutDevice(fakehub.Device{DeviceID: "cam", ParentScopes: []string{edge.DeviceScope},
		Authentication: fakehub.Authentication{Type: "selfSigned", X509Thumbprint: &fakehub.X509Thumbprint{PrimaryThumbprint: tp}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	cam := sas.Identity{DeviceID: "cam"}
	if status, body := e.request(t, iothub.OBOAuth, cam, `{"x509Thumbprint":"`+strings.ToLower(tp)+`"}`); status != 200 {
		t.Fatalf("thumbprint auth: %d %s", status, body)
	}
	if status, _ := e.request(t, iothub.OBOAuth, cam, `{"x509Thumbprint":"AA`+tp[2:]+`"}`); status != 401 {
		t.Fatalf("wrong thumbprint: %d", status)
	}
	s.SetThrottle(true)
	for _, k := range []iothub.OBOKind{iothub.OBOAuth, iothub.OBOIdentityGet, iothub.OBOAttach, iothub.OBOTwinGet} {
		if status, _ := e.request(t, k, leaf1, authBody(password(t, s, "leaf1", ""))); status != 429 {
			t.Errorf("%s while throttled: %d, want 429", k, status)
		}
	}
	s.SetThrottle(false)
	if status, _ := e.request(t, iothub.OBOIdentityGet, leaf1, ""); status != 200 {
		t.Fatalf("after throttling: %d", status)
	}
}

func TestOBO_IdentityRefresh(t *testing.T) {
	s, e := oboWorld(t)
	status, body := e.request(t, iothub.OBOIdentityGet, leaf1, "")
	if r, err := iothub.ParseOBOIdentity(body); status != 200 || err != nil || !r.Enabled() {
		t.Fatalf("enabled leaf: %d %s %v", status, body, err)
	}
	leaf, _ := s.GetDevice("leaf1")
	leaf.Status = "disabled"
	if _, err := s.PutDevice(leaf, "*"); err != nil {
		t.Fatal(err)
	}
	status, body = e.request(t, iothub.OBOIdentityGet, leaf1, "")
	if r, err := iothub.ParseOBOIdentity(body); status != 200 || err != nil || r.Status != "disabled" {
		t.Fatalf("disabled leaf: %d %s %v", status, body, err)
	}
	if status, _ := e.request(t, iothub.OBOAuth, leaf1, authBody(password(t, s, "leaf1", ""))); status != 401 {
		t.Fatalf("auth of a disabled leaf: %d, want 401", status)
	}
	if err := s.DeleteDevice("leaf1", ""); err != nil {
		t.Fatal(err)
	}
	if status, _ := e.request(t, iothub.OBOIdentityGet, leaf1, ""); status != 404 {
		t.Fatalf("deleted leaf: %d, want 404", status)
	}
}

func identitiesOnEdge(s *fakehub.Server) [][]string {
	var out [][]string
	for _, c := range s.Connections() {
		out = append(out, c.Identities)
	}
	return out
}

func TestOBO_AttachCarriesIdentitiesOnOneConnection(t *testing.T) {
	s, e := oboWorld(t)
	edge, _ := s.GetDevice("edge1")
	fakehubtest.MustModule(t, s, "edge1", "m2")
	fakehubtest.MustDevice(t, s, "leaf2", fakehubtest.Parent(edge))
	ids := []sas.Identity{m1, {DeviceID: "edge1", ModuleID: "m2"}, leaf1, {DeviceID: "leaf2"}}
	for _, id := range ids {
		if status, body := e.request(t, iothub.OBOAttach, id, `{"subscriptions":["desired","methods","c2d"]}`); status != 204 {
			t.Fatalf("attach %s: %d %s", id, status, body)
		}
	}
	want := [][]string{{"edge1/$edgeHub", "edge1/m1", "edge1/m2", "leaf1", "leaf2"}}
	if got := identitiesOnEdge(s); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("connections carry %v, want %v", got, want)
	}
	if d, _ := s.GetDevice("leaf1"); d.ConnectionState != "Connected" {
		t.Fatalf("leaf1 is %s", d.ConnectionState)
	}
	if m, _ := s.GetModule("edge1", "m1"); m.ConnectionState != "Connected" {
		t.Fatalf("m1 is %s", m.ConnectionState)
	}

	// Out of scope: refused, and nothing is carried.
	if status, _ := e.request(t, iothub.OBOAttach, other, ""); status != 403 {
		t.Fatalf("attach other: %d", status)
	}
	if status, _ := e.request(t, iothub.OBOAttach, leaf1, `{"subscriptions":["inputs"]}`); status != 400 {
		t.Fatalf("attach with an unknown subscription: %d", status)
	}

	if status, _ := e.request(t, iothub.OBODetach, leaf1, ""); status != 204 {
		t.Fatalf("detach: %d", status)
	}
	if d, _ := s.GetDevice("leaf1"); d.ConnectionState != "Disconnected" {
		t.Fatalf("leaf1 is %s after detach", d.ConnectionState)
	}
	want = [][]string{{"edge1/$edgeHub", "edge1/m1", "edge1/m2", "leaf2"}}
	if got := identitiesOnEdge(s); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("after detach: %v, want %v", got, want)
	}

	// Deleting an attached identity detaches it.
	if err := s.DeleteModule("edge1", "m2", ""); err != nil {
		t.Fatal(err)
	}
	want = [][]string{{"edge1/$edgeHub", "edge1/m1", "leaf2"}}
	if got := identitiesOnEdge(s); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("after deleting m2: %v, want %v", got, want)
	}

	// Disabling an attached device detaches it too.
	leaf2, _ := s.GetDevice("leaf2")
	leaf2.Status = "disabled"
	if _, err := s.PutDevice(leaf2, "*"); err != nil {
		t.Fatal(err)
	}
	want = [][]string{{"edge1/$edgeHub", "edge1/m1"}}
	if got := identitiesOnEdge(s); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("after disabling leaf2: %v, want %v", got, want)
	}
	if d, _ := s.GetDevice("leaf2"); d.ConnectionState != "Disconnected" {
		t.Fatalf("disabled leaf2 is %s", d.ConnectionState)
	}

	// The end of the edge hub's connection ends every attachment.
	e.c.Disconnect(0)
	waitFor(t, "no connection", func() bool { return len(s.Connections()) == 0 })
	if m, _ := s.GetModule("edge1", "m1"); m.ConnectionState != "Disconnected" {
		t.Fatalf("m1 is %s after the edge hub left", m.ConnectionState)
	}
}

func TestOBO_TelemetryAttributedToTheRealSender(t *testing.T) {
	s, e := oboWorld(t)
	leaf, _ := s.GetDevice("leaf1")
	module, _ := s.GetModule("edge1", "m1")
	publish(t, e.c, iothub.TelemetryTopic("leaf1", "", iothub.Bag{{Key: "$.mid", Value: "a"}, {Key: "$.cdid", Value: "leaf1"}, {Key: "k", Value: "v"}}), 1, "from leaf")
	publish(t, e.c, iothub.TelemetryTopic("edge1", "m1", iothub.Bag{{Key: "$.on", Value: "out1"}}), 1, "from m1")
	publish(t, e.c, iothub.TelemetryTopic("edge1", "$edgeHub", nil), 1, "from the edge hub itself")
	waitFor(t, "three events", func() bool { return len(s.Events(0, 10)) == 3 })
	evs := s.Events(0, 10)
	wantMethod := func(scope string) string {
		return `{"scope":"` + scope + `","type":"sas","issuer":"edgeHub","acceptingIpFilterRule":null}`
	}
	checks := []struct {
		dev, mod, body, gen, method string
	}{
		{"leaf1", "", "from leaf", leaf.GenerationID, wantMethod("device")},
		{"edge1", "m1", "from m1", module.GenerationID, wantMethod("module")},
	}
	for i, c := range checks {
		ev := evs[i]
		sp := ev.SystemProperties
		if ev.DeviceID != c.dev || ev.ModuleID != c.mod || string(ev.Body) != c.body ||
			sp["iothub-connection-device-id"] != c.dev || sp["iothub-connection-module-id"] != c.mod ||
			sp["iothub-connection-auth-generation-id"] != c.gen || sp["iothub-connection-auth-method"] != c.method {
			t.Errorf("event %d: %+v", i, ev)
		}
	}
	if evs[0].Properties["k"] != "v" || evs[0].SystemProperties["message-id"] != "a" {
		t.Errorf("leaf event properties %v %v", evs[0].Properties, evs[0].SystemProperties)
	}
	if evs[1].SystemProperties["$.on"] != "out1" {
		t.Errorf("module output name lost: %v", evs[1].SystemProperties)
	}
	if sp := evs[2].SystemProperties; evs[2].ModuleID != "$edgeHub" || !strings.Contains(sp["iothub-connection-auth-method"], `"issuer":"iothub"`) {
		t.Errorf("the edge hub's own event: %+v", evs[2])
	}
}

func TestOBO_RefusedTelemetryClosesTheConnection(t *testing.T) {
	cases := []struct{ name, topic string }{
		{"device outside the scope", iothub.TelemetryTopic("other", "", nil)},
		{"unknown device", iothub.TelemetryTopic("ghost", "", nil)},
		{"module of a leaf", iothub.TelemetryTopic("leaf1", "x", nil)},
		{"$.cdid of another device", iothub.TelemetryTopic("leaf1", "", iothub.Bag{{Key: "$.cdid", Value: "other"}})},
		{"$.cmid on a device", iothub.TelemetryTopic("leaf1", "", iothub.Bag{{Key: "$.cmid", Value: "m1"}})},
		{"an answer topic", iothub.OBOTopic{Kind: iothub.OBOAuthResponse, DeviceID: "leaf1", RequestID: "1", Status: 200}.String()},
		{"an unknown operation", "$edgehub/devices/leaf1/connect/?$rid=1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := fakehubtest.New(t)
			edge, _ := fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
			fakehubtest.MustDevice(t, s, "leaf1", fakehubtest.Parent(edge))
			fakehubtest.MustDevice(t, s, "other")
			cs, _ := s.ModuleConnectionString("edge1", "$edgeHub")
			r := connectRaw(t, s, cs)
			r.publish(c.topic, []byte("x"), 1, 1)
			r.expectClosed()
			if n := len(s.Events(0, 10)); n != 0 {
				t.Fatalf("%d events captured", n)
			}
		})
	}
}

func TestOBO_OnlyTheEdgeHubOfAnEdgeDeviceMayUseTheExtension(t *testing.T) {
	s := fakehubtest.New(t)
	edge, _ := fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	fakehubtest.MustDevice(t, s, "leaf1", fakehubtest.Parent(edge))
	_, modCS := fakehubtest.MustModule(t, s, "edge1", "m1")
	r := connectRaw(t, s, modCS)
	if codes := r.subscribe(1, 1, iothub.OBOFilter, iothub.OBOC2DFilter); codes[0] != 0x80 || codes[1] != 0x80 {
		t.Fatalf("a plain module was granted the extension's filters: % x", codes)
	}
	r.publish(iothub.OBOTopic{Kind: iothub.OBOIdentityGet, DeviceID: "leaf1", RequestID: "1"}.String(), nil, 1, 1)
	r.expectClosed()
}

func TestOBO_Twins(t *testing.T) {
	s, e := oboWorld(t)
	status, body := e.request(t, iothub.OBOTwinGet, leaf1, "")
	if status != 200 || !strings.Contains(string(body), `"desired"`) || !strings.Contains(string(body), `"reported"`) {
		t.Fatalf("twin GET: %d %s", status, body)
	}
	status, _ = e.request(t, iothub.OBOTwinPatchReported, m1, `{"temp":21}`)
	if status != 204 {
		t.Fatalf("reported PATCH: %d", status)
	}
	// The 204 carries the new reported version.
	var version int64
	for _, m := range e.sink.all() {
		if tp, err := iothub.ParseOBOTopic(m.Topic()); err == nil && tp.Kind == iothub.OBOTwinResponse && tp.Status == 204 {
			version = tp.Version
		}
	}
	tw, err := s.GetTwin("edge1", "m1")
	if err != nil || tw.Properties.Reported["temp"] != json.Number("21") && tw.Properties.Reported["temp"] != float64(21) {
		t.Fatalf("reported %v, %v", tw.Properties.Reported, err)
	}
	if version < 1 {
		t.Fatalf("204 without $version")
	}
	if status, _ := e.request(t, iothub.OBOTwinPatchReported, m1, `[1]`); status != 400 {
		t.Fatalf("malformed patch: %d", status)
	}
	if status, _ := e.request(t, iothub.OBOTwinGet, other, ""); status != 403 {
		t.Fatalf("twin of other: %d", status)
	}

	// Desired patches reach attached identities that asked for them, and only those.
	e.request(t, iothub.OBOAttach, leaf1, `{"subscriptions":["desired"]}`)
	e.request(t, iothub.OBOAttach, m1, `{"subscriptions":["methods"]}`)
	patch := fakehub.TwinPatch{}
	patch.Properties.Desired = map[string]any{"rate": 5}
	if _, err := s.PatchTwin("edge1", "m1", patch, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PatchTwin("leaf1", "", patch, ""); err != nil {
		t.Fatal(err)
	}
	m := e.sink.wait(t, "$edgehub/devices/leaf1/twin/PATCH/properties/desired/")
	tp, err := iothub.ParseOBOTopic(m.Topic())
	if err != nil || tp.Version != 2 || !strings.Contains(string(m.Payload()), `"$version":2`) || !strings.Contains(string(m.Payload()), `"rate":5`) {
		t.Fatalf("desired notification %s %s (%v)", m.Topic(), m.Payload(), err)
	}
	for _, m := range e.sink.all() {
		if strings.HasPrefix(m.Topic(), "$edgehub/devices/edge1/modules/m1/twin/PATCH") {
			t.Fatalf("m1 did not ask for desired patches but got %s", m.Topic())
		}
	}
}

func TestOBO_Methods(t *testing.T) {
	s, e := oboWorld(t)
	ctx := context.Background()
	if _, err := s.InvokeMethod(ctx, "edge1", "m1", fakehub.MethodRequest{MethodName: "ping"}); !errors.Is(err, fakehub.ErrDeviceNotOnline) {
		t.Fatalf("unattached module: %v, want ErrDeviceNotOnline", err)
	}
	e.request(t, iothub.OBOAttach, m1, `{"subscriptions":["desired"]}`)
	if _, err := s.InvokeMethod(ctx, "edge1", "m1", fakehub.MethodRequest{MethodName: "ping"}); !errors.Is(err, fakehub.ErrDeviceNotOnline) {
		t.Fatalf("module attached without methods: %v, want ErrDeviceNotOnline", err)
	}
	e.request(t, iothub.OBOAttach, m1, `{"subscriptions":["methods"]}`)

	type result struct {
		resp fakehub.MethodResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		r, err := s.InvokeMethod(ctx, "edge1", "m1", fakehub.MethodRequest{MethodName: "reboot", Payload: json.RawMessage(`{"in":1}`), ResponseTimeoutInSeconds: 10})
		done <- result{r, err}
	}()
	req := e.sink.wait(t, "$edgehub/devices/edge1/modules/m1/methods/POST/reboot/")
	tp, err := iothub.ParseOBOTopic(req.Topic())
	if err != nil || string(req.Payload()) != `{"in":1}` {
		t.Fatalf("request %s %s: %v", req.Topic(), req.Payload(), err)
	}
	// A forged answer for another identity with the same $rid does not complete the call.
	publish(t, e.c, iothub.OBOTopic{Kind: iothub.OBOMethodResponse, DeviceID: "leaf1", RequestID: tp.RequestID, Status: 500}.String(), 1, `{}`)
	publish(t, e.c, iothub.OBOTopic{Kind: iothub.OBOMethodResponse, DeviceID: "edge1", ModuleID: "m1", RequestID: tp.RequestID, Status: 201}.String(), 1, `{"out":2}`)
	r := <-done
	if r.err != nil || r.resp.Status != 201 || string(r.resp.Payload) != `{"out":2}` {
		t.Fatalf("method result %+v %v", r.resp, r.err)
	}
}

func TestOBO_C2DCompletedByTheEdgeHubsPuback(t *testing.T) {
	s, e := oboWorld(t)
	if _, err := s.SendC2D("leaf1", fakehub.C2DMessage{Body: []byte("hello"), MessageID: "c1"}); err != nil {
		t.Fatal(err)
	}
	e.request(t, iothub.OBOAttach, leaf1, `{"subscriptions":["c2d"]}`)
	m := e.sink.wait(t, "devices/leaf1/messages/devicebound/")
	if string(m.Payload()) != "hello" || m.Qos() != 1 {
		t.Fatalf("C2D %s %q qos %d", m.Topic(), m.Payload(), m.Qos())
	}
	if tp, err := iothub.ParseTopic(m.Topic()); err != nil || tp.Kind != iothub.KindC2D {
		t.Fatalf("C2D topic %q: %v", m.Topic(), err)
	}
	if n := s.PendingC2D("leaf1"); n != 1 {
		t.Fatalf("%d pending before the PUBACK, want 1", n)
	}
	m.Ack()
	waitFor(t, "the message to complete", func() bool { return s.PendingC2D("leaf1") == 0 })

	// Unacknowledged messages come back when the edge hub reconnects and attaches again.
	if _, err := s.SendC2D("leaf1", fakehub.C2DMessage{Body: []byte("again")}); err != nil {
		t.Fatal(err)
	}
	e.sink.wait(t, "devices/leaf1/messages/devicebound/%24.mid")
	waitFor(t, "the second message on the wire", func() bool {
		n := 0
		for _, m := range e.sink.all() {
			if string(m.Payload()) == "again" {
				n++
			}
		}
		return n == 1
	})
	e.c.Disconnect(0)
	waitFor(t, "no connection", func() bool { return len(s.Connections()) == 0 })
	e2 := dialEdge(t, s, "edge1")
	e2.request(t, iothub.OBOAttach, leaf1, `{"subscriptions":["c2d"]}`)
	m = e2.sink.wait(t, "devices/leaf1/messages/devicebound/")
	if string(m.Payload()) != "again" {
		t.Fatalf("redelivered %q", m.Payload())
	}
	m.Ack()
	waitFor(t, "the redelivered message to complete", func() bool { return s.PendingC2D("leaf1") == 0 })
}
