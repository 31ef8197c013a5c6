package fakehub_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// waitFor polls cond until it holds or 10 s pass (the checkFor pattern: no bare sleeps).
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

// clientTLS builds what a third-party SDK builds from EdgeModuleCACertificateFile-style
// configuration: the CA file and nothing else, verification on, ServerName "localhost".
func clientTLS(t testing.TB, s *fakehub.Server) *tls.Config {
	t.Helper()
	pemBytes, err := os.ReadFile(s.CAFile())
	if err != nil {
		t.Fatalf("read CA file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("CA file holds no certificate")
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// credentials derives CONNECT fields from a connection string exactly as the SDKs do.
func credentials(t testing.TB, connStr string) (clientID, username, password string) {
	t.Helper()
	cs, err := sas.ParseConnectionString(connStr)
	if err != nil {
		t.Fatalf("parse connection string: %v", err)
	}
	tok, err := cs.Token(time.Now(), time.Hour)
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	return iothub.ClientID(cs.DeviceID, cs.ModuleID),
		iothub.FormatUsername(cs.HostName, cs.DeviceID, cs.ModuleID, map[string]string{iothub.ParamDeviceClientType: "fakehub-test/1.0"}),
		tok
}

// pahoOptions returns options for an SDK-like client: MQTT 3.1.1 over TLS, CleanSession=0,
// no automatic reconnect (tests reconnect explicitly).
func pahoOptions(t testing.TB, s *fakehub.Server, connStr string) *paho.ClientOptions {
	t.Helper()
	id, user, pass := credentials(t, connStr)
	return paho.NewClientOptions().
		AddBroker("ssl://" + s.MQTTAddress()).
		SetTLSConfig(clientTLS(t, s)).
		SetClientID(id).SetUsername(user).SetPassword(pass).
		SetProtocolVersion(4).
		SetCleanSession(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(60 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetOrderMatters(false)
}

// dial connects a paho client and fails the test unless the CONNACK accepts it.
func dial(t testing.TB, opts *paho.ClientOptions) paho.Client {
	t.Helper()
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", opts.ClientID, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// msgSink collects the messages a paho client receives.
type msgSink struct {
	mu   sync.Mutex
	msgs []paho.Message
}

func (m *msgSink) handler(_ paho.Client, msg paho.Message) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs = append(m.msgs, msg)
}

func (m *msgSink) all() []paho.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]paho.Message(nil), m.msgs...)
}

// wait returns the first message whose topic starts with prefix.
func (m *msgSink) wait(t testing.TB, prefix string) paho.Message {
	t.Helper()
	var got paho.Message
	waitFor(t, "a message on "+prefix, func() bool {
		for _, msg := range m.all() {
			if strings.HasPrefix(msg.Topic(), prefix) {
				got = msg
				return true
			}
		}
		return false
	})
	return got
}

func subscribe(t testing.TB, c paho.Client, sink *msgSink, filters ...string) map[string]byte {
	t.Helper()
	m := map[string]byte{}
	for _, f := range filters {
		m[f] = 1
	}
	tok := c.SubscribeMultiple(m, sink.handler)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %v: %v", filters, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()
}

func publish(t testing.TB, c paho.Client, topic string, qos byte, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// rawClient speaks just enough MQTT 3.1.1 to send what no well-behaved client library
// sends (QoS 2, oversized messages, odd protocol levels) and to read exact answers.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// dialRaw connects to the plain MQTT listener.
func dialRaw(t testing.TB, s *fakehub.Server) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.PlainMQTTAddress(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func mqttString(s string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(s)))
	return append(b, s...)
}

func remainingLength(n int) []byte {
	var out []byte
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			return out
		}
	}
}

func (c *rawClient) send(header byte, body []byte) {
	c.t.Helper()
	pk := append([]byte{header}, remainingLength(len(body))...)
	if _, err := c.conn.Write(append(pk, body...)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// connect sends CONNECT (level 4 unless given) and returns the CONNACK return code; an
// error means the server closed the connection without a CONNACK.
func (c *rawClient) connect(clientID, username, password string, level byte) (byte, error) {
	c.t.Helper()
	name := "MQTT"
	if level == 3 {
		name = "MQIsdp"
	}
	flags := byte(0x80) // username
	if password != "" {
		flags |= 0x40
	}
	body := append(mqttString(name), level, flags, 0, 60)
	if level == 5 {
		body = append(body, 0) // no properties
	}
	body = append(body, mqttString(clientID)...)
	body = append(body, mqttString(username)...)
	if password != "" {
		body = append(body, mqttString(password)...)
	}
	c.send(0x10, body)
	typ, payload, err := c.read()
	if err != nil {
		return 0, err
	}
	if typ != 0x20 || len(payload) < 2 {
		return 0, fmt.Errorf("want CONNACK, got packet type %#x % x", typ, payload)
	}
	return payload[1], nil
}

// read returns the next packet's first byte and body.
func (c *rawClient) read() (byte, []byte, error) {
	typ, err := c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mult
		if b&0x80 == 0 {
			break
		}
		mult *= 128
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, nil, err
	}
	return typ, body, nil
}

func (c *rawClient) publish(topic string, payload []byte, qos byte, pid uint16) {
	c.t.Helper()
	body := mqttString(topic)
	if qos > 0 {
		body = binary.BigEndian.AppendUint16(body, pid)
	}
	c.send(0x30|qos<<1, append(body, payload...))
}

// subscribe sends one SUBSCRIBE and returns the SUBACK codes.
func (c *rawClient) subscribe(pid uint16, qos byte, filters ...string) []byte {
	c.t.Helper()
	body := binary.BigEndian.AppendUint16(nil, pid)
	for _, f := range filters {
		body = append(append(body, mqttString(f)...), qos)
	}
	c.send(0x82, body)
	for {
		typ, payload, err := c.read()
		if err != nil {
			c.t.Fatalf("waiting for SUBACK: %v", err)
		}
		if typ == 0x90 {
			return payload[2:]
		}
	}
}

// expectClosed asserts that the server closes the connection (after any packets it sends).
func (c *rawClient) expectClosed() {
	c.t.Helper()
	for {
		typ, _, err := c.read()
		if err == nil {
			if typ == 0x40 { // a PUBACK means the server accepted the message
				c.t.Fatal("server acknowledged a message it should have refused")
			}
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatal("server did not close the connection")
		}
		return
	}
}

// connectRaw opens a raw connection authenticated from a connection string.
func connectRaw(t testing.TB, s *fakehub.Server, connStr string) *rawClient {
	t.Helper()
	id, user, pass := credentials(t, connStr)
	c := dialRaw(t, s)
	code, err := c.connect(id, user, pass, 4)
	if err != nil || code != 0 {
		t.Fatalf("raw connect %s: code %d, err %v", id, code, err)
	}
	return c
}

// fakeClock is an adjustable clock for Server.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
