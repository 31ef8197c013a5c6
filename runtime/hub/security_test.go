package hub_test

// Security evidence for the edge hub (docs/security.md): every test here plays an
// attacker against a real hub over real loopback sockets, with paho for well-formed
// traffic and a raw MQTT writer (secRaw) for what no client library sends. Each test
// checks that the attack is refused AND that the hub keeps serving legitimate clients.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/runtime/certs"
	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// --- Publishing and subscribing as someone else -------------------------------------------

// TestSecurity_PublishAsAnotherIdentityIsNeitherStoredNorRouted: every PUBLISH on a topic
// that is not the sender's own closes the connection without a PUBACK, and nothing of it
// is stored or routed, although a catch-all route would send it both to a module input and
// upstream. The proof of "nothing routed" is the order of the queues: the only message the
// receiving module and the upstream ever get is the sentinel sent after all the attacks.
func TestSecurity_PublishAsAnotherIdentityIsNeitherStoredNorRouted(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{
		"all": `FROM /messages/* INTO BrokeredEndpoint("/modules/modB/inputs/all")`,
		"up":  `FROM /messages/* INTO $upstream`,
	}))
	b := e.connect(modB)
	b.subscribeInputs(t)
	tests := []struct {
		name  string
		as    sas.Identity
		topic string
	}{
		{"module as a sibling module", modA, "devices/edge1/modules/modB/messages/events/"},
		{"module as a leaf device", modA, "devices/leaf1/messages/events/"},
		{"module as its own edge device", modA, "devices/edge1/messages/events/%24.cdid=edge1"},
		{"module id prefix", modA, "devices/edge1/modules/modAX/messages/events/"},
		{"module id in other case", modA, "devices/edge1/modules/MODA/messages/events/"},
		{"module into another module's input", modA, "devices/edge1/modules/modB/inputs/all/%24.cmid=modA"},
		{"device as another device", leaf, "devices/leaf2/messages/events/"},
		{"device as a module", leaf, "devices/edge1/modules/modA/messages/events/%24.on=out1"},
		{"device as a module of itself", leaf, "devices/leaf1/modules/modA/messages/events/"},
		{"device id in other case", leaf, "devices/LEAF1/messages/events/"},
		{"path traversal", leaf, "devices/leaf1/../leaf2/messages/events/"},
		{"device into a module input", leaf, "devices/edge1/modules/modB/inputs/all/"},
		{"device into another device's C2D", leaf, "devices/leaf2/messages/devicebound/%24.to=%2Fdevices%2Fleaf2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.connect(tt.as)
			tok := c.Publish(tt.topic, 1, false, "forged: "+tt.name)
			c.waitLost(t)
			if tok.WaitTimeout(50*time.Millisecond) && tok.Error() == nil {
				t.Fatal("the forged publish was acknowledged")
			}
		})
	}
	if st := e.hub.Stats(); st.Stored != 0 || st.RefusedACL != int64(len(tests)) {
		t.Fatalf("Stats: stored %d, refused by the ACL %d; want 0 and %d", st.Stored, st.RefusedACL, len(tests))
	}
	// The sentinel is the first and only message anyone receives.
	e.connect(leaf).send(t, "", nil, "sentinel")
	if got := string(b.next(t).Payload()); got != "sentinel" {
		t.Fatalf("module B received %q first, want the sentinel", got)
	}
	waitFor(t, "the sentinel upstream", func() bool { return len(e.up.succeeded()) == 1 })
	if got := e.up.succeeded(); got[0] != "sentinel" || e.up.callCount() != 1 {
		t.Fatalf("upstream received %q (%d calls), want only the sentinel", got, e.up.callCount())
	}
}

// TestSecurity_SubscribingToAnotherIdentityDeliversNothing: a module asking for another
// module's inputs, a leaf device's C2D or wildcards over the whole tree gets SUBACK 0x80
// for each (and keeps its connection), and receives only what is routed to its own inputs,
// while the other module's messages go to that module alone.
func TestSecurity_SubscribingToAnotherIdentityDeliversNothing(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{
		"toA": `FROM /messages/* WHERE target = 'A' INTO BrokeredEndpoint("/modules/modA/inputs/mine")`,
		"toB": `FROM /messages/* WHERE target = 'B' INTO BrokeredEndpoint("/modules/modB/inputs/secret")`,
	}))
	a := e.connect(modA)
	b := e.connect(modB)
	b.subscribeInputs(t)
	for _, f := range []string{
		"devices/edge1/modules/modB/inputs/#",
		"devices/edge1/modules/modB/#",
		"devices/edge1/modules/+/inputs/#",
		"devices/+/modules/modB/inputs/#",
		"devices/+/modules/+/#",
		"devices/edge1/modules/modB/inputs/secret",
		"devices/leaf1/messages/devicebound/#",
		"devices/+/messages/devicebound/#", // a module may not use the any-device C2D filter
		"devices/#",
		"#",
		"+/+/+/+/+/#",
		"$iothub/#",
	} {
		if got := a.subscribe(t, f); got != 0x80 {
			t.Errorf("filter %q: SUBACK %#x, want 0x80", f, got)
		}
	}
	if !a.IsConnectionOpen() {
		t.Fatal("a refused subscription closed the connection")
	}
	a.subscribeInputs(t)

	l := e.connect(leaf)
	for i := range 3 {
		l.send(t, "", map[string]string{"target": "B"}, fmt.Sprint("secret ", i))
	}
	l.send(t, "", map[string]string{"target": "A"}, "for A")
	for i := range 3 {
		if got := string(b.next(t).Payload()); got != fmt.Sprint("secret ", i) {
			t.Fatalf("module B received %q, want %q", got, fmt.Sprint("secret ", i))
		}
	}
	// A's own message is the only one A receives; the secrets would have to arrive before
	// it to be seen, since they were routed and delivered first.
	waitFor(t, "four deliveries", func() bool { return e.hub.Stats().Delivered == 4 })
	m := a.next(t)
	if top := parseInput(t, m); top.ModuleID != "modA" || string(m.Payload()) != "for A" {
		t.Fatalf("module A received %s %q, want only its own message", m.Topic(), m.Payload())
	}
	select {
	case m := <-a.msgs:
		t.Fatalf("module A received %s %q as well", m.Topic(), m.Payload())
	default:
	}
}

