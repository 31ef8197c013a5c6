package fakehub_test

// Security parity with the edge hub (docs/security.md): the fake IoT Hub refuses what IoT
// Hub refuses, so that tests run against it do not pass where the real service would
// refuse. Many controls are proven elsewhere and only referenced in the doc:
// TestConnect_Answers (CONNECT rules, token for another hub, another device's token),
// TestPublish_ViolationsCloseTheConnection (another device's topic, QoS 2, > 256 KB),
// TestSubscribe_Answers and TestSubscribe_NothingDeliveredOnRefusedFilter (filters),
// TestTelemetry_PropertyBagForms (client $.cdid/$.cmid dropped),
// TestRegistry_DisableAndDeleteDropConnections (revocation).

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// TestSecurity_ModuleCannotActForItsSiblingOrDevice: a module publishing on a sibling
// module's or its device's telemetry topic is disconnected and nothing is captured; its
// subscription to the sibling's inputs gets 0x80. Its own telemetry is captured with its
// own identity, whatever connection ids it claims.
func TestSecurity_ModuleCannotActForItsSiblingOrDevice(t *testing.T) {
	s := fakehubtest.New(t)
	fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	_, cs1 := fakehubtest.MustModule(t, s, "edge1", "m1")
	fakehubtest.MustModule(t, s, "edge1", "m2")
	for i, topic := range []string{
		"devices/edge1/modules/m2/messages/events/",
		"devices/edge1/messages/events/",
		"devices/edge1/modules/m1X/messages/events/",
		"devices/edge1/modules/m2/inputs/in1/",
	} {
		t.Run(topic, func(t *testing.T) {
			c := connectRaw(t, s, cs1)
			c.publish(topic, []byte("forged"), 1, uint16(i+1))
			c.expectClosed()
		})
	}
	c := connectRaw(t, s, cs1)
	if got := c.subscribe(1, 1, "devices/edge1/modules/m2/inputs/#", "devices/edge1/modules/m1/inputs/#"); !bytes.Equal(got, []byte{0x80, 1}) {
		t.Fatalf("SUBACK codes % x, want 80 01 (the sibling's inputs refused, its own granted)", got)
	}
	c.publish("devices/edge1/modules/m1/messages/events/%24.cdid=other&%24.cmid=m2", []byte("mine"), 1, 9)
	if typ, body, err := c.read(); err != nil || typ != 0x40 || binary.BigEndian.Uint16(body) != 9 {
		t.Fatalf("want PUBACK 9, got %#x % x %v", typ, body, err)
	}
	evs := s.Events(0, 0)
	if len(evs) != 1 {
		t.Fatalf("captured %d events, want only the module's own", len(evs))
	}
	ev := evs[0]
	if ev.DeviceID != "edge1" || ev.ModuleID != "m1" || ev.SystemProperties["iothub-connection-module-id"] != "m1" ||
		ev.SystemProperties["iothub-connection-device-id"] != "edge1" {
		t.Fatalf("event %+v, want it stamped edge1/m1", ev)
	}
}

