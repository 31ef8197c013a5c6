package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/docker/dockertest"
)

// binDir holds edgectl and edgeagent, built once per test process by
// builtBinaries and removed by TestMain.
var (
	binDir   string
	binOnce  sync.Once
	binErr   error
	binBuild []byte
)

func TestMain(m *testing.M) {
	code := dockertest.Main(m) // also removes the images and containers Docker tests made
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// builtBinaries builds ./cmd/edgectl and ./cmd/edgeagent into one
// directory (so that edgectl finds edgeagent next to itself) and returns
// their paths.
func builtBinaries(t *testing.T) (edgectl, edgeagent string) {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "edgectl-test-bin-")
		if binErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+string(filepath.Separator),
			"github.com/outpost-edge/outpost/cmd/edgectl", "github.com/outpost-edge/outpost/cmd/edgeagent")
		binBuild, binErr = cmd.CombinedOutput()
	})
	if binErr != nil {
		t.Fatalf("go build: %v\n%s", binErr, binBuild)
	}
	return filepath.Join(binDir, "edgectl"), filepath.Join(binDir, "edgeagent")
}

// device is a data directory driven through the real edgectl binary.
type realDevice struct {
	t       *testing.T
	edgectl string
	dir     string
}

// run runs edgectl --data-dir dir args, with stdin, and returns its exit
// code and output.
func (d *realDevice) run(stdin string, args ...string) (int, string, string) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.edgectl, append([]string{"--data-dir", d.dir}, args...)...)
	cmd.Env = agentEnviron(os.Environ())
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatalf("edgectl %v: %v", args, err)
	}
	return code, stdout.String(), stderr.String()
}

// mustRun runs edgectl and fails the test unless it exits with 0.
func (d *realDevice) mustRun(args ...string) string {
	d.t.Helper()
	code, out, errOut := d.run("", args...)
	if os.Getenv("SHOWOUT") != "" {
		d.t.Logf("edgectl %v = %d\n%s%s", args, code, out, errOut)
	}
	if code != 0 {
		d.t.Fatalf("edgectl %v = %d\n%s%s\nagent log:\n%s", args, code, out, errOut, d.agentLog())
	}
	return out
}

func (d *realDevice) agentLog() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, agentLogFile))
	return string(b)
}

// status is edgectl status -o json.
func (d *realDevice) status() (int, statusOutput) {
	d.t.Helper()
	code, out, errOut := d.run("", "-o", "json", "status")
	var st statusOutput
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		d.t.Fatalf("status -o json = %d %q %q: %v", code, out, errOut, err)
	}
	return code, st
}

// modulePID is the pid the process runtime recorded for a running module
// (0 when none).
func (d *realDevice) modulePID(name string) int {
	b, err := os.ReadFile(filepath.Join(d.dir, processStateDir, "modules", name+".json"))
	if err != nil {
		return 0
	}
	var rec struct {
		State string `json:"state"`
		Pid   int    `json:"pid"`
	}
	if json.Unmarshal(b, &rec) != nil || rec.State != "running" {
		return 0
	}
	return rec.Pid
}

// waitLong polls cond for up to a minute.
func waitLong(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// running reports whether pid is a live (not zombie) process.
func running(pid int) bool {
	if pid <= 0 {
		return false
	}
	_, state, err := procStat(pid)
	return err == nil && state != 'Z'
}

// sleepManifest deploys edgeHub and the module sleeper, both `sleep 300`.
func sleepManifest(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep executable:", err)
	}
	manifest := fmt.Sprintf(`{
	  "$edgeAgent": {"properties.desired": {
	    "schemaVersion": "1.1",
	    "runtime": {"type": "docker", "settings": {}},
	    "systemModules": {
	      "edgeAgent": {"type": "docker", "settings": {"image": "outpost/edgeagent:dev"}},
	      "edgeHub": {"type": "docker", "status": "running", "restartPolicy": "always",
	                  "settings": {"image": "exec:%[1]s", "createOptions": "{\"Cmd\":[\"300\"]}"}}},
	    "modules": {
	      "sleeper": {"version": "1", "type": "docker", "status": "running", "restartPolicy": "on-failure",
	                  "settings": {"image": "exec:%[1]s", "createOptions": "{\"Cmd\":[\"300\"]}"}}}}},
	  "$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": {}, "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}}}
	}`, sleep)
	var content map[string]json.RawMessage
	if err := json.Unmarshal([]byte(manifest), &content); err != nil {
		t.Fatal(err)
	}
	return content
}

