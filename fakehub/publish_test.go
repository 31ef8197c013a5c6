package fakehub_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
)

func TestTelemetry_PropertyBagForms(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	c := connectRaw(t, s, cs)
	cases := []struct {
		name      string
		topic     string
		props     map[string]string
		sysProps  map[string]string
		noSysKeys []string
	}{
		{"no bag, no slash", "devices/dev1/messages/events", map[string]string{}, nil, nil},
		{"C# style: encoded, trailing slash", "devices/dev1/messages/events/%24.mid=a1&%24.cid=c%201&k%2F1=v%3D1/",
			map[string]string{"k/1": "v=1"}, map[string]string{"message-id": "a1", "correlation-id": "c 1"}, nil},
		{"C SDK style: raw '/' in the content type, raw '%' kept", "devices/dev1/messages/events/load=100%&%24.ct=application/json&%24.ce=utf-8",
			map[string]string{"load": "100%"}, map[string]string{"content-type": "application/json", "content-encoding": "utf-8"}, nil},
		{"$. keys unencoded, null and empty values", "devices/dev1/messages/events/$.uid=u&$.sub=comp&nullkey&empty=",
			map[string]string{"nullkey": "", "empty": ""}, map[string]string{"user-id": "u", "dt-subject": "comp"}, nil},
		{"connection ids from the client are not trusted", "devices/dev1/messages/events/%24.cdid=evil&%24.cmid=evil",
			map[string]string{}, map[string]string{"iothub-connection-device-id": "dev1"}, []string{"$.cdid", "$.cmid", "iothub-connection-module-id"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.publish(tc.topic, []byte("x"), 1, uint16(i+1))
			typ, body, err := c.read()
			if err != nil || typ != 0x40 || int(body[1]) != i+1 {
				t.Fatalf("want PUBACK %d, got %#x % x %v", i+1, typ, body, err)
			}
			evs := s.Events(int64(i), 1)
			if len(evs) != 1 {
				t.Fatalf("events = %v", evs)
			}
			ev := evs[0]
			if len(ev.Properties) != len(tc.props) {
				t.Errorf("properties = %v, want %v", ev.Properties, tc.props)
			}
			for k, v := range tc.props {
				if got, ok := ev.Properties[k]; !ok || got != v {
					t.Errorf("property %q = %q (%v), want %q", k, got, ok, v)
				}
			}
			for k, v := range tc.sysProps {
				if got := ev.SystemProperties[k]; got != v {
					t.Errorf("system property %q = %q, want %q", k, got, v)
				}
			}
			for _, k := range tc.noSysKeys {
				if _, ok := ev.SystemProperties[k]; ok {
					t.Errorf("system property %q present: %v", k, ev.SystemProperties)
				}
			}
		})
	}
}

func TestTelemetry_ModuleStampsAndRetain(t *testing.T) {
	s := fakehubtest.New(t)
	fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	m, cs := fakehubtest.MustModule(t, s, "edge1", "filter")
	c := dial(t, pahoOptions(t, s, cs))
	tok := c.Publish("devices/edge1/modules/filter/messages/events/%24.on=alert/", 1, true, "hot")
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	waitFor(t, "event", func() bool { return len(s.Events(0, 0)) == 1 })
	ev := s.Events(0, 0)[0]
	want := map[string]string{
		"iothub-connection-device-id":          "edge1",
		"iothub-connection-module-id":          "filter",
		"iothub-connection-auth-generation-id": m.GenerationID,
		"iothub-connection-auth-method":        `{"scope":"module","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`,
		"$.on":                                 "alert",
	}
	for k, v := range want {
		if ev.SystemProperties[k] != v {
			t.Errorf("system property %q = %q, want %q", k, ev.SystemProperties[k], v)
		}
	}
	if ev.ModuleID != "filter" || ev.Properties["mqtt-retain"] != "true" {
		t.Errorf("event = %+v", ev)
	}
	// Nothing was retained: a new subscriber of every dialect filter receives nothing
	// before the answer to its own request.
	sink := &msgSink{}
	subscribe(t, c, sink, "$iothub/twin/res/#")
	publish(t, c, "$iothub/twin/GET/?$rid=r", 0, "")
	sink.wait(t, "$iothub/twin/res/200/")
	if n := len(sink.all()); n != 1 {
		t.Fatalf("received %d messages, want only the twin answer", n)
	}
}

func TestTelemetry_WillCaptured(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	_, cleanCS := fakehubtest.MustDevice(t, s, "clean")
	dial(t, pahoOptions(t, s, cs).SetWill("devices/dev1/messages/events/reason=gone", "bye", 1, false))
	clean := dial(t, pahoOptions(t, s, cleanCS).SetWill("devices/clean/messages/events/", "never", 1, false))
	waitFor(t, "connections", func() bool { return len(s.Connections()) == 2 })

	// A DISCONNECT packet discards the will.
	clean.Disconnect(250)
	waitFor(t, "clean disconnect", func() bool {
		d, _ := s.GetDevice("clean")
		return d.ConnectionState == "Disconnected"
	})

	// An abnormal end of the connection (here the network cut) publishes it.
	s.CutNetwork()
	defer s.RestoreNetwork()
	waitFor(t, "will event", func() bool { return len(s.Events(0, 0)) >= 1 })
	evs := s.Events(0, 0)
	if len(evs) != 1 {
		t.Fatalf("events = %+v", evs)
	}
	ev := evs[0]
	if ev.DeviceID != "dev1" || string(ev.Body) != "bye" || ev.Properties["iothub-MessageType"] != "Will" || ev.Properties["reason"] != "gone" {
		t.Fatalf("will event = %+v", ev)
	}
}

