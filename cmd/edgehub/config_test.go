package main

import (
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/cmd/internal/cli"
	"github.com/outpost-edge/outpost/runtime/hub"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// sampleFile is the documented sample configuration.
const sampleFile = "../../docs/config/edgehub.toml"

// TestSampleConfig fails when docs/config/edgehub.toml misses a setting or documents a
// default other than the flag's, and checks that it loads.
func TestSampleConfig(t *testing.T) {
	if err := cli.CheckSample(newFlagSet(&config{}, io.Discard), settingsOptions(nil), sampleFile); err != nil {
		t.Fatalf("%s is out of date (fix it or the flags):\n%v", sampleFile, err)
	}
	args := []string{"--config-file", sampleFile, "--iothub-hostname", "h", "--edge-device-id", "e"}
	c, err := parseConfig(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want, err := parseConfig(args[2:], func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want.settingsFile = sampleFile
	if c != want {
		t.Errorf("the sample gives\n %+v\nwant the defaults\n %+v", c, want)
	}
}

// TestParseConfig_AgentVariables checks that the variables the edge agent injects into
// edgeHub set the hub's settings below the EDGEHUB_ variables and the flags, and above the
// configuration file.
func TestParseConfig_AgentVariables(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "edgehub.toml")
	writeFile(t, file, `iothub-hostname = "file.azure-devices.net"
edge-device-id = "file-edge"
gateway-hostname = "file.local"
upstream-ca-file = "/file/ca.pem"
certs-dir = "/file/certs"
upstream-port = 1
`)
	agentEnv := map[string]string{
		"IOTEDGE_IOTHUBHOSTNAME":             "contoso.azure-devices.net",
		"IOTEDGE_DEVICEID":                   "edge1",
		"EdgeDeviceHostName":                 "edge1.local",
		"EdgeModuleCACertificateFile":        "/hub/ca.pem",
		"EdgeModuleHubServerCertificateFile": "/device/certs/server.pem",
		"OUTPOST_MQTT_PORT":                  "18883",
		"IOTEDGE_MODULEID":                   "$edgeHub", // read by nobody: harmless
	}
	fromAgent := func(c *config) {
		c.iotHubHostName, c.edgeDeviceID, c.gatewayHostName = "contoso.azure-devices.net", "edge1", "edge1.local"
		c.upstreamCAFile, c.certsDir, c.upstreamPort = "/hub/ca.pem", "/device/certs", 18883
	}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(c *config)
		wantErr []string
	}{
		{name: "agent variables", env: agentEnv, want: fromAgent},
		{name: "agent variables over the file", args: []string{"--config-file", file}, env: agentEnv,
			want: func(c *config) { fromAgent(c); c.settingsFile = file }},
		{name: "file without agent variables", args: []string{"--config-file", file},
			want: func(c *config) {
				c.iotHubHostName, c.edgeDeviceID, c.gatewayHostName = "file.azure-devices.net", "file-edge", "file.local"
				c.upstreamCAFile, c.certsDir, c.upstreamPort, c.settingsFile = "/file/ca.pem", "/file/certs", 1, file
			}},
		{name: "EDGEHUB_ variables over agent variables",
			env: with(agentEnv, "EDGEHUB_GATEWAY_HOSTNAME", "env.local", "EDGEHUB_CERTS_DIR", "/env/certs", "EDGEHUB_UPSTREAM_PORT", "2"),
			want: func(c *config) {
				fromAgent(c)
				c.gatewayHostName, c.certsDir, c.upstreamPort = "env.local", "/env/certs", 2
			}},
		{name: "flags over everything", args: []string{"--gateway-hostname", "cli.local", "--upstream-ca-file", "/cli/ca.pem", "--config-file", file},
			env: with(agentEnv, "EDGEHUB_GATEWAY_HOSTNAME", "env.local"),
			want: func(c *config) {
				fromAgent(c)
				c.gatewayHostName, c.upstreamCAFile, c.settingsFile = "cli.local", "/cli/ca.pem", file
			}},
		{name: "matching server CA chain", env: with(agentEnv, "EdgeModuleHubServerCAChainCertificateFile", "/device/certs/edge-ca.pem"), want: fromAgent},
		{name: "agrees with the connection string", env: with(agentEnv, "IotHubConnectionString", edgeHubCS),
			want: func(c *config) { fromAgent(c); c.upstream = mustConnectionString(t, edgeHubCS) }},
		{name: "server certificate not named server.pem", env: with(agentEnv, "EdgeModuleHubServerCertificateFile", "/device/certs/hub.crt"),
			wantErr: []string{`environment variable EdgeModuleHubServerCertificateFile="/device/certs/hub.crt" (for --certs-dir)`, "server.pem"}},
		{name: "server CA chain elsewhere", env: with(agentEnv, "EdgeModuleHubServerCAChainCertificateFile", "/other/ca.pem"),
			wantErr: []string{"EdgeModuleHubServerCAChainCertificateFile", "/device/certs/edge-ca.pem"}},
		{name: "bad port", env: with(agentEnv, "OUTPOST_MQTT_PORT", "mqtts"), wantErr: []string{"OUTPOST_MQTT_PORT", "--upstream-port"}},
		{name: "port out of range", env: with(agentEnv, "OUTPOST_MQTT_PORT", "70000"),
			wantErr: []string{"--upstream-port 70000", "(--upstream-port from environment variable OUTPOST_MQTT_PORT)"}},
		{name: "disagrees with the connection string", env: with(agentEnv, "IotHubConnectionString", edgeHubCS, "IOTEDGE_DEVICEID", "edge2"),
			wantErr: []string{`--edge-device-id "edge2"`, "(--edge-device-id from environment variable IOTEDGE_DEVICEID)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("parseConfig succeeded with %+v, want an error", c)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err = %v\nwant one mentioning %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := config{dataDir: "./edgehub-data", gatewayHostName: "localhost", tlsAddr: ":8883",
				maxMessageSize: hub.DefaultMaxLocalMessageSize, storeFullPolicy: "reject-new", logFormat: "text",
				logLevel: "info", metricsAddr: "127.0.0.1:9600", upstreamMode: modeExtension}
			tt.want(&want)
			if c != want {
				t.Errorf("config\n got %+v\nwant %+v", c, want)
			}
		})
	}
}

