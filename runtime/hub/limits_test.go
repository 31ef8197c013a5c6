package hub_test

import (
	"context"
	"crypto/tls"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/runtime/certs"
	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
	"github.com/outpost-edge/outpost/runtime/store"
)

func TestIngest_OversizedMessages(t *testing.T) {
	const upLimit, localLimit = 1024, 4096
	routes := map[string]string{
		"toB":  `FROM /messages/modules/modA/outputs/local INTO BrokeredEndpoint("/modules/modB/inputs/in1")`,
		"toUp": `FROM /messages/modules/modA/outputs/cloud INTO $upstream`,
	}
	tests := []struct {
		name   string
		output string
		body   int
		ok     bool
	}{
		{"module-to-module above the upstream limit", "local", 2000, true},
		{"routed upstream above its limit", "cloud", 2000, false},
		{"routed upstream within its limit", "cloud", 900, true},
		{"above the local limit", "local", 5000, false},
		{"above the maximum packet size", "local", 80 << 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, withRoutes(routes), withOptions(func(o *hub.Options) {
				o.MaxUpstreamMessageSize, o.MaxLocalMessageSize = upLimit, localLimit
			}))
			a := e.connect(modA)
			tok := a.Publish(a.topic(tt.output, nil), 1, false, strings.Repeat("x", tt.body))
			if tt.ok {
				if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
					t.Fatalf("no PUBACK: %v", tok.Error())
				}
				return
			}
			a.waitLost(t)
			if tok.WaitTimeout(10*time.Millisecond) && tok.Error() == nil {
				t.Fatal("oversized message acknowledged")
			}
			if tt.body < localLimit+65535 {
				// Beyond the packet size mochi closes before the hub sees the message.
				if got := e.hub.Stats().RefusedTooLarge; got != 1 {
					t.Fatalf("Stats.RefusedTooLarge = %d, want 1", got)
				}
			}
			if e.hub.Stats().Stored != 0 {
				t.Fatal("an oversized message was stored")
			}
			// The hub keeps serving, the same client included.
			e.connect(modA).send(t, "local", nil, "small")
		})
	}
}

func TestTLS_ServesTheEdgeCertificate(t *testing.T) {
	dir := t.TempDir()
	tlsCerts, err := certs.New(certs.Options{Dir: dir, Names: certs.Names(edgeHost)})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withOptions(func(o *hub.Options) {
		o.TLSAddr, o.TLS, o.PlainAddr = "127.0.0.1:0", tlsCerts.TLSConfig(), ""
	}))
	if e.hub.PlainAddr() != "" {
		t.Fatal("plain listener bound without PlainAddr")
	}
	for _, name := range []string{edgeHost, "localhost", "127.0.0.1"} {
		t.Run(name, func(t *testing.T) {
			o := paho.NewClientOptions().
				AddBroker("ssl://" + e.hub.TLSAddr()).
				SetClientID("leaf1").
				SetUsername(iothub.FormatUsername(hubHost, "leaf1", "", nil)).
				SetPassword(e.token(hubHost, leaf, keyLeaf, e.clock.Now().Add(time.Hour))).
				SetAutoReconnect(false).
				SetTLSConfig(&tls.Config{RootCAs: tlsCerts.Current().Pool(), ServerName: name})
			c := paho.NewClient(o)
			if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatalf("TLS connect as %q: %v", name, tok.Error())
			}
			c.Disconnect(0)
		})
	}
	// A client that does not trust the edge CA fails the handshake.
	o := paho.NewClientOptions().AddBroker("ssl://" + e.hub.TLSAddr()).SetClientID("leaf1").
		SetAutoReconnect(false).SetTLSConfig(&tls.Config{ServerName: "localhost"})
	if tok := paho.NewClient(o).Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
		t.Fatal("connected without trusting the edge CA")
	}
}

func TestNew_RefusesBadOptions(t *testing.T) {
	st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "s.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	good := hub.Options{IoTHubHostName: hubHost, EdgeDeviceID: edgeID, PlainAddr: "127.0.0.1:0"}
	deps := hub.Deps{Store: st, Identities: noIdentities{}}
	tests := []struct {
		name string
		mod  func(*hub.Options, *hub.Deps)
	}{
		{"no IoT Hub host", func(o *hub.Options, _ *hub.Deps) { o.IoTHubHostName = "" }},
		{"no edge device", func(o *hub.Options, _ *hub.Deps) { o.EdgeDeviceID = "" }},
		{"bad edge device id", func(o *hub.Options, _ *hub.Deps) { o.EdgeDeviceID = "a/b" }},
		{"no listener", func(o *hub.Options, _ *hub.Deps) { o.PlainAddr = "" }},
		{"TLS address without TLS", func(o *hub.Options, _ *hub.Deps) { o.TLSAddr = "127.0.0.1:0" }},
		{"no store", func(_ *hub.Options, d *hub.Deps) { d.Store = nil }},
		{"no identities", func(_ *hub.Options, d *hub.Deps) { d.Identities = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, d := good, deps
			tt.mod(&o, &d)
			if _, err := hub.New(o, d); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
	// Close releases the listeners of a server that is not run; its port is free again.
	srv, err := hub.New(good, deps)
	if err != nil {
		t.Fatalf("New(good): %v", err)
	}
	addr := srv.PlainAddr()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Run(context.Background()); !errors.Is(err, hub.ErrRunning) {
		t.Fatalf("Run after Close = %v, want ErrRunning", err)
	}
	reuse := good
	reuse.PlainAddr = addr
	if srv, err = hub.New(reuse, deps); err != nil {
		t.Fatalf("New on the port a closed server held: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Run(ctx); err != nil {
		t.Fatalf("Run with a cancelled context: %v", err)
	}
	if err := srv.Run(context.Background()); !errors.Is(err, hub.ErrRunning) {
		t.Fatalf("a second Run = %v, want ErrRunning", err)
	}
	if err := srv.Close(); !errors.Is(err, hub.ErrRunning) {
		t.Fatalf("Close after Run = %v, want ErrRunning", err)
	}
}

type noIdentities struct{}

func (noIdentities) Keys(context.Context, sas.Identity) (sas.Keys, error) {
	return sas.Keys{}, context.Canceled
}
