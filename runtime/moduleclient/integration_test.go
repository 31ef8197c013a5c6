package moduleclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// These tests run the client against the fake IoT Hub over real TLS sockets on loopback.

const waitTimeout = 15 * time.Second

// hubOptions returns client options for s: its MQTT/TLS port, its CA (so the server certificate
// is really verified), a fast back-off and a logger that writes to the test log.
func hubOptions(t *testing.T, s *fakehub.Server) moduleclient.Options {
	t.Helper()
	_, port, err := net.SplitHostPort(s.MQTTAddress())
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return moduleclient.Options{
		CAFile:       s.CAFile(),
		Port:         p,
		ReconnectMin: 20 * time.Millisecond,
		ReconnectMax: 200 * time.Millisecond,
		Logger:       testLogger(t),
	}
}

// connect creates a client from a connection string, lets setup register handlers, connects
// it and closes it at the end of the test.
func connect(t *testing.T, cs string, opts moduleclient.Options, setup func(*moduleclient.Client)) *moduleclient.Client {
	t.Helper()
	c, err := moduleclient.NewFromConnectionString(cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if setup != nil {
		setup(c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return c
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// waitEvent waits for the next captured event after seq.
func waitEvent(t *testing.T, s *fakehub.Server, after int64) fakehub.Event {
	t.Helper()
	evs, err := s.WaitEvents(ctxFor(t), after, 1)
	if err != nil || len(evs) == 0 {
		t.Fatalf("no event captured after seq %d: %v", after, err)
	}
	return evs[0]
}

func lastSeq(s *fakehub.Server) int64 {
	evs := s.Events(0, 1<<20)
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}

func TestIntegration_DeviceTelemetry(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	c := connect(t, cs, hubOptions(t, s), nil)

	err := c.SendEvent(ctxFor(t), iothub.Message{
		Body:       []byte(`{"temperature":21.5}`),
		Properties: map[string]string{"alert": "true", "odd key/&=": "a b%c"},
		System: map[string]string{
			iothub.SysMessageID:       "msg-1",
			iothub.SysCorrelationID:   "corr-1",
			iothub.SysContentType:     "application/json",
			iothub.SysContentEncoding: "utf-8",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, s, 0)
	if ev.DeviceID != "dev1" || ev.ModuleID != "" {
		t.Errorf("event from %q/%q, want dev1", ev.DeviceID, ev.ModuleID)
	}
	if string(ev.Body) != `{"temperature":21.5}` {
		t.Errorf("body %q", ev.Body)
	}
	wantProps := map[string]string{"alert": "true", "odd key/&=": "a b%c"}
	for k, v := range wantProps {
		if ev.Properties[k] != v {
			t.Errorf("property %q = %q, want %q (all: %v)", k, ev.Properties[k], v, ev.Properties)
		}
	}
	wantSys := map[string]string{
		"message-id": "msg-1", "correlation-id": "corr-1", "content-type": "application/json",
		"content-encoding": "utf-8", "iothub-connection-device-id": "dev1",
	}
	for k, v := range wantSys {
		if ev.SystemProperties[k] != v {
			t.Errorf("system property %q = %q, want %q (all: %v)", k, ev.SystemProperties[k], v, ev.SystemProperties)
		}
	}
}

func TestIntegration_ModuleOutput(t *testing.T) {
	s := fakehubtest.New(t)
	fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	_, cs := fakehubtest.MustModule(t, s, "edge1", "filter")
	c := connect(t, cs, hubOptions(t, s), nil)
	if d, m := c.Identity(); d != "edge1" || m != "filter" {
		t.Fatalf("Identity() = %q, %q", d, m)
	}

	msg := iothub.Message{Body: []byte("hot"), System: map[string]string{iothub.SysMessageID: "m-7"}}
	if err := c.SendOutput(ctxFor(t), "alerts", msg); err != nil {
		t.Fatal(err)
	}
	if _, ok := msg.System[iothub.SysOutputName]; ok {
		t.Error("SendOutput modified the caller's message")
	}
	ev := waitEvent(t, s, 0)
	if ev.DeviceID != "edge1" || ev.ModuleID != "filter" {
		t.Errorf("event from %q/%q, want edge1/filter", ev.DeviceID, ev.ModuleID)
	}
	if ev.SystemProperties["$.on"] != "alerts" || ev.SystemProperties["message-id"] != "m-7" ||
		ev.SystemProperties["iothub-connection-module-id"] != "filter" {
		t.Errorf("system properties %v lack output name, message id or module id", ev.SystemProperties)
	}

	// The default output: no $.on.
	seq := ev.Seq
	if err := c.SendEvent(ctxFor(t), iothub.Message{Body: []byte("plain")}); err != nil {
		t.Fatal(err)
	}
	ev = waitEvent(t, s, seq)
	if _, ok := ev.SystemProperties["$.on"]; ok || string(ev.Body) != "plain" {
		t.Errorf("SendEvent from a module: body %q, system %v", ev.Body, ev.SystemProperties)
	}
}

func TestIntegration_ThroughGateway(t *testing.T) {
	// The hub is "myhub.example", reached through a gateway at 127.0.0.1: the client must dial
	// and verify the gateway while the username and the token audience keep naming the hub.
	s := fakehubtest.New(t, fakehubtest.WithHostname("myhub.example"))
	_, cs := fakehubtest.MustDevice(t, s, "leaf1")
	c := connect(t, cs+";GatewayHostName=127.0.0.1", hubOptions(t, s), nil)
	if err := c.SendEvent(ctxFor(t), iothub.Message{Body: []byte("via gateway")}); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, s, 0); ev.DeviceID != "leaf1" || string(ev.Body) != "via gateway" {
		t.Errorf("event %+v", ev)
	}
	for _, cn := range s.Connections() {
		if cn.ClientID == "leaf1" && !cn.TLS {
			t.Error("the connection through the gateway is not TLS")
		}
	}
}

func TestIntegration_ModelID(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "thermostat")
	opts := hubOptions(t, s)
	opts.ModelID = "dtmi:com:example:Thermostat;1"
	c := connect(t, cs, opts, nil)
	if err := c.SendEvent(ctxFor(t), iothub.Message{Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, s, 0); ev.SystemProperties["dt-dataschema"] != opts.ModelID {
		t.Errorf("dt-dataschema = %q, want the model id sent in the username", ev.SystemProperties["dt-dataschema"])
	}
}

func TestIntegration_PlainMQTT(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	opts := hubOptions(t, s)
	_, port, err := net.SplitHostPort(s.PlainMQTTAddress())
	if err != nil {
		t.Fatal(err)
	}
	opts.Port, _ = strconv.Atoi(port)
	opts.Plain, opts.CAFile = true, ""
	c := connect(t, cs, opts, nil)
	if err := c.SendEvent(ctxFor(t), iothub.Message{Body: []byte("clear")}); err != nil {
		t.Fatal(err)
	}
	for _, cn := range s.Connections() {
		if cn.ClientID == "dev1" && cn.TLS {
			t.Error("Plain client connected over TLS")
		}
	}
}

func TestIntegration_SendEventTooLarge(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	c := connect(t, cs, hubOptions(t, s), nil)
	err := c.SendEvent(ctxFor(t), iothub.Message{Body: make([]byte, iothub.MaxMessageSize+1)})
	if !errors.Is(err, moduleclient.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if evs := s.Events(0, 10); len(evs) != 0 {
		t.Errorf("the oversized message reached the hub: %d events", len(evs))
	}
	// Exactly at the limit is fine.
	if err := c.SendEvent(ctxFor(t), iothub.Message{Body: make([]byte, iothub.MaxMessageSize)}); err != nil {
		t.Errorf("message of exactly %d bytes: %v", iothub.MaxMessageSize, err)
	}
}

func TestIntegration_C2DAcknowledgedAfterCallback(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	got := make(chan iothub.Message, 1)
	release := make(chan struct{})
	connect(t, cs, hubOptions(t, s), func(c *moduleclient.Client) {
		c.OnC2D(func(m iothub.Message) {
			got <- m
			<-release
		})
	})

	id, err := s.SendC2D("dev1", fakehub.C2DMessage{
		Body:        []byte("reboot"),
		Properties:  map[string]string{"priority": "high"},
		MessageID:   "c2d-1",
		ContentType: "text/plain",
	})
	if err != nil {
		t.Fatal(err)
	}
	var m iothub.Message
	select {
	case m = <-got:
	case <-time.After(waitTimeout):
		t.Fatal("C2D message not delivered")
	}
	if string(m.Body) != "reboot" || m.Properties["priority"] != "high" ||
		m.System[iothub.SysMessageID] != id || m.System[iothub.SysContentType] != "text/plain" ||
		m.System[iothub.SysTo] != "/devices/dev1/messages/devicebound" {
		t.Errorf("C2D message = body %q, properties %v, system %v", m.Body, m.Properties, m.System)
	}
	// The callback is still running: the message must not be acknowledged yet.
	if n := s.PendingC2D("dev1"); n != 1 {
		t.Errorf("PendingC2D while the callback runs = %d, want 1", n)
	}
	close(release)
	waitFor(t, "PendingC2D to drop to 0", func() bool { return s.PendingC2D("dev1") == 0 })
}

func TestIntegration_ModuleDoesNotSubscribeToC2D(t *testing.T) {
	// The hub refuses a C2D subscription from a module (SUBACK 0x80), which would fail
	// Connect: OnC2D must be ignored on a module, while OnInput subscribes.
	s := fakehubtest.New(t)
	fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	_, cs := fakehubtest.MustModule(t, s, "edge1", "filter")
	c := connect(t, cs, hubOptions(t, s), func(c *moduleclient.Client) {
		c.OnC2D(func(iothub.Message) {})
		c.OnInput(func(string, iothub.Message) {})
	})
	if err := c.SendOutput(ctxFor(t), "out", iothub.Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
}

func TestIntegration_Twin(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	c := connect(t, cs, hubOptions(t, s), nil)

	desired, reported, err := c.GetTwin(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if version(t, desired) != 1 || version(t, reported) != 1 {
		t.Errorf("new twin: desired %v, reported %v; want both at $version 1", desired, reported)
	}

	v, err := c.UpdateReported(ctxFor(t), map[string]any{"firmware": "1.2.3", "battery": 87})
	if err != nil {
		t.Fatal(err)
	}
	if v != 2 {
		t.Errorf("UpdateReported version = %d, want 2", v)
	}
	v, err = c.UpdateReported(ctxFor(t), map[string]any{"battery": nil})
	if err != nil {
		t.Fatal(err)
	}
	if v != 3 {
		t.Errorf("second UpdateReported version = %d, want 3", v)
	}
	_, reported, err = c.GetTwin(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if reported["firmware"] != "1.2.3" || reported["battery"] != nil || version(t, reported) != 3 {
		t.Errorf("reported after patches = %v", reported)
	}
	st, err := s.GetTwin("dev1", "")
	if err != nil {
		t.Fatal(err)
	}
	if st.Properties.Reported["firmware"] != "1.2.3" {
		t.Errorf("service-side reported = %v", st.Properties.Reported)
	}

	// An invalid patch ($-prefixed key) is answered 400.
	_, err = c.UpdateReported(ctxFor(t), map[string]any{"$bad": 1})
	var se *moduleclient.StatusError
	if !errors.As(err, &se) || se.Status != 400 {
		t.Errorf("invalid patch: err = %v, want *StatusError 400", err)
	}
}

func TestIntegration_DesiredPatches(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	rec := newDesiredRecorder()
	connect(t, cs, hubOptions(t, s), func(c *moduleclient.Client) { c.OnDesired(rec.record) })

	// The first connection delivers the initial desired document.
	first := rec.next(t)
	if first.version != 1 || len(first.patch) != 0 {
		t.Errorf("initial delivery = %+v, want the empty document at version 1", first)
	}
	patchDesired(t, s, "dev1", "", map[string]any{"interval": 5, "mode": "eco"})
	u := rec.next(t)
	if u.version != 2 || !jsonIs(t, u.patch, `{"interval":5,"mode":"eco"}`) {
		t.Errorf("desired patch = %+v", u)
	}
	patchDesired(t, s, "dev1", "", map[string]any{"mode": nil})
	u = rec.next(t)
	if u.version != 3 || !jsonIs(t, u.patch, `{"mode":null}`) {
		t.Errorf("desired deletion = %+v", u)
	}
}

func TestIntegration_DesiredChangedWhileDisconnected(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	patchDesired(t, s, "dev1", "", map[string]any{"keep": 1, "drop": true})
	rec := newDesiredRecorder()
	states := newStateRecorder()
	connect(t, cs, hubOptions(t, s), func(c *moduleclient.Client) {
		c.OnDesired(rec.record)
		c.OnConnectionChange(states.record)
	})
	if u := rec.next(t); u.version != 2 || !jsonIs(t, u.patch, `{"keep":1,"drop":true}`) {
		t.Fatalf("initial delivery = %+v", u)
	}
	states.next(t) // connected

	s.CutNetwork()
	if st := states.next(t); st.connected || !errors.Is(st.err, moduleclient.ErrConnectionLost) {
		t.Fatalf("after CutNetwork: %+v, want disconnected with ErrConnectionLost", st)
	}
	patchDesired(t, s, "dev1", "", map[string]any{"drop": nil, "added": "x"}) // version 3, not delivered: offline
	s.RestoreNetwork()
	waitFor(t, "reconnection", func() bool {
		st := states.next(t)
		return st.connected
	})

	u := rec.next(t)
	if u.version != 3 || !jsonIs(t, u.patch, `{"keep":1,"added":"x","drop":null}`) {
		t.Errorf("after reconnecting = %+v, want the full document with drop:null at version 3", u)
	}
	// Nothing else (no duplicate of version 3).
	patchDesired(t, s, "dev1", "", map[string]any{"later": 1})
	if u := rec.next(t); u.version != 4 || !jsonIs(t, u.patch, `{"later":1}`) {
		t.Errorf("next patch = %+v, want version 4", u)
	}
}

func TestIntegration_Methods(t *testing.T) {
	s := fakehubtest.New(t)
	fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	_, cs := fakehubtest.MustModule(t, s, "edge1", "filter")
	c := connect(t, cs, hubOptions(t, s), func(c *moduleclient.Client) {
		c.HandleMethod("echo", func(_ context.Context, payload []byte) (int, []byte) {
			return 200, payload
		})
	})

	resp, err := s.InvokeMethod(ctxFor(t), "edge1", "filter", fakehub.MethodRequest{
		MethodName: "echo", Payload: json.RawMessage(`{"n":42}`), ResponseTimeoutInSeconds: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || !bytes.Equal(compact(t, resp.Payload), []byte(`{"n":42}`)) {
		t.Errorf("echo = %d %s", resp.Status, resp.Payload)
	}

	resp, err = s.InvokeMethod(ctxFor(t), "edge1", "filter", fakehub.MethodRequest{MethodName: "missing", ResponseTimeoutInSeconds: 10})
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Message string }
	if resp.Status != 501 || json.Unmarshal(resp.Payload, &body) != nil || body.Message == "" {
		t.Errorf("unknown method = %d %s, want 501 with a message", resp.Status, resp.Payload)
	}

	// A default handler registered after Connect takes the unknown methods.
	c.HandleMethod("", func(context.Context, []byte) (int, []byte) { return 202, []byte(`"default"`) })
	waitFor(t, "default method handler", func() bool {
		resp, err = s.InvokeMethod(ctxFor(t), "edge1", "filter", fakehub.MethodRequest{MethodName: "other", ResponseTimeoutInSeconds: 5})
		return err == nil && resp.Status == 202
	})
	if string(resp.Payload) != `"default"` {
		t.Errorf("default handler payload %s", resp.Payload)
	}

	// A panicking handler answers 500 and the client keeps working.
	c.HandleMethod("boom", func(context.Context, []byte) (int, []byte) { panic("boom") })
	resp, err = s.InvokeMethod(ctxFor(t), "edge1", "filter", fakehub.MethodRequest{MethodName: "boom", ResponseTimeoutInSeconds: 10})
	if err != nil || resp.Status != 500 {
		t.Errorf("panicking handler = %v, %v; want status 500", resp, err)
	}
}

func TestIntegration_HandlersRegisteredAfterConnect(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	c := connect(t, cs, hubOptions(t, s), nil)

	got := make(chan iothub.Message, 1)
	c.OnC2D(func(m iothub.Message) { got <- m })
	rec := newDesiredRecorder()
	c.OnDesired(rec.record)
	if u := rec.next(t); u.version != 1 {
		t.Errorf("OnDesired after Connect: initial delivery %+v", u)
	}
	if _, err := s.SendC2D("dev1", fakehub.C2DMessage{Body: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if string(m.Body) != "late" {
			t.Errorf("body %q", m.Body)
		}
	case <-time.After(waitTimeout):
		t.Fatal("C2D not delivered to a handler registered after Connect")
	}
}

func TestIntegration_AuthRefused(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	opts := hubOptions(t, s)

	s.SetRefuseAuth(true)
	c, err := moduleclient.NewFromConnectionString(cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(ctxFor(t)); !errors.Is(err, moduleclient.ErrNotAuthorized) {
		t.Fatalf("Connect with auth refused = %v, want ErrNotAuthorized", err)
	}
	// Connect may be retried once the hub accepts again.
	s.SetRefuseAuth(false)
	if err := c.Connect(ctxFor(t)); err != nil {
		t.Fatalf("Connect after SetRefuseAuth(false): %v", err)
	}

	// A wrong key is refused the same way.
	parsed, err := sas.ParseConnectionString(cs)
	if err != nil {
		t.Fatal(err)
	}
	parsed.SharedAccessKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	bad, err := moduleclient.New(parsed, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Connect(ctxFor(t)); !errors.Is(err, moduleclient.ErrNotAuthorized) {
		t.Fatalf("Connect with a wrong key = %v, want ErrNotAuthorized", err)
	}
}

func TestIntegration_UntrustedServerCertificate(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	opts := hubOptions(t, s)
	opts.CAFile = "" // system roots do not include the fake hub's CA
	c, err := moduleclient.NewFromConnectionString(cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(ctxFor(t)); err == nil {
		t.Fatal("Connect succeeded without trusting the hub's CA")
	}
}

func TestIntegration_ReconnectAfterNetworkCut(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	states := newStateRecorder()
	c2d := make(chan iothub.Message, 4)
	c := connect(t, cs, hubOptions(t, s), func(c *moduleclient.Client) {
		c.OnConnectionChange(states.record)
		c.OnC2D(func(m iothub.Message) { c2d <- m })
	})
	if st := states.next(t); !st.connected {
		t.Fatalf("first notification %+v, want connected", st)
	}

	s.CutNetwork()
	if st := states.next(t); st.connected || !errors.Is(st.err, moduleclient.ErrConnectionLost) {
		t.Fatalf("after CutNetwork: %+v", st)
	}
	// Operations issued while disconnected wait for the connection.
	sendErr := make(chan error, 1)
	go func() { sendErr <- c.SendEvent(ctxFor(t), iothub.Message{Body: []byte("queued")}) }()
	twinErr := make(chan error, 1)
	go func() {
		_, err := c.UpdateReported(ctxFor(t), map[string]any{"offline": true})
		twinErr <- err
	}()
	select {
	case err := <-sendErr:
		t.Fatalf("SendEvent returned while the network was cut: %v", err)
	default:
	}

	s.RestoreNetwork()
	waitFor(t, "reconnection", func() bool { return states.next(t).connected })
	if err := <-sendErr; err != nil {
		t.Fatalf("SendEvent across the outage: %v", err)
	}
	if err := <-twinErr; err != nil {
		t.Fatalf("UpdateReported across the outage: %v", err)
	}
	found := false
	for _, ev := range s.Events(0, 100) {
		found = found || string(ev.Body) == "queued"
	}
	if !found {
		t.Error("the message sent during the outage never arrived")
	}
	// Subscriptions were made again on the new connection.
	if _, err := s.SendC2D("dev1", fakehub.C2DMessage{Body: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-c2d:
		if string(m.Body) != "after" {
			t.Errorf("C2D after reconnect: %q", m.Body)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no C2D after reconnecting: subscriptions not restored")
	}
}

func TestIntegration_TokenRenewal(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	opts := hubOptions(t, s)
	// The client's clock runs sas.ClockSkew behind, so a token with a 2 s lifetime is accepted
	// by the hub for only about 2 s of real time: after the first renewals, reconnecting with
	// a reused token would be refused.
	opts.Now = func() time.Time { return time.Now().Add(-sas.ClockSkew) }
	opts.TokenTTL = 2 * time.Second
	states := newStateRecorder()
	c := connect(t, cs, opts, func(c *moduleclient.Client) { c.OnConnectionChange(states.record) })
	states.next(t)

	connectedAt := func() time.Time {
		for _, cn := range s.Connections() {
			if cn.ClientID == "dev1" {
				return cn.ConnectedAt
			}
		}
		return time.Time{}
	}
	seen := map[time.Time]bool{connectedAt(): true}
	waitFor(t, "three renewals", func() bool {
		if at := connectedAt(); !at.IsZero() {
			seen[at] = true
		}
		return len(seen) >= 4
	})
	if err := c.SendEvent(ctxFor(t), iothub.Message{Body: []byte("still here")}); err != nil {
		t.Fatalf("SendEvent after renewals: %v", err)
	}
	if _, _, err := c.GetTwin(ctxFor(t)); err != nil {
		t.Fatalf("GetTwin after renewals: %v", err)
	}
	if st, ok := states.poll(); ok {
		t.Errorf("renewal reported a connection change: %+v", st)
	}
}

func TestIntegration_SendsContinueAcrossRenewal(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	opts := hubOptions(t, s)
	opts.TokenTTL = time.Second // renews every 800 ms
	c := connect(t, cs, opts, nil)
	deadline := time.Now().Add(3 * time.Second)
	sent := 0
	for time.Now().Before(deadline) {
		if err := c.SendEvent(ctxFor(t), iothub.Message{Body: []byte(strconv.Itoa(sent))}); err != nil {
			t.Fatalf("SendEvent %d: %v", sent, err)
		}
		sent++
	}
	got := map[string]bool{}
	for _, ev := range s.Events(0, 1<<20) {
		got[string(ev.Body)] = true
	}
	for i := range sent {
		if !got[strconv.Itoa(i)] {
			t.Fatalf("message %d of %d lost across renewals", i, sent)
		}
	}
}

func TestIntegration_NewFromEnvironment(t *testing.T) {
	s := fakehubtest.New(t)
	fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	_, cs := fakehubtest.MustModule(t, s, "edge1", "sensor")
	t.Setenv(moduleclient.EnvEdgeHubConnectionString, cs)
	t.Setenv(moduleclient.EnvIotHubConnectionString, "")
	t.Setenv(moduleclient.EnvCACertificateFile, s.CAFile())
	opts := hubOptions(t, s)
	opts.CAFile = "" // must come from the environment
	c, err := moduleclient.NewFromEnvironment(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.SendOutput(ctxFor(t), "temperature", iothub.Message{Body: []byte("20")}); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, s, 0)
	if ev.ModuleID != "sensor" || ev.SystemProperties["$.on"] != "temperature" {
		t.Errorf("event from %q with system %v", ev.ModuleID, ev.SystemProperties)
	}
}

func TestIntegration_NewFromEnvironmentMissing(t *testing.T) {
	for _, k := range []string{moduleclient.EnvEdgeHubConnectionString, moduleclient.EnvIotHubConnectionString, moduleclient.EnvWorkloadURI} {
		t.Setenv(k, "")
	}
	if _, err := moduleclient.NewFromEnvironment(moduleclient.Options{}); !errors.Is(err, moduleclient.ErrEnvironment) {
		t.Fatalf("err = %v, want ErrEnvironment", err)
	}
}

func TestIntegration_CloseInterruptsWaiters(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	c := connect(t, cs, hubOptions(t, s), nil)
	s.CutNetwork()
	errs := make(chan error, 1)
	go func() { errs <- c.SendEvent(context.Background(), iothub.Message{Body: []byte("x")}) }()
	waitFor(t, "disconnection", func() bool { return len(s.Connections()) == 0 })
	c.Close()
	select {
	case err := <-errs:
		if !errors.Is(err, moduleclient.ErrClosed) {
			t.Errorf("SendEvent interrupted by Close = %v, want ErrClosed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Close did not interrupt a waiting SendEvent")
	}
}

// --- helpers ---

func patchDesired(t *testing.T, s *fakehub.Server, d, m string, desired map[string]any) {
	t.Helper()
	var p fakehub.TwinPatch
	p.Properties.Desired = desired
	if _, err := s.PatchTwin(d, m, p, "*"); err != nil {
		t.Fatal(err)
	}
}

func version(t *testing.T, section map[string]any) int64 {
	t.Helper()
	n, ok := section["$version"].(json.Number)
	if !ok {
		t.Fatalf("section %v has no $version number", section)
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func compact(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	return out.Bytes()
}

func jsonIs(t *testing.T, v any, want string) bool {
	t.Helper()
	got, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if json.Unmarshal(got, &a) != nil || json.Unmarshal([]byte(want), &b) != nil {
		t.Fatalf("bad JSON %s / %s", got, want)
	}
	ga, _ := json.Marshal(a)
	gb, _ := json.Marshal(b)
	return bytes.Equal(ga, gb)
}

type desiredUpdate struct {
	patch   map[string]any
	version int64
}

type desiredRecorder struct{ ch chan desiredUpdate }

func newDesiredRecorder() *desiredRecorder { return &desiredRecorder{ch: make(chan desiredUpdate, 16)} }

func (r *desiredRecorder) record(patch map[string]any, version int64) {
	r.ch <- desiredUpdate{patch, version}
}

func (r *desiredRecorder) next(t *testing.T) desiredUpdate {
	t.Helper()
	select {
	case u := <-r.ch:
		return u
	case <-time.After(waitTimeout):
		t.Fatal("no desired-properties update")
		return desiredUpdate{}
	}
}

type connState struct {
	connected bool
	err       error
}

type stateRecorder struct{ ch chan connState }

func newStateRecorder() *stateRecorder { return &stateRecorder{ch: make(chan connState, 64)} }

func (r *stateRecorder) record(connected bool, err error) { r.ch <- connState{connected, err} }

func (r *stateRecorder) next(t *testing.T) connState {
	t.Helper()
	select {
	case st := <-r.ch:
		return st
	case <-time.After(waitTimeout):
		t.Fatal("no connection change")
		return connState{}
	}
}

func (r *stateRecorder) poll() (connState, bool) {
	select {
	case st := <-r.ch:
		return st, true
	default:
		return connState{}, false
	}
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testLogger writes the client's logs to the test log until the test ends.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

var _ io.Writer = (*testWriter)(nil)
