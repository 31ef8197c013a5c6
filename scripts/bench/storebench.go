package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// goBench is one result line of `go test -bench`: the benchmark's name (without the
// "Benchmark" prefix and the -GOMAXPROCS suffix) and its metrics by unit ("ns/op",
// "MB/s", "msgs/s", ...).
type goBench struct {
	Name    string
	Metrics map[string]float64
}

// runStoreBench runs the store's Append benchmarks with the given go command and
// benchtime, from the repository root dir, and returns the command line and the results.
func runStoreBench(ctx context.Context, goCmd, dir, benchtime string) (string, []goBench, error) {
	args := []string{"test", "-run", "^$", "-bench", "Append", "-benchtime", benchtime, "./runtime/store"}
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = dir
	line := "go " + strings.Join(quoteArgs(args), " ")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return line, nil, fmt.Errorf("%s: %w\n%s", line, err, out)
	}
	res, err := parseGoBench(string(out))
	if err != nil {
		return line, nil, fmt.Errorf("%s: %w", line, err)
	}
	return line, res, nil
}

// parseGoBench reads the result lines of `go test -bench` output:
//
//	BenchmarkName/sub=1-2   <iterations>   <value> <unit>   <value> <unit> ...
//
// Other lines (goos, pkg, PASS, ok) are skipped. It fails on a result line it cannot
// read, and when there is none.
func parseGoBench(out string) ([]goBench, error) {
	var res []goBench
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // a benchmark's own log line, not a result
		}
		if len(f)%2 != 0 {
			return nil, fmt.Errorf("result line %q: values and units do not pair up", strings.TrimSpace(line))
		}
		b := goBench{Name: benchName(f[0]), Metrics: map[string]float64{}}
		for i := 2; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("result line %q: value %q: %w", strings.TrimSpace(line), f[i], err)
			}
			b.Metrics[f[i+1]] = v
		}
		res = append(res, b)
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("no benchmark result in the output:\n%s", out)
	}
	return res, nil
}

// benchName strips "Benchmark" and the trailing "-N" GOMAXPROCS suffix.
func benchName(s string) string {
	s = strings.TrimPrefix(s, "Benchmark")
	if i := strings.LastIndexByte(s, '-'); i > 0 {
		if _, err := strconv.Atoi(s[i+1:]); err == nil {
			s = s[:i]
		}
	}
	return s
}

// quoteArgs single-quotes the arguments a shell would otherwise interpret.
func quoteArgs(args []string) []string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "^$*?[]' \"\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return q
}

func storeScenario() scenario {
	return scenario{
		ID:    "store",
		Title: "Store alone",
		Limit: func(s *settings) time.Duration { return pick(s, 8*time.Minute, 3*time.Minute) },
		Run: func(ctx context.Context, s *settings, _ []*section) (*section, error) {
			line, res, err := runStoreBench(ctx, s.Go, s.Repo, pick(s, "2s", "300ms"))
			sec := &section{ID: "store", Title: "Store alone (runtime/store, go test -bench)"}
			sec.Intro = fmt.Sprintf("The store's own benchmarks, quoted from one run of `%s`: synchronous "+
				"writers (like MQTT clients waiting for their PUBACK) appending 1 KB durably (fsync) to one queue, "+
				"group-committed; `AppendAck` adds a reader acknowledging what it read. This is the ceiling the "+
				"hub's durable path works under.", line)
			if err != nil {
				return sec, err
			}
			tb := table{Header: []string{"benchmark", "msgs/s", "msgs/commit", "MB/s", "file MB"}}
			metric := func(b goBench, unit string, f func(float64) string) string {
				if v, ok := b.Metrics[unit]; ok {
					return f(v)
				}
				return "–"
			}
			one := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
			for _, b := range res {
				tb.Rows = append(tb.Rows, []string{"`" + b.Name + "`", metric(b, "msgs/s", thousands),
					metric(b, "msgs/commit", one), metric(b, "MB/s", one), metric(b, "file-MB", one)})
			}
			sec.Tables = []table{tb}
			return sec, nil
		},
	}
}
