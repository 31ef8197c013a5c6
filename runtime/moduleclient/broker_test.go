package moduleclient_test

import (
	"bytes"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// These tests run the client against a bare MQTT broker (mochi, plain TCP on loopback) that
// records what the client puts on the wire and publishes what an edge hub would, including
// module inputs, which the fake IoT Hub never delivers (IoT Hub has no module inputs).

const (
	brokerKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	// brokerModule is a module connection string that dials the broker through a gateway
	// address, so the IoT Hub host name is never resolved.
	brokerModule = "HostName=hub.example;DeviceId=edge1;ModuleId=filter;SharedAccessKey=" + brokerKey + ";GatewayHostName=127.0.0.1"
)

// recorder is a mochi hook that accepts every client and records CONNECTs and PUBLISHes.
type recorder struct {
	mqtt.HookBase
	mu        sync.Mutex
	connects  []packets.Packet
	publishes []packets.Packet
}

func (r *recorder) ID() string { return "recorder" }

func (r *recorder) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish}, []byte{b})
}

func (r *recorder) OnConnectAuthenticate(_ *mqtt.Client, pk packets.Packet) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.connects = append(r.connects, pk)
	return true
}

func (r *recorder) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func (r *recorder) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.publishes = append(r.publishes, pk)
	return pk, nil
}

func (r *recorder) snapshot() (connects, publishes []packets.Packet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]packets.Packet(nil), r.connects...), append([]packets.Packet(nil), r.publishes...)
}

// startBroker runs a mochi broker on a random loopback port.
func startBroker(t *testing.T) (*mqtt.Server, *recorder, int) {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	rec := &recorder{}
	if err := srv.AddHook(rec, nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := srv.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	_, port, err := net.SplitHostPort(tcp.Address())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return srv, rec, p
}

func brokerOptions(t *testing.T, port int) moduleclient.Options {
	return moduleclient.Options{Plain: true, Port: port, Logger: testLogger(t),
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond}
}

func TestWire_ConnectPacket(t *testing.T) {
	_, rec, port := startBroker(t)
	before := time.Now()
	connect(t, brokerModule,
		brokerOptions(t, port), nil)
	connects, _ := rec.snapshot()
	if len(connects) != 1 {
		t.Fatalf("%d CONNECTs, want 1", len(connects))
	}
	pk := connects[0]
	if pk.ProtocolVersion != 4 || pk.Connect.Clean || pk.Connect.Keepalive != 60 {
		t.Errorf("protocol %d, clean %v, keep-alive %d; want 4, false, 60", pk.ProtocolVersion, pk.Connect.Clean, pk.Connect.Keepalive)
	}
	if pk.Connect.ClientIdentifier != "edge1/filter" {
		t.Errorf("client id %q", pk.Connect.ClientIdentifier)
	}
	u, err := iothub.ParseUsername(string(pk.Connect.Username))
	if err != nil {
		t.Fatal(err)
	}
	if u.Host != "hub.example" || u.DeviceID != "edge1" || u.ModuleID != "filter" || u.Legacy || u.APIVersion() == "" {
		t.Errorf("username %q parsed as %+v; want the IoT Hub host (not the gateway) and the module", pk.Connect.Username, u)
	}
	tok, err := sas.Parse(string(pk.Connect.Password))
	if err != nil {
		t.Fatalf("password is not a SAS token: %v", err)
	}
	aud, err := tok.Audience()
	if err != nil {
		t.Fatal(err)
	}
	if aud != (sas.Audience{Host: "hub.example", DeviceID: "edge1", ModuleID: "filter"}) {
		t.Errorf("token audience %+v", aud)
	}
	if err := tok.VerifySignature(sas.Keys{Primary: brokerKey}); err != nil {
		t.Errorf("token signature: %v", err)
	}
	if exp := tok.ExpiresAt(); exp.Before(before.Add(59*time.Minute)) || exp.After(time.Now().Add(61*time.Minute)) {
		t.Errorf("token expires at %v, want about one hour from now", exp)
	}
}

func TestWire_TelemetryTopic(t *testing.T) {
	_, rec, port := startBroker(t)
	c := connect(t, brokerModule, brokerOptions(t, port), nil)
	err := c.SendOutput(ctxFor(t), "alerts", iothub.Message{
		Body:       []byte("b"),
		Properties: map[string]string{"k": "v w", "a/b": "x=y"},
		System:     map[string]string{iothub.SysMessageID: "m1", iothub.SysContentType: "application/json"},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, pubs := rec.snapshot()
	if len(pubs) != 1 {
		t.Fatalf("%d PUBLISHes, want 1", len(pubs))
	}
	const want = "devices/edge1/modules/filter/messages/events/%24.mid=m1&%24.ct=application%2Fjson&%24.on=alerts&a%2Fb=x%3Dy&k=v%20w"
	if pubs[0].TopicName != want {
		t.Errorf("topic\n got %s\nwant %s", pubs[0].TopicName, want)
	}
	if pubs[0].FixedHeader.Qos != 1 || pubs[0].FixedHeader.Retain {
		t.Errorf("QoS %d retain %v, want QoS 1 without retain", pubs[0].FixedHeader.Qos, pubs[0].FixedHeader.Retain)
	}
}

func TestWire_ModuleInputsInOrderAckedAfterCallback(t *testing.T) {
	srv, _, port := startBroker(t)
	type delivery struct {
		input string
		m     iothub.Message
	}
	got := make(chan delivery, 8)
	release := make(chan struct{})
	var once sync.Once
	connect(t, brokerModule, brokerOptions(t, port),
		func(c *moduleclient.Client) {
			c.OnInput(func(input string, m iothub.Message) {
				got <- delivery{input, m}
				once.Do(func() { <-release }) // hold the first message
			})
		})

	const n = 5
	for i := range n {
		bag := iothub.Bag{
			{Key: "$.cdid", Value: "edge1"}, {Key: "$.cmid", Value: "sensor"},
			{Key: "seq", Value: strconv.Itoa(i)},
		}
		if err := srv.Publish(iothub.InputTopic("edge1", "filter", "in1", bag), []byte("m"+strconv.Itoa(i)), false, 1); err != nil {
			t.Fatal(err)
		}
	}
	first := <-got
	if first.input != "in1" || first.m.Properties["seq"] != "0" || first.m.System[iothub.SysConnModuleID] != "sensor" ||
		first.m.System[iothub.SysConnDeviceID] != "edge1" || string(first.m.Body) != "m0" {
		t.Errorf("first input message: %+v", first)
	}
	inflight := func() int {
		cl, ok := srv.Clients.Get("edge1/filter")
		if !ok {
			return -1
		}
		return cl.State.Inflight.Len()
	}
	// Nothing is acknowledged while the first callback runs (the others wait in order).
	waitFor(t, "all messages to reach the client", func() bool { return inflight() == n })
	close(release)
	for i := 1; i < n; i++ {
		d := <-got
		if d.m.Properties["seq"] != strconv.Itoa(i) {
			t.Errorf("message %d arrived as seq %s: out of order", i, d.m.Properties["seq"])
		}
	}
	waitFor(t, "every message to be acknowledged", func() bool { return inflight() == 0 })
}
