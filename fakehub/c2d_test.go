package fakehub_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
)

func fakehubC2D(body string) fakehub.C2DMessage { return fakehub.C2DMessage{Body: []byte(body)} }

func TestC2D_QueuedThenDeliveredWithExactTopic(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	id, err := s.SendC2D("dev1", fakehub.C2DMessage{
		Body:          []byte("reboot please"),
		MessageID:     "m-1",
		CorrelationID: "c-1",
		ContentType:   "application/json",
		Ack:           "full",
		Properties:    map[string]string{"prop one": "a/b=c&d", "z": ""},
	})
	if err != nil || id != "m-1" {
		t.Fatalf("SendC2D = %q, %v", id, err)
	}
	if n := s.PendingC2D("dev1"); n != 1 {
		t.Fatalf("pending = %d", n)
	}
	if d, _ := s.GetDevice("dev1"); d.CloudToDeviceMessageCount != 1 {
		t.Fatalf("cloudToDeviceMessageCount = %d", d.CloudToDeviceMessageCount)
	}
	c := dial(t, pahoOptions(t, s, cs))
	sink := &msgSink{}
	subscribe(t, c, sink, "devices/dev1/messages/devicebound/#")
	msg := sink.wait(t, "devices/dev1/messages/devicebound/")
	const want = "devices/dev1/messages/devicebound/%24.mid=m-1&%24.cid=c-1&%24.to=%2Fdevices%2Fdev1%2Fmessages%2Fdevicebound&%24.ct=application%2Fjson&iothub-ack=full&prop%20one=a%2Fb%3Dc%26d&z="
	if msg.Topic() != want {
		t.Fatalf("topic\n got %s\nwant %s", msg.Topic(), want)
	}
	if msg.Qos() != 1 || string(msg.Payload()) != "reboot please" {
		t.Fatalf("qos %d payload %q", msg.Qos(), msg.Payload())
	}
	waitFor(t, "PUBACK to complete the message", func() bool { return s.PendingC2D("dev1") == 0 })

	// A message sent while connected and subscribed goes out at once, with a generated id.
	id, err = s.SendC2D("dev1", fakehubC2D("second"))
	if err != nil || len(id) != 36 {
		t.Fatalf("SendC2D = %q, %v", id, err)
	}
	msg = sink.wait(t, "devices/dev1/messages/devicebound/%24.mid="+id+"&%24.to=%2Fdevices%2Fdev1%2Fmessages%2Fdevicebound")
	if string(msg.Payload()) != "second" {
		t.Fatalf("payload %q", msg.Payload())
	}
}

func TestC2D_EmbeddedSDKFilter(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	c := dial(t, pahoOptions(t, s, cs))
	sink := &msgSink{}
	subscribe(t, c, sink, "devices/+/messages/devicebound/#")
	if _, err := s.SendC2D("dev1", fakehubC2D("hi")); err != nil {
		t.Fatal(err)
	}
	if msg := sink.wait(t, "devices/dev1/messages/devicebound/%24.mid="); string(msg.Payload()) != "hi" {
		t.Fatalf("payload %q", msg.Payload())
	}
}

