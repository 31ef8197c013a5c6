package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

func TestParseConfig(t *testing.T) {
	required := []string{"--iothub-hostname", "h.azure-devices.net", "--edge-device-id", "edge1"}
	defaults := config{
		dataDir: "./edgehub-data", iotHubHostName: "h.azure-devices.net", gatewayHostName: "localhost",
		edgeDeviceID: "edge1", tlsAddr: ":8883", maxMessageSize: hub.DefaultMaxLocalMessageSize,
		storeFullPolicy: "reject-new", logFormat: "text", logLevel: "info", metricsAddr: "127.0.0.1:9600",
		upstreamMode: modeExtension,
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(c *config)
		wantErr string
	}{
		{name: "defaults", args: required, want: func(*config) {}},
		{name: "flags", args: append([]string{"--data-dir", "/d", "--gateway-hostname", "edge.local", "--tls-addr", "127.0.0.1:1",
			"--plain-addr", "127.0.0.1:2", "--config", "c.json", "--max-message-size", "4096", "--store-max-bytes", "1000",
			"--store-full-policy", "drop-oldest", "--log-format", "json", "--log-level", "debug", "--metrics-addr", ":9"}, required...),
			want: func(c *config) {
				c.dataDir, c.gatewayHostName, c.tlsAddr, c.plainAddr, c.configFile = "/d", "edge.local", "127.0.0.1:1", "127.0.0.1:2", "c.json"
				c.maxMessageSize, c.storeMaxBytes, c.storeFullPolicy, c.logFormat, c.logLevel = 4096, 1000, "drop-oldest", "json", "debug"
				c.metricsAddr = ":9"
			}},
		{name: "environment", env: map[string]string{"EDGEHUB_IOTHUB_HOSTNAME": "e.azure-devices.net", "EDGEHUB_EDGE_DEVICE_ID": "e1", "EDGEHUB_PLAIN_ADDR": ":1883"},
			want: func(c *config) { c.iotHubHostName, c.edgeDeviceID, c.plainAddr = "e.azure-devices.net", "e1", ":1883" }},
		{name: "metrics disabled", args: append([]string{"--metrics-addr", ""}, required...), want: func(c *config) { c.metricsAddr = "" }},
		{name: "flag wins over environment", args: append([]string{"--data-dir", "/flag"}, required...), env: map[string]string{"EDGEHUB_DATA_DIR": "/env"},
			want: func(c *config) { c.dataDir = "/flag" }},
		{name: "no IoT Hub host name", args: []string{"--edge-device-id", "e"}, wantErr: "--iothub-hostname"},
		{name: "no edge device", args: []string{"--iothub-hostname", "h"}, wantErr: "--edge-device-id"},
		{name: "bad policy", args: append([]string{"--store-full-policy", "drop-newest"}, required...), wantErr: "--store-full-policy"},
		{name: "bad size", args: append([]string{"--max-message-size", "0"}, required...), wantErr: "--max-message-size"},
		{name: "negative cap", args: append([]string{"--store-max-bytes", "-1"}, required...), wantErr: "--store-max-bytes"},
		{name: "bad log level", args: append([]string{"--log-level", "loud"}, required...), wantErr: "--log-level"},
		{name: "bad env value", args: required, env: map[string]string{"EDGEHUB_MAX_MESSAGE_SIZE": "big"}, wantErr: "EDGEHUB_MAX_MESSAGE_SIZE"},
		{name: "positional argument", args: append([]string{"serve"}, required...), wantErr: "unexpected argument"},
		{name: "help", args: []string{"-h"}, wantErr: flag.ErrHelp.Error()},
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
			want := defaults
			tt.want(&want)
			if c != want {
				t.Fatalf("config\n got %+v\nwant %+v", c, want)
			}
		})
	}
}

const (
	keyA = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
	keyB = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="
)

