package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"

	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/agenttest"
)

// cli runs edgectl with args and returns its exit code and output.
func cli(t *testing.T, e env, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e.Stdout, e.Stderr = &stdout, &stderr
	code := run(context.Background(), args, e)
	return code, stdout.String(), stderr.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testConfig is an agent configuration for a data directory.
func testConfig(dataDir string) agent.EffectiveConfig {
	return agent.EffectiveConfig{
		ConnectionStringFile: filepath.Join(dataDir, "device-connection-string"),
		DeviceID:             "edge1", IoTHubHostName: "localhost", DataDir: dataDir, Runtime: "process",
		GatewayHostName: "localhost", ServiceURL: "https://localhost", MQTTPort: 8883, ReconcilePeriod: "5s",
		LogFormat: "text", LogLevel: "info", Version: "test",
	}
}

// writeConfig writes config.json as the agent does.
func writeConfig(t *testing.T, ec agent.EffectiveConfig) {
	t.Helper()
	b, err := json.Marshal(ec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ec.DataDir, agent.ConfigFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// startAPI serves the management API of rt (and a, when not nil) on
// <dataDir>/mgmt.sock until the test ends.
func startAPI(t *testing.T, dataDir string, rt agent.Runtime, a *agent.Agent, ec agent.EffectiveConfig) *agent.ManagementServer {
	t.Helper()
	ms := &agent.ManagementServer{
		Path: filepath.Join(dataDir, agent.ManagementSocket), Runtime: rt, Agent: a, Config: ec,
		Info: agent.AgentStatus{Version: "test", Runtime: "process", DeviceID: "edge1", IoTHubHostName: "localhost", DataDir: dataDir},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ms.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("management server: %v", err)
		}
	})
	c := newAgentClient(ms.Path, "")
	waitFor(t, "the management socket", func() bool {
		_, err := c.Status(context.Background())
		return err == nil
	})
	return ms
}

// device is a data directory with a config.json and the management API of
// a fake runtime holding a running module "web" and a failed one "job".
func device(t *testing.T) (string, *agenttest.FakeRuntime) {
	t.Helper()
	dir := t.TempDir()
	ec := testConfig(dir)
	writeConfig(t, ec)
	rt := &agenttest.FakeRuntime{}
	n := time.Now()
	rt.Put(agent.ModuleState{Name: "web", State: agent.StateRunning, StartedAt: n.Add(-3 * time.Minute), Image: "x/web:1"})
	rt.Put(agent.ModuleState{Name: "job", State: agent.StateExited, ExitCode: 1, StartedAt: n.Add(-time.Hour), ExitedAt: n.Add(-10 * time.Minute), Image: "x/job:1"})
	if err := rt.SetLogs("web", "one\ntwo\nthree\n"); err != nil {
		t.Fatal(err)
	}
	startAPI(t, dir, rt, nil, ec)
	return dir, rt
}

func TestList(t *testing.T) {
	dir, _ := device(t)
	code, out, errOut := cli(t, env{}, "--data-dir", dir, "list")
	if code != 0 {
		t.Fatalf("list = %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("list =\n%s", out)
	}
	for i, want := range [][]string{
		{"NAME", "STATUS", "DESCRIPTION", "CONFIG"},
		{"job", "failed", "Failed (1) 10 minutes ago", "x/job:1"},
		{"web", "running", "Up 3 minutes", "x/web:1"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	// Columns line up, as a table.
	if strings.Index(lines[0], "STATUS") != strings.Index(lines[1], "failed") {
		t.Errorf("columns not aligned:\n%s", out)
	}

	code, out, _ = cli(t, env{}, "--data-dir", dir, "list", "--output", "json")
	var mods []agent.ModuleInfo
	if code != 0 || json.Unmarshal([]byte(out), &mods) != nil || len(mods) != 2 || mods[1].RuntimeStatus != agent.StatusRunning {
		t.Errorf("list json = %d %s", code, out)
	}
}

func TestLogs(t *testing.T) {
	dir, rt := device(t)
	tests := []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"all", []string{"logs", "web"}, 0, "one\ntwo\nthree\n", ""},
		{"tail", []string{"logs", "web", "--tail", "1"}, 0, "three\n", ""},
		{"json", []string{"-o", "json", "logs", "web", "--tail", "2"}, 0, "{\"module\":\"web\",\"line\":\"two\"}\n{\"module\":\"web\",\"line\":\"three\"}\n", ""},
		{"unknown module", []string{"logs", "nope"}, 1, "", "not found"},
		{"bad tail", []string{"logs", "web", "--tail", "many"}, 2, "", "--tail"},
		{"bad since (checked by the agent)", []string{"logs", "web", "--since", "whenever"}, 2, "", "since"},
		{"no module", []string{"logs"}, 2, "", "one module name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := cli(t, env{}, append([]string{"--data-dir", dir}, tt.args...)...)
			if code != tt.code || out != tt.out || !strings.Contains(errOut, tt.err) {
				t.Errorf("edgectl %v = %d, %q, %q; want %d, %q, stderr with %q", tt.args, code, out, errOut, tt.code, tt.out, tt.err)
			}
		})
	}
	if got := rt.CallStrings(); len(got) == 0 || got[0] != "logs web" {
		t.Errorf("runtime calls = %v", got)
	}
}

func TestRestart(t *testing.T) {
	dir, rt := device(t)
	code, out, errOut := cli(t, env{}, "--data-dir", dir, "restart", "web")
	if code != 0 || out != "Restarted web\n" {
		t.Fatalf("restart = %d %q %q", code, out, errOut)
	}
	if got := strings.Join(rt.CallStrings(), ","); got != "stop web,start web" {
		t.Errorf("calls = %s", got)
	}
	code, out, _ = cli(t, env{}, "--data-dir", dir, "-o", "json", "restart", "web")
	if code != 0 || !strings.Contains(out, `"restarted": true`) {
		t.Errorf("restart json = %d %s", code, out)
	}
	code, _, errOut = cli(t, env{}, "--data-dir", dir, "restart", "job")
	if code != 1 || !strings.Contains(errOut, "not running") {
		t.Errorf("restart of an exited module = %d %q", code, errOut)
	}
}

func TestStatus(t *testing.T) {
	t.Run("running", func(t *testing.T) {
		dir, _ := device(t)
		code, out, _ := cli(t, env{}, "--data-dir", dir, "status")
		if code != 0 || !strings.HasPrefix(out, "Outpost edge agent: RUNNING\n") || !strings.Contains(out, "edge1 on localhost") {
			t.Errorf("status = %d\n%s", code, out)
		}
		code, out, _ = cli(t, env{}, "--data-dir", dir, "status", "-o", "json")
		var st statusOutput
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.State != stateRunning || st.Agent == nil || st.Agent.PID != os.Getpid() {
			t.Errorf("status json = %d %s", code, out)
		}
	})
	t.Run("stopped", func(t *testing.T) {
		dir := t.TempDir()
		writeConfig(t, testConfig(dir))
		code, out, _ := cli(t, env{}, "--data-dir", dir, "status")
		if code != exitUnavailable || !strings.Contains(out, "STOPPED") || !strings.Contains(out, "start it with edgeagent --data-dir "+dir+" --connection-string-file "+filepath.Join(dir, "device-connection-string")) {
			t.Errorf("status = %d\n%s", code, out)
		}
	})
	t.Run("stale socket", func(t *testing.T) {
		dir := t.TempDir()
		writeConfig(t, testConfig(dir))
		l, err := net.Listen("unix", filepath.Join(dir, agent.ManagementSocket))
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
		if code, out, _ := cli(t, env{}, "--data-dir", dir, "status"); code != exitUnavailable || !strings.Contains(out, "STOPPED") {
			t.Errorf("status = %d\n%s", code, out)
		}
	})
	t.Run("unavailable", func(t *testing.T) {
		dir := t.TempDir()
		code, out, _ := cli(t, env{}, "--data-dir", dir, "status", "-o", "json")
		var st statusOutput
		if code != exitUnavailable || json.Unmarshal([]byte(out), &st) != nil || st.State != stateUnavailable || !strings.Contains(st.Reason, "no agent has used") {
			t.Errorf("status = %d %s", code, out)
		}
	})
}

func TestConfig(t *testing.T) {
	dir, _ := device(t)
	code, out, _ := cli(t, env{}, "--data-dir", dir, "config")
	if code != 0 || !strings.Contains(out, "runtime:") || !strings.Contains(out, "process") || strings.Contains(out, "not running") {
		t.Errorf("config = %d\n%s", code, out)
	}
	code, out, _ = cli(t, env{}, "--data-dir", dir, "config", "-o", "json")
	var co configOutput
	if code != 0 || json.Unmarshal([]byte(out), &co) != nil || co.Source != sourceAgent || co.Config.DeviceID != "edge1" {
		t.Errorf("config json = %d %s", code, out)
	}

	stopped := t.TempDir()
	writeConfig(t, testConfig(stopped))
	code, out, _ = cli(t, env{}, "--data-dir", stopped, "config")
	if code != 0 || !strings.Contains(out, "the agent is not running") || !strings.Contains(out, "device-id:") {
		t.Errorf("config from file = %d\n%s", code, out)
	}
	code, _, errOut := cli(t, env{}, "--data-dir", t.TempDir(), "config")
	if code != 1 || !strings.Contains(errOut, "config.json does not exist") {
		t.Errorf("config without agent = %d %s", code, errOut)
	}
}

func TestAgentNotRunning(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, testConfig(dir))
	for _, args := range [][]string{{"list"}, {"logs", "web"}, {"restart", "web"}} {
		code, _, errOut := cli(t, env{}, append([]string{"--data-dir", dir}, args...)...)
		if code != exitUnavailable || !strings.Contains(errOut, "the agent is not running") || !strings.Contains(errOut, "edgeagent --data-dir") {
			t.Errorf("%v = %d %q", args, code, errOut)
		}
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		err  string
	}{
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"list", "--nope"}, "unknown flag"},
		{[]string{"--output", "yaml", "list"}, "--output"},
		{[]string{"list", "extra"}, "no arguments"},
		{[]string{"check", "--dont-run", "nonsense"}, "no such check"},
		{[]string{"check", "--min-free-space", "heaps"}, "--min-free-space"},
		{[]string{"deploy", "m.json"}, "--service-connection-string-file is required"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errOut := cli(t, env{}, append([]string{"--data-dir", t.TempDir()}, tt.args...)...)
			if code != exitUsage || !strings.Contains(errOut, tt.err) {
				t.Errorf("code %d, stderr %q; want 2 with %q", code, errOut, tt.err)
			}
		})
	}
	code, out, _ := cli(t, env{}, "--help")
	if code != 0 || !strings.Contains(out, "Exit status") {
		t.Errorf("--help = %d %s", code, out)
	}
}

// unusedPort returns a loopback address where nothing listens.
func unusedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