// TestSecurity_ForgedConnectionIDsAreOverwritten: whatever a client writes as $.cdid and
// $.cmid, in whatever spelling, the receiving module, the routes and the upstream see the
// authenticated sender. Routes keyed on the sender ($connectionModuleId, the module
// source) are not fooled either: "trusted" and "fromA" must stay empty.
func TestSecurity_ForgedConnectionIDsAreOverwritten(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{
		"all":     `FROM /messages/* INTO BrokeredEndpoint("/modules/modB/inputs/all")`,
		"trusted": `FROM /messages/* WHERE $connectionModuleId = 'modB' INTO BrokeredEndpoint("/modules/modB/inputs/trusted")`,
		"fromA":   `FROM /messages/modules/modA/outputs/out1 INTO BrokeredEndpoint("/modules/modB/inputs/fromA")`,
		"up":      `FROM /messages/* INTO $upstream`,
	}))
	b := e.connect(modB)
	b.subscribeInputs(t)
	tests := []struct {
		name string
		as   sas.Identity
		bag  string
	}{
		{"module: encoded keys", modA, "%24.cdid=evil&%24.cmid=modB"},
		{"module: raw keys", modA, "$.cdid=evil&$.cmid=modB"},
		{"module: repeated keys", modA, "%24.cmid=modB&%24.cmid=modB&%24.cdid=x&%24.cdid=y"},
		{"module: encoded dot", modA, "%24%2Ecmid=modB&%24%2Ecdid=evil"},
		{"module: double-encoded key", modA, "%2524.cmid=modB"},
		{"module: a bag that is a query string", modA, "?%24.cmid=modB/"},
		{"device: claims a module", leaf, "%24.cmid=modA&%24.cdid=edge1"},
		{"device: claims a module's output", leaf, "%24.cmid=modA&%24.cdid=edge1&%24.on=out1"},
		{"device: claims another device", leaf, "%24.cdid=leaf2"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.connect(tt.as)
			topic := iothub.TelemetryTopic(tt.as.DeviceID, tt.as.ModuleID, nil) + tt.bag
			body := fmt.Sprint("forgery ", i)
			if tok := c.Publish(topic, 1, false, body); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatalf("publish %q: no PUBACK (%v)", topic, tok.Error())
			}
			m := b.next(t)
			top := parseInput(t, m)
			if top.Input != "all" || string(m.Payload()) != body {
				t.Fatalf("received %s %q, want %q on input all", m.Topic(), m.Payload(), body)
			}
			assertSender(t, m.Topic(), top.Bag, tt.as)
			waitFor(t, "the upstream copy", func() bool { return len(e.up.succeeded()) == i+1 })
			e.up.mu.Lock()
			up := e.up.calls[i]
			e.up.mu.Unlock()
			if up.id != tt.as || up.msg.System[iothub.SysConnDeviceID] != tt.as.DeviceID ||
				up.msg.System[iothub.SysConnModuleID] != tt.as.ModuleID {
				t.Fatalf("upstream got identity %v and system properties %v, want %v", up.id, up.msg.System, tt.as)
			}
		})
	}
	for _, q := range e.store.Queues() {
		if strings.HasSuffix(q, "/trusted") || strings.HasSuffix(q, "/fromA") {
			t.Errorf("a forged message was routed to %s", q)
		}
	}
}

// assertSender checks the sender a module sees in a received input bag: exactly one
// $.cdid (the real device) and one $.cmid (the real module, none for a device), after
// decoding the keys as an SDK does.
func assertSender(t *testing.T, topic string, bag iothub.Bag, want sas.Identity) {
	t.Helper()
	var cdid, cmid []string
	for _, p := range bag {
		switch p.Key {
		case "$.cdid":
			cdid = append(cdid, p.Value)
		case "$.cmid":
			cmid = append(cmid, p.Value)
		}
	}
	wantCmid := []string{want.ModuleID}
	if want.ModuleID == "" {
		wantCmid = nil
	}
	if fmt.Sprint(cdid) != fmt.Sprint([]string{want.DeviceID}) || fmt.Sprint(cmid) != fmt.Sprint(wantCmid) {
		t.Fatalf("input topic %s carries $.cdid %q and $.cmid %q, want %q and %q", topic, cdid, cmid, want.DeviceID, wantCmid)
	}
}