// TestRun_RoutesBetweenModules runs the command as main does and routes one message from
// module a to module b over the plain listener.
func TestRun_RoutesBetweenModules(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	writeFile(t, cfg, `{
	  "edgeHub": {"schemaVersion": "1.1", "routes": {"aToB": "FROM /messages/modules/a/outputs/o INTO BrokeredEndpoint(\"/modules/b/inputs/i\")"},
	              "storeAndForwardConfiguration": {"timeToLiveSecs": 60}},
	  "identities": [{"deviceId": "edge1", "moduleId": "a", "keys": {"primary": "`+keyA+`"}},
	                 {"deviceId": "edge1", "moduleId": "b", "keys": {"primary": "`+keyB+`"}}]
	}`)
	ctx, cancel := context.WithCancel(context.Background())
	logs, logw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--iothub-hostname", "h.azure-devices.net", "--edge-device-id", "edge1",
			"--data-dir", filepath.Join(dir, "data"), "--tls-addr", "127.0.0.1:0", "--plain-addr", "127.0.0.1:0",
			"--config", cfg, "--log-format", "json", "--metrics-addr", ""}, func(string) string { return "" }, logw)
		logw.Close()
	}()
	addr := readyAddress(t, logs)
	go io.Copy(io.Discard, logs)

	for _, f := range []string{"edge-ca.pem", "server.pem", "identities.db", "store.db"} {
		if _, err := os.Stat(filepath.Join(dir, "data", f)); err != nil {
			t.Errorf("data dir: %v", err)
		}
	}
	got := make(chan string, 1)
	b := connect(t, addr, "b", keyB)
	if tok := b.Subscribe(iothub.InputFilter("edge1", "b"), 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	a := connect(t, addr, "a", keyA)
	topic := iothub.TelemetryTopic("edge1", "a", iothub.Bag{{Key: "$.on", Value: "o"}})
	if tok := a.Publish(topic, 1, false, "hello"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case m := <-got:
		if m != "hello" {
			t.Fatalf("b received %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b received nothing")
	}
	a.Disconnect(0)
	b.Disconnect(0)
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

func TestRun_BadConfigFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, body string
		want       int
	}{
		{"not JSON", "{", exitUsage},
		{"unknown field", `{"routes": {}}`, exitUsage},
		{"bad edgeHub schema", `{"edgeHub": {"schemaVersion": "9.0", "routes": {}}}`, exitUsage},
		{"route does not compile", `{"edgeHub": {"schemaVersion": "1.1", "routes": {"r": "FROM /messages/* WHERE t > 3 INTO $upstream"}, "storeAndForwardConfiguration": {}}}`, exitError},
		{"invalid identity", `{"identities": [{"deviceId": "a/b", "keys": {"primary": "` + keyA + `"}}]}`, exitError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := filepath.Join(dir, "c.json")
			writeFile(t, cfg, tt.body)
			code := run(context.Background(), []string{"--iothub-hostname", "h", "--edge-device-id", "edge1",
				"--data-dir", filepath.Join(t.TempDir(), "data"), "--tls-addr", "127.0.0.1:0", "--config", cfg, "--metrics-addr", ""},
				func(string) string { return "" }, io.Discard)
			if code != tt.want {
				t.Fatalf("exit code %d, want %d", code, tt.want)
			}
		})
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// readyAddress reads JSON log lines until "edgehub ready" and returns its plain address.
func readyAddress(t *testing.T, r io.Reader) string {
	t.Helper()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var line struct {
				Msg   string `json:"msg"`
				Plain string `json:"plain_address"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "edgehub ready" {
				found <- line.Plain
				return
			}
		}
		close(found)
	}()
	select {
	case addr, ok := <-found:
		if !ok {
			t.Fatal("edgehub exited before it was ready")
		}
		return addr
	case <-time.After(10 * time.Second):
		t.Fatal("edgehub not ready within 10s")
		return ""
	}
}

func connect(t *testing.T, addr, module, key string) paho.Client {
	t.Helper()
	tok, err := sas.Sign("h.azure-devices.net/devices/edge1/modules/"+module, key, "", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID("edge1/" + module).
		SetUsername(iothub.FormatUsername("h.azure-devices.net", "edge1", module, nil)).
		SetPassword(tok).SetAutoReconnect(false))
	if ct := c.Connect(); !ct.WaitTimeout(5*time.Second) || ct.Error() != nil {
		t.Fatalf("connect %s: %v", module, ct.Error())
	}
	return c
}
