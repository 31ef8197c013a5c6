package upstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/upstream"
)

// The hub's $upstream pump talks to the client through hub.Upstream.
var _ hub.Upstream = (*upstream.Client)(nil)

func TestSend_OnBehalfOfModulesAndLeavesAttributedToTheRealSender(t *testing.T) {
	s := world(t)
	c := start(t, options(t, s), nil)
	ctx := ctxFor(t)
	leaf, _ := s.GetDevice("leaf1")
	mod, _ := s.GetModule("edge1", "m1")

	err := c.Send(ctx, m1, iothub.Message{
		Body:       []byte(`{"t":1}`),
		Properties: map[string]string{"alert": "yes"},
		// The hub stamps its sender; the client checks and drops the stamps.
		System: map[string]string{iothub.SysOutputName: "out1", iothub.SysMessageID: "mid-1",
			iothub.SysConnDeviceID: "edge1", iothub.SysConnModuleID: "m1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, leaf1, iothub.Message{Body: []byte("leaf"), System: map[string]string{iothub.SysConnDeviceID: "leaf1"}}); err != nil {
		t.Fatal(err)
	}
	evs := s.Events(0, 10)
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2 (Send returns after the PUBACK, after capture)", len(evs))
	}
	checks := []struct {
		dev, mod, body, gen, scope string
	}{
		{"edge1", "m1", `{"t":1}`, mod.GenerationID, "module"},
		{"leaf1", "", "leaf", leaf.GenerationID, "device"},
	}
	for i, w := range checks {
		ev, sp := evs[i], evs[i].SystemProperties
		if ev.DeviceID != w.dev || ev.ModuleID != w.mod || string(ev.Body) != w.body ||
			sp["iothub-connection-device-id"] != w.dev || sp["iothub-connection-module-id"] != w.mod ||
			sp["iothub-connection-auth-generation-id"] != w.gen ||
			!strings.Contains(sp["iothub-connection-auth-method"], `"scope":"`+w.scope+`"`) ||
			!strings.Contains(sp["iothub-connection-auth-method"], `"issuer":"edgeHub"`) {
			t.Errorf("event %d: %+v", i, ev)
		}
	}
	if evs[0].Properties["alert"] != "yes" || evs[0].SystemProperties["message-id"] != "mid-1" || evs[0].SystemProperties["$.on"] != "out1" {
		t.Errorf("properties lost: %v %v", evs[0].Properties, evs[0].SystemProperties)
	}
	if got := carried(s); len(got) != 1 || !slices.Equal(got[0], []string{"edge1/$edgeHub"}) {
		t.Fatalf("connections %v: sending needs no attach and no other connection", got)
	}
}

func TestSend_RefusesWhatIoTHubWouldRefuseWithoutLosingTheLink(t *testing.T) {
	s := world(t)
	leaf2Dev, _ := s.GetDevice("leaf2")
	leaf2Dev.Status = "disabled"
	if _, err := s.PutDevice(leaf2Dev, "*"); err != nil {
		t.Fatal(err)
	}
	c := start(t, options(t, s), nil)
	before := s.Connections()[0].ID
	ctx := ctxFor(t)
	cases := []struct {
		name string
		id   sas.Identity
		m    iothub.Message
		want error
	}{
		{"device outside the scope", other, iothub.Message{}, upstream.ErrOutOfScope},
		{"unknown device", ghost, iothub.Message{}, upstream.ErrNotFound},
		{"disabled leaf", leaf2, iothub.Message{}, upstream.ErrDisabled},
		{"too large", leaf1, iothub.Message{Body: make([]byte, iothub.MaxMessageSize+1)}, upstream.ErrTooLarge},
		{"stamped with another sender", leaf1, iothub.Message{System: map[string]string{iothub.SysConnDeviceID: "leaf2"}}, upstream.ErrInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 { // the second time the verdict comes from the cache
				err := c.Send(ctx, tc.id, tc.m)
				if !errors.Is(err, tc.want) || !errors.Is(err, upstream.ErrRejected) {
					t.Fatalf("Send: %v, want %v and ErrRejected", err, tc.want)
				}
			}
		})
	}
	if err := c.Send(ctx, leaf1, iothub.Message{Body: []byte("fine")}); err != nil {
		t.Fatal(err)
	}
	if conns := s.Connections(); len(conns) != 1 || conns[0].ID != before || !c.Connected() {
		t.Fatalf("the link changed: %+v", conns)
	}
	if n := len(s.Events(0, 10)); n != 1 {
		t.Fatalf("%d events captured, want only the good one", n)
	}
}

