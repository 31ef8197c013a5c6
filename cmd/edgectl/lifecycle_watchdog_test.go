package main

import (
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestProcID(t *testing.T) {
	self, err := procOf(os.Getpid())
	if err != nil {
		t.Skip("no /proc:", err)
	}
	if !self.alive() {
		t.Error("this process is not alive")
	}
	if (procID{Pid: self.Pid, Start: self.Start + 1}).alive() {
		t.Error("a pid with another start time (reused) counts as alive")
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep:", err)
	}
	child, err := procOf(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	// Unreaped, the child is a zombie: gone for our purposes.
	if !child.waitGone(10 * time.Second) {
		t.Error("a killed (zombie) child counts as alive")
	}
	cmd.Wait()
	if child.alive() {
		t.Error("a reaped child counts as alive")
	}
}

func TestDescribeExit(t *testing.T) {
	run := func(script string) error { return exec.Command("sh", "-c", script).Run() }
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"success", nil, "exit status 0"},
		{"exit code", run("exit 3"), "exit status 3"},
		{"signal", run("kill -9 $$"), "killed by signal 9 (killed)"},
		{"start failure", errors.New("fork/exec /nope: no such file or directory"), "fork/exec /nope: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describeExit(tc.err); got != tc.want {
				t.Errorf("describeExit = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRotateLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), agentLogFile)
	log := slog.New(slog.DiscardHandler)
	// The agent's end of the log: appending, as the watchdog opens it for it.
	w, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.WriteString(strings.Repeat("old line\n", 10))
	rotateLog(path, 1000, log)
	if _, err := os.Stat(path + ".1"); !os.IsNotExist(err) {
		t.Fatal("rotated below the limit")
	}
	rotateLog(path, 50, log)
	rotated, _ := os.ReadFile(path + ".1")
	if string(rotated) != strings.Repeat("old line\n", 10) {
		t.Errorf("rotated file = %q", rotated)
	}
	w.WriteString("new line\n")
	cur, _ := os.ReadFile(path)
	if string(cur) != "new line\n" {
		t.Errorf("current log = %q, want only what was written after the rotation", cur)
	}
}

func TestTailLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	for i := range 30 {
		b.WriteString(strings.Repeat("x", i) + "\n")
	}
	os.WriteFile(path, []byte(b.String()), 0o600)
	lines, err := tailLines(path, 3)
	if err != nil || len(lines) != 3 || lines[2] != strings.Repeat("x", 29) {
		t.Errorf("tailLines = %q, %v", lines, err)
	}
	if _, err := tailLines(filepath.Join(t.TempDir(), "none"), 3); err == nil {
		t.Error("a missing file has a tail")
	}
}

func TestAgentEnviron(t *testing.T) {
	got := agentEnviron([]string{"PATH=/bin", "EDGEAGENT_DATA_DIR=/elsewhere", "DOCKER_HOST=unix:///d.sock", "EDGEAGENT_RUNTIME=docker"})
	if want := []string{"PATH=/bin", "DOCKER_HOST=unix:///d.sock"}; !slices.Equal(got, want) {
		t.Errorf("agentEnviron = %q, want %q", got, want)
	}
}

func TestWatchdogState_RoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, ok, err := readWatchdog(dir); ok || err != nil {
		t.Fatalf("no file: ok %v err %v", ok, err)
	}
	st := watchdogState{Watchdog: procID{Pid: 1, Start: 2}, Agent: procID{Pid: 3, Start: 4}, Log: "/l", Restarts: 2,
		LastExit: "exit status 1", StartedAt: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	if err := writeWatchdog(dir, st); err != nil {
		t.Fatal(err)
	}
	got, ok, err := readWatchdog(dir)
	if err != nil || !ok || got != st {
		t.Errorf("read back %+v %v %v, want %+v", got, ok, err, st)
	}
	os.WriteFile(filepath.Join(dir, watchdogFile), []byte("{"), 0o600)
	if _, _, err := readWatchdog(dir); err == nil {
		t.Error("a broken state file was read")
	}
}