// TestSecurity_TamperedTokensAreRefused complements TestConnect_Answers with tokens made
// from ones an attacker holds: each gets CONNACK 0x05 and the connection closes.
func TestSecurity_TamperedTokensAreRefused(t *testing.T) {
	s := fakehubtest.New(t)
	fakehubtest.MustDevice(t, s, "dev1")
	fakehubtest.MustDevice(t, s, "dev2")
	fakehubtest.MustModule(t, s, "dev1", "mod1")
	fakehubtest.MustModule(t, s, "dev1", "mod2")
	key := func(d, m string) string {
		k, err := s.IdentityKeys(sas.Identity{DeviceID: d, ModuleID: m})
		if err != nil {
			t.Fatal(err)
		}
		return k.Primary
	}
	now := time.Now()
	valid, past := now.Add(time.Hour), now.Add(-time.Hour)
	sign := func(resource, key, skn string, expiry time.Time) string {
		tok, err := sas.Sign(resource, key, skn, expiry)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	replace := func(tok, old, repl string) string {
		if !strings.Contains(tok, old) {
			t.Fatalf("%q not in %q", old, tok)
		}
		return strings.ReplaceAll(tok, old, repl)
	}
	devicePolicy, err := s.PolicyKeys("device")
	if err != nil {
		t.Fatal(err)
	}
	mod1 := sign("localhost/devices/dev1/modules/mod1", key("dev1", "mod1"), "", valid)
	mod2 := sign("localhost/devices/dev1/modules/mod2", key("dev1", "mod2"), "", valid)
	cases := []struct {
		name, clientID, password string
	}{
		{"module token for another hub", "dev1/mod1", sign("other.azure-devices.net/devices/dev1/modules/mod1", key("dev1", "mod1"), "", valid)},
		{"sibling module's token", "dev1/mod1", mod2},
		{"audience changed after signing", "dev1/mod1", replace(mod2, "mod2", "mod1")},
		{"expiry extended after signing", "dev1/mod1", replace(sign("localhost/devices/dev1/modules/mod1", key("dev1", "mod1"), "", past),
			fmt.Sprint("se=", past.Unix()), fmt.Sprint("se=", valid.Unix()))},
		{"signature of a sibling's token", "dev1/mod1", spliceSig(t, mod1, mod2)},
		{"module audience signed with the device key", "dev1/mod1", sign("localhost/devices/dev1/modules/mod1", key("dev1", ""), "", valid)},
		{"device token of another device for a module", "dev1/mod1", sign("localhost/devices/dev2", key("dev2", ""), "", valid)},
		{"DeviceConnect policy token for another hub", "dev1", sign("other.azure-devices.net/devices/dev1", devicePolicy.Primary, "device", valid)},
		{"DeviceConnect policy token for another device", "dev1", sign("localhost/devices/dev2", devicePolicy.Primary, "device", valid)},
		{"the key itself as password", "dev1", key("dev1", "")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, m, _ := strings.Cut(tc.clientID, "/")
			c := dialRaw(t, s)
			code, err := c.connect(tc.clientID, iothub.FormatUsername("localhost", d, m, nil), tc.password, 4)
			if err != nil || code != 5 {
				t.Fatalf("CONNACK %#x (%v), want 0x05", code, err)
			}
			c.expectClosed()
		})
	}
	// The control: mod1's own token.
	c := dialRaw(t, s)
	if code, err := c.connect("dev1/mod1", iothub.FormatUsername("localhost", "dev1", "mod1", nil), mod1, 4); err != nil || code != 0 {
		t.Fatalf("mod1's own token: CONNACK %#x (%v)", code, err)
	}
}

// spliceSig returns tok with the sig field of donor.
func spliceSig(t *testing.T, tok, donor string) string {
	t.Helper()
	a, err1 := sas.Parse(tok)
	b, err2 := sas.Parse(donor)
	if err1 != nil || err2 != nil {
		t.Fatalf("parse: %v %v", err1, err2)
	}
	a.Signature = b.Signature
	return a.String()
}

// TestSecurity_HugeAndMalformedPacketsCloseOnlyTheirConnection: from an authenticated raw
// connection, a packet announcing more than the maximum packet size (refused from its
// header), a remaining length that never ends and a topic length beyond the packet each
// close that connection; a topic of the MQTT maximum (64 KB) on the device's own telemetry
// topic is a legal message and is captured. A bystander is served throughout.
func TestSecurity_HugeAndMalformedPacketsCloseOnlyTheirConnection(t *testing.T) {
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "dev1")
	_, otherCS := fakehubtest.MustDevice(t, s, "bystander")
	bystander := dial(t, pahoOptions(t, s, otherCS))
	cases := []struct {
		name   string
		header byte
		bytes  []byte // after the first byte
	}{
		{"a PUBLISH announcing 256 MB, body never sent", 0x32, remainingLength(256<<20 - 1)},
		{"a PUBLISH announcing 1 MB, body never sent", 0x32, remainingLength(1 << 20)},
		{"a remaining length of five bytes", 0x32, []byte{0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"a topic length beyond the packet", 0x32, append(remainingLength(5), 0xff, 0xff, 'd', 0, 1)},
		{"a SUBSCRIBE announcing 1 MB", 0x82, remainingLength(1 << 20)},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := connectRaw(t, s, cs)
			if _, err := c.conn.Write(append([]byte{tc.header}, tc.bytes...)); err != nil {
				t.Fatal(err)
			}
			c.expectClosed()
			publish(t, bystander, "devices/bystander/messages/events/", 1, fmt.Sprint(i))
		})
	}
	t.Run("a 64 KB topic on its own telemetry", func(t *testing.T) {
		prefix := "devices/dev1/messages/events/k="
		topic := prefix + strings.Repeat("v", iothub.MaxTopicLength-len(prefix))
		c := connectRaw(t, s, cs)
		c.publish(topic, []byte("big bag"), 1, 77)
		if typ, body, err := c.read(); err != nil || typ != 0x40 || binary.BigEndian.Uint16(body) != 77 {
			t.Fatalf("want PUBACK 77, got %#x % x %v", typ, body, err)
		}
	})
	evs := s.Events(0, 0)
	if len(evs) != len(cases)+1 {
		t.Fatalf("captured %d events, want the bystander's %d and the 64 KB one", len(evs), len(cases))
	}
	for _, ev := range evs[:len(cases)] {
		if ev.DeviceID != "bystander" {
			t.Fatalf("captured %+v from a refused connection", ev)
		}
	}
	if last := evs[len(evs)-1]; last.DeviceID != "dev1" || len(last.Properties["k"]) != iothub.MaxTopicLength-len("devices/dev1/messages/events/k=") {
		t.Fatalf("the 64 KB event: device %q, property of %d bytes", last.DeviceID, len(last.Properties["k"]))
	}
}