func TestParseConfig_ConfigFileErrors(t *testing.T) {
	tests := []struct {
		name, content string
		wantErr       []string
	}{
		{name: "unknown key", content: "iothub-hostname = \"h\"\nedge-device = \"e\"\n", wantErr: []string{"line 2: edge-device: not a setting"}},
		{name: "env name as key", content: "EDGEHUB_DATA_DIR = \"/d\"\n", wantErr: []string{"did you mean data-dir?"}},
		{name: "wrong type", content: "max-message-size = \"1MB\"\n", wantErr: []string{"line 1: max-message-size: wrong type: want an integer"}},
		{name: "bad duration", content: "identity-refresh = \"daily\"\n", wantErr: []string{"identity-refresh: invalid value \"daily\""}},
		{name: "bad policy", content: "\n\nstore-full-policy = \"drop-newest\"\n",
			wantErr: []string{`--store-full-policy "drop-newest"`, "(--store-full-policy from file ", " line 3)"}},
		{name: "bad mode", content: "upstream-mode = \"relay\"\n", wantErr: []string{`--upstream-mode "relay"`, "(--upstream-mode from file "}},
		{name: "the file names itself", content: "config-file = \"x.toml\"\n", wantErr: []string{"config-file: cannot be set"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "edgehub.toml")
			writeFile(t, file, tt.content)
			_, err := parseConfig([]string{"--config-file", file, "--iothub-hostname", "h", "--edge-device-id", "e"},
				func(string) string { return "" }, io.Discard)
			if err == nil {
				t.Fatal("parseConfig succeeded, want an error")
			}
			for _, w := range append([]string{file}, tt.wantErr...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant one mentioning %q", err, w)
				}
			}
		})
	}
}

func TestPrintConfig(t *testing.T) {
	c, s, err := loadConfig([]string{"--print-config", "--pprof-addr", "127.0.0.1:6060"},
		func(k string) string {
			return map[string]string{"IotHubConnectionString": edgeHubCS, "EdgeDeviceHostName": "edge1.local"}[k]
		}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.printConfig {
		t.Fatal("--print-config not set")
	}
	var out strings.Builder
	if err := s.WriteTOML(&out, "edgehub configuration"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`iothub-hostname = "contoso.azure-devices.net"  # environment variable IotHubConnectionString`,
		`edge-device-id = "edge1"  # environment variable IotHubConnectionString`,
		`gateway-hostname = "edge1.local"  # environment variable EdgeDeviceHostName`,
		`pprof-addr = "127.0.0.1:6060"  # command line`,
		`tls-addr = ":8883"  # default`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--print-config output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), keyA) {
		t.Errorf("--print-config shows the key:\n%s", out.String())
	}
}

func TestStartPprof(t *testing.T) {
	stop, err := startPprof("", nil)
	if err != nil {
		t.Fatalf("disabled: %v", err)
	}
	stop()

	if _, err := startPprof("127.0.0.1:-1", discardLogger()); err == nil || !strings.Contains(err.Error(), "--pprof-addr") {
		t.Fatalf("bad address: err = %v, want one naming --pprof-addr", err)
	}

	logs := &strings.Builder{}
	stop, err = startPprof("127.0.0.1:0", textLogger(logs))
	if err != nil {
		t.Fatal(err)
	}
	addr := between(logs.String(), "address=http://", "/debug/pprof/")
	if addr == "" {
		stop()
		t.Fatalf("no address logged: %s", logs)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1", "/debug/pprof/heap"} {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", path, resp.StatusCode)
		}
	}
	stop()
	client.Transport = &http.Transport{} // no pooled connection
	if _, err := client.Get("http://" + addr + "/debug/pprof/"); err == nil {
		t.Error("the profiling endpoints still answer after stop")
	}
}

// between returns the text of s between the first before and the next after; "" when
// absent.
func between(s, before, after string) string {
	_, rest, ok := strings.Cut(s, before)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, after)
	return v
}

func mustConnectionString(t *testing.T, s string) sas.ConnectionString {
	t.Helper()
	cs, err := sas.ParseConnectionString(s)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func textLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
