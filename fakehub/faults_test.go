package fakehub_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
)

func TestCutNetwork(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	lost := make(chan struct{}, 1)
	dial(t, pahoOptions(t, s, cs).SetConnectionLostHandler(func(paho.Client, error) { lost <- struct{}{} }))
	waitFor(t, "connection", func() bool { return len(s.Connections()) == 1 })

	s.CutNetwork()
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("connection survived the cut")
	}
	waitFor(t, "no connections", func() bool { return len(s.Connections()) == 0 })

	// New connections are accepted and closed before any CONNACK, on both listeners.
	id, user, pass := credentials(t, cs)
	if code, err := dialRaw(t, s).connect(id, user, pass, 4); err == nil {
		t.Fatalf("got CONNACK %d during the cut", code)
	}
	c := paho.NewClient(pahoOptions(t, s, cs))
	if tok := c.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		c.Disconnect(0)
		t.Fatal("TLS connect succeeded during the cut")
	}

	// The service side keeps working.
	if _, err := s.PutDevice(fakehub.Device{DeviceID: "during-cut"}, ""); err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS(t, s)}}).Get("https://" + s.HTTPAddress() + "/devices/dev1")
	if err != nil {
		t.Fatalf("HTTPS during the cut: %v", err)
	}
	resp.Body.Close()

	s.RestoreNetwork()
	dial(t, pahoOptions(t, s, cs))
	if d, _ := s.GetDevice("dev1"); d.ConnectionState != "Connected" {
		t.Fatalf("state after restore = %s", d.ConnectionState)
	}
}

func TestSetRefuseAuth(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	established := dial(t, pahoOptions(t, s, cs))
	s.SetRefuseAuth(true)
	id, user, pass := credentials(t, cs)
	if code, err := dialRaw(t, s).connect(id, user, pass, 4); err != nil || code != 5 {
		t.Fatalf("CONNACK %d, %v; want 5", code, err)
	}
	if !established.IsConnectionOpen() {
		t.Fatal("refusing auth dropped an established connection")
	}
	s.SetRefuseAuth(false)
	if code, err := dialRaw(t, s).connect(id, user, pass, 4); err != nil || code != 0 {
		t.Fatalf("CONNACK %d, %v; want 0", code, err)
	}
}

func TestSetThrottle(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	c := connectRaw(t, s, cs)
	if got := c.subscribe(1, 1, "$iothub/twin/res/#"); got[0] != 1 {
		t.Fatalf("SUBACK % x", got)
	}
	s.SetThrottle(true)
	if !s.Throttled() {
		t.Fatal("Throttled() = false")
	}
	id, user, pass := credentials(t, cs)
	if code, err := dialRaw(t, s).connect(id+"x", user, pass, 4); err != nil || code != 3 {
		t.Fatalf("CONNACK %d, %v; want 3", code, err)
	}
	// Telemetry is neither acknowledged nor captured; the twin answer that follows proves
	// the hub processed the PUBLISH before it.
	c.publish("devices/dev1/messages/events/", []byte("dropped"), 1, 7)
	c.publish("$iothub/twin/GET/?$rid=g", nil, 0, 0)
	typ, body, err := c.read()
	if err != nil || typ&0xf0 != 0x30 {
		t.Fatalf("want the twin answer first, got %#x % x %v", typ, body, err)
	}
	if topic := string(body[2 : 2+int(body[1])]); topic != "$iothub/twin/res/429/?$rid=g" {
		t.Fatalf("twin answer on %s", topic)
	}
	if len(s.Events(0, 0)) != 0 {
		t.Fatal("throttled telemetry was captured")
	}
	if _, err := s.SendC2D("dev1", fakehubC2D("x")); !errors.Is(err, fakehub.ErrThrottled) {
		t.Fatalf("SendC2D: %v", err)
	}
	if _, err := s.InvokeMethod(context.Background(), "dev1", "", fakehub.MethodRequest{MethodName: "m"}); !errors.Is(err, fakehub.ErrThrottled) {
		t.Fatalf("InvokeMethod: %v", err)
	}
	s.SetThrottle(false)
	c.publish("devices/dev1/messages/events/", []byte("kept"), 1, 8)
	if typ, body, err := c.read(); err != nil || typ != 0x40 || body[1] != 8 {
		t.Fatalf("want PUBACK 8, got %#x % x %v", typ, body, err)
	}
}

func TestSetDelay(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	const d = 300 * time.Millisecond
	s.SetDelay(d)
	start := time.Now()
	c := connectRaw(t, s, cs)
	if took := time.Since(start); took < d {
		t.Fatalf("CONNECT answered after %v, before the %v delay", took, d)
	}
	start = time.Now()
	c.publish("devices/dev1/messages/events/", []byte("x"), 1, 1)
	if typ, _, err := c.read(); err != nil || typ != 0x40 {
		t.Fatalf("want PUBACK: %#x %v", typ, err)
	}
	if took := time.Since(start); took < d {
		t.Fatalf("PUBACK after %v, before the %v delay", took, d)
	}
	s.SetDelay(0)
}

func TestTakeoverClosesWithoutDisconnectPacket(t *testing.T) {
	// IoT Hub speaks 3.1.1, where the server never sends DISCONNECT: the older connection
	// of an identity is simply closed.
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	first := connectRaw(t, s, cs)
	connectRaw(t, s, cs)
	if typ, body, err := first.read(); err == nil {
		t.Fatalf("older connection received packet %#x % x", typ, body)
	}
}
