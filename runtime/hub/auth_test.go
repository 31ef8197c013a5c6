package hub_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

func TestConnect_Authentication(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	valid := now.Add(time.Hour)
	user := func(id sas.Identity) string { return iothub.FormatUsername(hubHost, id.DeviceID, id.ModuleID, nil) }
	tests := []struct {
		name     string
		id       sas.Identity // client id
		username string
		password string
		version  uint // MQTT protocol level; 0 = 4
		wantCode byte
	}{
		{"module with its own token", modA, user(modA), e.token(hubHost, modA, keyModA, valid), 0, 0},
		{"module with its device's token", modA, user(modA), e.token(hubHost, sas.Identity{DeviceID: edgeID}, keyEdge, valid), 0, 0},
		{"leaf device, secondary key", leaf, user(leaf), e.token(hubHost, leaf, keyLeaf, valid), 0, 0},
		{"token for the gateway host", leaf, user(leaf), e.token(edgeHost, leaf, keyLeaf, valid), 0, 0},
		{"token host in other case", leaf, user(leaf), e.token("TEST-HUB.azure-devices.net", leaf, keyLeaf, valid), 0, 0},
		{"legacy username", leaf, hubHost + "/leaf1/api-version=2020-09-30", e.token(hubHost, leaf, keyLeaf, valid), 0, 0},
		{"username host not checked", leaf, iothub.FormatUsername("other.example", "leaf1", "", nil), e.token(hubHost, leaf, keyLeaf, valid), 0, 0},
		{"expired within the 5-minute skew", leaf, user(leaf), e.token(hubHost, leaf, keyLeaf, now.Add(-4*time.Minute)), 0, 0},

		{"expired beyond the skew", leaf, user(leaf), e.token(hubHost, leaf, keyLeaf, now.Add(-6*time.Minute)), 0, 5},
		{"token for another host", leaf, user(leaf), e.token("other.azure-devices.net", leaf, keyLeaf, valid), 0, 5},
		{"wrong key", modA, user(modA), e.token(hubHost, modA, keyBad, valid), 0, 5},
		{"token of another module", modA, user(modA), e.token(hubHost, modB, keyModB, valid), 0, 5},
		{"device token of another device", modA, user(modA), e.token(hubHost, leaf, keyLeaf, valid), 0, 5},
		{"unknown identity", sas.Identity{DeviceID: "ghost"}, user(sas.Identity{DeviceID: "ghost"}), e.token(hubHost, sas.Identity{DeviceID: "ghost"}, keyLeaf, valid), 0, 5},
		{"disabled identity", sas.Identity{DeviceID: "leaf2"}, user(sas.Identity{DeviceID: "leaf2"}), e.token(hubHost, sas.Identity{DeviceID: "leaf2"}, keyLeaf, valid), 0, 5},
		{"username names another module", modA, user(modB), e.token(hubHost, modA, keyModA, valid), 0, 5},
		{"username in other case", leaf, user(sas.Identity{DeviceID: "LEAF1"}), e.token(hubHost, leaf, keyLeaf, valid), 0, 5},
		{"malformed username", leaf, hubHost + "/leaf1", e.token(hubHost, leaf, keyLeaf, valid), 0, 5},
		{"not a SAS token", leaf, user(leaf), "secret", 0, 5},
		{"no password", leaf, user(leaf), "", 0, 5},
		{"client id with three segments", sas.Identity{DeviceID: edgeID, ModuleID: "a/b"}, user(modA), e.token(hubHost, modA, keyModA, valid), 0, 5},
		{"MQTT 3.1", leaf, user(leaf), e.token(hubHost, leaf, keyLeaf, valid), 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []clientOption
			if tt.version != 0 {
				opts = append(opts, func(o *paho.ClientOptions) { o.SetProtocolVersion(tt.version) })
			}
			c, code, err := e.dial(tt.id, tt.username, tt.password, opts...)
			if code != tt.wantCode {
				t.Fatalf("CONNACK %d (err %v), want %d", code, err, tt.wantCode)
			}
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatal(err)
				}
				c.Disconnect(0)
			}
		})
	}
	// MQTT 3.1 is refused by mochi before the hooks run, so it is not counted.
	if got := e.hub.Stats().AuthRefused; got != 13 {
		t.Errorf("Stats.AuthRefused = %d, want 13", got)
	}
}