// TestSecurity_SecretsNeverAppearInLogs runs the fake hub with every log line captured
// (debug, text and JSON, mochi's included) through accepted and refused CONNECTs and a
// QoS 2 publish (which mochi logs whole), and checks that no key, token or signature
// appears in any rendering. (A second CONNECT on a live connection is left out: mochi logs
// that packet, password included, at WARN; docs/security.md, finding F2.)
func TestSecurity_SecretsNeverAppearInLogs(t *testing.T) {
	var logs lockedBuffer
	logger := slog.New(slog.NewMultiHandler(
		slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
		slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
	))
	s := fakehubtest.New(t, fakehubtest.WithLogger(logger))
	fakehubtest.MustDevice(t, s, "dev1")
	keys, err := s.IdentityKeys(sas.Identity{DeviceID: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{keys.Primary, keys.Secondary}
	sign := func(resource, key string, expiry time.Time) string {
		tok, err := sas.Sign(resource, key, "", expiry)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, tok)
		return tok
	}
	now := time.Now()
	user := iothub.FormatUsername("localhost", "dev1", "", nil)
	for _, pwd := range []string{
		sign("other.azure-devices.net/devices/dev1", keys.Primary, now.Add(time.Hour)),
		sign("localhost/devices/dev1", keys.Primary, now.Add(-time.Hour)),
		sign("other.azure-devices.net/devices/dev1", keys.Secondary, now.Add(time.Hour)),
		keys.Primary,
	} {
		c := dialRaw(t, s)
		if code, err := c.connect("dev1", user, pwd, 4); err != nil || code != 5 {
			t.Fatalf("CONNACK %#x (%v), want 0x05", code, err)
		}
	}
	c := dialRaw(t, s)
	if code, err := c.connect("dev1", user, sign("localhost/devices/dev1", keys.Primary, now.Add(time.Hour)), 4); err != nil || code != 0 {
		t.Fatalf("CONNACK %#x (%v), want 0", code, err)
	}
	c.publish("devices/dev1/messages/events/", []byte("qos 2"), 2, 1)
	c.expectClosed()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	out := logs.String()
	for _, want := range []string{"MQTT CONNECT refused", "packet rejected"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the capture has no %q line; logs:\n%s", want, out)
		}
	}
	for _, sec := range secrets {
		forms := []string{sec, url.QueryEscape(sec), base64.StdEncoding.EncodeToString([]byte(sec)),
			strings.Trim(fmt.Sprint([]byte(sec)), "[]")}
		if tok, err := sas.Parse(sec); err == nil {
			forms = append(forms, tok.Signature, url.QueryEscape(tok.Signature))
		}
		for _, form := range forms {
			if i := strings.Index(out, form); i >= 0 {
				t.Errorf("a secret appears in the logs (as %q...): ...%s...", form[:min(len(form), 24)],
					out[max(0, i-300):min(len(out), i+len(form)+40)])
			}
		}
	}
}

// lockedBuffer collects log output from every goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSecurity_DataFilesAreOwnerOnly: the registry (identity and policy keys in clear), the
// service connection string and the private keys are created 0600 in a 0700 directory.
// (TestCertificates checks the key files of a fresh data directory too.)
func TestSecurity_DataFilesAreOwnerOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := fakehubtest.New(t, fakehubtest.WithDataDir(dir))
	fakehubtest.MustDevice(t, s, "dev1")
	want := map[string]os.FileMode{
		"":                          os.ModeDir | 0o700,
		"registry.db":               0o600,
		"service-connection-string": 0o600,
		"ca-key.pem":                0o600,
		"server-key.pem":            0o600,
	}
	for name, mode := range want {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%q: mode %v, want %v", name, fi.Mode(), mode)
		}
	}
}
