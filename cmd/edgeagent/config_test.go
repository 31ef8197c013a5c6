package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/cmd/internal/cli"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
)

// sampleFile is the documented sample configuration.
const sampleFile = "../../docs/config/edgeagent.toml"

// TestSampleConfig fails when docs/config/edgeagent.toml misses a setting
// or documents a default other than the flag's, and checks that it loads.
func TestSampleConfig(t *testing.T) {
	if err := cli.CheckSample(newFlagSet(&config{}, io.Discard), settingsOptions(nil), sampleFile); err != nil {
		t.Fatalf("%s is out of date (fix it or the flags):\n%v", sampleFile, err)
	}
	args := []string{"--config-file", sampleFile, "--connection-string-file", "cs"}
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

func TestParseConfig_Layers(t *testing.T) {
	dir := t.TempDir()
	toml := writeConfig(t, dir, "edgeagent.toml", `connection-string-file = "/toml/cs"
data-dir = "/toml/data"
runtime = "docker"
mqtt-port = 1001
reconcile-period = "3s"
restart-max = 7
`)
	edgeJSON := writeConfig(t, dir, "edge.json", `{"schemaVersion": "1", "agent": {"data-dir": "/json/data", "mqtt-port": 2002}}`)
	base := config{
		dataDir: "./edgeagent-data", runtime: "process", network: "azure-iot-edge", gatewayHostName: "localhost", mqttPort: 8883, period: 5 * time.Second,
		logFormat: "text", logLevel: "info",
		backoff: restart.Policy{Unit: restart.DefaultUnit, Cap: restart.DefaultCap, ResetAfter: restart.DefaultResetAfter},
	}
	fromTOML := func(c *config) {
		c.settingsFile, c.connectionStringFile, c.dataDir, c.runtime, c.mqttPort = toml, "/toml/cs", "/toml/data", "docker", 1001
		c.period, c.backoff.MaxRestarts = 3*time.Second, 7
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(c *config)
	}{
		{name: "TOML file", args: []string{"--config-file", toml}, want: fromTOML},
		{name: "TOML file from the environment", env: map[string]string{"EDGEAGENT_CONFIG_FILE": toml}, want: fromTOML},
		{name: "edge.json over the TOML file", args: []string{"--config-file", toml, "--config", edgeJSON},
			want: func(c *config) { fromTOML(c); c.configFile, c.dataDir, c.mqttPort = edgeJSON, "/json/data", 2002 }},
		{name: "environment over edge.json", args: []string{"--config-file", toml, "--config", edgeJSON},
			env: map[string]string{"EDGEAGENT_MQTT_PORT": "3003", "EDGEAGENT_RESTART_MAX": "1"},
			want: func(c *config) {
				fromTOML(c)
				c.configFile, c.dataDir, c.mqttPort, c.backoff.MaxRestarts = edgeJSON, "/json/data", 3003, 1
			}},
		{name: "command line over everything", args: []string{"--config-file", toml, "--config", edgeJSON, "--mqtt-port", "4004", "--runtime", "process"},
			env: map[string]string{"EDGEAGENT_MQTT_PORT": "3003"},
			want: func(c *config) {
				fromTOML(c)
				c.configFile, c.dataDir, c.mqttPort, c.runtime = edgeJSON, "/json/data", 4004, "process"
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			want := base
			tt.want(&want)
			if c != want {
				t.Errorf("config\n got %+v\nwant %+v", c, want)
			}
		})
	}
}

func TestParseConfig_TOMLErrors(t *testing.T) {
	tests := []struct {
		name, content string
		args          []string
		wantErr       []string
	}{
		{name: "unknown key", content: "connection-string-file = \"/cs\"\nreconcile = \"1s\"\n", wantErr: []string{"line 2: reconcile: not a setting"}},
		{name: "wrong type", content: "mqtt-port = \"8883\"\n", wantErr: []string{"line 1: mqtt-port: wrong type: want an integer, not the string \"8883\""}},
		{name: "duration as a number", content: "restart-backoff-cap = 300\n", wantErr: []string{"restart-backoff-cap: wrong type: want a duration"}},
		{name: "bad duration", content: "reconcile-period = \"often\"\n", wantErr: []string{"reconcile-period: invalid value \"often\""}},
		{name: "edge.json cannot come from the TOML file", content: "config = \"/edge.json\"\n", wantErr: []string{"config: cannot be set in the configuration file"}},
		{name: "start time cannot come from the TOML file", content: "runtime-start-time = \"2026-01-01T00:00:00Z\"\n", wantErr: []string{"runtime-start-time: cannot be set"}},
		{name: "invalid value, validated after the file", content: "connection-string-file = \"/cs\"\n\nruntime = \"podman\"\n",
			wantErr: []string{`--runtime "podman": want process or docker (--runtime from file `, " line 3)"}},
		{name: "checked even when overridden", content: "mqtt-port = \"x\"\n", args: []string{"--mqtt-port", "1"}, wantErr: []string{"mqtt-port: wrong type"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeConfig(t, t.TempDir(), "edgeagent.toml", tt.content)
			_, err := parseConfig(append([]string{"--config-file", file}, tt.args...),
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

func TestParseConfig_EdgeJSONNamesNoFiles(t *testing.T) {
	for _, key := range []string{"config", "config-file", "print-config"} {
		t.Run(key, func(t *testing.T) {
			p := writeConfig(t, t.TempDir(), "edge.json", `{"agent": {"connection-string-file": "/cs", "`+key+`": "x"}}`)
			if _, err := parseConfig([]string{"--config", p}, func(string) string { return "" }, io.Discard); err == nil ||
				!strings.Contains(err.Error(), "agent."+key+" is not a setting") {
				t.Fatalf("err = %v, want agent.%s refused", err, key)
			}
		})
	}
}

func TestPrintConfig(t *testing.T) {
	dir := t.TempDir()
	toml := writeConfig(t, dir, "edgeagent.toml", "restart-max = 3\n")
	edgeJSON := writeConfig(t, dir, "edge.json", `{"agent": {"connection-string-file": "/cs", "gateway-hostname": "edge1.local"}}`)
	c, s, err := loadConfig([]string{"--config", edgeJSON, "--config-file", toml, "--print-config"},
		func(k string) string { return map[string]string{"EDGEAGENT_RUNTIME": "docker"}[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.printConfig {
		t.Fatal("--print-config not set")
	}
	var out strings.Builder
	if err := s.WriteTOML(&out, "edgeagent configuration"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"restart-max = 3  # file " + toml + " line 1",
		`gateway-hostname = "edge1.local"  # file ` + edgeJSON,
		`runtime = "docker"  # environment variable EDGEAGENT_RUNTIME`,
		`mqtt-port = 8883  # default`,
		`# config = "` + edgeJSON + `"  # command line`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--print-config output lacks %q:\n%s", want, out.String())
		}
	}
	// run prints and exits without starting the agent: no connection string is read.
	if code := run(context.Background(), []string{"--print-config", "--connection-string-file", filepath.Join(dir, "nope")},
		func(string) string { return "" }, io.Discard); code != exitOK {
		t.Errorf("run --print-config = %d, want %d", code, exitOK)
	}
}

func writeConfig(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDockerSettings follows --network and --require-digest from every
// source to the Docker runtime's options: edgectl setup --network writes
// agent.network to edge.json, and modules must land on that network, not
// on azure-iot-edge.
func TestDockerSettings(t *testing.T) {
	dir := t.TempDir()
	edgeJSON := writeConfig(t, dir, "edge.json", `{"schemaVersion": "1", "agent": {"connection-string-file": "/cs", "runtime": "docker", "network": "plant-net"},
	  "docker": {"agentImage": "outpost/edgeagent:dev", "agentNetwork": "host"}}`)
	toml := writeConfig(t, dir, "edgeagent.toml", "connection-string-file = \"/cs\"\nruntime = \"docker\"\nnetwork = \"site-net\"\nrequire-digest = true\n")
	tests := []struct {
		name        string
		args        []string
		env         map[string]string
		wantNetwork string
		wantDigest  bool
		wantErr     string
	}{
		{name: "defaults", args: []string{"--connection-string-file", "/cs", "--runtime", "docker"}, wantNetwork: "azure-iot-edge"},
		{name: "flags", args: []string{"--connection-string-file", "/cs", "--runtime", "docker", "--network", "n1", "--require-digest"},
			wantNetwork: "n1", wantDigest: true},
		{name: "environment", args: []string{"--connection-string-file", "/cs", "--runtime", "docker"},
			env: map[string]string{"EDGEAGENT_NETWORK": "n2", "EDGEAGENT_REQUIRE_DIGEST": "true"}, wantNetwork: "n2", wantDigest: true},
		{name: "edge.json as edgectl setup writes it", args: []string{"--config", edgeJSON}, wantNetwork: "plant-net"},
		{name: "TOML file", args: []string{"--config-file", toml}, wantNetwork: "site-net", wantDigest: true},
		{name: "edge.json over the TOML file", args: []string{"--config-file", toml, "--config", edgeJSON}, wantNetwork: "plant-net", wantDigest: true},
		{name: "digest policy on the process runtime", args: []string{"--connection-string-file", "/cs", "--require-digest"},
			wantErr: "--require-digest applies to the docker runtime only"},
		{name: "empty network", args: []string{"--connection-string-file", "/cs", "--runtime", "docker", "--network", " "},
			wantErr: "--network must not be empty"},
		{name: "bad boolean", args: []string{"--connection-string-file", "/cs", "--runtime", "docker"},
			env: map[string]string{"EDGEAGENT_REQUIRE_DIGEST": "sometimes"}, wantErr: "EDGEAGENT_REQUIRE_DIGEST"},
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
			o := dockerOptions(c, nil)
			if o.Network != tt.wantNetwork || o.RequireDigest != tt.wantDigest || o.GatewayHostName != c.gatewayHostName {
				t.Errorf("docker.Options Network %q, RequireDigest %v, GatewayHostName %q; want %q, %v, %q",
					o.Network, o.RequireDigest, o.GatewayHostName, tt.wantNetwork, tt.wantDigest, c.gatewayHostName)
			}
		})
	}
}
