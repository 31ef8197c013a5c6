package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// settings are the knobs of one harness run, from the flags and the BENCH_* variables.
type settings struct {
	Runs      int      // runs per measured case (BENCH_RUNS)
	Quick     bool     // shorter runs, for a smoke test (BENCH_QUICK=1)
	Repo      string   // repository root: go test and go build run there
	Workdir   string   // brokers' scratch directories (their data dirs: fsync happens here)
	Hub       string   // the edgehub binary
	HubArgs   []string // extra arguments for the hub binary (experiments)
	ProfHub   string   // the profiling build of the hub (scripts/bench/profhub); built when missing
	Mosquitto string   // the mosquitto binary
	BinDir    string   // the agent scenarios' binaries (make build's bin/); the agent's --image-dir too
	Go        string   // the go command
	Profile   string   // "auto" (when the durable target is missed), "always" or "never"
	// ProfilePublishers is the publisher count of the profiled throughput case (default 16).
	ProfilePublishers int
	// QuietWait bounds how long each run waits for the machine to be quiet (see waitQuiet);
	// 0 disables the wait.
	QuietWait time.Duration
	Log       *slog.Logger

	waited time.Duration // total spent in waitQuiet, for the report
}

// pick returns full, or quick in quick mode.
func pick[T any](s *settings, full, quick T) T {
	if s.Quick {
		return quick
	}
	return full
}

// scenario is one measured area of the report. Scenarios are independent of each other
// except that a later one may read the sections before it (the profile reads the
// throughput verdict). New areas (the upstream link, the agent) are added as scenarios.
type scenario struct {
	ID    string
	Title string
	// Limit is the hard time limit of the whole scenario; the runs not finished by then
	// are reported as missing.
	Limit func(s *settings) time.Duration
	Run   func(ctx context.Context, s *settings, done []*section) (*section, error)
}

// section is a scenario's part of the report.
type section struct {
	ID, Title string
	Intro     string   // markdown, before the tables
	Tables    []table  // markdown tables
	Code      []string // preformatted blocks (profiles)
	Notes     []string // markdown bullets after the tables: failed runs, caveats
	Checks    []check  // target verdicts, gathered at the top of the report
	Chart     *chart   // drawn to the PNG when set
}

// table is a markdown table.
type table struct {
	Caption string
	Header  []string
	Rows    [][]string
}

// check is one target from docs/peers-and-targets.md and whether this run met it.
type check struct {
	ID       string
	Area     string
	Target   string
	Measured string
	Met      bool
	// NotMeasured: the target could not be measured in this run (no Docker Engine);
	// Measured says why and the verdict is neither met nor missed.
	NotMeasured bool
}

// sideBySide runs measure against a fresh instance of every kind, s.Runs times, the
// kinds alternating which goes first, so that both see the same machine at nearly the
// same time. Each attempt has its own time limit. It returns the values of the runs that
// succeeded, by kind ID, and a note for each run that failed; it stops early, with a
// note, when ctx ends.
func sideBySide[T any](ctx context.Context, s *settings, kinds []brokerKind, publishers int, limit time.Duration,
	what string, measure func(ctx context.Context, b *broker) (T, error)) (map[string][]T, []string) {
	res := map[string][]T{}
	var notes []string
	for run := range s.Runs {
		for j := range kinds {
			k := kinds[(run+j)%len(kinds)]
			if ctx.Err() != nil {
				notes = append(notes, fmt.Sprintf("%s, %s, run %d: not run, the scenario's time limit was reached", what, k.Label, run+1))
				continue
			}
			s.waitQuiet(ctx)
			v, err := once(ctx, s, k, publishers, limit, measure)
			if err != nil {
				s.Log.Warn("run failed", "case", what, "broker", k.ID, "run", run+1, "err", err)
				notes = append(notes, fmt.Sprintf("%s, %s, run %d failed: %v", what, k.Label, run+1, oneLine(err)))
				continue
			}
			s.Log.Info("run", "case", what, "broker", k.ID, "run", run+1, "result", fmt.Sprintf("%+v", v))
			res[k.ID] = append(res[k.ID], v)
		}
	}
	return res, notes
}

// once starts a fresh broker of kind k, measures, and stops it.
func once[T any](ctx context.Context, s *settings, k brokerKind, publishers int, limit time.Duration,
	measure func(ctx context.Context, b *broker) (T, error)) (T, error) {
	var zero T
	rctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	b, err := k.start(rctx, s.Workdir, publishers)
	if err != nil {
		return zero, err
	}
	v, err := measure(rctx, b)
	stopErr := b.stop()
	s.Log.Debug("broker stopped", "broker", k.ID, "last_lines", b.proc.lastLines())
	if err == nil && stopErr != nil {
		err = fmt.Errorf("stopping %s: %w", k.Label, stopErr)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w (limit %v)", err, limit)
	}
	return v, err
}

// oneLine keeps the first line of an error (process errors append the broker's log).
func oneLine(err error) string {
	s := err.Error()
	for i, c := range s {
		if c == '\n' {
			return s[:i] + " (...)"
		}
	}
	return s
}

// values extracts one float from each run, for summarize.
func values[T any](runs []T, f func(T) float64) []float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	return v
}

// Quiet machine: the busy time of all CPUs over quietWindow, with no broker of ours
// running, below quietBusy of one core.
const (
	quietWindow = time.Second
	quietBusy   = 0.3
)

// waitQuiet waits, at most s.QuietWait, for a quiet machine before a run: on a machine
// shared with other work (builds, test suites) a run that starts during someone else's
// burst measures them as much as the broker. It gives up silently: the run's "others'
// CPU" column shows how busy the machine was.
func (s *settings) waitQuiet(ctx context.Context) {
	if s.QuietWait <= 0 {
		return
	}
	start := time.Now()
	defer func() { s.waited += time.Since(start) }()
	deadline := start.Add(s.QuietWait)
	for time.Now().Before(deadline) {
		a, err := machineBusy()
		if err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(quietWindow):
		}
		b, err := machineBusy()
		if err != nil || float64(b-a) < quietBusy*float64(quietWindow) {
			return
		}
	}
	s.Log.Info("machine still busy, running anyway", "waited", s.QuietWait)
}