func TestSend_DeletedLeafIsRejectedAfterOneReconnection(t *testing.T) {
	s := world(t)
	c := start(t, options(t, s), nil)
	ctx := ctxFor(t)
	if err := c.Send(ctx, leaf1, iothub.Message{Body: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	before := s.Connections()[0].ID
	// The verdict "leaf1 may send" holds for the connection; IoT Hub drops the link on the
	// next message, and on the new connection the client asks again and rejects it.
	if err := s.DeleteDevice("leaf1", ""); err != nil {
		t.Fatal(err)
	}
	err := c.Send(ctx, leaf1, iothub.Message{Body: []byte("2")})
	if !errors.Is(err, upstream.ErrOffline) {
		t.Fatalf("first send after the deletion: %v, want ErrOffline (IoT Hub closed the link)", err)
	}
	waitFor(t, "a new connection", func() bool {
		conns := s.Connections()
		return c.Connected() && len(conns) == 1 && conns[0].ID != before
	})
	err = c.Send(ctx, leaf1, iothub.Message{Body: []byte("3")})
	if !errors.Is(err, upstream.ErrNotFound) || !errors.Is(err, upstream.ErrRejected) {
		t.Fatalf("after reconnecting: %v, want ErrNotFound and ErrRejected", err)
	}
}

func TestAuthenticate(t *testing.T) {
	s := world(t)
	c := start(t, options(t, s), nil)
	ctx := ctxFor(t)
	token := func(d, m string) string {
		var cs string
		if m == "" {
			cs, _ = s.DeviceConnectionString(d)
		} else {
			cs, _ = s.ModuleConnectionString(d, m)
		}
		parsed, err := sas.ParseConnectionString(cs)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := parsed.Token(time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	leaf, _ := s.GetDevice("leaf1")
	r, err := c.Authenticate(ctx, leaf1, token("leaf1", ""))
	if err != nil {
		t.Fatal(err)
	}
	want := sas.Keys{Primary: leaf.Authentication.SymmetricKey.PrimaryKey, Secondary: leaf.Authentication.SymmetricKey.SecondaryKey}
	if r.ID() != leaf1 || r.Keys() != want || r.GenerationID != leaf.GenerationID || !r.Enabled() ||
		!slices.Equal(r.ParentScopes, leaf.ParentScopes) {
		t.Fatalf("record %+v, registry %+v", r, leaf)
	}
	// The keys verify the leaf's later tokens locally, as the hub's identity cache will.
	tok, _ := sas.Parse(token("leaf1", ""))
	if err := sas.Verify(tok, leaf1, []string{"localhost"}, time.Now(), func(sas.Identity) (sas.Keys, error) { return r.Keys(), nil }); err != nil {
		t.Fatalf("the returned keys do not verify the leaf's token: %v", err)
	}
	if r, err := c.Authenticate(ctx, m1, token("edge1", "m1")); err != nil || r.ModuleID != "m1" {
		t.Fatalf("module: %+v, %v", r, err)
	}

	refusals := []struct {
		name     string
		id       sas.Identity
		password string
		want     error
		status   int
	}{
		{"wrong token", leaf1, token("leaf2", ""), upstream.ErrUnauthorized, 401},
		{"not a token", leaf1, "hunter2", upstream.ErrUnauthorized, 401},
		{"outside the scope", other, token("other", ""), upstream.ErrOutOfScope, 403},
		{"unknown", ghost, "x", upstream.ErrNotFound, 404},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Authenticate(ctx, tc.id, tc.password)
			var se *upstream.StatusError
			if !errors.Is(err, tc.want) || !errors.As(err, &se) || se.Status != tc.status {
				t.Fatalf("Authenticate: %v, want %v (%d)", err, tc.want, tc.status)
			}
		})
	}
}

func TestGetIdentity_DisabledThenDeleted(t *testing.T) {
	s := world(t)
	c := start(t, options(t, s), nil)
	ctx := ctxFor(t)
	if r, err := c.GetIdentity(ctx, leaf1); err != nil || !r.Enabled() {
		t.Fatalf("enabled: %+v, %v", r, err)
	}
	d, _ := s.GetDevice("leaf1")
	d.Status = "disabled"
	if _, err := s.PutDevice(d, "*"); err != nil {
		t.Fatal(err)
	}
	r, err := c.GetIdentity(ctx, leaf1)
	if err != nil || r.Enabled() || r.Status != "disabled" {
		t.Fatalf("disabled: %+v, %v", r, err)
	}
	if err := s.DeleteDevice("leaf1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetIdentity(ctx, leaf1); !errors.Is(err, upstream.ErrNotFound) {
		t.Fatalf("deleted: %v, want ErrNotFound", err)
	}
}

func TestAttach_OnePhysicalConnectionCarriesEveryIdentity(t *testing.T) {
	s := world(t)
	c := start(t, options(t, s), nil)
	ctx := ctxFor(t)
	all := upstream.Subscriptions{Desired: true, Methods: true}
	for _, id := range []sas.Identity{m1, m2} {
		if err := c.Attach(ctx, id, all); err != nil {
			t.Fatal(err)
		}
	}
	all.C2D = true
	for _, id := range []sas.Identity{leaf1, leaf2} {
		if err := c.Attach(ctx, id, all); err != nil {
			t.Fatal(err)
		}
	}
	want := [][]string{{"edge1/$edgeHub", "edge1/m1", "edge1/m2", "leaf1", "leaf2"}}
	if got := carried(s); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("connections carry %v, want %v", got, want)
	}
	if d, _ := s.GetDevice("leaf2"); d.ConnectionState != "Connected" {
		t.Fatalf("leaf2 is %s", d.ConnectionState)
	}

	if err := c.Attach(ctx, other, upstream.Subscriptions{}); !errors.Is(err, upstream.ErrOutOfScope) {
		t.Fatalf("attach other: %v", err)
	}
	if err := c.Attach(ctx, m1, upstream.Subscriptions{C2D: true}); !errors.Is(err, upstream.ErrInvalidArgument) {
		t.Fatalf("C2D for a module: %v", err)
	}
	if err := c.Detach(ctx, leaf2); err != nil {
		t.Fatal(err)
	}
	want = [][]string{{"edge1/$edgeHub", "edge1/m1", "edge1/m2", "leaf1"}}
	if got := carried(s); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("after detach: %v, want %v", got, want)
	}
	if d, _ := s.GetDevice("leaf2"); d.ConnectionState != "Disconnected" {
		t.Fatalf("leaf2 is %s after detach", d.ConnectionState)
	}
	got := c.Attached()
	slices.SortFunc(got, func(a, b sas.Identity) int { return strings.Compare(a.String(), b.String()) })
	if !slices.Equal(got, []sas.Identity{m1, m2, leaf1}) {
		t.Fatalf("Attached() = %v", got)
	}
}

