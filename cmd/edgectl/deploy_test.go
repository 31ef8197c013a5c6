package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/agenttest"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// hubFixture is a fake hub with an edge device, and the flags deploy needs.
type hubFixture struct {
	s        *fakehub.Server
	deviceCS string
	args     []string // --service-connection-string-file ... --service-url ... --ca-file ... --device edge1
}

func newHubFixture(t *testing.T) hubFixture {
	t.Helper()
	s := fakehubtest.New(t)
	_, cs := fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	csFile := filepath.Join(t.TempDir(), "service-cs")
	if err := os.WriteFile(csFile, []byte(s.ServiceConnectionString()), 0o600); err != nil {
		t.Fatal(err)
	}
	return hubFixture{s: s, deviceCS: cs, args: []string{"--service-connection-string-file", csFile,
		"--service-url", "https://" + s.HTTPAddress(), "--ca-file", s.CAFile(), "--device", "edge1"}}
}

func TestDeploy_InvalidManifest(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"modulesContent":{"$edgeAgent":{"properties.desired":{"schemaVersion":"1.1"}}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, env{}, "--data-dir", dir, "deploy", bad, "--service-connection-string-file", filepath.Join(dir, "unused"), "--device", "edge1")
	if code != 1 || out != "" || !strings.Contains(errOut, "bad.json is not a valid deployment (the agent would answer 400): modulesContent.$edgeHub: required") {
		t.Errorf("deploy = %d %q %q", code, out, errOut)
	}
}

func TestDeploy_HubRefuses(t *testing.T) {
	h := newHubFixture(t)
	args := append([]string{"--data-dir", t.TempDir(), "deploy", "testdata/manifest.json"}, h.args...)
	args[len(args)-1] = "no-such-device"
	code, _, errOut := cli(t, env{}, args...)
	if code != 1 || !strings.Contains(errOut, "404") || !strings.Contains(errOut, "DeviceNotFound") {
		t.Errorf("deploy = %d %q", code, errOut)
	}
}

// Without an agent nothing ever reports: deploy sends the deployment, waits
// and gives up with exit 3.
func TestDeploy_Timeout(t *testing.T) {
	h := newHubFixture(t)
	args := append([]string{"--data-dir", t.TempDir(), "deploy", "testdata/manifest.json", "--timeout", "300ms", "--poll-interval", "20ms"}, h.args...)
	code, out, errOut := cli(t, env{}, args...)
	if code != exitTimeout || !strings.Contains(out, "Deployed manifest.json to edge1: desired version") || !strings.Contains(out, "not done after 300ms") {
		t.Errorf("deploy = %d\n%s\n%s", code, out, errOut)
	}
	tw, err := h.s.GetTwin("edge1", "$edgeAgent")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tw.Properties.Desired["modules"]; !ok {
		t.Errorf("the $edgeAgent twin did not get the deployment: %+v", tw.Properties.Desired)
	}
}

// startRealAgent runs an agent.Agent as cmd/edgeagent wires it, on a fake
// runtime, connected to the fake hub.
func startRealAgent(t *testing.T, s *fakehub.Server, deviceCS string, rt agent.Runtime) {
	t.Helper()
	device, err := sas.ParseConnectionString(deviceCS)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(s.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	ids, err := agent.NewHubIdentities(device, "https://"+s.HTTPAddress(), client, nil)
	if err != nil {
		t.Fatal(err)
	}
	self, err := ids.ConnectionString("$edgeAgent", "")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(s.MQTTAddress())
	p, _ := strconv.Atoi(port)
	twin, err := moduleclient.New(self, moduleclient.Options{CAFile: s.CAFile(), Port: p})
	if err != nil {
		t.Fatal(err)
	}
	db, err := agent.OpenStateDB(filepath.Join(t.TempDir(), "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Options{DeviceID: device.DeviceID, IoTHubHostName: device.HostName, GatewayHostName: "localhost",
		Period: 100 * time.Millisecond, Info: agent.AgentInfo{Version: "test"}},
		agent.Deps{Runtime: rt, Twin: twin, Identities: ids, State: db})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
		twin.Close()
		db.Close()
	})
}

