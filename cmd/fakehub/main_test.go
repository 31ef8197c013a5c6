package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/sas"
)

func TestParseConfig(t *testing.T) {
	defaults := config{
		dataDir: "./fakehub-data", hostname: "localhost", mqttAddr: ":8883", httpAddr: ":8443",
		logFormat: "text", logLevel: "info",
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(c *config)
		wantErr string
	}{
		{name: "defaults", want: func(c *config) {}},
		{name: "flags", args: []string{"--data-dir", "/d", "--hostname", "hub.test", "--mqtt-addr", "127.0.0.1:1",
			"--plain-mqtt-addr", "127.0.0.1:2", "--http-addr", "127.0.0.1:3", "--plain-http-addr=127.0.0.1:4",
			"--log-format", "json", "--log-level", "debug"},
			want: func(c *config) {
				*c = config{dataDir: "/d", hostname: "hub.test", mqttAddr: "127.0.0.1:1", plainMQTTAddr: "127.0.0.1:2",
					httpAddr: "127.0.0.1:3", plainHTTPAddr: "127.0.0.1:4", logFormat: "json", logLevel: "debug"}
			}},
		{name: "environment", env: map[string]string{"FAKEHUB_DATA_DIR": "/e", "FAKEHUB_PLAIN_HTTP_ADDR": ":80", "FAKEHUB_LOG_LEVEL": "warn"},
			want: func(c *config) { c.dataDir, c.plainHTTPAddr, c.logLevel = "/e", ":80", "warn" }},
		{name: "flag wins over environment", args: []string{"-data-dir", "/flag"}, env: map[string]string{"FAKEHUB_DATA_DIR": "/env"},
			want: func(c *config) { c.dataDir = "/flag" }},
		{name: "bad log format", args: []string{"--log-format", "xml"}, wantErr: "--log-format"},
		{name: "bad log level from env", env: map[string]string{"FAKEHUB_LOG_LEVEL": "loud"}, wantErr: "--log-level"},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: "not defined"},
		{name: "positional argument", args: []string{"serve"}, wantErr: "unexpected argument"},
		{name: "empty data dir", args: []string{"--data-dir", ""}, wantErr: "--data-dir"},
		{name: "devices repeated and comma-separated", args: []string{"--device", "a,b", "--device", "c", "--edge-device", "e1"},
			want: func(c *config) { c.devices, c.edgeDevices = []string{"a", "b", "c"}, []string{"e1"} }},
		{name: "help", args: []string{"-h"}, wantErr: flag.ErrHelp.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var usage strings.Builder
			c, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, &usage)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := defaults
			tt.want(&want)
			if !reflect.DeepEqual(c, want) {
				t.Errorf("config = %+v, want %+v", c, want)
			}
		})
	}
}

func TestHelpMentionsEnvironment(t *testing.T) {
	var out strings.Builder
	if code := run(context.Background(), []string{"-h"}, func(string) string { return "" }, &out); code != exitOK {
		t.Fatalf("exit code %d", code)
	}
	if !strings.Contains(out.String(), "FAKEHUB_DATA_DIR") || !strings.Contains(out.String(), "-http-addr") {
		t.Errorf("usage does not list flags and variables:\n%s", out.String())
	}
}

func TestRun_BadFlagIsUsageError(t *testing.T) {
	if code := run(context.Background(), []string{"--log-format", "xml"}, func(string) string { return "" }, io.Discard); code != exitUsage {
		t.Fatalf("exit code %d, want %d", code, exitUsage)
	}
}

// TestRun_ServesAndStops starts the command on random ports, waits for its "fakehub ready"
// log line, checks the health endpoint over HTTPS with the CA it names, then stops it.
func TestRun_ServesAndStops(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		code := run(ctx, []string{"--data-dir", dir, "--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
			"--plain-http-addr", "127.0.0.1:0", "--log-format", "json", "--device", "demo", "--edge-device", "edge1", "--module", "edge1/sensor", "--log-events"},
			func(string) string { return "" }, pw)
		pw.Close()
		done <- code
	}()

	ready := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "fakehub ready" {
				ready <- rec
			}
		}
		close(ready)
	}()
	var rec map[string]any
	select {
	case r, ok := <-ready:
		if !ok {
			t.Fatalf("the command exited before it was ready (exit code %d)", <-done)
		}
		rec = r
	case <-time.After(30 * time.Second):
		t.Fatal("no \"fakehub ready\" log line within 30s")
	}

	caFile, _ := rec["ca_file"].(string)
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatalf("ca_file %q: %v", caFile, err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	if cs, err := os.ReadFile(rec["service_connection_string_file"].(string)); err != nil || !strings.Contains(string(cs), "SharedAccessKeyName=") {
		t.Errorf("service connection string file: %v %q", err, cs)
	}
	for _, id := range []string{"demo", "edge1", "edge1/sensor"} {
		raw, err := os.ReadFile(filepath.Join(dir, "devices", id+".connection-string"))
		if err != nil {
			t.Fatalf("connection string of %s: %v", id, err)
		}
		cs, err := sas.ParseConnectionString(strings.TrimSpace(string(raw)))
		if got := (sas.Identity{DeviceID: cs.DeviceID, ModuleID: cs.ModuleID}).String(); err != nil || got != id || cs.SharedAccessKey == "" {
			t.Errorf("connection string of %s = %+v, %v", id, cs, err)
		}
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12},
	}}
	for _, base := range []string{"https://" + rec["http_address"].(string), "http://" + rec["plain_http_address"].(string)} {
		resp, err := client.Get(base + "/fake/health")
		if err != nil {
			t.Fatalf("GET %s/fake/health: %v", base, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s/fake/health = %d", base, resp.StatusCode)
		}
	}

	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit code %d after cancel, want 0", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the command did not stop within 30s of its context ending")
	}
	// The hub really stopped listening (a fresh transport: no pooled connection).
	client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}}
	if _, err := client.Get("https://" + rec["http_address"].(string) + "/fake/health"); err == nil {
		t.Error("the HTTPS listener still answers after shutdown")
	} else if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the HTTPS listener hangs after shutdown: %v", err)
	}
}
