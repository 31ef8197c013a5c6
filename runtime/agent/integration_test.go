package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/process"
	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
	"github.com/outpost-edge/outpost/runtime/sas"
)

// testModuleEnv makes the test binary run as a module (see testModule).
const testModuleEnv = "OUTPOST_AGENT_TEST_MODULE"

// The test binary is also the process runtime's supervisor and the module
// the integration test deploys.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == process.SuperviseArg {
		os.Exit(process.SuperviseMain(os.Args[2:]))
	}
	if os.Getenv(testModuleEnv) == "1" {
		os.Exit(testModule())
	}
	os.Exit(m.Run())
}

// testModule is a module that proves its environment works: it connects
// straight to the (fake) IoT Hub with the connection string the agent gave
// it (there is no edge hub in the test, so GatewayHostName is dropped),
// sends one event, and runs until SIGTERM.
func testModule() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	id := os.Getenv(agent.EnvModuleID)
	fmt.Printf("started %s\n", id)
	raw := os.Getenv(agent.EnvEdgeHubConnectionString)
	if raw == "" {
		raw = os.Getenv(agent.EnvIotHubConnectionString)
	}
	cs, err := sas.ParseConnectionString(raw)
	if err != nil {
		fmt.Printf("connection string: %v\n", err)
		return 2
	}
	cs.GatewayHostName = ""
	port := 0
	fmt.Sscan(os.Getenv("OUTPOST_MQTT_PORT"), &port)
	c, err := moduleclient.New(cs, moduleclient.Options{CAFile: os.Getenv(agent.EnvModuleCACertificateFile), Port: port})
	if err != nil {
		fmt.Printf("client: %v\n", err)
		return 2
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := c.Connect(cctx); err != nil {
		fmt.Printf("connect: %v\n", err)
		return 1
	}
	if err := c.SendEvent(cctx, iothub.Message{Body: []byte(`{"from":"` + id + `"}`)}); err != nil {
		fmt.Printf("send: %v\n", err)
		return 1
	}
	fmt.Println("sent")
	<-ctx.Done()
	fmt.Println("stopping")
	return 0
}

// edgeAgentProcess is one agent, as cmd/edgeagent wires it, on a data dir.
type edgeAgentProcess struct {
	rt     *process.Runtime
	client *moduleclient.Client
	db     *agent.StateDB
	stop   func()
}

