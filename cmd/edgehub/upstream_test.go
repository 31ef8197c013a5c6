package main

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
)

const edgeHubCS = "HostName=contoso.azure-devices.net;DeviceId=edge1;ModuleId=$edgeHub;SharedAccessKey=" + keyA

func TestParseConfig_Upstream(t *testing.T) {
	dir := t.TempDir()
	csFile := filepath.Join(dir, "cs")
	writeFile(t, csFile, edgeHubCS+"\n")
	otherFile := filepath.Join(dir, "other")
	writeFile(t, otherFile, strings.ReplaceAll(edgeHubCS, "edge1", "edge2"))
	empty := filepath.Join(dir, "empty")
	writeFile(t, empty, "\n")
	deviceCS := "HostName=contoso.azure-devices.net;DeviceId=edge1;SharedAccessKey=" + keyA
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantDevice string // and iothub host contoso..., upstream set
		wantErr    string
	}{
		{name: "from the environment, as Azure's agent sets it", env: map[string]string{"IotHubConnectionString": edgeHubCS}, wantDevice: "edge1"},
		{name: "from a file", args: []string{"--upstream-connection-string-file", csFile}, wantDevice: "edge1"},
		{name: "the file wins over the environment", args: []string{"--upstream-connection-string-file", otherFile},
			env: map[string]string{"IotHubConnectionString": edgeHubCS}, wantDevice: "edge2"},
		{name: "flags that agree", args: []string{"--upstream-connection-string-file", csFile, "--edge-device-id", "edge1",
			"--iothub-hostname", "CONTOSO.azure-devices.net"}, wantDevice: "edge1"},
		{name: "another edge device", args: []string{"--upstream-connection-string-file", csFile, "--edge-device-id", "edge9"}, wantErr: `--edge-device-id "edge9"`},
		{name: "another hub", args: []string{"--upstream-connection-string-file", csFile, "--iothub-hostname", "h"}, wantErr: `--iothub-hostname "h"`},
		{name: "not the $edgeHub module", env: map[string]string{"IotHubConnectionString": deviceCS}, wantErr: "{edge}/$edgeHub"},
		{name: "malformed", env: map[string]string{"IotHubConnectionString": "HostName=h;SharedAccessKey=" + keyA}, wantErr: "malformed"},
		{name: "missing file", args: []string{"--upstream-connection-string-file", filepath.Join(dir, "nope")}, wantErr: "--upstream-connection-string-file"},
		{name: "empty file", args: []string{"--upstream-connection-string-file", empty}, wantErr: "is empty"},
		{name: "bad port", args: []string{"--upstream-connection-string-file", csFile, "--upstream-port", "70000"}, wantErr: "--upstream-port"},
		{name: "no connection string: flags still required", args: []string{"--edge-device-id", "e"}, wantErr: "--iothub-hostname is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), keyA) {
					t.Fatalf("the error shows the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.edgeDeviceID != tt.wantDevice || c.iotHubHostName != "contoso.azure-devices.net" ||
				c.upstream.DeviceID != tt.wantDevice || c.upstream.ModuleID != "$edgeHub" {
				t.Fatalf("edge device %q, hub %q, upstream %s", c.edgeDeviceID, c.iotHubHostName, c.upstream.Redacted())
			}
		})
	}
}

// TestRun_UpstreamLink runs the command against a fake IoT Hub with no static identities: a
// module connects for the first time (authenticated upstream), its telemetry reaches IoT
// Hub, and IoT Hub sees the edge hub's one connection carrying it.
func TestRun_UpstreamLink(t *testing.T) {
	s := fakehubtest.New(t)
	fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	_, moduleCS := fakehubtest.MustModule(t, s, "edge1", "m1")
	edgeCS, err := s.ModuleConnectionString("edge1", "$edgeHub")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	csFile := filepath.Join(dir, "edgehub-connection-string")
	writeFile(t, csFile, edgeCS)
	cfg := filepath.Join(dir, "config.json")
	writeFile(t, cfg, `{"edgeHub": {"schemaVersion": "1.1", "routes": {"up": "FROM /messages/* INTO $upstream"},
	  "storeAndForwardConfiguration": {"timeToLiveSecs": 60}}}`)
	_, port, _ := net.SplitHostPort(s.MQTTAddress())

	ctx, cancel := context.WithCancel(context.Background())
	logs, logw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--data-dir", filepath.Join(dir, "data"), "--tls-addr", "127.0.0.1:0", "--plain-addr", "127.0.0.1:0",
			"--config", cfg, "--log-format", "json", "--metrics-addr", "",
			"--upstream-connection-string-file", csFile, "--upstream-ca-file", s.CAFile(), "--upstream-port", port},
			func(string) string { return "" }, logw)
		logw.Close()
	}()
	addr := readyAddress(t, logs)
	go io.Copy(io.Discard, logs)

	m1 := plainModuleClient(t, addr, moduleCS)
	defer m1.Close()
	// The first connection is refused until the link is up (nobody can vouch for m1 yet).
	deadline := time.Now().Add(10 * time.Second)
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		err := m1.Connect(cctx)
		ccancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("m1 not accepted within 10s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	if err := m1.SendOutput(sctx, "out", iothub.Message{Body: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.WaitEvents(sctx, 0, 1)
	if err != nil || len(evs) != 1 || evs[0].ModuleID != "m1" || string(evs[0].Body) != "hello" {
		t.Fatalf("IoT Hub received %+v (%v), want m1's hello", evs, err)
	}
	want := []string{"edge1/$edgeHub", "edge1/m1"}
	for conns := s.Connections(); len(conns) != 1 || !slices.Equal(conns[0].Identities, want); conns = s.Connections() {
		if time.Now().After(deadline) {
			t.Fatalf("IoT Hub's connections: %+v, want one carrying %v", conns, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	m1.Close()
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit code %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

// plainModuleClient returns a module client for moduleCS that reaches the edge hub at addr
// (its plain listener) through the gateway host name 127.0.0.1.
func plainModuleClient(t *testing.T, addr, moduleCS string) *moduleclient.Client {
	t.Helper()
	cs, err := sas.ParseConnectionString(moduleCS)
	if err != nil {
		t.Fatal(err)
	}
	cs.GatewayHostName = "127.0.0.1"
	_, hubPort, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(hubPort)
	c, err := moduleclient.New(cs, moduleclient.Options{Plain: true, Port: p})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
