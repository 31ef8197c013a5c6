package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/sas"
)

func TestEffectiveConfig(t *testing.T) {
	const key = "c2VjcmV0LWtleS1vZi1lZGdlMQ=="
	cs, err := sas.ParseConnectionString("HostName=hub.example.net;DeviceId=edge1;SharedAccessKey=" + key)
	if err != nil {
		t.Fatal(err)
	}
	c := config{connectionStringFile: "cs.txt", dataDir: "data", runtime: "process", gatewayHostName: "edge.local",
		mqttPort: 8883, period: 5 * time.Second, logFormat: "text", logLevel: "info"}
	ec := effectiveConfig(c, cs, "https://hub.example.net", "1.0", time.Unix(0, 0))
	if !filepath.IsAbs(ec.DataDir) || !filepath.IsAbs(ec.ConnectionStringFile) || ec.CAFile != "" {
		t.Errorf("paths = %q %q %q, want absolute (and empty kept empty)", ec.DataDir, ec.ConnectionStringFile, ec.CAFile)
	}
	if ec.DeviceID != "edge1" || ec.IoTHubHostName != "hub.example.net" || ec.ReconcilePeriod != "5s" || ec.MQTTPort != 8883 {
		t.Errorf("config = %+v", ec)
	}
	dir := t.TempDir()
	if err := writeConfigFile(dir, ec); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, agent.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), key) {
		t.Errorf("config.json holds the device key:\n%s", b)
	}
	var back agent.EffectiveConfig
	if err := json.Unmarshal(b, &back); err != nil || back != ec {
		t.Errorf("config.json = %+v, %v; want %+v", back, err, ec)
	}
}

// The command serves the management API on <data-dir>/mgmt.sock and writes
// config.json, and removes the socket when it stops.
func TestRun_ServesManagementAPI(t *testing.T) {
	s := fakehubtest.New(t)
	_, edgeCS := fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	dir := t.TempDir()
	csFile := filepath.Join(dir, "edge.cs")
	if err := os.WriteFile(csFile, []byte(edgeCS), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	_, port, _ := net.SplitHostPort(s.MQTTAddress())
	args := []string{"--connection-string-file", csFile, "--data-dir", dataDir, "--ca-file", s.CAFile(),
		"--service-url", "https://" + s.HTTPAddress(), "--mqtt-port", port, "--reconcile-period", "200ms"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, func(string) string { return "" }, io.Discard) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("edgeagent did not stop")
		}
	}
	t.Cleanup(stop)

	sock := filepath.Join(dataDir, agent.ManagementSocket)
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	var st agent.AgentStatus
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get("http://agent/status")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err == nil && st.Hub.State == agent.HubConnected {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connected agent on %s: %v %+v", sock, err, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.DeviceID != "edge1" || st.Runtime != "process" || st.DataDir == "" {
		t.Errorf("status = %+v", st)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket = %v, %v; want mode 0600", fi, err)
	}
	ec, err := os.ReadFile(filepath.Join(dataDir, agent.ConfigFile))
	if err != nil || !strings.Contains(string(ec), `"deviceId": "edge1"`) {
		t.Errorf("config.json = %s, %v", ec, err)
	}
	stop()
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after stop: %v", err)
	}
}
