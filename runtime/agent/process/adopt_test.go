package process_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
)

// TestAdopt_AfterAgentExit runs an agent in another process that starts a
// module and exits, then checks that a new runtime on the same state dir
// finds the module running, untouched, and still gets its exact exit code.
func TestAdopt_AfterAgentExit(t *testing.T) {
	dir := testDirs(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), agentEnv+"="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("agent process: %v\n%s", err, out)
	}
	// The agent process has exited: the module is now nobody's child here.

	rt := mustRuntimeAt(t, dir)
	m := mustModule(t, rt, "adopted")
	if m.State != agent.StateRunning || m.StartedAt.IsZero() {
		t.Fatalf("after the agent exited: %+v", m)
	}
	pid := pidOf(t, rt, "adopted") // also checks it was started once
	if !processAlive(pid) {
		t.Fatalf("module pid %d is not alive", pid)
	}
	if err := rt.Stop(ctx, "adopted", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if m := mustModule(t, rt, "adopted"); m.State != agent.StateExited || m.ExitCode != 143 {
		t.Errorf("after Stop: %+v, want exited 143 (SIGTERM)", m)
	}
	if processAlive(pid) {
		t.Error("module still alive after Stop")
	}
}

// TestAdopt_SecondRuntime simulates an agent restart within one process: the
// first runtime is dropped (its Run ended), a second one on the same state
// dir adopts the module, which kept running.
func TestAdopt_SecondRuntime(t *testing.T) {
	dir := testDirs(t)
	first := mustRuntimeAt(t, dir)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- first.Run(runCtx) }()
	mustStart(t, first, spec("kept", "", "sleep"))
	pid := pidOf(t, first, "kept")
	before := mustModule(t, first, "kept")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	first = nil

	second := mustRuntimeAt(t, dir)
	after := mustModule(t, second, "kept")
	if after.State != agent.StateRunning || !after.StartedAt.Equal(before.StartedAt) {
		t.Fatalf("adopted: %+v, before: %+v", after, before)
	}
	if got := pidOf(t, second, "kept"); got != pid || !processAlive(pid) {
		t.Fatalf("pid %d (alive %v), want %d", got, processAlive(pid), pid)
	}
	if err := second.Stop(ctx, "kept", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if m := mustModule(t, second, "kept"); m.ExitCode != 143 {
		t.Errorf("after Stop: %+v", m)
	}
}

// TestAdopt_PidReuseNotAdopted records a live but unrelated process as the
// module's: it must be listed exited, and Stop must not signal it.
func TestAdopt_PidReuseNotAdopted(t *testing.T) {
	dir := testDirs(t)
	rt := mustRuntimeAt(t, dir)
	if err := rt.Create(ctx, spec("reused", "", "sleep")); err != nil {
		t.Fatal(err)
	}
	other := exec.Command("sleep", "30")
	if err := other.Start(); err != nil {
		t.Skip("no sleep command:", err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })

	file := filepath.Join(dir, "state", "modules", "reused.json")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	// The pids are alive, but their start times are not the recorded ones:
	// the pids were reused.
	rec["state"], rec["run"] = "running", 1
	rec["pid"], rec["pidStart"] = other.Process.Pid, 1
	rec["supervisor"], rec["supervisorStart"] = os.Getpid(), 1
	if b, err = json.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}

	m := mustModule(t, rt, "reused")
	if m.State != agent.StateExited || m.ExitCode != -1 || !m.ExitedAt.IsZero() {
		t.Fatalf("listed %+v, want exited with unknown code -1", m)
	}
	if err := rt.Stop(ctx, "reused", 0); err != nil {
		t.Fatal(err)
	}
	if !processAlive(other.Process.Pid) {
		t.Fatal("Stop signalled an unrelated process")
	}
	if err := rt.Remove(ctx, "reused"); err != nil {
		t.Fatal(err)
	}
}
