package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
)

// recordVersion is the format version of module state files. A file with
// another version is corrupt to this code (listed as dead); a change to
// the format bumps it and adds a migration here.
const recordVersion = 1

// File names under Options.StateDir (see the package documentation,
// "On disk").
const (
	modulesDir = "modules"
	logsDir    = "logs"
	workDir    = "work"
	recordExt  = ".json"
	exitExt    = ".exit"
	logExt     = ".log"
	rotatedExt = ".1"
)

// record is a module's state file, <StateDir>/modules/<name>.json. The
// runtime writes it; the supervisor never does.
type record struct {
	Version int `json:"version"`
	// The spec as given to Create.
	Name          string            `json:"name"`
	Image         string            `json:"image"`
	Env           []string          `json:"env,omitempty"`
	CreateOptions string            `json:"createOptions,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Hash          string            `json:"hash,omitempty"`
	// ImageID identifies the executable the image resolved to at create.
	ImageID string `json:"imageId"`
	// Exec is how the module runs, resolved at create; every start reuses it.
	Exec      execSpec  `json:"exec"`
	CreatedAt time.Time `json:"createdAt"`

	// State is created, running or exited as last recorded; List checks a
	// running module against /proc and the exit file.
	State agent.State `json:"state"`
	// Run counts starts; the exit file of run Run is the one that counts.
	Run int `json:"run,omitempty"`
	// Pid and PidStart identify the module's process (its process group
	// leader); Supervisor and SupervisorStart its supervisor. The start
	// times come from /proc/<pid>/stat and guard against pid reuse.
	Pid             int       `json:"pid,omitempty"`
	PidStart        uint64    `json:"pidStart,omitempty"`
	Supervisor      int       `json:"supervisor,omitempty"`
	SupervisorStart uint64    `json:"supervisorStart,omitempty"`
	StartedAt       time.Time `json:"startedAt,omitzero"`
	ExitedAt        time.Time `json:"exitedAt,omitzero"`
	ExitCode        int       `json:"exitCode"`
}

// execSpec is how a module's process is started.
type execSpec struct {
	Path string   `json:"path"`
	Args []string `json:"args,omitempty"`
	Env  []string `json:"env,omitempty"`
	// Dir is the working directory from createOptions; "" means the
	// module's own <StateDir>/work/<name>.
	Dir    string      `json:"dir,omitempty"`
	Health *healthSpec `json:"health,omitempty"`
}

// exitRecord is the exit file, <StateDir>/modules/<name>.exit, written by
// the supervisor once the module has exited.
type exitRecord struct {
	Run      int       `json:"run"`
	Pid      int       `json:"pid"`
	ExitCode int       `json:"exitCode"`
	ExitedAt time.Time `json:"exitedAt"`
	// Err reports a supervisor problem (e.g. the log file could not be
	// written); the exit code is still right.
	Err string `json:"err,omitempty"`
}

// spec returns the ModuleSpec the record was created from.
func (rec *record) spec() agent.ModuleSpec {
	return agent.ModuleSpec{Name: rec.Name, Image: rec.Image, Env: rec.Env, CreateOptions: rec.CreateOptions, Labels: rec.Labels, Hash: rec.Hash}
}

// checkName rejects names that are not usable as a file name.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("module %q: %w", name, ErrName)
	}
	return nil
}

// paths computes the files of a module.
type paths struct{ dir string }

func (p paths) record(name string) string  { return filepath.Join(p.dir, modulesDir, name+recordExt) }
func (p paths) exit(name string) string    { return filepath.Join(p.dir, modulesDir, name+exitExt) }
func (p paths) log(name string) string     { return filepath.Join(p.dir, logsDir, name+logExt) }
func (p paths) workDir(name string) string { return filepath.Join(p.dir, workDir, name) }

// loadRecord reads a module's state file: agent.ErrNotFound when there is
// none, ErrCorrupt when it cannot be used.
func (p paths) loadRecord(name string) (*record, error) {
	b, err := os.ReadFile(p.record(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("module %q: %w", name, agent.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("module %q: %w", name, err)
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("module %q: %w: %v", name, ErrCorrupt, err)
	}
	if rec.Version != recordVersion {
		return nil, fmt.Errorf("module %q: %w: format version %d, want %d", name, ErrCorrupt, rec.Version, recordVersion)
	}
	if rec.Name != name {
		return nil, fmt.Errorf("module %q: %w: file names module %q", name, ErrCorrupt, rec.Name)
	}
	return &rec, nil
}

// saveRecord writes a module's state file atomically.
func (p paths) saveRecord(rec *record) error {
	rec.Version = recordVersion
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("module %q: %w", rec.Name, err)
	}
	if err := writeFileAtomic(p.record(rec.Name), b); err != nil {
		return fmt.Errorf("module %q: save state: %w", rec.Name, err)
	}
	return nil
}

// loadExit reads a module's exit file; ok is false when there is none or
// it cannot be read (a torn write cannot happen: it is renamed into place).
func (p paths) loadExit(name string) (exitRecord, bool) {
	b, err := os.ReadFile(p.exit(name))
	if err != nil {
		return exitRecord{}, false
	}
	var ex exitRecord
	if json.Unmarshal(b, &ex) != nil {
		return exitRecord{}, false
	}
	return ex, true
}

// names lists the modules that have a state file.
func (p paths) names() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(p.dir, modulesDir))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), recordExt); ok && e.Type().IsRegular() && checkName(name) == nil {
			out = append(out, name)
		}
	}
	return out, nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, so that readers see the old or the new content,
// never a mix, even after a crash.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