// TestSecurity_AModuleCannotAnswerAnotherModulesMethodCall: method answers are matched to
// calls per connection identity, so a module that guesses (or sniffs) the request id of a
// call made to another module cannot answer it for that module.
func TestSecurity_AModuleCannotAnswerAnotherModulesMethodCall(t *testing.T) {
	fc := newFakeCloud()
	r := newRelayEnv(t, fc)
	a := r.connect(modA)
	rids := make(chan string, 1)
	if tok := a.Subscribe(iothub.MethodRequestFilter, 0, func(_ paho.Client, m paho.Message) {
		if top, err := iothub.ParseTopic(m.Topic()); err == nil {
			rids <- top.RequestID
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	b := r.connect(modB)
	methodsOf(t, b, func(string, []byte) (int, string) { return 0, "" })

	fc.onMethod(modA, "unlock", "cloud-1", []byte(`{}`))
	var rid string
	select {
	case rid = <-rids:
	case <-time.After(10 * time.Second):
		t.Fatal("module A did not receive the method request")
	}
	// B answers first, with the real request id and with guessed ones.
	for _, guess := range []string{rid, "1", "2", "3"} {
		b.request(t, iothub.MethodResponseTopic(200, guess), `{"from":"modB"}`)
	}
	a.request(t, iothub.MethodResponseTopic(201, rid), `{"from":"modA"}`)
	ans := fc.answer(t)
	if ans.id != modA || ans.rid != "cloud-1" || ans.status != 201 || ans.payload != `{"from":"modA"}` {
		t.Fatalf("IoT Hub got %+v, want module A's own answer", ans)
	}
}

// TestSecurity_CloudMessagePropertiesCannotInjectIntoTheTopic: a C2D message whose
// property names and values (set by whoever sends it through IoT Hub's service API) hold
// the bag's separators, MQTT wildcards and system-property names reaches the leaf with
// exactly those properties: the hub percent-encodes them, so none splits into a forged
// system property and the topic stays a valid MQTT topic name.
func TestSecurity_CloudMessagePropertiesCannotInjectIntoTheTopic(t *testing.T) {
	fc := newFakeCloud()
	r := newRelayEnv(t, fc)
	c := r.connect(leaf)
	c.subscribe(t, iothub.C2DFilter("leaf1"))
	props := map[string]string{
		"a&%24.cdid=evil&b":         "v&$.cmid=evil",
		"k/+#?=":                    "v/+#?= %2524",
		"$.cdid":                    "an application property named like a system one is still written",
		"\x00ctl":                   "\x01\n",
		strings.Repeat("long", 100): "x",
	}
	if err := fc.onC2D(leaf, iothub.Message{Body: []byte("hostile"), Properties: props,
		System: map[string]string{iothub.SysMessageID: "m&%24.to=/devices/leaf2/messages/devicebound"}}); err != nil {
		t.Fatal(err)
	}
	m := c.next(t)
	if strings.ContainsAny(m.Topic(), "+#\x00") {
		t.Fatalf("topic %q is not a valid MQTT topic name", m.Topic())
	}
	top, err := iothub.ParseTopic(m.Topic())
	if err != nil || top.Kind != iothub.KindC2D || top.DeviceID != "leaf1" {
		t.Fatalf("received %q: %v", m.Topic(), err)
	}
	got := map[string]string{}
	for _, p := range top.Bag {
		if _, dup := got[p.Key]; dup {
			t.Fatalf("property %q twice in %q", p.Key, m.Topic())
		}
		got[p.Key] = p.Value
	}
	for k, v := range props {
		if k == "$.cdid" {
			continue // written as given, read back as a system property: see Message.Bag
		}
		if got[k] != v {
			t.Errorf("property %q = %q, want %q (topic %q)", k, got[k], v, m.Topic())
		}
		delete(got, k)
	}
	if got["$.mid"] != "m&%24.to=/devices/leaf2/messages/devicebound" || got["$.to"] != "/devices/leaf1/messages/devicebound" {
		t.Errorf("$.mid %q and $.to %q", got["$.mid"], got["$.to"])
	}
	delete(got, "$.mid")
	delete(got, "$.to")
	delete(got, "$.cdid")
	if len(got) != 0 {
		t.Fatalf("injected properties %v in %q", got, m.Topic())
	}
}

// --- Credentials ----------------------------------------------------------------------------

// TestSecurity_TamperedAndMisusedTokensAreRefused complements TestConnect_Authentication
// (expired beyond the skew, wrong key, another host, another module's or device's token,
// username mismatch, module with its device's token) with tokens an attacker crafts from
// tokens or keys it holds. Every one gets CONNACK 0x05.
func TestSecurity_TamperedAndMisusedTokensAreRefused(t *testing.T) {
	e := newEnv(t)
	// A registered device whose id differs from leaf1 only in case, with a key of its own.
	if err := e.ids.Put(context.Background(), identities.Record{DeviceID: "Leaf1", Keys: sas.Keys{Primary: keyModB}}); err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	valid := now.Add(time.Hour)
	user := func(id sas.Identity) string { return iothub.FormatUsername(hubHost, id.DeviceID, id.ModuleID, nil) }
	modAToken := e.token(hubHost, modA, keyModA, valid)
	modBToken := e.token(hubHost, modB, keyModB, valid)
	sign := func(resource, key, skn string, expiry time.Time) string {
		tok, err := sas.Sign(resource, key, skn, expiry)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tests := []struct {
		name     string
		id       sas.Identity // client id; the username names the same identity
		password string
		want     byte
	}{
		{"expiry exactly at the skew limit (control)", leaf, e.token(hubHost, leaf, keyLeaf, now.Add(-sas.ClockSkew)), 0},
		{"expiry one second beyond the skew", leaf, e.token(hubHost, leaf, keyLeaf, now.Add(-sas.ClockSkew-time.Second)), 5},
		{"expiry at the epoch", leaf, sign(hubHost+"/devices/leaf1", keyLeaf, "", time.Unix(0, 0)), 5},
		{"expiry extended after signing", modA, tamper(t, e.token(hubHost, modA, keyModA, now.Add(-time.Hour)),
			fmt.Sprint("se=", now.Add(-time.Hour).Unix()), fmt.Sprint("se=", valid.Unix())), 5},
		{"audience changed after signing", modA, tamper(t, modBToken, "modB", "modA"), 5},
		{"signature of another module's token", modA, spliceSignature(t, modAToken, modBToken), 5},
		{"audience re-encoded after signing", modA, tamper(t, modAToken, "%2F", "%2f"), 5},
		{"module audience signed with the device key", modA, e.token(hubHost, modA, keyEdge, valid), 5},
		{"module token used by its device", sas.Identity{DeviceID: edgeID}, modAToken, 5},
		{"a case-variant identity's own valid token", leaf, e.token(hubHost, sas.Identity{DeviceID: "Leaf1"}, keyModB, valid), 5},
		{"the same token signed with the case-variant's key", leaf, e.token(hubHost, leaf, keyModB, valid), 5},
		{"hub-level policy token", leaf, sign(hubHost, keyEdge, "iothubowner", valid), 5},
		{"policy name on a device token", leaf, sign(hubHost+"/devices/leaf1", keyBad, "iothubowner", valid), 5},
		{"device id smuggling a module, double-encoded", modA, sign(hubHost+"/devices/edge1%2FmodA", keyEdge, "", valid), 5},
		{"token for a host that ends like the hub's", leaf, e.token("evil-"+hubHost, leaf, keyLeaf, valid), 5},
		{"token for a host that starts like the gateway's", leaf, e.token(edgeHost+".evil.example", leaf, keyLeaf, valid), 5},
		{"empty signature", leaf, "SharedAccessSignature sr=" + url.QueryEscape(hubHost+"/devices/leaf1") + "&sig=&se=" + fmt.Sprint(valid.Unix()), 5},
		{"signature that is not base64", leaf, "SharedAccessSignature sr=" + url.QueryEscape(hubHost+"/devices/leaf1") + "&sig=%21%21&se=" + fmt.Sprint(valid.Unix()), 5},
		{"the key itself as password", leaf, keyLeaf, 5},
		{"unknown identity with a key of a known one", sas.Identity{DeviceID: "ghost"}, e.token(hubHost, sas.Identity{DeviceID: "ghost"}, keyLeaf, valid), 5},
	}
	refused := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, code, err := e.dial(tt.id, user(tt.id), tt.password)
			if code != tt.want {
				t.Fatalf("CONNACK %d (%v), want %d", code, err, tt.want)
			}
			if tt.want == 0 {
				if err != nil {
					t.Fatal(err)
				}
				c.Disconnect(0)
				return
			}
			refused++
		})
	}
	if got := e.hub.Stats().AuthRefused; got != int64(refused) {
		t.Errorf("Stats.AuthRefused = %d, want %d", got, refused)
	}
	// The hub still serves the identities whose tokens were abused.
	e.connect(modA).send(t, "", nil, "still served")
}

// tamper returns tok with every old replaced by repl, failing the test when there is none.
func tamper(t *testing.T, tok, old, repl string) string {
	t.Helper()
	if !strings.Contains(tok, old) {
		t.Fatalf("%q not in token %q", old, tok)
	}
	return strings.ReplaceAll(tok, old, repl)
}

// spliceSignature returns tok with the sig field of donor.
func spliceSignature(t *testing.T, tok, donor string) string {
	t.Helper()
	sig := func(s string) string {
		for _, f := range strings.Split(strings.TrimPrefix(s, "SharedAccessSignature "), "&") {
			if v, ok := strings.CutPrefix(f, "sig="); ok {
				return v
			}
		}
		t.Fatalf("no sig in %q", s)
		return ""
	}
	return strings.Replace(tok, sig(tok), sig(donor), 1)
}

// TestSecurity_MethodAPIRefusesForeignCredentials complements TestMethodAPI_ModuleToModule
// (wrong key, header naming another module, expired, no token, leaf or foreign caller):
// other credentials a caller might hold are refused with 401, the target is never called,
// and no refusal echoes the token.
func TestSecurity_MethodAPIRefusesForeignCredentials(t *testing.T) {
	r, hc, base := methodAPI(t, nil)
	a := r.connect(modA)
	var calls atomic.Int32
	methodsOf(t, a, func(string, []byte) (int, string) { calls.Add(1); return 200, `{}` })
	valid := r.clock.Now().Add(time.Hour)
	tokB := r.token(hubHost, modB, keyModB, valid)
	policy, err := sas.Sign(hubHost, keyEdge, "iothubowner", valid)
	if err != nil {
		t.Fatal(err)
	}
	call := `{"methodName":"unlock","payload":{},"responseTimeoutInSeconds":5}`
	tests := []struct {
		name, header, auth string
	}{
		{"module B's token for another hub", "edge1/modB", r.token("other.azure-devices.net", modB, keyModB, valid)},
		{"a leaf device's token with a module header", "edge1/modB", r.token(hubHost, leaf, keyLeaf, valid)},
		{"module A's own token presented as module B", "edge1/modB", r.token(hubHost, modA, keyModA, valid)},
		{"a hub-level policy token", "edge1/modB", policy},
		{"module B's token, expiry extended", "edge1/modB", tamper(t, r.token(hubHost, modB, keyModB, r.clock.Now().Add(-time.Hour)),
			fmt.Sprint("se=", r.clock.Now().Add(-time.Hour).Unix()), fmt.Sprint("se=", valid.Unix()))},
		{"module B's token with A's signature", "edge1/modB", spliceSignature(t, tokB, r.token(hubHost, modA, keyModA, valid))},
		{"a key instead of a token", "edge1/modB", keyModB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := callMethod(t, hc, base, modA, tt.header, tt.auth, call)
			if status != 401 {
				t.Fatalf("status %d %s, want 401", status, body)
			}
			for _, s := range secretForms(tt.auth) {
				if strings.Contains(body, s) {
					t.Fatalf("the refusal %s echoes the credential", body)
				}
			}
		})
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("the target was called %d times", n)
	}
	// The control: B's own token goes through.
	if status, body := callMethod(t, hc, base, modA, "edge1/modB", tokB, call); status != 200 || calls.Load() != 1 {
		t.Fatalf("a legitimate call: status %d %s, %d calls", status, body, calls.Load())
	}
}

