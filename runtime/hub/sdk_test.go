package hub_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/certs"
	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// TestModuleClient_OutputToInputOverTLS connects two modules with the project's SDK the way
// the agent sets them up: a module connection string with GatewayHostName, and the edge CA
// file to trust the hub's certificate.
func TestModuleClient_OutputToInputOverTLS(t *testing.T) {
	dir := t.TempDir()
	tlsCerts, err := certs.New(certs.Options{Dir: dir, Names: certs.Names(edgeHost)})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withRoutes(map[string]string{"aToB": `FROM /messages/modules/modA/outputs/out INTO BrokeredEndpoint("/modules/modB/inputs/in")`}),
		withOptions(func(o *hub.Options) { o.TLSAddr, o.TLS, o.PlainAddr = "127.0.0.1:0", tlsCerts.TLSConfig(), "" }))
	port, err := strconv.Atoi(e.hub.TLSAddr()[strings.LastIndex(e.hub.TLSAddr(), ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	newClient := func(id sas.Identity) *moduleclient.Client {
		cs, err := sas.ParseConnectionString("HostName=" + hubHost + ";DeviceId=" + id.DeviceID + ";ModuleId=" + id.ModuleID +
			";SharedAccessKey=" + keyOf(id) + ";GatewayHostName=127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		c, err := moduleclient.New(cs, moduleclient.Options{CAFile: filepath.Join(dir, certs.DefaultCAFile), Port: port, Now: e.clock.Now, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	got := make(chan iothub.Message, 1)
	b := newClient(modB)
	b.OnInput(func(input string, m iothub.Message) {
		if input == "in" {
			got <- m
		}
	})
	if err := b.Connect(ctx); err != nil {
		t.Fatalf("B connect: %v", err)
	}
	a := newClient(modA)
	if err := a.Connect(ctx); err != nil {
		t.Fatalf("A connect: %v", err)
	}
	if err := a.SendOutput(ctx, "out", iothub.Message{Body: []byte("via the SDK"), Properties: map[string]string{"k": "v"}}); err != nil {
		t.Fatalf("SendOutput: %v", err)
	}
	select {
	case m := <-got:
		if string(m.Body) != "via the SDK" || m.Properties["k"] != "v" || m.System[iothub.SysConnModuleID] != "modA" {
			t.Fatalf("B received %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("B received nothing")
	}
}
