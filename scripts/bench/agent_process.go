package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// moduleRecord is the part of the process runtime's state file of a module
// (<agent data dir>/process/modules/<name>.json, documented in runtime/agent/process)
// that the harness reads: where the module's process and its supervisor are, and how it
// was started, so that a scenario can crash it and start the same executable with the
// same environment as a reference.
type moduleRecord struct {
	State           string    `json:"state"`
	Pid             int       `json:"pid"`
	PidStart        uint64    `json:"pidStart"`
	Supervisor      int       `json:"supervisor"`
	SupervisorStart uint64    `json:"supervisorStart"`
	StartedAt       time.Time `json:"startedAt"`
	Exec            struct {
		Path string   `json:"path"`
		Args []string `json:"args"`
		Env  []string `json:"env"`
	} `json:"exec"`
}

// Paths of the process runtime under the agent's data directory (cmd/edgeagent's
// processDir, runtime/agent/process's modulesDir).
const (
	processStateDir = "process"
	processModules  = "modules"
)

// readModuleRecord reads module name's state file under the agent's data directory.
func readModuleRecord(agentData, name string) (moduleRecord, error) {
	return readModuleRecordFile(filepath.Join(agentData, processStateDir, processModules, name+".json"))
}

func readModuleRecordFile(path string) (moduleRecord, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return moduleRecord{}, err
	}
	return parseModuleRecord(b)
}

func parseModuleRecord(b []byte) (moduleRecord, error) {
	var r moduleRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return moduleRecord{}, fmt.Errorf("module state file: %w", err)
	}
	if r.State == "running" && (r.Pid <= 0 || r.Supervisor <= 0) {
		return moduleRecord{}, fmt.Errorf("module state file: running without a pid (pid %d, supervisor %d)", r.Pid, r.Supervisor)
	}
	return r, nil
}

// running reports whether the record's module process is alive (and is that process,
// not a later one with its pid).
func (r moduleRecord) running() bool {
	return r.State == "running" && sameProcess(r.Pid, r.PidStart)
}

// killRecordedModules kills every module process (its whole process group) and
// supervisor recorded under agentData, checking start times so that no unrelated process
// is hit: the process runtime leaves modules running when the agent stops, by design.
// It returns the number of processes signalled.
func killRecordedModules(agentData string) (int, error) {
	files, err := filepath.Glob(filepath.Join(agentData, processStateDir, processModules, "*.json"))
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, f := range files {
		r, err := readModuleRecordFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Base(f), err))
			continue
		}
		if sameProcess(r.Pid, r.PidStart) {
			_ = syscall.Kill(-r.Pid, syscall.SIGKILL) // the module leads its process group
			n++
		}
		if sameProcess(r.Supervisor, r.SupervisorStart) {
			_ = syscall.Kill(r.Supervisor, syscall.SIGKILL)
			n++
		}
	}
	return n, errors.Join(errs...)
}

// sweepAgentModules kills the module processes an interrupted earlier run of the harness
// left under workdir (its agent-* directories), before workdir is emptied and their state
// files with it.
func sweepAgentModules(workdir string) error {
	dirs, err := filepath.Glob(filepath.Join(workdir, agentDirPrefix+"*", agentDataDir))
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range dirs {
		if _, err := killRecordedModules(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// supervisorsMemory sums the resident memory (RSS, and PSS: shared pages divided among
// the processes sharing them) of the supervisors of the modules recorded as running
// under agentData: each module of the process runtime has one, the agent's executable
// re-run in its hidden supervisor mode, so most of their pages are the same file's.
func supervisorsMemory(agentData string) (rss, pss int64, count int, err error) {
	files, err := filepath.Glob(filepath.Join(agentData, processStateDir, processModules, "*.json"))
	if err != nil {
		return 0, 0, 0, err
	}
	for _, f := range files {
		r, err := readModuleRecordFile(f)
		if err != nil || r.State != "running" || !sameProcess(r.Supervisor, r.SupervisorStart) {
			continue // removed or exited meanwhile
		}
		m, err := readMemory(r.Supervisor)
		if err != nil {
			continue
		}
		p, err := readPss(r.Supervisor)
		if err != nil {
			continue
		}
		rss += m.RSS
		pss += p
		count++
	}
	return rss, pss, count, nil
}

// rssSplit is a process's resident memory by kind, from /proc/<pid>/status: anonymous
// (heap, stacks) and file-backed (the executable's pages, memory-mapped files such as
// bbolt's), in bytes.
type rssSplit struct {
	Anon, File int64
}

// readRSSSplit reads RssAnon and RssFile of pid.
func readRSSSplit(pid int) (rssSplit, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return rssSplit{}, err
	}
	return parseRSSSplit(string(b))
}

func parseRSSSplit(status string) (rssSplit, error) {
	var r rssSplit
	found := 0
	for line := range strings.Lines(status) {
		key, rest, ok := strings.Cut(line, ":")
		if !ok || (key != "RssAnon" && key != "RssFile") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return rssSplit{}, fmt.Errorf("status: %s: unexpected %q", key, strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return rssSplit{}, fmt.Errorf("status: %s: %w", key, err)
		}
		if key == "RssAnon" {
			r.Anon = kb << 10
		} else {
			r.File = kb << 10
		}
		found++
	}
	if found != 2 {
		return rssSplit{}, errors.New("status: no RssAnon and RssFile lines")
	}
	return r, nil
}

// readPss returns the proportional set size of pid, from /proc/<pid>/smaps_rollup.
func readPss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	return parsePss(string(b))
}

// parsePss reads the "Pss:" line of smaps_rollup, in bytes.
func parsePss(rollup string) (int64, error) {
	for line := range strings.Lines(rollup) {
		rest, ok := strings.CutPrefix(line, "Pss:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("smaps_rollup: Pss: unexpected %q", strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("smaps_rollup: Pss: %w", err)
		}
		return kb << 10, nil
	}
	return 0, errors.New("smaps_rollup: no Pss line")
}
