package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procID identifies a process across pid reuse: its pid and its start time
// in clock ticks since boot (/proc/<pid>/stat field 22).
type procID struct {
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// procStat reads a process's start time and state letter from
// /proc/<pid>/stat.
func procStat(pid int) (start uint64, state byte, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields)+2)
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	return start, fields[0][0], nil
}

// procOf identifies the running process pid.
func procOf(pid int) (procID, error) {
	start, _, err := procStat(pid)
	if err != nil {
		return procID{}, err
	}
	return procID{Pid: pid, Start: start}, nil
}

// alive reports whether p still runs: same pid, same start time, not a
// zombie.
func (p procID) alive() bool {
	if p.Pid <= 0 {
		return false
	}
	start, state, err := procStat(p.Pid)
	return err == nil && start == p.Start && state != 'Z' && state != 'X'
}

// signal sends sig to p if it is still the same process.
func (p procID) signal(sig syscall.Signal) error {
	if !p.alive() {
		return nil
	}
	return syscall.Kill(p.Pid, sig)
}

// waitGone polls until p no longer runs or timeout passes, and reports
// whether it is gone.
func (p procID) waitGone(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for p.alive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// watchdogFile is, in the data directory, the process runtime watchdog's
// state: its own process, the agent's, and its restarts. The watchdog
// rewrites it at every start of the agent and removes it when it stops.
const watchdogFile = "watchdog.json"

// watchdogState is watchdogFile's JSON.
type watchdogState struct {
	Watchdog    procID    `json:"watchdog"`
	Agent       procID    `json:"agent"`
	AgentBinary string    `json:"agentBinary"`
	Log         string    `json:"log"`
	StartedAt   time.Time `json:"startedAt"`
	// Restarts counts the agent's restarts after it died.
	Restarts int `json:"restarts"`
	// LastExit describes the agent's last death ("" before any).
	LastExit string `json:"lastExit,omitempty"`
}

// readWatchdog reads watchdogFile; ok is false when there is none.
func readWatchdog(dataDir string) (st watchdogState, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dataDir, watchdogFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, false, fmt.Errorf("%s: %w", filepath.Join(dataDir, watchdogFile), err)
	}
	return st, true, nil
}

// writeWatchdog saves st as watchdogFile.
func writeWatchdog(dataDir string, st watchdogState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dataDir, watchdogFile), append(b, '\n'), 0o600)
}