// TestLifecycle_Process drives the process runtime end to end with the real
// binaries and a fake hub: setup, start, a deployment, the watchdog
// bringing a killed agent back while the module keeps running, stop,
// start, restart and uninstall.
func TestLifecycle_Process(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	manifest := sleepManifest(t)
	edgectl, _ := builtBinaries(t)
	hub := fakehubtest.New(t)
	_, edgeCS := fakehubtest.MustDevice(t, hub, "edge1", fakehubtest.Edge())
	d := &realDevice{t: t, edgectl: edgectl, dir: filepath.Join(t.TempDir(), "data")}
	t.Cleanup(func() { // whatever happened, leave no process behind
		if _, err := os.Stat(d.dir); err == nil {
			d.run("", "stop", "--timeout", "5s")
		}
	})
	_, port, _ := net.SplitHostPort(hub.MQTTAddress())

	out := d.mustRun("setup", "--connection-string", edgeCS, "--edge-hostname", "localhost",
		"--ca-file", hub.CAFile(), "--service-url", "https://"+hub.HTTPAddress(), "--mqtt-port", port,
		"--reconcile-period", "200ms", "--ca-lifetime", "2h", "--server-lifetime", "20m", "--renew-before", "5m")
	if !strings.Contains(out, "Runtime setup successfully.") {
		t.Fatalf("setup:\n%s", out)
	}
	if code, st := d.status(); code != exitUnavailable || st.State != stateStopped {
		t.Fatalf("status after setup = %d %+v, want STOPPED", code, st)
	}

	out = d.mustRun("start")
	if !strings.Contains(out, "Runtime started.") {
		t.Fatalf("start:\n%s", out)
	}
	code, st := d.status()
	if code != 0 || st.State != stateRunning || st.Agent == nil || !strings.Contains(st.Supervisor, "edgectl watchdog") {
		t.Fatalf("status after start = %d %+v", code, st)
	}
	agentPID := st.Agent.PID
	if out := d.mustRun("start"); !strings.Contains(out, "Runtime already running.") {
		t.Errorf("second start:\n%s", out)
	}

	if err := hub.ApplyConfigurationContent("edge1", manifest); err != nil {
		t.Fatal(err)
	}
	waitLong(t, "sleeper running", func() bool { return d.modulePID("sleeper") != 0 })
	modPID := d.modulePID("sleeper")

	t.Run("watchdog restarts a killed agent; the module keeps running", func(t *testing.T) {
		if err := syscall.Kill(agentPID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		var now statusOutput
		waitLong(t, "a new agent", func() bool {
			_, now = d.status()
			return now.State == stateRunning && now.Agent != nil && now.Agent.PID != agentPID
		})
		if !strings.Contains(now.Supervisor, "1 restart(s)") || !strings.Contains(now.Supervisor, "killed by signal 9") {
			t.Errorf("supervisor = %q, want one restart after a kill", now.Supervisor)
		}
		if got := d.modulePID("sleeper"); got != modPID || !running(modPID) {
			t.Fatalf("sleeper pid %d (running %v), want %d still running", got, running(modPID), modPID)
		}
		// The new agent adopted it: listed as running, not restarted.
		_, list, _ := d.run("", "-o", "json", "list")
		var mods []agent.ModuleInfo
		if err := json.Unmarshal([]byte(list), &mods); err != nil {
			t.Fatalf("list: %v\n%s", err, list)
		}
		found := false
		for _, m := range mods {
			if m.Name == "sleeper" {
				found = m.RuntimeStatus == "running" && m.RestartCount == 0
			}
		}
		if !found {
			t.Errorf("sleeper not listed as running without restarts: %s", list)
		}
	})

	t.Run("stop stops the agent and the modules", func(t *testing.T) {
		out := d.mustRun("stop", "--timeout", "5s")
		if !strings.Contains(out, "Runtime stopped.") || !strings.Contains(out, "sleeper") || !strings.Contains(out, "edgeHub") {
			t.Errorf("stop:\n%s", out)
		}
		if code, st := d.status(); code != exitUnavailable || st.State != stateStopped {
			t.Errorf("status after stop = %d %+v, want STOPPED", code, st)
		}
		waitLong(t, "the module's process to end", func() bool { return !running(modPID) })
		if d.modulePID("sleeper") != 0 {
			t.Error("sleeper still recorded as running")
		}
	})

	t.Run("start starts the modules again", func(t *testing.T) {
		if out := d.mustRun("start"); !strings.Contains(out, "Runtime started.") {
			t.Errorf("start:\n%s", out)
		}
		// on-failure would not restart a module stopped with SIGTERM (143)
		// on its own: it starts because the runtime was started after it
		// stopped.
		waitLong(t, "sleeper running again", func() bool {
			pid := d.modulePID("sleeper")
			return pid != 0 && pid != modPID
		})
	})

	t.Run("restart", func(t *testing.T) {
		before := d.modulePID("sleeper")
		if out := d.mustRun("restart", "--stop-timeout", "5s"); !strings.Contains(out, "Runtime restarted.") {
			t.Errorf("restart:\n%s", out)
		}
		waitLong(t, "sleeper running after the restart", func() bool {
			pid := d.modulePID("sleeper")
			return pid != 0 && pid != before
		})
		modPID = d.modulePID("sleeper")
	})

	if os.Getenv("SHOWOUT") != "" {
		t.Logf("agent log:\n%s", d.agentLog())
	}
	t.Run("uninstall", func(t *testing.T) {
		if code, _, _ := d.run("no\n", "uninstall"); code != exitFailed {
			t.Errorf("uninstall answered no = %d, want %d", code, exitFailed)
		}
		if _, err := os.Stat(filepath.Join(d.dir, setupFile)); err != nil {
			t.Fatalf("declined uninstall removed the setup: %v", err)
		}
		out := d.mustRun("uninstall", "--yes", "--timeout", "5s")
		if !strings.Contains(out, "Runtime uninstalled successfully.") {
			t.Errorf("uninstall:\n%s", out)
		}
		if _, err := os.Stat(d.dir); !os.IsNotExist(err) {
			t.Errorf("data directory left: %v", err)
		}
		waitLong(t, "the module's process to end", func() bool { return !running(modPID) })
	})
}

// An agent that cannot run (here: exits at once) makes start fail with the
// end of its log; the watchdog keeps trying, status says UNAVAILABLE and
// why, and stop ends the watchdog.
func TestLifecycle_ProcessAgentThatDies(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	edgectl, _ := builtBinaries(t)
	bad := filepath.Join(t.TempDir(), "edgeagent")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\necho \"edgeagent: cannot start: $*\" >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	d := &realDevice{t: t, edgectl: edgectl, dir: filepath.Join(t.TempDir(), "data")}
	t.Cleanup(func() { d.run("", "stop", "--timeout", "5s") })
	d.mustRun("setup", "--connection-string", testCS("edge1", testKey), "--edge-hostname", "localhost")

	code, out, errOut := d.run("", "start", "--agent-binary", bad, "--timeout", "2500ms")
	if code != exitFailed || !strings.Contains(errOut, "does not answer after 2.5s") || !strings.Contains(errOut, "edgeagent: cannot start: --config "+filepath.Join(d.dir, setupFile)) {
		t.Fatalf("start = %d\n%s%s", code, out, errOut)
	}
	code, st := d.status()
	if code != exitUnavailable || st.State != stateUnavailable || !strings.Contains(st.Reason, "starting or restarting") || !strings.Contains(st.Supervisor, "exit status 1") {
		t.Errorf("status = %d %+v", code, st)
	}
	state, ok, err := readWatchdog(d.dir)
	if err != nil || !ok {
		t.Fatalf("watchdog state: %v %v", ok, err)
	}
	if out := d.mustRun("stop"); !strings.Contains(out, "Runtime stopped.") {
		t.Errorf("stop:\n%s", out)
	}
	if state.Watchdog.alive() {
		t.Error("the watchdog still runs after stop")
	}
	if code, st := d.status(); st.State != stateStopped {
		t.Errorf("status after stop = %d %+v", code, st)
	}
}