// --- Sizes and malformed packets ----------------------------------------------------------

// TestSecurity_OversizedAndMalformedPacketsCloseOnlyTheirConnection sends, from an
// authenticated raw connection, what no client library would: a packet announcing more
// than the maximum packet size (refused from its fixed header, before its body is read), a
// remaining length that never ends, a topic length beyond the packet, a topic that is not
// UTF-8, reserved packet types. Each closes the connection without a PUBACK, nothing is
// stored, and a bystander's traffic flows throughout. TestIngest_OversizedMessages covers
// the message size limits with paho.
func TestSecurity_OversizedAndMalformedPacketsCloseOnlyTheirConnection(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{"all": `FROM /messages/* INTO BrokeredEndpoint("/modules/modB/inputs/all")`}))
	b := e.connect(modB)
	b.subscribeInputs(t)
	bystander := e.connect(leaf)
	own := "devices/edge1/modules/modA/messages/events/"
	tests := []struct {
		name  string
		bytes []byte
	}{
		{"a PUBLISH announcing 256 MB, body never sent", append([]byte{0x32}, secRemainingLength(256<<20-1)...)},
		{"a PUBLISH just over the maximum packet size, body never sent",
			append([]byte{0x32}, secRemainingLength(hub.DefaultMaxLocalMessageSize+iothub.MaxTopicLength+9)...)},
		{"a remaining length of five bytes", []byte{0x32, 0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"a topic length beyond the packet", secPacket(0x32, append(binary.BigEndian.AppendUint16(nil, 0xffff), 'd', 0, 1))},
		{"a topic that is not UTF-8", secPacket(0x32, append(secString(own+"k=\xff\xfe"), 0, 1, 'x'))},
		{"a topic with a NUL", secPacket(0x32, append(secString(own+"k=\x00"), 0, 1, 'x'))},
		{"a PUBLISH with a wildcard topic", secPacket(0x32, append(secString(own+"#"), 0, 1, 'x'))},
		{"packet type 0 (reserved)", []byte{0x00, 0x00}},
		{"packet type 15 (AUTH, MQTT 5 only)", []byte{0xf0, 0x00}},
		{"a second CONNECT", secConnectPacket(iothub.ClientID(edgeID, "modA"), iothub.FormatUsername(hubHost, edgeID, "modA", nil), "x", 30)},
		{"a CONNACK from the client", []byte{0x20, 0x02, 0x00, 0x00}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := secConnectRaw(t, e, modA)
			c.write(tt.bytes)
			c.expectClosed()
			bystander.send(t, "", nil, tt.name)
			if got := string(b.next(t).Payload()); got != tt.name {
				t.Fatalf("module B received %q, want the bystander's %q", got, tt.name)
			}
		})
	}
	if st := e.hub.Stats(); st.Stored != int64(len(tests)) {
		t.Fatalf("Stats.Stored = %d, want only the bystander's %d messages", st.Stored, len(tests))
	}
}

