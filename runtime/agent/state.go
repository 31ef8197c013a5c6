package agent

import (
	"errors"
	"sort"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent/restart"
)

// State is a module's state in the runtime.
type State string

// Module states. Runtimes map theirs onto these: Docker's "created" is
// StateCreated; "running", "paused" and "restarting" are StateRunning;
// "exited" and "removing" are StateExited; "dead" is StateDead. Any other
// value is left alone by Plan except for updates and removals.
const (
	// StateMissing: no container, but the agent has a Record for the
	// module (it was created before and deleted by hand, or its creation
	// failed). Produced by Merge, never by a runtime.
	StateMissing State = "missing"
	// StateCreated: created and never started.
	StateCreated State = "created"
	// StateRunning: its process runs (see ModuleState.Health).
	StateRunning State = "running"
	// StateExited: it ran and exited; ExitCode and ExitedAt say how and when.
	StateExited State = "exited"
	// StateDead: the runtime gave up on the container (Docker "dead", e.g.
	// a failed removal). It is removed and recreated.
	StateDead State = "dead"
)

// ModuleState is the current state of one module: what the runtime reports
// (Runtime.List) joined with what the agent remembers (Record, see Merge).
type ModuleState struct {
	Name     string
	State    State
	Health   restart.Health // of a running module
	ExitCode int            // of the last run, when exited or dead
	// StartedAt and ExitedAt are the runtime's times of the last start and
	// exit, zero when unknown.
	StartedAt, ExitedAt time.Time
	// Image is the image the module was created from, as written in the
	// manifest (LabelImage when present); ImageID is the runtime's id of it
	// (reported as imageHash).
	Image, ImageID string
	// SpecHash is LabelSpecHash as recorded at create; "" for a module
	// created without it.
	SpecHash string

	// Record is kept by the agent, not by the runtime.
	Record Record
	// Pulling is set by the agent while a Pull for this module runs, so
	// that StatusOf reports "downloading". Runtimes leave it false.
	Pulling bool
}

// Record is what the agent remembers about a module between reconciles and
// across its own restarts (persist it, e.g. as JSON). The agent updates it
// with Update after every command it executes, and drops records that are
// zero.
type Record struct {
	// History is the restart history restart.Decide reads.
	History restart.History `json:"history,omitzero"`
	// StoppedFor says why the agent last stopped the module, if it did and
	// has not started it since: CauseStatus (desired status stopped) or
	// CauseUnhealthy (stopped by the restart policy). CauseNone when the
	// module stopped by itself.
	StoppedFor Cause `json:"stoppedFor,omitempty"`
	// Retry is the back-off after failed commands.
	Retry Retry `json:"retry,omitzero"`
}

// Retry is the per-module back-off after a command failed (a pull, a
// create…), so that a module that cannot be deployed is retried at a
// bounded rate without holding up the others. It is separate from the
// restart policy, which is about modules that run and exit.
type Retry struct {
	// Failures counts consecutive failed commands for the same Hash.
	Failures int `json:"failures,omitempty"`
	// At is when the module's commands may run again.
	At time.Time `json:"at,omitzero"`
	// Last is when the last failure happened.
	Last time.Time `json:"last,omitzero"`
	// Hash is the Command.Hash of the failed command: the desired spec it
	// tried to reach. A deployment that changes the module (another hash)
	// is tried at once.
	Hash string `json:"hash,omitempty"`
	// Err is the text of the last error (not redacted: redact before
	// reporting it, as Report does).
	Err string `json:"err,omitempty"`
}

// retryForget is how long after a failure a new failure starts a new count.
const retryForget = restart.DefaultResetAfter

// RetryDelay is the wait after the n-th consecutive failed command:
// min(10 s × 2^(n-1), 300 s), the restart back-off's defaults. Unlike
// Azure's plan runner it is capped and never gives up.
func RetryDelay(n int) time.Duration {
	return restart.Policy{}.Delay(n - 1)
}

// pending reports whether r holds back commands toward hash at now.
func (r Retry) pending(hash string, now time.Time) bool {
	return r.Failures > 0 && r.Hash == hash && now.Before(r.At)
}

// Update returns the record after command c finished with err at now. It is
// the agent's bookkeeping, kept here so that it stays consistent with Plan:
//
//   - a failure (other than ErrSkipped) sets Retry: Failures+1 for the same
//     Hash within 10 minutes of the last failure, else 1; At = now +
//     RetryDelay(Failures);
//   - Restart counts: RestartCount+1, LastRestart = now;
//   - Start and Restart clear StoppedFor and Retry;
//   - Stop for CauseStatus sets StoppedFor and clears History (a status
//     change starts afresh, as in Azure); Stop for CauseUnhealthy sets
//     StoppedFor;
//   - Remove forgets everything (the zero Record), except for a dead
//     module, which is recreated and keeps its history;
//   - Reset clears History.
func (r Record) Update(c Command, err error, now time.Time) Record {
	if err != nil {
		if errors.Is(err, ErrSkipped) {
			return r
		}
		n := 1
		if r.Retry.Failures > 0 && r.Retry.Hash == c.Hash && now.Sub(r.Retry.Last) < retryForget {
			n = r.Retry.Failures + 1
		}
		r.Retry = Retry{Failures: n, At: now.Add(RetryDelay(n)), Last: now, Hash: c.Hash, Err: err.Error()}
		return r
	}
	switch c.Kind {
	case Start:
		r.StoppedFor, r.Retry = CauseNone, Retry{}
	case Restart:
		r.StoppedFor, r.Retry = CauseNone, Retry{}
		r.History.RestartCount++
		r.History.LastRestart = now
	case Stop:
		switch c.Cause {
		case CauseStatus:
			r.StoppedFor, r.History = CauseStatus, restart.History{}
		case CauseUnhealthy:
			r.StoppedFor = CauseUnhealthy
		}
	case Remove:
		if c.Cause != CauseDead {
			return Record{}
		}
	case Reset:
		r.History = restart.History{}
	}
	return r
}

// IsZero reports whether r holds nothing worth keeping.
func (r Record) IsZero() bool { return r == Record{} }

// Merge joins what the runtime lists with the agent's records: each listed
// module gets its record, and a record whose module is not listed becomes a
// StateMissing entry. The result is sorted by name; listed entries are not
// modified.
func Merge(listed []ModuleState, records map[string]Record) []ModuleState {
	out := make([]ModuleState, 0, len(listed)+len(records))
	seen := make(map[string]bool, len(listed))
	for _, m := range listed {
		m.Record = records[m.Name]
		seen[m.Name] = true
		out = append(out, m)
	}
	for name, r := range records {
		if !seen[name] && !r.IsZero() {
			out = append(out, ModuleState{Name: name, State: StateMissing, Record: r})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// restartStatus is the policy's view of s.
func (s ModuleState) restartStatus() restart.Status {
	return restart.Status{
		Running:   s.State == StateRunning,
		Health:    s.Health,
		Exited:    s.State == StateExited || s.State == StateDead,
		ExitCode:  s.ExitCode,
		Failed:    s.State == StateDead || s.Record.StoppedFor == CauseUnhealthy,
		StartedAt: s.StartedAt,
		ExitedAt:  s.ExitedAt,
	}
}