func TestTwin_OnBehalf(t *testing.T) {
	s := world(t)
	desired := make(chan string, 4)
	c := start(t, options(t, s), func(c *upstream.Client) {
		c.OnDesired(func(id sas.Identity, patch []byte, version int64) {
			desired <- id.String() + " " + string(patch)
		})
	})
	ctx := ctxFor(t)
	v, err := c.UpdateReported(ctx, m1, []byte(`{"temp":21}`))
	if err != nil || v < 1 {
		t.Fatalf("UpdateReported: %d, %v", v, err)
	}
	doc, err := c.GetTwin(ctx, m1)
	if err != nil {
		t.Fatal(err)
	}
	var tw struct {
		Reported map[string]any `json:"reported"`
		Desired  map[string]any `json:"desired"`
	}
	if err := json.Unmarshal(doc, &tw); err != nil || tw.Reported["temp"] != float64(21) || tw.Reported["$version"] != float64(v) || tw.Desired == nil {
		t.Fatalf("twin %s: %v", doc, err)
	}
	var se *upstream.StatusError
	if _, err := c.UpdateReported(ctx, leaf1, []byte(`not json`)); !errors.As(err, &se) || se.Status != 400 || se.Retryable() {
		t.Fatalf("bad patch: %v", err)
	}
	if _, err := c.GetTwin(ctx, other); !errors.Is(err, upstream.ErrOutOfScope) {
		t.Fatalf("twin of other: %v", err)
	}

	// Desired patches reach attached identities that asked for them.
	if err := c.Attach(ctx, leaf1, upstream.Subscriptions{Desired: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Attach(ctx, m1, upstream.Subscriptions{Methods: true}); err != nil {
		t.Fatal(err)
	}
	patch := fakehub.TwinPatch{}
	patch.Properties.Desired = map[string]any{"rate": 5}
	if _, err := s.PatchTwin("edge1", "m1", patch, ""); err != nil { // m1 did not ask
		t.Fatal(err)
	}
	if _, err := s.PatchTwin("leaf1", "", patch, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-desired:
		if !strings.HasPrefix(got, "leaf1 ") || !strings.Contains(got, `"rate":5`) || !strings.Contains(got, `"$version":2`) {
			t.Fatalf("desired patch %q", got)
		}
	case <-ctx.Done():
		t.Fatal("no desired patch")
	}
	select {
	case got := <-desired:
		t.Fatalf("unexpected desired patch %q", got)
	default:
	}
}

func TestMethods_InvokeReachesOnMethodAndRespondCompletesIt(t *testing.T) {
	s := world(t)
	type call struct {
		id              sas.Identity
		name, rid, body string
	}
	calls := make(chan call, 4)
	c := start(t, options(t, s), func(c *upstream.Client) {
		c.OnMethod(func(id sas.Identity, name, rid string, payload []byte) {
			calls <- call{id, name, rid, string(payload)}
		})
	})
	ctx := ctxFor(t)
	if _, err := s.InvokeMethod(ctx, "leaf1", "", fakehub.MethodRequest{MethodName: "reboot"}); !errors.Is(err, fakehub.ErrDeviceNotOnline) {
		t.Fatalf("unattached leaf: %v, want ErrDeviceNotOnline", err)
	}
	if err := c.Attach(ctx, leaf1, upstream.Subscriptions{Methods: true}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		r   fakehub.MethodResponse
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := s.InvokeMethod(ctx, "leaf1", "", fakehub.MethodRequest{MethodName: "reboot", Payload: json.RawMessage(`{"delay":1}`), ResponseTimeoutInSeconds: 10})
		done <- result{r, err}
	}()
	var got call
	select {
	case got = <-calls:
	case <-ctx.Done():
		t.Fatal("OnMethod was not called")
	}
	if got.id != leaf1 || got.name != "reboot" || got.body != `{"delay":1}` || got.rid == "" {
		t.Fatalf("call %+v", got)
	}
	if err := c.RespondMethod(ctx, got.id, got.rid, 201, []byte(`{"ok":true}`)); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.r.Status != 201 || string(r.r.Payload) != `{"ok":true}` {
		t.Fatalf("InvokeMethod: %+v, %v", r.r, r.err)
	}
	if err := c.RespondMethod(ctx, leaf1, "bad/rid", 200, nil); !errors.Is(err, upstream.ErrInvalidArgument) {
		t.Fatalf("bad rid: %v", err)
	}
}

func TestC2D_CompletedOnlyAfterTheHandlerReturnsNil(t *testing.T) {
	s := world(t)
	type delivery struct {
		id     sas.Identity
		m      iothub.Message
		answer chan error
	}
	deliveries := make(chan delivery)
	c := start(t, options(t, s), func(c *upstream.Client) {
		c.OnC2D(func(id sas.Identity, m iothub.Message) error {
			d := delivery{id, m, make(chan error)}
			deliveries <- d
			return <-d.answer
		})
	})
	ctx := ctxFor(t)
	next := func() delivery {
		t.Helper()
		select {
		case d := <-deliveries:
			return d
		case <-ctx.Done():
			t.Fatal("no C2D delivery")
			return delivery{}
		}
	}
	if _, err := s.SendC2D("leaf1", fakehub.C2DMessage{Body: []byte("hi"), MessageID: "c1", Properties: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Attach(ctx, leaf1, upstream.Subscriptions{C2D: true}); err != nil {
		t.Fatal(err)
	}
	d := next()
	if d.id != leaf1 || string(d.m.Body) != "hi" || d.m.System[iothub.SysMessageID] != "c1" || d.m.Properties["k"] != "v" {
		t.Fatalf("delivery %+v", d)
	}
	if n := s.PendingC2D("leaf1"); n != 1 {
		t.Fatalf("%d pending while the handler runs, want 1", n)
	}
	// Refused: not acknowledged. A second message, accepted, is acknowledged on the same
	// connection after the first would have been, so once it completed the first is known to
	// be still pending.
	d.answer <- errors.New("disk full")
	if _, err := s.SendC2D("leaf1", fakehub.C2DMessage{Body: []byte("second")}); err != nil {
		t.Fatal(err)
	}
	d = next()
	if string(d.m.Body) != "second" {
		t.Fatalf("second delivery %q", d.m.Body)
	}
	d.answer <- nil
	waitFor(t, "the second message to complete", func() bool { return s.PendingC2D("leaf1") <= 1 })
	if n := s.PendingC2D("leaf1"); n != 1 {
		t.Fatalf("%d pending after the handler refused the first, want 1", n)
	}
	// IoT Hub delivers the refused message again on the next connection.
	s.CutNetwork()
	waitFor(t, "the link to drop", func() bool { return !c.Connected() })
	s.RestoreNetwork()
	d = next() // redelivered after the automatic re-attach
	if string(d.m.Body) != "hi" {
		t.Fatalf("redelivered %q", d.m.Body)
	}
	d.answer <- nil
	waitFor(t, "the message to complete", func() bool { return s.PendingC2D("leaf1") == 0 })
}

func TestLinkLoss_NoticedThenReconnectedAndReattached(t *testing.T) {
	s := world(t)
	opts := options(t, s)
	c := start(t, opts, nil)
	ctx := ctxFor(t)
	if state := <-c.States(); !state {
		t.Fatal("first state is not up")
	}
	for _, id := range []sas.Identity{m1, leaf1} {
		if err := c.Attach(ctx, id, upstream.Subscriptions{Methods: true}); err != nil {
			t.Fatal(err)
		}
	}
	want := [][]string{{"edge1/$edgeHub", "edge1/m1", "leaf1"}}
	before := s.Connections()[0].ID

	s.CutNetwork()
	cut := time.Now()
	select {
	case up := <-c.States():
		if up {
			t.Fatal("States says up after the cut")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the loss was not noticed within 5 s")
	}
	t.Logf("link loss noticed after %s", time.Since(cut))
	if c.Connected() {
		t.Fatal("Connected after the loss")
	}
	if err := c.Send(ctx, leaf1, iothub.Message{}); !errors.Is(err, upstream.ErrOffline) {
		t.Fatalf("Send while offline: %v, want ErrOffline", err)
	}
	if _, err := c.GetTwin(ctx, leaf1); !errors.Is(err, upstream.ErrOffline) {
		t.Fatalf("GetTwin while offline: %v, want ErrOffline", err)
	}
	waitFor(t, "leaf1 to be Disconnected while the edge is away", func() bool {
		d, _ := s.GetDevice("leaf1")
		return d.ConnectionState == "Disconnected"
	})
	// Attach while offline is remembered for the next connection.
	if err := c.Attach(ctx, leaf2, upstream.Subscriptions{}); !errors.Is(err, upstream.ErrOffline) {
		t.Fatalf("Attach while offline: %v", err)
	}
	want[0] = append(want[0], "leaf2")

	s.RestoreNetwork()
	select {
	case up := <-c.States():
		if !up {
			t.Fatal("States says down after the restore")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not reconnected within 5 s of the restore")
	}
	waitFor(t, "every identity to be attached again", func() bool {
		return slices.EqualFunc(carried(s), want, slices.Equal)
	})
	if s.Connections()[0].ID == before {
		t.Fatal("same connection id after a reconnection")
	}
	if err := c.Send(ctx, leaf1, iothub.Message{Body: []byte("back")}); err != nil {
		t.Fatal(err)
	}
}

func TestLinkLoss_SilentLinkNoticedByKeepAlive(t *testing.T) {
	s := world(t)
	p := newProxy(t, s.MQTTAddress())
	opts := options(t, s) // KeepAlive 1 s: a silent link is noticed within about 1.75 s
	opts.Port = p.port()
	c := start(t, opts, nil)
	p.blackhole(true) // the sockets stay open, nothing gets through: no FIN, no error
	began := time.Now()
	waitFor(t, "the silent link to be noticed", func() bool { return !c.Connected() })
	took := time.Since(began)
	t.Logf("silent link noticed after %s", took)
	if took > 4*time.Second {
		t.Fatalf("noticed after %s, want about 1.75 x KeepAlive", took)
	}
	p.blackhole(false)
	waitFor(t, "the link to come back", c.Connected)
}

// While IoT Hub cannot be reached the back-off stays under UnreachableMax, however long the
// outage, so the link returns within about that long of the network; ReconnectMax (long
// here) is for refusals only.
func TestLinkLoss_BackOffWhileUnreachableStaysShort(t *testing.T) {
	s := world(t)
	opts := options(t, s)
	opts.ReconnectMin, opts.ReconnectMax, opts.UnreachableMax = 20*time.Millisecond, 10*time.Second, 200*time.Millisecond
	c := start(t, opts, nil)
	s.CutNetwork()
	waitFor(t, "the link to drop", func() bool { return !c.Connected() })
	// Enough failed attempts for the back-off to reach seconds had it been capped at
	// ReconnectMax (the ninth wait: 2.5 to 5 s).
	waitFor(t, "eight failed attempts", func() bool { return logged(opts, "connecting to IoT Hub failed") >= 8 })
	s.RestoreNetwork()
	began := time.Now()
	waitFor(t, "the link to come back", c.Connected)
	took := time.Since(began)
	t.Logf("link back %s after the network", took)
	if took > 2*time.Second {
		t.Fatalf("link back %s after the network, want within about UnreachableMax (200 ms) plus a handshake", took)
	}
}

func TestRefuseAuth_KeepsRetryingWithBackoffThenRecovers(t *testing.T) {
	s := world(t)
	opts := options(t, s)
	c := start(t, opts, nil)
	s.SetRefuseAuth(true)
	s.CutNetwork()
	waitFor(t, "the link to drop", func() bool { return !c.Connected() })
	s.RestoreNetwork()
	// Several refused attempts, spaced by the back-off, and no connection.
	waitFor(t, "three refused attempts", func() bool { return logged(opts, "connecting to IoT Hub failed") >= 3 })
	if c.Connected() || len(s.Connections()) != 0 {
		t.Fatal("connected while authentication is refused")
	}
	s.SetRefuseAuth(false)
	waitFor(t, "the link to come back", c.Connected)
}

func TestThrottle_MapsTo429(t *testing.T) {
	s := world(t)
	opts := options(t, s)
	opts.RequestTimeout = 300 * time.Millisecond
	c := start(t, opts, nil)
	ctx := ctxFor(t)
	if err := c.Send(ctx, leaf1, iothub.Message{}); err != nil { // learn that leaf1 may send
		t.Fatal(err)
	}
	s.SetThrottle(true)
	var se *upstream.StatusError
	if _, err := c.GetIdentity(ctx, leaf1); !errors.Is(err, upstream.ErrThrottled) || !errors.As(err, &se) || !se.Retryable() {
		t.Fatalf("GetIdentity while throttled: %v", err)
	}
	if _, err := c.Authenticate(ctx, leaf1, "x"); !errors.Is(err, upstream.ErrThrottled) {
		t.Fatalf("Authenticate while throttled: %v", err)
	}
	if _, err := c.GetTwin(ctx, leaf1); !errors.Is(err, upstream.ErrThrottled) {
		t.Fatalf("GetTwin while throttled: %v", err)
	}
	// A throttled hub drops telemetry without PUBACK: a timeout, not a rejection.
	if err := c.Send(ctx, leaf1, iothub.Message{}); !errors.Is(err, upstream.ErrTimeout) || errors.Is(err, upstream.ErrRejected) {
		t.Fatalf("Send while throttled: %v, want ErrTimeout", err)
	}
	// A verdict that cannot be had while throttled is not cached as a rejection.
	if err := c.Send(ctx, leaf2, iothub.Message{}); !errors.Is(err, upstream.ErrThrottled) || errors.Is(err, upstream.ErrRejected) {
		t.Fatalf("Send of a new identity while throttled: %v, want ErrThrottled", err)
	}
	s.SetThrottle(false)
	if err := c.Send(ctx, leaf2, iothub.Message{}); err != nil {
		t.Fatal(err)
	}
}

func TestTokenRenewal_ReconnectsWithoutFailingOperations(t *testing.T) {
	s := world(t)
	opts := options(t, s)
	opts.TokenTTL = 1500 * time.Millisecond // renewed every 1.2 s
	c := start(t, opts, nil)
	ctx := ctxFor(t)
	if err := c.Attach(ctx, leaf1, upstream.Subscriptions{}); err != nil {
		t.Fatal(err)
	}
	first := s.Connections()[0].ID
	deadline := time.Now().Add(10 * time.Second)
	sent := 0
	for {
		conns := s.Connections()
		if len(conns) == 1 && conns[0].ID != first && slices.Equal(conns[0].Identities, []string{"edge1/$edgeHub", "leaf1"}) && sent > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewal seen: %+v", conns)
		}
		if err := c.Send(ctx, leaf1, iothub.Message{Body: []byte("x")}); err != nil {
			t.Fatalf("Send during renewals: %v", err)
		}
		sent++
	}
	if !c.Connected() {
		t.Fatal("not connected after a renewal")
	}
}

func TestNew_RejectsUnusableConfiguration(t *testing.T) {
	good := sas.ConnectionString{HostName: "h", DeviceID: "edge1", ModuleID: "$edgeHub", SharedAccessKey: "a2V5"}
	cases := []struct {
		name string
		mod  func(*upstream.Options)
	}{
		{"no host", func(o *upstream.Options) { o.ConnectionString.HostName = "" }},
		{"a device string", func(o *upstream.Options) { o.ConnectionString.ModuleID = "" }},
		{"another module", func(o *upstream.Options) { o.ConnectionString.ModuleID = "filter" }},
		{"a gateway", func(o *upstream.Options) { o.ConnectionString.GatewayHostName = "edge.local" }},
		{"no key", func(o *upstream.Options) { o.ConnectionString.SharedAccessKey = "" }},
		{"a key that is not base64", func(o *upstream.Options) { o.ConnectionString.SharedAccessKey = "!!" }},
		{"missing CA file", func(o *upstream.Options) { o.CAFile = t.TempDir() + "/nope.pem" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := upstream.Options{ConnectionString: good}
			tc.mod(&o)
			if _, err := upstream.New(o); !errors.Is(err, upstream.ErrInvalidConfig) {
				t.Fatalf("New: %v, want ErrInvalidConfig", err)
			}
		})
	}
	if _, err := upstream.New(upstream.Options{ConnectionString: good}); err != nil {
		t.Fatalf("good options: %v", err)
	}
}

func TestClient_BeforeRunAndTwice(t *testing.T) {
	s := world(t)
	opts := options(t, s)
	c, err := upstream.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	if err := c.Send(ctx, leaf1, iothub.Message{}); !errors.Is(err, upstream.ErrOffline) {
		t.Fatalf("Send before Run: %v", err)
	}
	if _, err := c.Authenticate(ctx, leaf1, "x"); !errors.Is(err, upstream.ErrOffline) {
		t.Fatalf("Authenticate before Run: %v", err)
	}
	if err := c.Detach(ctx, leaf1); err != nil {
		t.Fatalf("Detach before Run: %v", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	waitFor(t, "the link", c.Connected)
	if err := c.Run(ctx); !errors.Is(err, upstream.ErrRunning) {
		t.Fatalf("second Run: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c.Connected() {
		t.Fatal("connected after Run returned")
	}
	waitFor(t, "the hub to see the edge leave", func() bool { return len(s.Connections()) == 0 })
}

func TestReattach_ManyIdentitiesAfterEveryReconnection(t *testing.T) {
	s := world(t)
	edge, _ := s.GetDevice("edge1")
	c := start(t, options(t, s), nil)
	ctx := ctxFor(t)
	want := []string{"edge1/$edgeHub"}
	var leaves []string
	for i := range 40 {
		id := fmt.Sprintf("cam%02d", i)
		fakehubtest.MustDevice(t, s, id, fakehubtest.Parent(edge))
		if err := c.Attach(ctx, sas.Identity{DeviceID: id}, upstream.Subscriptions{C2D: true}); err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, id)
	}
	want = append(want, leaves...)
	for round := range 3 {
		s.CutNetwork()
		waitFor(t, "the link to drop", func() bool { return !c.Connected() })
		s.RestoreNetwork()
		waitFor(t, fmt.Sprintf("round %d: one connection carrying all 40 leaves again", round), func() bool {
			got := carried(s)
			return len(got) == 1 && slices.Equal(got[0], want)
		})
	}
}