// TestSecurity_HugeTopicsAndPropertyBags: a topic of the MQTT maximum (64 KB) whose bag
// grows when the hub re-encodes it for the receiver, and bags of thousands of properties,
// are handled without blocking anyone: the receiver's queue moves on (a message whose input
// topic would exceed 64 KB is dead-lettered, not retried for ever) and other clients are
// served throughout.
func TestSecurity_HugeTopicsAndPropertyBags(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{"aToB": `FROM /messages/modules/modA/* INTO BrokeredEndpoint("/modules/modB/inputs/in1")`}))
	b := e.connect(modB)
	b.subscribeInputs(t)
	own := "devices/edge1/modules/modA/messages/events/"
	many := strings.Repeat("k=v&", (iothub.MaxTopicLength-len(own))/4)
	tests := []struct {
		name      string
		topic     string
		delivered bool // else dead-lettered: its input topic would not fit in MQTT
	}{
		{"64 KB topic that triples when encoded", own + "k=" + strings.Repeat("!", iothub.MaxTopicLength-len(own)-2), false},
		{"64 KB topic of one unreserved value", own + "k=" + strings.Repeat("v", iothub.MaxTopicLength-len(own)-2), false},
		{"16,000 properties", own + many, true},
		{"16,000 distinct properties", own + distinctProps(iothub.MaxTopicLength-len(own)), false},
		{"16,000 empty items", own + "k=v" + strings.Repeat("&", iothub.MaxTopicLength-len(own)-3), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.topic) > iothub.MaxTopicLength {
				t.Fatalf("test topic of %d bytes", len(tt.topic))
			}
			before := e.hub.Stats().DeadLettered
			c := secConnectRaw(t, e, modA)
			c.publish(tt.topic, []byte("huge"), 1, 7)
			c.expectPuback(7)
			c.publish(own+"n=after", []byte("after"), 1, 8)
			c.expectPuback(8)
			if tt.delivered {
				if m := b.next(t); string(m.Payload()) != "huge" {
					t.Fatalf("received %q, want the huge message", m.Payload())
				}
			} else {
				waitFor(t, "the dead letter", func() bool { return e.hub.Stats().DeadLettered == before+1 })
			}
			if m := b.next(t); string(m.Payload()) != "after" {
				t.Fatalf("received %q, want the message after the huge one", m.Payload())
			}
		})
	}
}

// distinctProps returns "k0=&k1=&..." of at most n bytes.
func distinctProps(n int) string {
	var sb strings.Builder
	for i := 0; ; i++ {
		item := fmt.Sprintf("k%d=&", i)
		if sb.Len()+len(item) > n {
			return strings.TrimSuffix(sb.String(), "&")
		}
		sb.WriteString(item)
	}
}

// --- Floods and slow clients --------------------------------------------------------------