// syncWriter is a buffer safe to read while edgectl writes to it.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// The whole path: edgectl deploy validates the manifest, applies it through
// the fake hub's service API, the real agent reads it from its twin, pulls
// and starts the modules on a fake runtime and reports, and edgectl follows
// the reported properties until every module runs.
func TestDeploy_EndToEnd(t *testing.T) {
	h := newHubFixture(t)
	rt := &agenttest.FakeRuntime{Progress: []agent.PullProgress{{Layer: "l1", Status: "Downloading", Current: 10, Total: 100}}}
	startRealAgent(t, h.s, h.deviceCS, rt)

	var stdout, stderr syncWriter
	args := append([]string{"--data-dir", t.TempDir(), "deploy", "testdata/manifest.json", "--timeout", "60s", "--poll-interval", "50ms"}, h.args...)
	code := run(context.Background(), args, env{Stdout: &stdout, Stderr: &stderr})
	out := stdout.String()
	if code != 0 {
		t.Fatalf("deploy = %d\n%s\n%s", code, out, stderr.String())
	}
	for _, s := range []string{"Deployed manifest.json to edge1", "tempSensor: running", "edgeHub: running", "every module is as desired"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	for _, m := range []string{"edgeHub", "tempSensor"} {
		if st, _, ok := rt.Module(m); !ok || st.State != agent.StateRunning {
			t.Errorf("%s = %+v, %v; want running", m, st, ok)
		}
	}

	// The same deployment again, in JSON: the agent is already there.
	code, jsonOut, errOut := cli(t, env{}, append([]string{"--data-dir", t.TempDir(), "-o", "json", "deploy", "testdata/manifest.json", "--timeout", "60s", "--poll-interval", "50ms"}, h.args...)...)
	if code != 0 || !strings.Contains(jsonOut, `"result": "succeeded"`) {
		t.Errorf("json deploy = %d %s %s", code, jsonOut, errOut)
	}
}

// stubTwins answers ModuleTwin from a list of reported sections, one per
// call, repeating the last.
type stubTwins struct {
	mu      sync.Mutex
	reports []string
	calls   int
	err     error
}

func (s *stubTwins) ModuleTwin(ctx context.Context, device, module string) (moduleTwin, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.err; err != nil {
		s.err = nil // fails once
		return moduleTwin{}, err
	}
	i := min(s.calls, len(s.reports)-1)
	s.calls++
	var t moduleTwin
	t.Properties.Reported = report2map(s.reports[i])
	return t, nil
}

func report2map(doc string) map[string]any {
	var m map[string]any
	dec := jsonDecoder(doc)
	if err := dec.Decode(&m); err != nil {
		panic(err)
	}
	return m
}

func TestFollowDeploy(t *testing.T) {
	want := []expectedModule{{Name: "edgeHub", Image: "hub:1", Status: "running"}, {Name: "sensor", Image: "sensor:1", Status: "running"}}
	head := `{"$version":9,"lastDesiredVersion":3,"lastDesiredStatus":{"code":200},`
	tw := &stubTwins{err: errors.New("hub busy"), reports: []string{
		`{"$version":1,"lastDesiredVersion":2,"lastDesiredStatus":{"code":200}}`,
		head + `"systemModules":{"edgeHub":{"runtimeStatus":"downloading","statusDescription":"pulling hub:1"}},"modules":{"sensor":{"runtimeStatus":"unknown"}}}`,
		head + `"systemModules":{"edgeHub":{"runtimeStatus":"running"}},"modules":{"sensor":{"runtimeStatus":"downloading"}}}`,
		head + `"systemModules":{"edgeHub":{"runtimeStatus":"running"}},"modules":{"sensor":{"runtimeStatus":"running"}}}`,
	}}
	var w bytes.Buffer
	st, err := followDeploy(context.Background(), tw, "edge1", want, 3, 1, deployOptions{timeout: 10 * time.Second, pollInterval: time.Millisecond}, &w)
	if err != nil || st.Phase != phaseSucceeded {
		t.Fatalf("followDeploy = %+v, %v\n%s", st, err, w.String())
	}
	for _, s := range []string{
		"cannot read the $edgeAgent twin (retrying): hub busy",
		"waiting for the agent to take version 3 (it runs version 2)",
		"edgeHub: downloading (pulling hub:1)",
		"[------------------------------] 0/2 module(s) ready, 1 downloading",
		"[###############---------------] 1/2 module(s) ready, 1 downloading",
		"sensor: running",
	} {
		if !strings.Contains(w.String(), s) {
			t.Errorf("progress lacks %q:\n%s", s, w.String())
		}
	}

	// A report that never changes times out.
	stuck := &stubTwins{reports: []string{`{"$version":1,"lastDesiredVersion":2,"lastDesiredStatus":{"code":200}}`}}
	_, err = followDeploy(context.Background(), stuck, "edge1", want, 3, 1, deployOptions{timeout: 50 * time.Millisecond, pollInterval: 5 * time.Millisecond}, &bytes.Buffer{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stuck followDeploy = %v, want a deadline", err)
	}
	// An interrupt is not a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = followDeploy(ctx, stuck, "edge1", want, 3, 1, deployOptions{timeout: time.Minute, pollInterval: time.Millisecond}, &bytes.Buffer{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled followDeploy = %v", err)
	}
}

func jsonDecoder(doc string) *json.Decoder {
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	return dec
}
