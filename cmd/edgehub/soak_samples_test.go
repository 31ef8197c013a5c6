package main

// The soak test's measurements (soak_test.go): one sample of the hub process per interval,
// read from /proc and from the hub's Prometheus endpoint, the verdict on whether the
// resources stayed flat, and the files the run leaves behind.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// soakSample is the state of the hub at one moment of the soak.
type soakSample struct {
	at         time.Duration // since the start of the soak
	life       int           // which hub process (1 = the first start)
	sinceStart time.Duration // since this hub process became ready
	online     bool          // the network to IoT Hub was up
	rss        int64         // VmRSS, bytes
	goroutines int
	fds        int
	queue      int // messages waiting in every queue
	acked      int // messages acknowledged to the publishers so far
}

// readProcess reads the RSS (bytes) and the number of open file descriptors of pid.
func readProcess(pid int) (rss int64, fds int, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			rss = kb << 10
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, 0, err
	}
	return rss, len(ents), nil
}

// scrapeMetrics fetches the hub's Prometheus text exposition and returns, for each of the
// names asked, the sum of its series' values (metrics absent from the page are missing
// from the map).
func scrapeMetrics(addr string, names ...string) (map[string]float64, error) {
	if addr == "" {
		return nil, errors.New("the hub serves no metrics")
	}
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return sumMetrics(string(body), names...), nil
}

// sumMetrics sums, per name, the values of the series of the exposition text whose metric
// name is one of names.
func sumMetrics(text string, names ...string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '{'); i >= 0 && i < len(name) {
			name = line[:i]
			_, rest, _ = strings.Cut(line[strings.LastIndexByte(line, '}')+1:], " ")
		}
		if !slices.Contains(names, name) {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			out[name] += v
		}
	}
	return out
}

// Bounds of a flat run: the median of the last third of the steady samples against the
// median of the first third.
const (
	flatRSSFactor   = 1.25    // RSS may grow by a quarter...
	flatRSSSlack    = 4 << 20 // ...plus 4 MiB (allocator and page cache noise)
	flatGoroutines  = 10      // goroutines may grow by 10...
	flatGoroutineFr = 0.10    // ...or 10 %, whichever is more
	flatFDs         = 8       // open files may grow by 8
	steadyWarmup    = 5 * time.Second
	steadyQueue     = 50 // at most this many messages queued: not a backlog
	minSteady       = 6  // fewer steady samples than this prove nothing
)

// steady returns the samples taken in steady state: online, with no backlog to speak of,
// and after the hub process's first seconds. Only these are compared, since a backlog
// (during a cut, or draining after one) legitimately takes memory and file pages.
func steady(samples []soakSample) []soakSample {
	var out []soakSample
	for _, s := range samples {
		if s.online && s.queue <= steadyQueue && s.sinceStart >= steadyWarmup {
			out = append(out, s)
		}
	}
	return out
}

// flatness is the verdict on a soak's samples.
type flatness struct {
	steady            int
	rssFirst, rssLast int64
	goFirst, goLast   int
	fdsFirst, fdsLast int
	problems          []string // empty: flat
}

// judgeFlat compares the first and last thirds of the steady samples.
func judgeFlat(samples []soakSample) flatness {
	st := steady(samples)
	v := flatness{steady: len(st)}
	if len(st) < minSteady {
		v.problems = append(v.problems, fmt.Sprintf("only %d steady samples (online, queue <= %d, %v after a start), need %d: the run was too short or never steady",
			len(st), steadyQueue, steadyWarmup, minSteady))
		return v
	}
	third := len(st) / 3
	first, last := st[:third], st[len(st)-third:]
	med := func(part []soakSample, f func(soakSample) int64) int64 {
		vals := make([]int64, len(part))
		for i, s := range part {
			vals[i] = f(s)
		}
		slices.Sort(vals)
		return vals[len(vals)/2]
	}
	v.rssFirst, v.rssLast = med(first, func(s soakSample) int64 { return s.rss }), med(last, func(s soakSample) int64 { return s.rss })
	v.goFirst = int(med(first, func(s soakSample) int64 { return int64(s.goroutines) }))
	v.goLast = int(med(last, func(s soakSample) int64 { return int64(s.goroutines) }))
	v.fdsFirst = int(med(first, func(s soakSample) int64 { return int64(s.fds) }))
	v.fdsLast = int(med(last, func(s soakSample) int64 { return int64(s.fds) }))
	if limit := int64(float64(v.rssFirst)*flatRSSFactor) + flatRSSSlack; v.rssLast > limit {
		v.problems = append(v.problems, fmt.Sprintf("RSS grew from %s to %s (limit %s)", mib(v.rssFirst), mib(v.rssLast), mib(limit)))
	}
	if limit := v.goFirst + max(flatGoroutines, int(float64(v.goFirst)*flatGoroutineFr)); v.goLast > limit {
		v.problems = append(v.problems, fmt.Sprintf("goroutines grew from %d to %d (limit %d)", v.goFirst, v.goLast, limit))
	}
	if limit := v.fdsFirst + flatFDs; v.fdsLast > limit {
		v.problems = append(v.problems, fmt.Sprintf("open files grew from %d to %d (limit %d)", v.fdsFirst, v.fdsLast, limit))
	}
	return v
}

func (v flatness) String() string {
	return fmt.Sprintf("%d steady samples; RSS %s -> %s, goroutines %d -> %d, open files %d -> %d (medians of the first and last thirds)",
		v.steady, mib(v.rssFirst), mib(v.rssLast), v.goFirst, v.goLast, v.fdsFirst, v.fdsLast)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// writeSoakFiles writes samples.csv and summary.md into dir.
func writeSoakFiles(dir string, samples []soakSample, summary string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("seconds,hub_process,online,rss_bytes,goroutines,open_files,queue_length,acked_total\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "%.1f,%d,%t,%d,%d,%d,%d,%d\n", s.at.Seconds(), s.life, s.online, s.rss, s.goroutines, s.fds, s.queue, s.acked)
	}
	if err := os.WriteFile(filepath.Join(dir, "samples.csv"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "summary.md"), []byte(summary), 0o644)
}