// TestSecurity_ConnectFloodLeavesTheHubServing opens 500 connections from loopback (50 at a
// time): silent sockets, CONNECTs with forged tokens, garbage, CONNECTs cut short. A
// legitimate module keeps sending to another throughout, every forged CONNECT gets 0x05,
// and once the attacker closes its sockets the hub's goroutines return to their baseline.
func TestSecurity_ConnectFloodLeavesTheHubServing(t *testing.T) {
	e := newEnv(t, withRoutes(map[string]string{"aToB": `FROM /messages/modules/modA/* INTO BrokeredEndpoint("/modules/modB/inputs/in1")`}),
		withOptions(func(o *hub.Options) { o.ConnectTimeout = time.Minute })) // the attacker, not the deadline, closes them
	a := e.connect(modA)
	b := e.connect(modB)
	b.subscribeInputs(t)
	roundTrip := func(body string) {
		a.send(t, "", nil, body)
		if got := string(b.next(t).Payload()); got != body {
			t.Fatalf("module B received %q, want %q", got, body)
		}
	}
	roundTrip("before")
	baseline := runtime.NumGoroutine()

	const n, parallel = 500, 50
	forged := e.token(hubHost, leaf, keyBad, e.clock.Now().Add(time.Hour))
	connect := secConnectPacket("leaf1", iothub.FormatUsername(hubHost, "leaf1", "", nil), forged, 30)
	attacks := []struct {
		send      []byte
		wantClose bool // the hub answers and closes at once
	}{
		{nil, false},    // silent
		{connect, true}, // forged token: CONNACK 0x05
		{[]byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}, true}, // malformed remaining length
		{connect[:len(connect)/2], false},                  // a CONNECT cut short
	}
	conns := make([]net.Conn, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- secAttack(e.hub.PlainAddr(), attacks[i%len(attacks)].send, attacks[i%len(attacks)].wantClose, &conns[i])
		}()
		if i%100 == 99 {
			roundTrip(fmt.Sprint("during ", i)) // the hub serves while the flood is under way
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	roundTrip("while held")
	if st := e.hub.Stats(); st.AuthRefused != n/int64(len(attacks)) || st.Clients != 2 {
		t.Errorf("Stats: %d refused, %d clients; want %d and 2", st.AuthRefused, st.Clients, n/len(attacks))
	}
	held := runtime.NumGoroutine()
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	waitFor(t, "the goroutines to return near their baseline", func() bool { return runtime.NumGoroutine() <= baseline+10 })
	t.Logf("goroutines: %d before the flood, %d while held, %d after", baseline, held, runtime.NumGoroutine())
	roundTrip("after")
}

// secAttack opens one attacking connection, sends b, and when wantClose reads until the
// hub closes it; the connection is left in *keep for the caller to close.
func secAttack(addr string, b []byte, wantClose bool, keep *net.Conn) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	*keep = c
	if len(b) > 0 {
		if _, err := c.Write(b); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	if !wantClose {
		return nil
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("attack % x: connection not closed by the hub (read % x)", b[:min(len(b), 8)], got)
	}
	if len(got) > 0 && !bytes.Equal(got, []byte{0x20, 0x02, 0x00, 0x05}) {
		return fmt.Errorf("attack % x: the hub answered % x, want nothing or CONNACK 0x05", b[:min(len(b), 8)], got)
	}
	return nil
}

// TestSecurity_SlowClientsAreCutOffByTheConnectDeadline: a client that trickles its CONNECT
// or its TLS handshake a byte at a time (slowloris) is closed once Options.ConnectTimeout
// has passed since its socket was accepted, however it paces its bytes.
// TestConnect_SilentSocketIsClosed covers the silent plain socket.
func TestSecurity_SlowClientsAreCutOffByTheConnectDeadline(t *testing.T) {
	const deadline, pace = 400 * time.Millisecond, 20 * time.Millisecond
	tlsCerts, err := certs.New(certs.Options{Dir: t.TempDir(), Names: certs.Names(edgeHost)})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withOptions(func(o *hub.Options) {
		o.ConnectTimeout, o.TLSAddr, o.TLS = deadline, "127.0.0.1:0", tlsCerts.TLSConfig()
	}))
	connect := secConnectPacket("leaf1", iothub.FormatUsername(hubHost, "leaf1", "", nil),
		e.token(hubHost, leaf, keyLeaf, e.clock.Now().Add(time.Hour)), 30)
	tlsRecord := append([]byte{0x16, 0x03, 0x01, 0x01, 0x00}, bytes.Repeat([]byte{1}, 256)...)
	tests := []struct {
		name  string
		addr  string
		bytes []byte
	}{
		{"plain: a valid CONNECT one byte at a time", e.hub.PlainAddr(), connect},
		{"TLS: nothing sent", e.hub.TLSAddr(), nil},
		{"TLS: a handshake record one byte at a time", e.hub.TLSAddr(), tlsRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if time.Duration(len(tt.bytes))*pace < 2*deadline && tt.bytes != nil {
				t.Fatalf("%d bytes trickle in less than twice the deadline", len(tt.bytes))
			}
			c, err := net.Dial("tcp", tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			stop := make(chan struct{})
			sent := make(chan int, 1)
			go func() { // the attacker's pacing
				tick := time.NewTicker(pace)
				defer tick.Stop()
				n := 0
				defer func() { sent <- n }()
				for ; n < len(tt.bytes); n++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					if _, err := c.Write(tt.bytes[n : n+1]); err != nil {
						return
					}
				}
			}()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = io.ReadAll(c)
			elapsed := time.Since(start)
			close(stop)
			n := <-sent
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the hub did not close the connection")
			}
			if elapsed < deadline/2 || tt.bytes != nil && n == len(tt.bytes) {
				t.Fatalf("closed after %v with %d of %d bytes sent; want a close by the %v deadline, before the last byte",
					elapsed, n, len(tt.bytes), deadline)
			}
		})
	}
	// The listeners still serve.
	e.connect(leaf).send(t, "", nil, "after")
}

