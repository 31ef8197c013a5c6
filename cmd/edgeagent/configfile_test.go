package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
)

func TestParseConfig_ConfigFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("edge.json", `{"schemaVersion": "1", "runtime": "ignored: edgectl's",
	  "agent": {"connection-string-file": "/etc/cs", "data-dir": "/var/lib/outpost", "runtime": "docker",
	            "mqtt-port": 18883, "reconcile-period": "2s", "gateway-hostname": "edge1.local"},
	  "certificates": {"dir": "/var/lib/outpost/certs"}}`)
	fromFile := config{
		connectionStringFile: "/etc/cs", dataDir: "/var/lib/outpost", runtime: "docker", network: "azure-iot-edge", gatewayHostName: "edge1.local",
		mqttPort: 18883, period: 2 * time.Second, logFormat: "text", logLevel: "info", configFile: good,
		backoff: restart.Policy{Unit: restart.DefaultUnit, Cap: restart.DefaultCap, ResetAfter: restart.DefaultResetAfter},
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(c *config)
		wantErr string
	}{
		{name: "file sets flags", args: []string{"--config", good}, want: func(*config) {}},
		{name: "file from the environment", env: map[string]string{"EDGEAGENT_CONFIG": good}, want: func(*config) {}},
		{name: "environment wins over file", args: []string{"--config", good}, env: map[string]string{"EDGEAGENT_RUNTIME": "process"},
			want: func(c *config) { c.runtime = "process" }},
		{name: "flag wins over file", args: []string{"--config", good, "--mqtt-port", "8883", "--data-dir", "/d"},
			want: func(c *config) { c.mqttPort, c.dataDir = 8883, "/d" }},
		{name: "runtime start time", args: []string{"--config", good, "--runtime-start-time", "2026-03-01T12:00:00Z"},
			want: func(c *config) { c.runtimeStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }},
		{name: "bad runtime start time", args: []string{"--config", good, "--runtime-start-time", "yesterday"}, wantErr: "RFC 3339"},
		{name: "missing file", args: []string{"--config", filepath.Join(dir, "nope.json")}, wantErr: "--config"},
		{name: "not json", args: []string{"--config", write("bad.json", "{")}, wantErr: "not a JSON configuration file"},
		{name: "no agent object", args: []string{"--config", write("empty.json", `{"schemaVersion": "1"}`)}, wantErr: `no "agent" object`},
		{name: "other schema", args: []string{"--config", write("v2.json", `{"schemaVersion": "2", "agent": {}}`)}, wantErr: "schemaVersion"},
		{name: "unknown setting", args: []string{"--config", write("unknown.json", `{"agent": {"connection-string-file": "/cs", "colour": "blue"}}`)},
			wantErr: "agent.colour is not a setting"},
		{name: "config in config", args: []string{"--config", write("loop.json", `{"agent": {"config": "/other.json"}}`)}, wantErr: "agent.config is not a setting"},
		{name: "object value", args: []string{"--config", write("obj.json", `{"agent": {"connection-string-file": {"a": 1}}}`)},
			wantErr: "want a string, a number or a boolean"},
		{name: "invalid value", args: []string{"--config", write("port.json", `{"agent": {"connection-string-file": "/cs", "mqtt-port": "many"}}`)},
			wantErr: "agent.mqtt-port"},
		{name: "validated after the file", args: []string{"--config", write("zero.json", `{"agent": {"connection-string-file": "/cs", "mqtt-port": 0}}`)},
			wantErr: "--mqtt-port 0"},
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
			want := fromFile
			tt.want(&want)
			if c != want {
				t.Fatalf("config\n got %+v\nwant %+v", c, want)
			}
		})
	}
}

func TestLater(t *testing.T) {
	a, b := time.Unix(100, 0), time.Unix(200, 0)
	for _, tc := range []struct {
		name       string
		x, y, want time.Time
	}{
		{"second later", a, b, b},
		{"first later", b, a, b},
		{"zero second", a, time.Time{}, a},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := later(tc.x, tc.y); !got.Equal(tc.want) {
				t.Errorf("later = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLoginsFile_ReloadsOnChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), agent.RegistriesFile)
	l := &loginsFile{path: path, log: slog.New(slog.DiscardHandler)}
	if got := l.Logins(); len(got) != 0 {
		t.Fatalf("no file: %v", got)
	}
	one := []agent.RegistryLogin{{Address: "a.io", Username: "u", Password: "p-one"}}
	if err := agent.WriteRegistries(path, one); err != nil {
		t.Fatal(err)
	}
	if got := l.Logins(); len(got) != 1 || got[0].Password != "p-one" {
		t.Fatalf("after login: %v", got)
	}
	// A broken file keeps the last good logins.
	if err := os.WriteFile(path, []byte("{broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := l.Logins(); len(got) != 1 || got[0].Password != "p-one" {
		t.Fatalf("after a broken write: %v", got)
	}
	two := append(one, agent.RegistryLogin{Address: "b.io", Username: "v", Password: "p-two-longer"})
	if err := agent.WriteRegistries(path, two); err != nil {
		t.Fatal(err)
	}
	if got := l.Logins(); len(got) != 2 {
		t.Fatalf("after a second login: %v", got)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got := l.Logins(); len(got) != 0 {
		t.Fatalf("after removal: %v", got)
	}
}
