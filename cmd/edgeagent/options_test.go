package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/outpost-edge/outpost/runtime/sas"
)

// TestAgentOptions checks that what the agent passes on to edgeHub comes
// from its own settings: the hub's port and the certificates directory,
// made absolute.
func TestAgentOptions(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	device := sas.ConnectionString{HostName: "hub.example.net", DeviceID: "edge1", SharedAccessKey: "a2V5"}
	tests := []struct {
		name         string
		args         []string
		wantPort     int
		wantCertsDir string
	}{
		{name: "defaults", wantPort: 8883, wantCertsDir: ""},
		{name: "flags", args: []string{"--mqtt-port", "18883", "--certs-dir", "/var/lib/outpost/certs"},
			wantPort: 18883, wantCertsDir: "/var/lib/outpost/certs"},
		{name: "relative certs dir", args: []string{"--certs-dir", "data/certs"},
			wantPort: 8883, wantCertsDir: filepath.Join(wd, "data", "certs")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--connection-string-file", "cs.txt", "--ca-file", "/hub-ca.pem"}, tc.args...)
			c, err := parseConfig(args, func(string) string { return "" }, os.Stderr)
			if err != nil {
				t.Fatal(err)
			}
			o := agentOptions(c, device)
			if o.UpstreamPort != tc.wantPort || o.EdgeHubCertsDir != tc.wantCertsDir {
				t.Errorf("UpstreamPort, EdgeHubCertsDir = %d, %q; want %d, %q", o.UpstreamPort, o.EdgeHubCertsDir, tc.wantPort, tc.wantCertsDir)
			}
			if o.DeviceID != "edge1" || o.IoTHubHostName != "hub.example.net" || o.UpstreamCAFile != "/hub-ca.pem" || o.GatewayHostName != "localhost" {
				t.Errorf("DeviceID, IoTHubHostName, UpstreamCAFile, GatewayHostName = %q, %q, %q, %q; want the device's and the flags'",
					o.DeviceID, o.IoTHubHostName, o.UpstreamCAFile, o.GatewayHostName)
			}
		})
	}
}