// TestSecurity_AModuleThatNeverAcknowledgesBlocksOnlyItself: module B takes its inputs and
// never PUBACKs them. Module C, fed by the same sender, gets everything in order; the
// sender is acknowledged at once; B's messages wait for B in the store.
func TestSecurity_AModuleThatNeverAcknowledgesBlocksOnlyItself(t *testing.T) {
	const n = 20
	e := newEnv(t, withRoutes(map[string]string{
		"toB": `FROM /messages/modules/modA/* INTO BrokeredEndpoint("/modules/modB/inputs/in1")`,
		"toC": `FROM /messages/modules/modA/* INTO BrokeredEndpoint("/modules/modC/inputs/in1")`,
	}), withOptions(func(o *hub.Options) { o.AckTimeout, o.MaxDeliveryAttempts = 200*time.Millisecond, 1000 }))
	modC := sas.Identity{DeviceID: edgeID, ModuleID: "modC"}
	if err := e.ids.Put(context.Background(), identities.Record{DeviceID: edgeID, ModuleID: "modC", Keys: sas.Keys{Primary: keyLeaf}}); err != nil {
		t.Fatal(err)
	}
	stubborn := e.connect(modB, noAutoAck)
	stubborn.subscribeInputs(t)
	c, code, err := e.dial(modC, iothub.FormatUsername(hubHost, edgeID, "modC", nil), e.token(hubHost, modC, keyLeaf, e.clock.Now().Add(time.Hour)))
	if err != nil {
		t.Fatalf("connect modC: CONNACK %d: %v", code, err)
	}
	c.subscribeInputs(t)
	a := e.connect(modA)
	for i := range n {
		a.send(t, "", nil, fmt.Sprint(i))
	}
	for i := range n {
		if got := string(c.next(t).Payload()); got != fmt.Sprint(i) {
			t.Fatalf("module C received %q, want %d", got, i)
		}
	}
	if got := string(stubborn.next(t).Payload()); got != "0" {
		t.Fatalf("module B received %q first, want 0", got)
	}
	waitFor(t, "C's acknowledgements", func() bool { return e.hub.Stats().Sent["/modules/modC/inputs/in1"] == n })
	if st := e.hub.Stats(); st.Sent["/modules/modB/inputs/in1"] != 0 || st.DeadLettered != 0 {
		t.Fatalf("Stats: sent %v, dead-lettered %d; want nothing acknowledged by B, %d by C", st.Sent, st.DeadLettered, n)
	}
}

// --- Secrets and files --------------------------------------------------------------------

// TestSecurity_SecretsNeverAppearInLogs runs the hub with every log line captured (debug
// level, text and JSON, mochi's lines included) through successful and refused CONNECTs,
// a second CONNECT on a live connection (mochi logs such packets whole), a revoked token,
// refused publishes and method API refusals, and checks that no key, token or signature
// appears in any form: literal, URL-encoded, base64 or as a printed byte slice.
func TestSecurity_SecretsNeverAppearInLogs(t *testing.T) {
	var logs secLogBuffer
	logger := slog.New(slog.NewMultiHandler(
		slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
		slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
	))
	fc := newFakeCloud()
	r, hc, base := methodAPIOn(t, newRelayEnv(t, fc, withOptions(func(o *hub.Options) { o.Logger = logger }),
		withRoutes(map[string]string{"all": `FROM /messages/* INTO BrokeredEndpoint("/modules/modB/inputs/all")`})))
	now := r.clock.Now()
	valid := now.Add(time.Hour)
	user := func(id sas.Identity) string { return iothub.FormatUsername(hubHost, id.DeviceID, id.ModuleID, nil) }
	secrets := []string{keyModA, keyModB, keyEdge, keyLeaf, keyBad}
	token := func(host string, id sas.Identity, key string, expiry time.Time) string {
		tok := r.token(host, id, key, expiry)
		secrets = append(secrets, tok)
		return tok
	}

	// Accepted, then refused CONNECTs.
	for _, id := range []sas.Identity{modA, modB} {
		if _, _, err := r.dial(id, user(id), token(hubHost, id, keyOf(id), valid)); err != nil {
			t.Fatal(err)
		}
	}
	a := r.connect(modA) // takes over, and so does B's
	methodsOf(t, a, func(string, []byte) (int, string) { return 200, `{}` })
	b := r.connect(modB)
	b.subscribeInputs(t)
	for _, c := range []struct {
		id  sas.Identity
		pwd string
	}{
		{leaf, token("other.azure-devices.net", leaf, keyLeaf, valid)},
		{leaf, token(hubHost, leaf, keyLeaf, now.Add(-time.Hour))},
		{leaf, token(hubHost, leaf, keyBad, valid)},
		{modA, token(hubHost, modB, keyModB, valid)},
		{sas.Identity{DeviceID: "leaf2"}, token(hubHost, sas.Identity{DeviceID: "leaf2"}, keyLeaf, valid)},
		{leaf, keyLeaf},
		{leaf, "SharedAccessSignature sr=x&sig=" + keyLeaf + "&se=notanumber"},
	} {
		if _, code, _ := r.dial(c.id, user(c.id), c.pwd); code != 5 {
			t.Fatalf("CONNACK %d for a bad token, want 5", code)
		}
	}
	// A second CONNECT on a live raw connection carries a fresh, valid token.
	raw := secConnectRaw(t, r.env, leaf)
	raw.write(secConnectPacket("leaf1", user(leaf), token(hubHost, leaf, keyLeaf, valid), 30))
	raw.expectClosed()
	// Refused publishes: QoS 2 (mochi logs the rejected packet at debug), another's topic.
	raw = secConnectRaw(t, r.env, leaf)
	raw.publish("devices/leaf1/messages/events/", []byte("qos 2"), 2, 1)
	raw.expectClosed()
	r.connect(leaf).send(t, "", map[string]string{"note": "ok"}, "fine")
	b.next(t)
	// A token that expires is revoked by revalidation, which logs why.
	short, _, err := r.dial(leaf, user(leaf), token(hubHost, leaf, keyLeaf, now.Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Minute + sas.ClockSkew + time.Second)
	waitFor(t, "the short-lived connection registered", func() bool { return r.hub.Revalidate(context.Background()) == 1 })
	short.waitLost(t)
	valid = r.clock.Now().Add(time.Hour)
	// Method API refusals.
	for _, auth := range []string{
		token(hubHost, modB, keyBad, valid),
		token("other.azure-devices.net", modB, keyModB, valid),
		keyModB,
	} {
		if status, body := callMethod(t, hc, base, modA, "edge1/modB", auth, `{"methodName":"m"}`); status != 401 {
			t.Fatalf("method API: %d %s, want 401", status, body)
		}
	}
	r.stop()

	out := logs.String()
	// The capture saw the lines that would carry a secret: refusals, and mochi's line about
	// the packet of the second CONNECT.
	for _, want := range []string{"client refused", "method call refused", "second connect packet", "no longer valid"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the capture has no %q line; logs:\n%s", want, out)
		}
	}
	for _, s := range secrets {
		for _, form := range secretForms(s) {
			if i := strings.Index(out, form); i >= 0 {
				t.Errorf("a secret appears in the logs (as %q): ...%s...", form[:min(len(form), 24)], out[max(0, i-200):min(len(out), i+len(form)+40)])
			}
		}
	}
}