func startAgent(t *testing.T, s *fakehub.Server, edgeCS, dataDir, imageDir string) *edgeAgentProcess {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rt, err := process.New(process.Options{StateDir: filepath.Join(dataDir, "process"), ImageDir: imageDir, PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	db, err := agent.OpenStateDB(filepath.Join(dataDir, "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	device, err := sas.ParseConnectionString(edgeCS)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := agent.NewHubIdentities(device, "https://"+s.HTTPAddress(), hubClient(t, s), nil)
	if err != nil {
		t.Fatal(err)
	}
	self, err := ids.ConnectionString("$edgeAgent", "")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(s.MQTTAddress())
	client, err := moduleclient.New(self, moduleclient.Options{CAFile: s.CAFile(), Port: atoi(t, port), Logger: logger.With("component", "twin")})
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Options{
		DeviceID:        device.DeviceID,
		IoTHubHostName:  device.HostName,
		GatewayHostName: "localhost",
		ModuleCAFile:    s.CAFile(),
		UpstreamCAFile:  s.CAFile(),
		Period:          200 * time.Millisecond,
		StopTimeout:     5 * time.Second,
		Info:            agent.AgentInfo{Version: "test"},
	}, agent.Deps{Runtime: rt, Twin: client, Identities: ids, State: db, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rtDone, agentDone := make(chan error, 1), make(chan error, 1)
	go func() { rtDone <- rt.Run(ctx) }()
	go func() { agentDone <- a.Run(ctx) }()
	p := &edgeAgentProcess{rt: rt, client: client, db: db}
	stopped := false
	p.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		for _, ch := range []chan error{agentDone, rtDone} {
			select {
			case err := <-ch:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("Run did not return")
			}
		}
		client.Close()
		db.Close()
	}
	t.Cleanup(p.stop)
	return p
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func integrationManifest(t *testing.T, port string, withModule bool) map[string]json.RawMessage {
	t.Helper()
	module := func(order int) map[string]any {
		return map[string]any{
			"version": "1", "type": "docker", "status": "running", "restartPolicy": "always", "startupOrder": order,
			"env":      map[string]any{testModuleEnv: map[string]any{"value": "1"}, "OUTPOST_MQTT_PORT": map[string]any{"value": port}},
			"settings": map[string]any{"image": "localhost:5000/outpost/testmod:1.0", "createOptions": "{}"},
		}
	}
	modules := map[string]any{}
	if withModule {
		modules["testmod"] = module(1)
	}
	agentDesired := map[string]any{
		"schemaVersion": "1.1",
		"runtime":       map[string]any{"type": "docker", "settings": map[string]any{"minDockerVersion": "v1.25"}},
		"systemModules": map[string]any{
			"edgeAgent": map[string]any{"type": "docker", "settings": map[string]any{"image": "outpost/edgeagent:test", "createOptions": ""}},
			"edgeHub":   module(0),
		},
		"modules": modules,
	}
	hubDesired := map[string]any{"schemaVersion": "1.1", "routes": map[string]any{}, "storeAndForwardConfiguration": map[string]any{"timeToLiveSecs": 7200}}
	out := map[string]json.RawMessage{}
	for id, d := range map[string]any{"$edgeAgent": agentDesired, "$edgeHub": hubDesired} {
		b, err := json.Marshal(map[string]any{"properties.desired": d})
		if err != nil {
			t.Fatal(err)
		}
		out[id] = b
	}
	return out
}

// reportedOf reads $edgeAgent's reported properties from the hub.
func reportedOf(t *testing.T, s *fakehub.Server) map[string]any {
	t.Helper()
	tw, err := s.GetTwin("edge1", "$edgeAgent")
	if err != nil {
		t.Fatal(err)
	}
	return tw.Properties.Reported
}

func startedAt(t *testing.T, rt agent.Runtime, module string) (time.Time, agent.State) {
	t.Helper()
	list, err := rt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list {
		if m.Name == module {
			return m.StartedAt, m.State
		}
	}
	return time.Time{}, ""
}

func TestIntegration_AgentFakeHubProcessRuntime(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	s := fakehubtest.New(t)
	_, edgeCS := fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	_, port, _ := net.SplitHostPort(s.MQTTAddress())
	dataDir, imageDir := t.TempDir(), t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(imageDir, "testmod")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // the modules outlive the agents: stop them
		rt, err := process.New(process.Options{StateDir: filepath.Join(dataDir, "process"), ImageDir: imageDir})
		if err != nil {
			t.Error(err)
			return
		}
		ctx := context.Background()
		list, _ := rt.List(ctx)
		for _, m := range list {
			rt.Stop(ctx, m.Name, 5*time.Second)
			rt.Remove(ctx, m.Name)
		}
	})

	a1 := startAgent(t, s, edgeCS, dataDir, imageDir)
	if err := s.ApplyConfigurationContent("edge1", integrationManifest(t, port, true)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "$edgeAgent to report 200 with testmod and edgeHub running", func() bool {
		rep := reportedOf(t, s)
		c, _ := lastStatus(rep)
		return c == "200" && runtimeStatus(rep, "testmod") == "running" && runtimeStatus(rep, "edgeHub") == "running"
	})
	waitFor(t, "events from testmod and $edgeHub, sent with the injected connection strings", func() bool {
		from := map[string]bool{}
		for _, e := range s.Events(0, 100) {
			from[e.DeviceID+"/"+e.ModuleID] = true
		}
		return from["edge1/testmod"] && from["edge1/$edgeHub"]
	})

	t.Run("GetModuleLogs through the hub", func(t *testing.T) {
		// The module prints "sent" after its event is acknowledged, so the hub may have the
		// event a moment before the line is in the log: ask again until it is.
		var items []struct{ ID, Payload string }
		logsHave := func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			resp, err := s.InvokeMethod(ctx, "edge1", "$edgeAgent", fakehub.MethodRequest{MethodName: "GetModuleLogs",
				Payload: json.RawMessage(`{"schemaVersion":"1.0","items":[{"id":"^testmod$","filter":{"tail":10}}],"encoding":"none","contentType":"text"}`)})
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(resp.Payload, &items); err != nil || resp.Status != 200 {
				t.Fatalf("status %d payload %s: %v", resp.Status, resp.Payload, err)
			}
			return len(items) == 1 && items[0].ID == "testmod" && strings.Contains(items[0].Payload, "started testmod\n") && strings.Contains(items[0].Payload, "sent")
		}
		deadline := time.Now().Add(10 * time.Second)
		for !logsHave() {
			if time.Now().After(deadline) {
				t.Fatalf("logs = %+v, want testmod's with \"started testmod\" and \"sent\"", items)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	before, _ := startedAt(t, a1.rt, "testmod")
	a1.stop()
	if _, st := startedAt(t, a1.rt, "testmod"); st != agent.StateRunning {
		t.Fatalf("testmod is %q after the agent stopped, want running", st)
	}
	if c, _ := lastStatus(reportedOf(t, s)); c != "406" {
		t.Errorf("after stop: lastDesiredStatus %s, want 406", c)
	}

	// A second agent on the same data dir adopts the module.
	a2 := startAgent(t, s, edgeCS, dataDir, imageDir)
	waitFor(t, "the second agent to report 200", func() bool {
		c, _ := lastStatus(reportedOf(t, s))
		return c == "200"
	})
	after, st := startedAt(t, a2.rt, "testmod")
	if st != agent.StateRunning || !after.Equal(before) {
		t.Errorf("testmod %s started at %v, want running since %v (adopted, not restarted)", st, after, before)
	}

	// Removed from the deployment: stopped and removed.
	if err := s.ApplyConfigurationContent("edge1", integrationManifest(t, port, false)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "testmod removed", func() bool {
		_, st := startedAt(t, a2.rt, "testmod")
		rep := reportedOf(t, s)
		return st == "" && at(rep, "modules", "testmod") == nil
	})
	if c, desc := lastStatus(reportedOf(t, s)); c != "200" {
		t.Errorf("lastDesiredStatus %s %q after the removal", c, desc)
	}
}
