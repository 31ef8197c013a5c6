package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// profileScenario profiles the hub under the durable throughput load when the durable
// target was missed (or always, or never, per settings.Profile): it builds profhub (the
// hub with CPU, block and allocation profiles, scripts/bench/profhub), runs the 1 KB case
// with settings.ProfilePublishers publishers once against it, and quotes `go tool pprof -top`.
func profileScenario() scenario {
	return scenario{
		ID:    "profile",
		Title: "Profile of the hub",
		Limit: func(s *settings) time.Duration { return pick(s, 5*time.Minute, 3*time.Minute) },
		Run:   runProfileScenario,
	}
}

// profileSize is the payload of the profiled case: 1 KB, with settings.ProfilePublishers
// publishers (default 16, the largest durable case of the throughput scenario).
const profileSize = 1024

func runProfileScenario(ctx context.Context, s *settings, done []*section) (*section, error) {
	missed := durableMissed(done)
	switch {
	case s.Profile == "never":
		return nil, nil
	case s.Profile == "auto" && !missed:
		return nil, nil
	}
	sec := &section{ID: "profile", Title: "Profile of the hub under the durable load"}
	dir := filepath.Join(s.Workdir, "profile")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sec, err
	}
	bin := s.ProfHub
	if _, err := os.Stat(bin); err != nil {
		build := exec.CommandContext(ctx, s.Go, "build", "-o", bin, "./scripts/bench/profhub")
		build.Dir = s.Repo
		if out, err := build.CombinedOutput(); err != nil {
			return sec, fmt.Errorf("building profhub: %w\n%s", err, out)
		}
	}
	cpu, block, allocs := filepath.Join(dir, "cpu.prof"), filepath.Join(dir, "block.prof"), filepath.Join(dir, "allocs.prof")
	kind := hubKind("Outpost hub (profhub)", bin, func(string) []string {
		return []string{"--cpuprofile", cpu, "--blockprofile", block, "--allocprofile", allocs}
	})
	count := pick(s, 60000, 10000)
	run, err := once(ctx, s, kind, s.ProfilePublishers, pick(s, 3*time.Minute, time.Minute),
		func(ctx context.Context, b *broker) (throughputRun, error) {
			return measureThroughput(ctx, b, s.ProfilePublishers, profileSize, count, throughputWindow)
		})
	if err != nil {
		return sec, err
	}
	why := "the durable throughput target was missed"
	if !missed {
		why = "profiling was asked for (BENCH_PROFILE=always)"
	}
	sec.Intro = fmt.Sprintf("Run because %s. `scripts/bench/profhub` is the hub wired as cmd/edgehub wires it (plain "+
		"listener only) that writes a CPU profile, a block profile (blocking events ≥ 10 µs) and an allocation profile of its whole life; "+
		"it took the %s, %d-publisher case with %s messages: %s msg/s delivered, %s msg/s PUBACKed, hub CPU %.0f%% "+
		"of one core (profiling costs a little). The profiles are kept in `%s` (`go tool pprof %s %s`).",
		why, sizeLabel(profileSize), s.ProfilePublishers, thousands(float64(count)), thousands(run.Delivered),
		thousands(run.Acked), run.CPU.Broker, relPath(s.Repo, dir), relPath(s.Repo, bin), relPath(s.Repo, cpu))
	if facts, err := blockFacts(ctx, s, bin, cpu, block, s.ProfilePublishers); err != nil {
		sec.Notes = append(sec.Notes, "Reading the block profile failed: "+oneLine(err))
	} else {
		sec.Intro += " " + facts
	}
	for _, q := range []struct {
		what, file string
		args       []string
	}{
		{"CPU, by own time (flat)", cpu, []string{"-top", "-nodecount=20"}},
		{"CPU, by cumulative time", cpu, []string{"-top", "-cum", "-nodecount=30"}},
		{"blocking (channel, select, mutex waits ≥ 10 µs), by cumulative time", block, []string{"-top", "-cum", "-nodecount=25"}},
		{"bytes allocated over the run, by own allocations", allocs, []string{"-top", "-sample_index=alloc_space", "-nodecount=20"}},
	} {
		args := append([]string{"tool", "pprof"}, q.args...)
		args = append(args, bin, q.file)
		cmd := exec.CommandContext(ctx, s.Go, args...)
		cmd.Dir = s.Repo
		out, err := cmd.Output()
		if err != nil {
			sec.Notes = append(sec.Notes, fmt.Sprintf("`go %s` failed: %v", strings.Join(args, " "), err))
			continue
		}
		sec.Code = append(sec.Code, fmt.Sprintf("# %s: go tool pprof %s\n%s", q.what, strings.Join(q.args, " "),
			strings.TrimRight(string(out), "\n")))
	}
	return sec, nil
}

