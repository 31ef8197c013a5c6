package fakehub_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

func TestConnect_ConnectionStringAndCAFileOnly(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	c := dial(t, pahoOptions(t, s, cs))
	if !c.IsConnectionOpen() {
		t.Fatal("not connected")
	}
	d, err := s.GetDevice("dev1")
	if err != nil || d.ConnectionState != "Connected" || d.LastActivityTime.IsZero() {
		t.Fatalf("device after connect = %+v, %v", d, err)
	}
	c.Disconnect(250)
	waitFor(t, "Disconnected state", func() bool {
		d, _ := s.GetDevice("dev1")
		return d.ConnectionState == "Disconnected"
	})
}

func TestConnect_Answers(t *testing.T) {
	s := fakehubtest.New(t)
	dev1, _ := fakehubtest.MustDevice(t, s, "dev1")
	fakehubtest.MustDevice(t, s, "dev2")
	fakehubtest.MustDevice(t, s, "off", fakehubtest.Disabled())
	fakehubtest.MustModule(t, s, "dev1", "mod1")
	if _, err := s.PutDevice(fakehub.Device{DeviceID: "x509dev", Authentication: fakehub.Authentication{
		Type: "selfSigned", X509Thumbprint: &fakehub.X509Thumbprint{PrimaryThumbprint: "00112233445566778899AABBCCDDEEFF00112233"}}}, ""); err != nil {
		t.Fatal(err)
	}
	keys := func(d, m string) sas.Keys {
		k, err := s.IdentityKeys(sas.Identity{DeviceID: d, ModuleID: m})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	token := func(resource, key, skn string, expiry time.Time) string {
		tok, err := sas.Sign(resource, key, skn, expiry)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	user := func(d, m string) string { return iothub.FormatUsername("localhost", d, m, nil) }
	otherKey, _ := sas.NewKey()
	devicePolicy, err := s.PolicyKeys("device")
	if err != nil {
		t.Fatal(err)
	}
	servicePolicy, _ := s.PolicyKeys("service")
	_ = dev1

	cases := []struct {
		name               string
		clientID, username string
		password           string
		level              byte
		want               byte
	}{
		{"device primary key", "dev1", user("dev1", ""), token("localhost/devices/dev1", keys("dev1", "").Primary, "", now.Add(time.Hour)), 4, 0},
		{"device secondary key", "dev1", user("dev1", ""), token("localhost/devices/dev1", keys("dev1", "").Secondary, "", now.Add(time.Hour)), 4, 0},
		{"expired within clock skew", "dev1", user("dev1", ""), token("localhost/devices/dev1", keys("dev1", "").Primary, "", now.Add(-4*time.Minute)), 4, 0},
		{"legacy username", "dev1", "localhost/dev1/api-version=2016-11-14", token("localhost/devices/dev1", keys("dev1", "").Primary, "", now.Add(time.Hour)), 4, 0},
		{"host segment not checked", "dev1", iothub.FormatUsername("gateway.example", "dev1", "", nil), token("localhost/devices/dev1", keys("dev1", "").Primary, "", now.Add(time.Hour)), 4, 0},
		{"module key", "dev1/mod1", user("dev1", "mod1"), token("localhost/devices/dev1/modules/mod1", keys("dev1", "mod1").Primary, "", now.Add(time.Hour)), 4, 0},
		{"device token for its module", "dev1/mod1", user("dev1", "mod1"), token("localhost/devices/dev1", keys("dev1", "").Primary, "", now.Add(time.Hour)), 4, 0},
		{"device policy token", "dev1", user("dev1", ""), token("localhost/devices/dev1", devicePolicy.Primary, "device", now.Add(time.Hour)), 4, 0},

		{"wrong key", "dev1", user("dev1", ""), token("localhost/devices/dev1", otherKey, "", now.Add(time.Hour)), 4, 5},
		{"expired beyond clock skew", "dev1", user("dev1", ""), token("localhost/devices/dev1", keys("dev1", "").Primary, "", now.Add(-6*time.Minute)), 4, 5},
		{"unknown device", "ghost", user("ghost", ""), token("localhost/devices/ghost", otherKey, "", now.Add(time.Hour)), 4, 5},
		{"unknown module", "dev1/ghost", user("dev1", "ghost"), token("localhost/devices/dev1", keys("dev1", "").Primary, "", now.Add(time.Hour)), 4, 5},
		{"disabled device", "off", user("off", ""), token("localhost/devices/off", otherKey, "", now.Add(time.Hour)), 4, 5},
		{"malformed username", "dev1", "not-a-username", token("localhost/devices/dev1", keys("dev1", "").Primary, "", now.Add(time.Hour)), 4, 5},
		{"client id does not match username", "dev2", user("dev1", ""), token("localhost/devices/dev1", keys("dev1", "").Primary, "", now.Add(time.Hour)), 4, 5},
		{"client id case differs", "DEV1", user("dev1", ""), token("localhost/devices/dev1", keys("dev1", "").Primary, "", now.Add(time.Hour)), 4, 5},
		{"token of another device", "dev1", user("dev1", ""), token("localhost/devices/dev2", keys("dev2", "").Primary, "", now.Add(time.Hour)), 4, 5},
		{"module token for the device", "dev1", user("dev1", ""), token("localhost/devices/dev1/modules/mod1", keys("dev1", "mod1").Primary, "", now.Add(time.Hour)), 4, 5},
		{"token for another hub", "dev1", user("dev1", ""), token("other.azure-devices.net/devices/dev1", keys("dev1", "").Primary, "", now.Add(time.Hour)), 4, 5},
		{"policy without DeviceConnect", "dev1", user("dev1", ""), token("localhost/devices/dev1", servicePolicy.Primary, "service", now.Add(time.Hour)), 4, 5},
		{"malformed password", "dev1", user("dev1", ""), "secret", 4, 5},
		{"no password and no certificate", "dev1", user("dev1", ""), "", 4, 5},
		{"X.509 identity without certificate", "x509dev", user("x509dev", ""), "", 4, 5},
		{"MQTT 3.1", "dev1", user("dev1", ""), token("localhost/devices/dev1", keys("dev1", "").Primary, "", now.Add(time.Hour)), 3, 1},
		{"MQTT 5", "dev1", user("dev1", ""), token("localhost/devices/dev1", keys("dev1", "").Primary, "", now.Add(time.Hour)), 5, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s)
			code, err := c.connect(tc.clientID, tc.username, tc.password, tc.level)
			if err != nil {
				t.Fatalf("no CONNACK: %v", err)
			}
			if code != tc.want {
				t.Fatalf("CONNACK return code = %#x, want %#x", code, tc.want)
			}
			if tc.want != 0 {
				c.expectClosed()
			}
		})
	}
}

