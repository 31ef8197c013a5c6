package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/agenttest"
)

// A device set up with edgectl setup whose agent is run by something else
// (a service): start and stop leave it alone and say why.
func TestStartStop_AgentRunBySomethingElse(t *testing.T) {
	dir := setUpDevice(t)
	rt := &agenttest.FakeRuntime{}
	rt.Put(agent.ModuleState{Name: "web", State: agent.StateRunning, StartedAt: time.Now()})
	startAPI(t, dir, rt, nil, testConfig(dir))

	code, out, errOut := cli(t, env{}, "--data-dir", dir, "start")
	if code != 0 || !strings.Contains(out, "Runtime already running.") || !strings.Contains(out, "not started by edgectl start") {
		t.Errorf("start = %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = cli(t, env{}, "--data-dir", dir, "stop")
	if code != exitFailed || !strings.Contains(errOut, "was not started by edgectl start and still runs") {
		t.Errorf("stop = %d %s", code, errOut)
	}
	if m, _, _ := rt.Module("web"); m.State != agent.StateRunning {
		t.Errorf("stop touched a module of an agent it did not stop: %+v", m)
	}
}

// While the watchdog runs but the agent does not answer, status says
// UNAVAILABLE (starting or restarting), not STOPPED; once the watchdog is
// gone, STOPPED.
func TestStatus_WatchdogWithoutAgent(t *testing.T) {
	dir := setUpDevice(t)
	self, err := procOf(os.Getpid())
	if err != nil {
		t.Skip("no /proc:", err)
	}
	// This test process stands in for a live watchdog.
	st := watchdogState{Watchdog: self, Log: filepath.Join(dir, agentLogFile), Restarts: 2, LastExit: "exit status 1"}
	if err := writeWatchdog(dir, st); err != nil {
		t.Fatal(err)
	}
	code, out, _ := cli(t, env{}, "--data-dir", dir, "status")
	if code != exitUnavailable || !strings.Contains(out, "UNAVAILABLE") || !strings.Contains(out, "starting or restarting") ||
		!strings.Contains(out, "2 restart(s) of the agent (last: exit status 1)") {
		t.Errorf("status with a watchdog = %d\n%s", code, out)
	}
	st.Watchdog.Start++ // another process now: the watchdog is gone
	if err := writeWatchdog(dir, st); err != nil {
		t.Fatal(err)
	}
	code, out, _ = cli(t, env{}, "--data-dir", dir, "status")
	if code != exitUnavailable || !strings.Contains(out, "STOPPED") || !strings.Contains(out, "is gone") {
		t.Errorf("status without the watchdog = %d\n%s", code, out)
	}
}

func TestStart_NotSetUp(t *testing.T) {
	for _, cmd := range []string{"start", "stop", "restart"} {
		t.Run(cmd, func(t *testing.T) {
			code, _, errOut := cli(t, env{}, "--data-dir", t.TempDir(), cmd)
			if code != exitFailed || !strings.Contains(errOut, "not set up") || !strings.Contains(errOut, "setup --connection-string") {
				t.Errorf("%s = %d %s", cmd, code, errOut)
			}
		})
	}
}
