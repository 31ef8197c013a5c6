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
// directory (so that edgectl finds edgeagent next to itself), with the
// modules edgehub and tempsensor (the process runtime's image directory:
// outpost/edgehub:dev runs <dir>/edgehub), and returns the paths of the
// first two.
func builtBinaries(t *testing.T) (edgectl, edgeagent string) {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "edgectl-test-bin-")
		if binErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+string(filepath.Separator),
			"github.com/outpost-edge/outpost/cmd/edgectl", "github.com/outpost-edge/outpost/cmd/edgeagent",
			"github.com/outpost-edge/outpost/cmd/edgehub", "github.com/outpost-edge/outpost/cmd/tempsensor")
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

// TestLifecycle_Process drives the process runtime end to end with the real
// binaries and a fake hub, as an operator would: setup, start, edgectl
// deploy of the edge hub and the temperature sensor routed to $upstream,
// the watchdog bringing a killed agent back while the modules keep running
// (adopted), stop while edgeHub holds messages the hub has not received
// (its upstream cut), start (the modules start again, edgeHub forwards what
// it kept: nothing edgeHub acknowledged is lost), restart and uninstall.
func TestLifecycle_Process(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	edgectl, _ := builtBinaries(t)
	hub := fakehubtest.New(t)
	const device = "edge1"
	_, edgeCS := fakehubtest.MustDevice(t, hub, device, fakehubtest.Edge())
	d := &realDevice{t: t, edgectl: edgectl, dir: filepath.Join(t.TempDir(), "data")}
	t.Cleanup(func() { // whatever happened, leave no process behind
		if _, err := os.Stat(d.dir); err == nil {
			d.run("", "stop", "--timeout", "5s")
		}
	})
	_, port, _ := net.SplitHostPort(hub.MQTTAddress())
	// Each step needs the previous one.
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	out := d.mustRun("setup", "--connection-string", edgeCS, "--edge-hostname", "localhost",
		"--ca-file", hub.CAFile(), "--service-url", "https://"+hub.HTTPAddress(), "--mqtt-port", port,
		"--image-dir", binDir, "--reconcile-period", "200ms", "--ca-lifetime", "2h", "--server-lifetime", "20m", "--renew-before", "5m")
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

	// The image names resolve to the binaries in binDir (setup
	// --image-dir); edgeHub keeps its store in the data directory.
	dep := lifecycleDeployment{
		hubImage: "outpost/edgehub:dev", sensorImage: "outpost/tempsensor:dev",
		hubEnv: map[string]string{
			"EDGEHUB_DATA_DIR":     filepath.Join(d.dir, "edgehub"),
			"EDGEHUB_TLS_ADDR":     fmt.Sprintf("127.0.0.1:%d", freePort(t)),
			"EDGEHUB_METRICS_ADDR": "127.0.0.1:0",
		},
	}
	manifest, serviceCS := dep.write(t, hub)
	pids := map[string]int{}
	step("deploy", func(t *testing.T) {
		out := d.mustRun("deploy", manifest, "--service-connection-string-file", serviceCS, "--timeout", "1m", "--poll-interval", "200ms")
		if !strings.Contains(out, "Deployed deployment.json to "+device) {
			t.Errorf("deploy:\n%s", out)
		}
		for _, m := range lifecycleModules {
			if pids[m] = d.modulePID(m); pids[m] == 0 {
				t.Fatalf("%s not running after the deployment succeeded:\n%s", m, out)
			}
		}
		waitLong(t, "the sensor's messages at the hub", func() bool { return len(tallySensor(t, hub, device).batches) > 0 })
	})

	step("watchdog restarts a killed agent; the modules are adopted", func(t *testing.T) {
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
		waitReconciled(t, func() statusOutput { _, st := d.status(); return st })
		for _, m := range lifecycleModules {
			if got := d.modulePID(m); got != pids[m] || !running(pids[m]) {
				t.Errorf("%s pid %d (running %v), want %d still running", m, got, running(pids[m]), pids[m])
			}
		}
		// The new agent adopted them: listed as running, not restarted.
		_, list, _ := d.run("", "-o", "json", "list")
		checkAdopted(t, list, lifecycleModules...)
	})

	var before sensorRun
	step("stop while edgeHub keeps messages the hub has not received", func(t *testing.T) {
		before = cutUntilDone(t, hub, device, func() string {
			_, out, _ := d.run("", "logs", sensorModule)
			return out
		})
		checkStopOutput(t, d.mustRun("stop", "--timeout", "5s"))
		if code, st := d.status(); code != exitUnavailable || st.State != stateStopped {
			t.Errorf("status after stop = %d %+v, want STOPPED", code, st)
		}
		for _, m := range lifecycleModules {
			waitLong(t, m+"'s process to end", func() bool { return !running(pids[m]) })
			if d.modulePID(m) != 0 {
				t.Errorf("%s still recorded as running", m)
			}
		}
	})

	step("start: the modules start again and nothing is lost", func(t *testing.T) {
		hub.RestoreNetwork()
		if out := d.mustRun("start"); !strings.Contains(out, "Runtime started.") {
			t.Errorf("start:\n%s", out)
		}
		// restartPolicy always would restart them anyway; on-failure or
		// never would not (a SIGTERM'd module exits 0 or 143): they start
		// because the runtime was started after they stopped.
		for _, m := range lifecycleModules {
			waitLong(t, m+" running again", func() bool {
				pid := d.modulePID(m)
				return pid != 0 && pid != pids[m]
			})
		}
		noLoss(t, hub, device, before)
	})

	step("restart", func(t *testing.T) {
		for _, m := range lifecycleModules {
			pids[m] = d.modulePID(m)
		}
		if out := d.mustRun("restart", "--stop-timeout", "5s"); !strings.Contains(out, "Runtime restarted.") {
			t.Errorf("restart:\n%s", out)
		}
		for _, m := range lifecycleModules {
			waitLong(t, m+" running after the restart", func() bool {
				pid := d.modulePID(m)
				return pid != 0 && pid != pids[m]
			})
			pids[m] = d.modulePID(m)
		}
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
		for _, m := range lifecycleModules {
			if !strings.Contains(out, "Removed module "+m) {
				t.Errorf("uninstall does not say it removed %s:\n%s", m, out)
			}
			waitLong(t, m+"'s process to end", func() bool { return !running(pids[m]) })
		}
		// The data directory held the configuration, the certificates,
		// the agent's state and edgeHub's store.
		if _, err := os.Stat(d.dir); !os.IsNotExist(err) {
			t.Errorf("data directory left: %v", err)
		}
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