func TestConnect_X509Thumbprint(t *testing.T) {
	s := fakehubtest.New(t)
	cert := selfSignedCert(t, "x509dev")
	sum := sha1.Sum(cert.Certificate[0])
	if _, err := s.PutDevice(fakehub.Device{DeviceID: "x509dev", Authentication: fakehub.Authentication{
		Type: "selfSigned", X509Thumbprint: &fakehub.X509Thumbprint{PrimaryThumbprint: hex.EncodeToString(sum[:])}}}, ""); err != nil {
		t.Fatal(err)
	}
	cs, err := s.DeviceConnectionString("x509dev")
	if err != nil || cs != "HostName=localhost;DeviceId=x509dev;x509=true" {
		t.Fatalf("connection string = %q, %v", cs, err)
	}
	for _, tc := range []struct {
		name string
		cert []tls.Certificate
		ok   bool
	}{
		{"matching certificate", []tls.Certificate{cert}, true},
		{"other certificate", []tls.Certificate{selfSignedCert(t, "x509dev")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := clientTLS(t, s)
			conf.Certificates = tc.cert
			opts := paho.NewClientOptions().AddBroker("ssl://" + s.MQTTAddress()).SetTLSConfig(conf).
				SetClientID("x509dev").SetUsername(iothub.FormatUsername("localhost", "x509dev", "", nil)).
				SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
			c := paho.NewClient(opts)
			tok := c.Connect()
			tok.WaitTimeout(10 * time.Second)
			defer c.Disconnect(0)
			if got := tok.Error() == nil; got != tc.ok {
				t.Fatalf("connected = %v (%v), want %v", got, tok.Error(), tc.ok)
			}
			if !tc.ok && tok.(*paho.ConnectToken).ReturnCode() != 5 {
				t.Fatalf("return code = %d, want 5", tok.(*paho.ConnectToken).ReturnCode())
			}
		})
	}
}

func selfSignedCert(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestConnect_NewerConnectionWins(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	lost := make(chan error, 1)
	first := dial(t, pahoOptions(t, s, cs).SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err }))
	waitFor(t, "first connection", func() bool { return len(s.Connections()) == 1 })
	firstID := s.Connections()[0].ID
	second := dial(t, pahoOptions(t, s, cs))
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the older connection was not dropped")
	}
	if first.IsConnectionOpen() || !second.IsConnectionOpen() {
		t.Fatalf("open: first %v, second %v", first.IsConnectionOpen(), second.IsConnectionOpen())
	}
	waitFor(t, "one connection, the newer", func() bool {
		conns := s.Connections()
		return len(conns) == 1 && conns[0].ID != firstID
	})
	// The newer connection works: the device is still Connected and its telemetry is captured.
	publish(t, second, "devices/dev1/messages/events/", 1, "after takeover")
	waitFor(t, "telemetry", func() bool { return len(s.Events(0, 0)) == 1 })
	if d, _ := s.GetDevice("dev1"); d.ConnectionState != "Connected" {
		t.Fatalf("connection state = %s", d.ConnectionState)
	}
}

func TestConnections_ListsIdentityAndTransport(t *testing.T) {
	s := fakehubtest.New(t)
	_, devCS := fakehubtest.MustDevice(t, s, "dev1")
	fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	_, modCS := fakehubtest.MustModule(t, s, "edge1", "filter")
	before := time.Now().Add(-time.Second)
	tlsClient := dial(t, pahoOptions(t, s, devCS))
	raw := connectRaw(t, s, modCS)
	_ = raw
	waitFor(t, "two connections", func() bool { return len(s.Connections()) == 2 })
	byID := map[string]fakehub.Connection{}
	for _, c := range s.Connections() {
		byID[c.ClientID] = c
	}
	dev, mod := byID["dev1"], byID["edge1/filter"]
	if !dev.TLS || mod.TLS {
		t.Errorf("TLS flags: dev1 %v, edge1/filter %v", dev.TLS, mod.TLS)
	}
	if len(dev.Identities) != 1 || dev.Identities[0] != "dev1" || len(mod.Identities) != 1 || mod.Identities[0] != "edge1/filter" {
		t.Errorf("identities: %v, %v", dev.Identities, mod.Identities)
	}
	if dev.ID == "" || dev.ID == mod.ID || dev.ConnectedAt.Before(before) {
		t.Errorf("connections = %+v", s.Connections())
	}
	if host, _, err := net.SplitHostPort(dev.RemoteAddr); err != nil || host != "127.0.0.1" {
		t.Errorf("remote address %q", dev.RemoteAddr)
	}
	tlsClient.Disconnect(100)
	waitFor(t, "one connection", func() bool { return len(s.Connections()) == 1 })
}
