package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/process"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// The test binary is also the process runtime's supervisor, as the real
// binary is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == process.SuperviseArg {
		os.Exit(process.SuperviseMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func TestParseConfig(t *testing.T) {
	required := []string{"--connection-string-file", "cs.txt"}
	defaults := config{
		connectionStringFile: "cs.txt", dataDir: "./edgeagent-data", runtime: "process", network: "azure-iot-edge", gatewayHostName: "localhost",
		mqttPort: 8883, period: 5 * time.Second, logFormat: "text", logLevel: "info",
		backoff: restart.Policy{Unit: restart.DefaultUnit, Cap: restart.DefaultCap, ResetAfter: restart.DefaultResetAfter},
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(c *config)
		wantErr string
	}{
		{name: "defaults", args: required, want: func(*config) {}},
		{name: "flags", args: append([]string{"--data-dir", "/d", "--runtime", "docker", "--image-dir", "/img",
			"--gateway-hostname", "edge.local", "--parent-hostname", "parent.local", "--ca-file", "ca.pem",
			"--module-ca-file", "edge-ca.pem", "--service-url", "https://127.0.0.1:8443", "--mqtt-port", "18883",
			"--reconcile-period", "1s", "--log-format", "json", "--log-level", "debug"}, required...),
			want: func(c *config) {
				c.dataDir, c.runtime, c.imageDir, c.gatewayHostName, c.parentHostName = "/d", "docker", "/img", "edge.local", "parent.local"
				c.caFile, c.moduleCAFile, c.serviceURL, c.mqttPort = "ca.pem", "edge-ca.pem", "https://127.0.0.1:8443", 18883
				c.period, c.logFormat, c.logLevel = time.Second, "json", "debug"
			}},
		{name: "environment", env: map[string]string{"EDGEAGENT_CONNECTION_STRING_FILE": "/e/cs", "EDGEAGENT_RUNTIME": "docker"},
			want: func(c *config) { c.connectionStringFile, c.runtime = "/e/cs", "docker" }},
		{name: "flag wins over environment", args: append([]string{"--data-dir", "/flag"}, required...), env: map[string]string{"EDGEAGENT_DATA_DIR": "/env"},
			want: func(c *config) { c.dataDir = "/flag" }},
		{name: "restart back-off", args: append([]string{"--restart-backoff-unit", "1s", "--restart-backoff-cap", "16s",
			"--restart-reset-after", "4s", "--restart-max", "5"}, required...),
			want: func(c *config) {
				c.backoff = restart.Policy{Unit: time.Second, Cap: 16 * time.Second, ResetAfter: 4 * time.Second, MaxRestarts: 5}
			}},
		{name: "back-off cap below unit", args: append([]string{"--restart-backoff-unit", "10s", "--restart-backoff-cap", "1s"}, required...), wantErr: "--restart-backoff-cap"},
		{name: "negative restart limit", args: append([]string{"--restart-max", "-1"}, required...), wantErr: "--restart-max"},
		{name: "no connection string", wantErr: "--connection-string-file"},
		{name: "bad runtime", args: append([]string{"--runtime", "podman"}, required...), wantErr: "--runtime"},
		{name: "bad port", args: append([]string{"--mqtt-port", "0"}, required...), wantErr: "--mqtt-port"},
		{name: "bad period", args: append([]string{"--reconcile-period", "-1s"}, required...), wantErr: "--reconcile-period"},
		{name: "bad log format", args: append([]string{"--log-format", "xml"}, required...), wantErr: "--log-format"},
		{name: "bad log level", args: append([]string{"--log-level", "loud"}, required...), wantErr: "--log-level"},
		{name: "bad env value", args: required, env: map[string]string{"EDGEAGENT_MQTT_PORT": "many"}, wantErr: "EDGEAGENT_MQTT_PORT"},
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

func TestReadConnectionString(t *testing.T) {
	const key = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
	for _, tc := range []struct {
		name, content, wantErr string
	}{
		{"device", "HostName=h;DeviceId=edge1;SharedAccessKey=" + key + "\n", ""},
		{"module", "HostName=h;DeviceId=edge1;ModuleId=m;SharedAccessKey=" + key, "edge device"},
		{"service", "HostName=h;SharedAccessKeyName=iothubowner;SharedAccessKey=" + key, "edge device"},
		{"x509", "HostName=h;DeviceId=edge1;x509=true", "no SharedAccessKey"},
		{"garbage", "not a connection string", "connection-string-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cs")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			cs, err := readConnectionString(path)
			if tc.wantErr == "" {
				if err != nil || cs.DeviceID != "edge1" {
					t.Fatalf("= %v, %v", cs.Redacted(), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), key) {
				t.Errorf("error quotes the key: %v", err)
			}
		})
	}
	if _, err := readConnectionString(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file was accepted")
	}
}

func TestRun_BadConnectionStringFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cs")
	os.WriteFile(path, []byte("HostName=h;DeviceId=e;ModuleId=m;SharedAccessKey=a2V5"), 0o600)
	var stderr strings.Builder
	if code := run(context.Background(), []string{"--connection-string-file", path}, func(string) string { return "" }, &stderr); code != exitUsage {
		t.Errorf("exit %d, want %d (%s)", code, exitUsage, stderr.String())
	}
	if strings.Contains(stderr.String(), "a2V5") {
		t.Errorf("the key is in the output: %s", stderr.String())
	}
}

// TestRun_DeploysFromFakeHub runs the command in-process against a fake
// hub with the process runtime: a deployment applied in the hub starts its
// modules and the agent reports 200; cancelling the command leaves them
// running. It runs at --log-level debug, and nothing it writes on stderr
// (nor reports) holds a secret: the device key, a module key, a
// deployment's registry password or a stored login's.
func TestRun_DeploysFromFakeHub(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	sleep, err := execPath("sleep")
	if err != nil {
		t.Skip("no sleep executable:", err)
	}
	s := fakehubtest.New(t)
	_, edgeCS := fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	dir := t.TempDir()
	csFile := filepath.Join(dir, "edge.cs")
	if err := os.WriteFile(csFile, []byte(edgeCS), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	// A registry-style image, so that the deployment's registry
	// credentials are looked up and passed to the pull.
	imageDir := filepath.Join(dir, "images")
	if err := os.MkdirAll(imageDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sleep, filepath.Join(imageDir, "sleeper")); err != nil {
		t.Fatal(err)
	}
	const (
		deploymentPassword = "deployment-registry-password-5f1c"
		loginPassword      = "stored-login-password-9a7e"
	)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := agent.WriteRegistries(filepath.Join(dataDir, agent.RegistriesFile),
		[]agent.RegistryLogin{{Address: "other.example.net", Username: "ops", Password: loginPassword}}); err != nil {
		t.Fatal(err)
	}
	device, err := sas.ParseConnectionString(edgeCS)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"device key": device.SharedAccessKey, "deployment's registry password": deploymentPassword,
		"stored login's password": loginPassword}
	for _, id := range []string{"$edgeAgent", "$edgeHub", "sleeper"} {
		k, err := agent.DeriveModuleKey(device.SharedAccessKey, id)
		if err != nil {
			t.Fatal(err)
		}
		secrets["module key of "+id] = k
	}
	t.Cleanup(func() { // modules outlive the agent: stop them
		rt, err := process.New(process.Options{StateDir: filepath.Join(dataDir, processDir)})
		if err != nil {
			return
		}
		ctx := context.Background()
		list, _ := rt.List(ctx)
		for _, m := range list {
			rt.Stop(ctx, m.Name, 5*time.Second)
			rt.Remove(ctx, m.Name)
		}
	})
	_, port, _ := net.SplitHostPort(s.MQTTAddress())
	args := []string{"--connection-string-file", csFile, "--data-dir", dataDir, "--ca-file", s.CAFile(),
		"--service-url", "https://" + s.HTTPAddress(), "--mqtt-port", port, "--reconcile-period", "200ms", "--log-format", "json", "--log-level", "debug",
		"--image-dir", imageDir}

	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		done <- run(ctx, args, func(string) string { return "" }, pw)
		pw.Close()
	}()
	t.Cleanup(func() { // before the modules are stopped, even on failure
		cancel()
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
		}
	})
	var logs syncBuilder
	ready := make(chan struct{})
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		once := false
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "edgeagent ready" && !once {
				once = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case code := <-done:
		t.Fatalf("edgeagent exited with %d before it was ready", code)
	case <-time.After(20 * time.Second):
		t.Fatal("edgeagent not ready")
	}

	manifest := fmt.Sprintf(`{
	  "$edgeAgent": {"properties.desired": {
	    "schemaVersion": "1.1",
	    "runtime": {"type": "docker", "settings": {"registryCredentials": {"myacr": {
	      "username": "puller", "password": "%[2]s", "address": "myacr.example.net"}}}},
	    "systemModules": {
	      "edgeAgent": {"type": "docker", "settings": {"image": "outpost/edgeagent:dev"}},
	      "edgeHub": {"type": "docker", "status": "running", "restartPolicy": "always",
	                  "settings": {"image": "exec:%[1]s", "createOptions": "{\"Cmd\":[\"300\"]}"}}},
	    "modules": {
	      "sleeper": {"version": "1", "type": "docker", "status": "running", "restartPolicy": "always",
	                  "settings": {"image": "myacr.example.net/sleeper:1", "createOptions": "{\"Cmd\":[\"300\"]}"}}}}},
	  "$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": {}, "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}}}
	}`, sleep, deploymentPassword)
	var content map[string]json.RawMessage
	if err := json.Unmarshal([]byte(manifest), &content); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyConfigurationContent("edge1", content); err != nil {
		t.Fatal(err)
	}
	reported := func() map[string]any {
		tw, err := s.GetTwin("edge1", "$edgeAgent")
		if err != nil {
			t.Fatal(err)
		}
		return tw.Properties.Reported
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		rep := reported()
		status, _ := rep["lastDesiredStatus"].(map[string]any)
		mods, _ := rep["modules"].(map[string]any)
		sleeper, _ := mods["sleeper"].(map[string]any)
		if fmt.Sprint(status["code"]) == "200" && sleeper["runtimeStatus"] == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not deployed; reported %v\nlogs:\n%s", rep, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := s.GetModule("edge1", "sleeper"); err != nil {
		t.Errorf("module identity not created: %v", err)
	}
	rep, err := json.Marshal(reported())
	if err != nil {
		t.Fatal(err)
	}
	for what, secret := range secrets {
		if strings.Contains(string(rep), secret) {
			t.Errorf("the reported properties hold the %s", what)
		}
	}

	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d, want 0", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("edgeagent did not stop")
	}
	<-logsDone // the pipe is closed once run returned
	stderr := logs.String()
	if !strings.Contains(stderr, `"level":"DEBUG"`) || !strings.Contains(stderr, "sleeper") {
		t.Fatalf("stderr has no debug records about the module: the check below would prove nothing:\n%s", stderr)
	}
	for what, secret := range secrets {
		if strings.Contains(stderr, secret) {
			t.Errorf("stderr at --log-level debug holds the %s", what)
		}
	}
	rt, err := process.New(process.Options{StateDir: filepath.Join(dataDir, processDir)})
	if err != nil {
		t.Fatal(err)
	}
	list, err := rt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, m := range list {
		if m.State == agent.StateRunning {
			running++
		}
	}
	if running != 2 {
		t.Errorf("%d modules running after the agent stopped, want 2 (edgeHub, sleeper): %+v", running, list)
	}
}

// syncBuilder is a strings.Builder safe for one writer and one reader.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) WriteString(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(v)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// execPath finds an executable by name in the usual places.
func execPath(name string) (string, error) {
	for _, dir := range []string{"/bin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}