func TestConnect_NewerConnectionWins(t *testing.T) {
	e := newEnv(t)
	first := e.connect(modA)
	second := e.connect(modA)
	first.waitLost(t)
	if !second.IsConnectionOpen() {
		t.Fatal("the newer connection was closed")
	}
	// The newer connection works: its publish is acknowledged.
	second.send(t, "", nil, "hello")
}

func TestRevalidate_ClosesRemovedAndDisabledIdentities(t *testing.T) {
	e := newEnv(t)
	a := e.connect(modA)
	b := e.connect(modB)
	l := e.connect(leaf)
	waitFor(t, "three connections registered", func() bool { return e.hub.Stats().Connected == 3 })
	ctx := context.Background()

	// Deleting modA, through the change signal, closes modA only.
	if err := e.ids.Delete(ctx, modA); err != nil {
		t.Fatal(err)
	}
	a.waitLost(t)

	// Disabling leaf1 closes it.
	r, _ := e.ids.Get(leaf)
	r.Disabled = true
	if err := e.ids.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	l.waitLost(t)

	// Rotating modB's key (its token was signed with the old one) closes it too.
	r, _ = e.ids.Get(modB)
	r.Keys = sas.Keys{Primary: keyBad}
	if err := e.ids.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	b.waitLost(t)
	waitFor(t, "Stats.Revoked = 3", func() bool { return e.hub.Stats().Revoked == 3 })

	// modA can no longer connect.
	if _, code, _ := e.dial(modA, iothub.FormatUsername(hubHost, edgeID, "modA", nil),
		e.token(hubHost, modA, keyModA, e.clock.Now().Add(time.Hour))); code != 5 {
		t.Fatalf("removed identity: CONNACK %d, want 5", code)
	}
}

func TestRevalidate_ClosesExpiredTokens(t *testing.T) {
	e := newEnv(t)
	c, _, err := e.dial(leaf, iothub.FormatUsername(hubHost, "leaf1", "", nil),
		e.token(hubHost, leaf, keyLeaf, e.clock.Now().Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	// The hub registers a connection just after its CONNACK.
	waitFor(t, "the connection registered", func() bool { return e.hub.Stats().Connected == 1 })
	if n := e.hub.Revalidate(context.Background()); n != 0 {
		t.Fatalf("Revalidate closed %d connections with valid tokens", n)
	}
	e.clock.Advance(time.Minute + sas.ClockSkew + time.Second)
	if n := e.hub.Revalidate(context.Background()); n != 1 {
		t.Fatalf("Revalidate closed %d connections, want 1", n)
	}
	c.waitLost(t)
}

// TestConnect_RefusesMQTT5 speaks raw MQTT 5 (paho v1 cannot): IoT Hub's dialect is 3.1.1
// only, so the hub answers CONNACK reason 0x84, unsupported protocol version.
func TestConnect_RefusesMQTT5(t *testing.T) {
	e := newEnv(t)
	conn, err := net.Dial("tcp", e.hub.PlainAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 0, 0, 5, 'l', 'e', 'a', 'f', '1'}
	if _, err := conn.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil {
		t.Fatalf("no CONNACK: %v", err)
	}
	if ack[0] != 0x20 || ack[3] != 0x84 {
		t.Fatalf("CONNACK % x, want type 0x20 with reason 0x84", ack)
	}
}

// TestConnect_SilentSocketIsClosed: a connection that never sends CONNECT is closed after
// ConnectTimeout, and one still open does not hold up the hub's shutdown.
func TestConnect_SilentSocketIsClosed(t *testing.T) {
	e := newEnv(t, withOptions(func(o *hub.Options) { o.ConnectTimeout = 100 * time.Millisecond }))
	conn, err := net.Dial("tcp", e.hub.PlainAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read = %v, want EOF (closed by the hub)", err)
	}

	// With a long ConnectTimeout, a silent socket must not hold up the shutdown (mochi's
	// Close waits for every connection's goroutine).
	e2 := newEnv(t, withOptions(func(o *hub.Options) { o.ConnectTimeout = time.Hour }))
	held, err := net.Dial("tcp", e2.hub.PlainAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	e2.stop() // fails the test if Run does not return within 10 s
}
