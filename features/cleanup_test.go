package features

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// scenarioMarker is the environment variable that marks every process a
// scenario starts on the process backend (hub, agent, module supervisors,
// modules), with the scenario id "<test pid>-<n>" as its value. Clean-up
// finds them by it in /proc: the modules outlive the agent on purpose,
// and are not the test's children.
const scenarioMarker = "OUTPOST_FEATURES_SCENARIO"

// markedProcesses returns the processes whose environment holds
// scenarioMarker=id and every one of also ("NAME=value").
func markedProcesses(id string, also ...string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	want := append([]string{scenarioMarker + "=" + id}, also...)
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue // gone, or not ours to read
		}
		if hasAll(env, want) {
			out = append(out, pid)
		}
	}
	return out, nil
}

// hasAll reports whether the NUL-separated environment holds every entry.
func hasAll(environ []byte, entries []string) bool {
	for _, e := range entries {
		if !bytes.HasPrefix(environ, []byte(e+"\x00")) && !bytes.Contains(environ, []byte("\x00"+e+"\x00")) {
			return false
		}
	}
	return true
}

// killMarked kills every process of scenario id and waits until none is
// left.
func killMarked(id string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, err := markedProcesses(id)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of scenario %s still alive after SIGKILL: %v", id, pids)
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond) // a killed process needs a moment to leave /proc
	}
}

// sweepProcesses kills the processes of earlier test runs that were
// interrupted (their test process is gone), so that nothing accumulates.
func sweepProcesses() error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		run, ok := markerRun(env)
		if !ok || run == os.Getpid() || alive(run) {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill %d (left by test run %d): %w", pid, run, err))
		}
	}
	return errors.Join(errs...)
}

// markerRun extracts the test process id from a scenario marker in a
// NUL-separated environment.
func markerRun(environ []byte) (int, bool) {
	for _, kv := range bytes.Split(environ, []byte{0}) {
		v, ok := bytes.CutPrefix(kv, []byte(scenarioMarker+"="))
		if !ok {
			continue
		}
		run, _, _ := strings.Cut(string(v), "-")
		n, err := strconv.Atoi(run)
		return n, err == nil
	}
	return 0, false
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// runDirPrefix starts the name of a run's directory in the system's
// temporary directory: "outpost-features-<test pid>-<random>".
const runDirPrefix = "outpost-features-"

// sweepRunDirs removes the directories of earlier runs whose test process
// is gone (an interrupted run cannot clean up after itself).
func sweepRunDirs() error {
	dirs, err := filepath.Glob(filepath.Join(os.TempDir(), runDirPrefix+"*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range dirs {
		pid, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), runDirPrefix), "-")
		n, err := strconv.Atoi(pid)
		if err != nil || alive(n) {
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