func TestPublish_ViolationsCloseTheConnection(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	fakehubtest.MustDevice(t, s, "dev2")
	_, otherCS := fakehubtest.MustDevice(t, s, "bystander")
	bystander := dial(t, pahoOptions(t, s, otherCS))

	big := bytes.Repeat([]byte("a"), 256*1024)
	cases := []struct {
		name    string
		topic   string
		payload []byte
		qos     byte
	}{
		{"QoS 2", "devices/dev1/messages/events/", []byte("x"), 2},
		{"another device's telemetry topic", "devices/dev2/messages/events/", []byte("x"), 1},
		{"a module topic of the device", "devices/dev1/modules/m/messages/events/", []byte("x"), 1},
		{"a C2D topic", "devices/dev1/messages/devicebound/%24.to=x", []byte("x"), 1},
		{"a twin response topic", "$iothub/twin/res/200/?$rid=1", []byte("x"), 0},
		{"a method request topic", "$iothub/methods/POST/m/?$rid=1", []byte("x"), 0},
		{"an arbitrary topic", "sensors/temperature", []byte("x"), 1},
		{"a malformed property bag", "devices/dev1/messages/events/=v", []byte("x"), 1},
		{"a twin GET without $rid", "$iothub/twin/GET/", nil, 0},
		{"over 256 KB", "devices/dev1/messages/events/", append(big, 'x'), 1},
		{"over 256 KB with properties", "devices/dev1/messages/events/k=v", big, 1},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.Events(0, 0))
			c := connectRaw(t, s, cs)
			c.publish(tc.topic, tc.payload, tc.qos, uint16(i+1))
			c.expectClosed()
			if n := len(s.Events(0, 0)); n != before {
				t.Fatalf("captured %d events", n-before)
			}
		})
	}
	t.Run("exactly 256 KB is accepted", func(t *testing.T) {
		before := len(s.Events(0, 0))
		c := connectRaw(t, s, cs)
		c.publish("devices/dev1/messages/events/", big, 1, 9)
		if typ, body, err := c.read(); err != nil || typ != 0x40 || body[1] != 9 {
			t.Fatalf("want PUBACK, got %#x % x %v", typ, body, err)
		}
		if n := len(s.Events(0, 0)); n != before+1 {
			t.Fatalf("captured %d events, want 1", n-before)
		}
	})
	// The hub kept serving everyone else.
	publish(t, bystander, "devices/bystander/messages/events/", 1, "still here")
	waitFor(t, "bystander's event", func() bool {
		evs := s.Events(0, 0)
		return len(evs) > 0 && evs[len(evs)-1].DeviceID == "bystander"
	})
}

func TestSubscribe_Answers(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	c := connectRaw(t, s, cs)
	got := c.subscribe(1, 2,
		"devices/dev1/messages/devicebound/#",
		"$iothub/twin/res/#",
		"devices/dev2/messages/devicebound/#",
		"$iothub/twin/PATCH/properties/desired/#",
		"#",
		"$iothub/methods/POST/#",
		"devices/+/messages/devicebound/#",
	)
	want := []byte{1, 1, 0x80, 1, 0x80, 1, 1}
	if !bytes.Equal(got, want) {
		t.Fatalf("SUBACK codes = % x, want % x (QoS 2 granted as 1, foreign and unknown filters refused)", got, want)
	}
	// Five filters are held now; resubscribing one of them is fine, anything new is not.
	if got := c.subscribe(2, 1, "$iothub/twin/res/#"); !bytes.Equal(got, []byte{1}) {
		t.Fatalf("resubscribe = % x", got)
	}
}

func TestSubscribe_NothingDeliveredOnRefusedFilter(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs1 := fakehubtest.MustDevice(t, s, "dev1")
	fakehubtest.MustDevice(t, s, "dev2")
	c := dial(t, pahoOptions(t, s, cs1))
	sink := &msgSink{}
	res := subscribe(t, c, sink, "devices/dev2/messages/devicebound/#")
	if res["devices/dev2/messages/devicebound/#"] != 0x80 {
		t.Fatalf("SUBACK = %v", res)
	}
	if _, err := s.SendC2D("dev2", fakehubC2D("secret")); err != nil {
		t.Fatal(err)
	}
	subscribe(t, c, sink, "devices/+/messages/devicebound/#")
	if _, err := s.SendC2D("dev1", fakehubC2D("mine")); err != nil {
		t.Fatal(err)
	}
	msg := sink.wait(t, "devices/")
	if !strings.HasPrefix(msg.Topic(), "devices/dev1/messages/devicebound/") || string(msg.Payload()) != "mine" {
		t.Fatalf("received %s %q", msg.Topic(), msg.Payload())
	}
	if len(sink.all()) != 1 {
		t.Fatalf("received %d messages", len(sink.all()))
	}
	var _ paho.Message = msg
}