// secretForms returns the renderings under which secret s could appear in a log line or
// an error body: itself, URL-encoded, base64, as a printed []byte, and each SAS token's
// signature alone (raw and URL-encoded).
func secretForms(s string) []string {
	forms := []string{s, url.QueryEscape(s), base64.StdEncoding.EncodeToString([]byte(s)),
		strings.Trim(fmt.Sprint([]byte(s)), "[]")}
	if tok, err := sas.Parse(s); err == nil {
		forms = append(forms, tok.Signature, url.QueryEscape(tok.Signature))
	}
	return forms
}

// secLogBuffer collects log output from every goroutine.
type secLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *secLogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *secLogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSecurity_DataFilesAreOwnerOnly: the files holding identity keys, messages and twins
// are created 0600 (their mode is the only protection of the keys: identities.db stores
// them in clear).
func TestSecurity_DataFilesAreOwnerOnly(t *testing.T) {
	r := newRelayEnv(t, nil)
	for _, name := range []string{"identities.db", "store.db", "twins.db"} {
		fi, err := os.Stat(filepath.Join(r.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
}

// --- Raw MQTT -----------------------------------------------------------------------------

// secRaw speaks just enough MQTT 3.1.1 to send what client libraries never send and to
// read the hub's exact answers.
type secRaw struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// secConnectRaw opens a raw connection to e's plain listener authenticated as id.
func secConnectRaw(t *testing.T, e *env, id sas.Identity) *secRaw {
	t.Helper()
	conn, err := net.DialTimeout("tcp", e.hub.PlainAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	c := &secRaw{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.write(secConnectPacket(iothub.ClientID(id.DeviceID, id.ModuleID),
		iothub.FormatUsername(hubHost, id.DeviceID, id.ModuleID, nil),
		e.token(hubHost, id, keyOf(id), e.clock.Now().Add(time.Hour)), 30))
	typ, body, err := c.read()
	if err != nil || typ != 0x20 || len(body) != 2 || body[1] != 0 {
		t.Fatalf("raw connect as %v: packet %#x % x, %v", id, typ, body, err)
	}
	return c
}

func (c *secRaw) write(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *secRaw) publish(topic string, payload []byte, qos byte, pid uint16) {
	c.t.Helper()
	body := secString(topic)
	if qos > 0 {
		body = binary.BigEndian.AppendUint16(body, pid)
	}
	c.write(secPacket(0x30|qos<<1, append(body, payload...)))
}

// read returns the next packet's first byte and body.
func (c *secRaw) read() (byte, []byte, error) {
	typ, err := c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for range 4 {
		b, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mult
		if b&0x80 == 0 {
			body := make([]byte, n)
			_, err := io.ReadFull(c.r, body)
			return typ, body, err
		}
		mult *= 128
	}
	return 0, nil, errors.New("malformed remaining length from the hub")
}

// expectPuback reads until the PUBACK of pid.
func (c *secRaw) expectPuback(pid uint16) {
	c.t.Helper()
	for {
		typ, body, err := c.read()
		if err != nil {
			c.t.Fatalf("waiting for PUBACK %d: %v", pid, err)
		}
		if typ == 0x40 && len(body) == 2 && binary.BigEndian.Uint16(body) == pid {
			return
		}
	}
}

// expectClosed reads until the hub closes the connection, failing on a PUBACK (the hub
// accepted what it should have refused) or when it stays open.
func (c *secRaw) expectClosed() {
	c.t.Helper()
	for {
		typ, _, err := c.read()
		if err == nil {
			if typ == 0x40 {
				c.t.Fatal("the hub acknowledged a publish it should have refused")
			}
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatal("the hub did not close the connection")
		}
		return
	}
}

// secConnectPacket encodes an MQTT 3.1.1 CONNECT with a username and a password.
func secConnectPacket(clientID, username, password string, keepAlive uint16) []byte {
	body := append(secString("MQTT"), 4, 0xc0) // level 4; username and password
	body = binary.BigEndian.AppendUint16(body, keepAlive)
	body = append(body, secString(clientID)...)
	body = append(body, secString(username)...)
	body = append(body, secString(password)...)
	return secPacket(0x10, body)
}

func secPacket(header byte, body []byte) []byte {
	return append(append([]byte{header}, secRemainingLength(len(body))...), body...)
}

func secString(s string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...)
}

func secRemainingLength(n int) []byte {
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