// durableMissed reports whether a done section holds a durable throughput check that
// was missed.
func durableMissed(done []*section) bool {
	for _, sec := range done {
		for _, c := range sec.Checks {
			if (c.ID == checkDurable || c.ID == checkDurableRatio) && !c.Met {
				return true
			}
		}
	}
	return false
}

func relPath(base, p string) string {
	if r, err := filepath.Rel(base, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

// blockFacts reads where the hub's goroutines waited, from the block profile, against
// the profile's duration (from the CPU profile): the longest cumulative waits in the
// hub's and the store's functions.
func blockFacts(ctx context.Context, s *settings, bin, cpu, block string, publishers int) (string, error) {
	top := func(file string) (string, error) {
		cmd := exec.CommandContext(ctx, s.Go, "tool", "pprof", "-top", "-cum", "-nodecount=1000", bin, file)
		cmd.Dir = s.Repo
		out, err := cmd.Output()
		return string(out), err
	}
	cpuOut, err := top(cpu)
	if err != nil {
		return "", fmt.Errorf("pprof %s: %w", cpu, err)
	}
	blockOut, err := top(block)
	if err != nil {
		return "", fmt.Errorf("pprof %s: %w", block, err)
	}
	dur, err := pprofDuration(cpuOut)
	if err != nil {
		return "", err
	}
	cum, err := pprofCumulative(blockOut)
	if err != nil {
		return "", err
	}
	// Where the hub's own code waited, longest first: the pumps, the acknowledgers, the
	// store's committer. Names are read from the profile rather than listed here, so the
	// summary follows the code as it changes.
	type wait struct {
		name string
		d    time.Duration
	}
	var waits []wait
	for name, d := range cum {
		if strings.HasPrefix(name, "runtime/hub.") || strings.HasPrefix(name, "runtime/store.") {
			waits = append(waits, wait{name, d})
		}
	}
	if len(waits) == 0 {
		return "", fmt.Errorf("no function of runtime/hub or runtime/store in the block profile")
	}
	slices.SortFunc(waits, func(a, b wait) int { return cmp.Or(cmp.Compare(b.d, a.d), cmp.Compare(a.name, b.name)) })
	waits = waits[:min(len(waits), 5)]
	parts := make([]string, len(waits))
	for i, w := range waits {
		parts[i] = fmt.Sprintf("`%s` %s (%.0f%% of the hub's life)", w.name,
			strconv.FormatFloat(w.d.Seconds(), 'f', 2, 64)+" s", 100*float64(w.d)/float64(dur))
	}
	return fmt.Sprintf("Over the hub's %s life (%d publishers, each with its own read goroutine), the block profile's "+
		"longest cumulative waits in the hub's and the store's code are: %s.",
		strconv.FormatFloat(dur.Seconds(), 'f', 2, 64)+" s", publishers, strings.Join(parts, "; ")), nil
}

// pprofDuration reads "Duration: 8.22s" from a pprof -top header.
func pprofDuration(out string) (time.Duration, error) {
	for line := range strings.Lines(out) {
		if rest, ok := strings.CutPrefix(line, "Duration: "); ok {
			v, _, _ := strings.Cut(rest, ",")
			return pprofTime(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("pprof output has no Duration line")
}

// pprofCumulative maps each function of a pprof -top table to its cumulative value, keyed
// by the function name without the module path (github.com/outpost-edge/outpost/).
func pprofCumulative(out string) (map[string]time.Duration, error) {
	cum := map[string]time.Duration{}
	header := false
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == "flat" && f[1] == "flat%" { // "flat  flat%  sum%  cum  cum%"
			header = true
			continue
		}
		if !header || len(f) < 6 {
			continue
		}
		d, err := pprofTime(f[3])
		if err != nil {
			return nil, fmt.Errorf("pprof line %q: %w", strings.TrimSpace(line), err)
		}
		name := strings.TrimSuffix(strings.Join(f[5:], " "), " (inline)")
		cum[strings.TrimPrefix(name, "github.com/outpost-edge/outpost/")] = d
	}
	if !header {
		return nil, fmt.Errorf("pprof output has no table")
	}
	return cum, nil
}

// pprofTime parses a pprof time value: a Go duration ("94.23s", "250ms", "120us") or
// "1.5mins" / "2hrs", which pprof prints for long totals.
func pprofTime(v string) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"mins": time.Minute, "hrs": time.Hour} {
		if n, ok := strings.CutSuffix(v, suffix); ok {
			f, err := strconv.ParseFloat(n, 64)
			if err != nil {
				return 0, fmt.Errorf("time %q: %w", v, err)
			}
			return time.Duration(f * float64(unit)), nil
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("time %q: %w", v, err)
	}
	return d, nil
}
