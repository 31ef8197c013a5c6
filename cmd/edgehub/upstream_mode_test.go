package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/hub/identities"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

func TestParseConfig_UpstreamMode(t *testing.T) {
	withCS := map[string]string{"IotHubConnectionString": edgeHubCS}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		wantErr string
	}{
		{name: "default: the extension", env: withCS, want: modeExtension},
		{name: "per-client", args: []string{"--upstream-mode", "per-client"}, env: withCS, want: modePerClient},
		{name: "from the environment", env: map[string]string{"IotHubConnectionString": edgeHubCS, "EDGEHUB_UPSTREAM_MODE": "per-client"}, want: modePerClient},
		{name: "unknown mode", args: []string{"--upstream-mode", "multiplexed"}, env: withCS, wantErr: `--upstream-mode "multiplexed"`},
		{name: "per-client without a connection string", args: []string{"--upstream-mode", "per-client", "--iothub-hostname", "h", "--edge-device-id", "e"},
			wantErr: "needs the edge hub's connection string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.upstreamMode != tt.want {
				t.Fatalf("mode %q, want %q", c.upstreamMode, tt.want)
			}
		})
	}
}

// TestRun_PerClientMode runs the command with --upstream-mode per-client against a fake IoT
// Hub: a module whose keys come from --config connects, its telemetry reaches IoT Hub over
// a connection of its own (not carried by the edge hub's), attributed to it.
func TestRun_PerClientMode(t *testing.T) {
	s := fakehubtest.New(t)
	fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	_, moduleCS := fakehubtest.MustModule(t, s, "edge1", "m1")
	edgeCS, err := s.ModuleConnectionString("edge1", "$edgeHub")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := s.IdentityKeys(sas.Identity{DeviceID: "edge1", ModuleID: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	csFile := filepath.Join(dir, "edgehub-connection-string")
	writeFile(t, csFile, edgeCS)
	ids, _ := json.Marshal([]identities.Record{{DeviceID: "edge1", ModuleID: "m1", Keys: keys}})
	cfg := filepath.Join(dir, "config.json")
	writeFile(t, cfg, `{"edgeHub": {"schemaVersion": "1.1", "routes": {"up": "FROM /messages/* INTO $upstream"},
	  "storeAndForwardConfiguration": {"timeToLiveSecs": 60}}, "identities": `+string(ids)+`}`)
	_, port, _ := net.SplitHostPort(s.MQTTAddress())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs, logw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--data-dir", filepath.Join(dir, "data"), "--tls-addr", "127.0.0.1:0", "--plain-addr", "127.0.0.1:0",
			"--config", cfg, "--log-format", "json", "--metrics-addr", "", "--upstream-mode", "per-client",
			"--upstream-connection-string-file", csFile, "--upstream-ca-file", s.CAFile(), "--upstream-port", port},
			func(string) string { return "" }, logw)
		logw.Close()
	}()
	addr := readyAddress(t, logs)
	go io.Copy(io.Discard, logs)

	m1 := plainModuleClient(t, addr, moduleCS)
	defer m1.Close()
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	if err := m1.Connect(cctx); err != nil {
		t.Fatalf("m1 refused: %v", err)
	}
	if err := m1.SendOutput(cctx, "out", iothub.Message{Body: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.WaitEvents(cctx, 0, 1)
	if err != nil || len(evs) != 1 || evs[0].ModuleID != "m1" || string(evs[0].Body) != "hello" {
		t.Fatalf("IoT Hub received %+v (%v), want m1's hello", evs, err)
	}
	byClient := map[string][]string{}
	for _, c := range s.Connections() {
		byClient[c.ClientID] = c.Identities
	}
	if len(byClient) != 2 || len(byClient["edge1/m1"]) != 1 || len(byClient["edge1/$edgeHub"]) != 1 {
		t.Fatalf("IoT Hub's connections: %v, want the edge hub's and m1's own, each carrying itself", byClient)
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