func TestC2D_Errors(t *testing.T) {
	s := fakehubtest.New(t)
	fakehubtest.MustDevice(t, s, "dev1")
	fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	for i := range 50 {
		if _, err := s.SendC2D("dev1", fakehubC2D("m")); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
	}
	cases := []struct {
		name   string
		device string
		msg    fakehub.C2DMessage
		want   error
	}{
		{"51st pending message", "dev1", fakehubC2D("m"), fakehub.ErrQueueFull},
		{"unknown device", "ghost", fakehubC2D("m"), fakehub.ErrNotFound},
		{"module", "edge1/$edgeAgent", fakehubC2D("m"), fakehub.ErrInvalid},
		{"over 64 KB", "edge1", fakehub.C2DMessage{Body: bytes.Repeat([]byte("a"), 64*1024+1)}, fakehub.ErrTooLarge},
		{"64 KB counting properties", "edge1", fakehub.C2DMessage{Body: bytes.Repeat([]byte("a"), 64*1024-1), Properties: map[string]string{"k": "v"}}, fakehub.ErrTooLarge},
		{"bad ack", "edge1", fakehub.C2DMessage{Ack: "sometimes"}, fakehub.ErrInvalid},
		{"reserved property name", "edge1", fakehub.C2DMessage{Properties: map[string]string{"$.mid": "x"}}, fakehub.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.SendC2D(tc.device, tc.msg); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := s.SendC2D("edge1", fakehub.C2DMessage{Body: bytes.Repeat([]byte("a"), 64*1024)}); err != nil {
		t.Fatalf("exactly 64 KB: %v", err)
	}
}

func TestC2D_RedeliveredAfterReconnectWithoutAck(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")

	// The first connection receives the message but never acknowledges it.
	first := dial(t, pahoOptions(t, s, cs).SetAutoAckDisabled(true))
	sink := &msgSink{}
	subscribe(t, first, sink, "devices/dev1/messages/devicebound/#")
	if _, err := s.SendC2D("dev1", fakehub.C2DMessage{MessageID: "once", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	sink.wait(t, "devices/dev1/messages/devicebound/%24.mid=once")
	first.Disconnect(100)
	if n := s.PendingC2D("dev1"); n != 1 {
		t.Fatalf("pending after an unacknowledged delivery = %d", n)
	}

	// CleanSession=0: the session keeps the subscription, so the message comes again
	// without a new SUBSCRIBE, and this time it is acknowledged.
	again := &msgSink{}
	second := dial(t, pahoOptions(t, s, cs).SetDefaultPublishHandler(again.handler))
	msg := again.wait(t, "devices/dev1/messages/devicebound/%24.mid=once")
	if string(msg.Payload()) != "x" {
		t.Fatalf("payload %q", msg.Payload())
	}
	waitFor(t, "completion", func() bool { return s.PendingC2D("dev1") == 0 })
	second.Disconnect(100)

	// CleanSession=1 forgets the subscription: nothing arrives until the device subscribes.
	if _, err := s.SendC2D("dev1", fakehub.C2DMessage{MessageID: "later", Body: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	clean := &msgSink{}
	third := dial(t, pahoOptions(t, s, cs).SetCleanSession(true).SetDefaultPublishHandler(clean.handler))
	sink3 := &msgSink{}
	subscribe(t, third, sink3, "$iothub/twin/res/#")
	publish(t, third, "$iothub/twin/GET/?$rid=1", 0, "")
	sink3.wait(t, "$iothub/twin/res/200/")
	if len(clean.all()) != 0 || s.PendingC2D("dev1") != 1 {
		t.Fatalf("delivered without a subscription: %d messages, pending %d", len(clean.all()), s.PendingC2D("dev1"))
	}
	subscribe(t, third, sink3, "devices/dev1/messages/devicebound/#")
	sink3.wait(t, "devices/dev1/messages/devicebound/%24.mid=later")
	waitFor(t, "completion", func() bool { return s.PendingC2D("dev1") == 0 })
}

func TestC2D_ExpiredMessagesAreDropped(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: now}
	s := fakehubtest.New(t, fakehubtest.WithNow(clock.Now))
	fakehubtest.MustDevice(t, s, "dev1")
	if _, err := s.SendC2D("dev1", fakehub.C2DMessage{Body: []byte("x"), ExpiryTime: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if n := s.PendingC2D("dev1"); n != 1 {
		t.Fatalf("pending = %d", n)
	}
	clock.add(2 * time.Minute)
	if n := s.PendingC2D("dev1"); n != 0 {
		t.Fatalf("pending after expiry = %d", n)
	}
}

func TestC2D_TopicParsesAsSDKsParseIt(t *testing.T) {
	// C# v1 and Node split on '/' and take segment 4 as the bag: it must be all of it.
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	c := dial(t, pahoOptions(t, s, cs))
	sink := &msgSink{}
	subscribe(t, c, sink, "devices/dev1/messages/devicebound/#")
	if _, err := s.SendC2D("dev1", fakehub.C2DMessage{Properties: map[string]string{"path": "/a/b", "q": "x?y#z+1"}}); err != nil {
		t.Fatal(err)
	}
	msg := sink.wait(t, "devices/dev1/messages/devicebound/")
	segs := strings.Split(msg.Topic(), "/")
	if len(segs) != 5 || !strings.Contains(segs[4], "%24.to=") || strings.ContainsAny(segs[4], "$#+?") {
		t.Fatalf("topic %s splits into %q", msg.Topic(), segs)
	}
	var _ paho.Message = msg
}
