package conformance

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The resource checks sample the module while it runs. A process is read from its /proc
// entry: the resident set size from /proc/{pid}/status (VmRSS) and the CPU time from
// /proc/{pid}/stat (utime + stime), every sampleInterval; only the module's own process is
// counted, not its children. An instance that measures itself (ResourceSampler: a
// container, through the engine's stats of its cgroup) is asked instead, every
// Interval it gives.

// sampleInterval is the time between two samples of a process.
const sampleInterval = 100 * time.Millisecond

// clockTicks is the unit of utime and stime in /proc/{pid}/stat (USER_HZ). It is 100 on
// every Linux architecture Go supports; reading sysconf(_SC_CLK_TCK) would need cgo.
const clockTicks = 100

// usage is what the sampler saw.
type usage struct {
	Samples   int
	PeakRSS   int64         // bytes
	CPU       time.Duration // CPU time at the last sample
	First     time.Time     // first sample
	Last      time.Time     // last sample
	FirstCPU  time.Duration // CPU time at the first sample
	ReadError string        // the first read failure while the module was running
}

// AverageCPUPercent is the CPU time used between the first and the last sample over the
// wall time between them, in percent of one core.
func (u usage) AverageCPUPercent() float64 {
	wall := u.Last.Sub(u.First)
	if wall <= 0 {
		return 0
	}
	return 100 * float64(u.CPU-u.FirstCPU) / float64(wall)
}

// readFunc reads one sample of the module's resource use.
type readFunc func(ctx context.Context) (ResourceSample, error)

// sampler samples one module until its context ends.
type sampler struct {
	read     readFunc
	interval time.Duration
	now      func() time.Time

	mu sync.Mutex
	u  usage
}

// procSampler samples process pid through the proc file system at proc ("/proc").
func procSampler(proc string, pid int, now func() time.Time) *sampler {
	return &sampler{read: procReader(proc, pid), interval: sampleInterval, now: now}
}

// run samples every interval until ctx ends; the first sample is taken at once.
func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		s.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sample reads the module's use once. A module that has exited gives read errors, which
// are kept only until the first good sample has been taken.
func (s *sampler) sample(ctx context.Context) {
	r, err := s.read(ctx)
	now := r.At
	if now.IsZero() {
		now = s.now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.u.Samples == 0 && s.u.ReadError == "" {
			s.u.ReadError = err.Error()
		}
		return
	}
	if s.u.Samples == 0 {
		s.u.First, s.u.FirstCPU = now, r.CPU
	}
	s.u.Samples++
	s.u.Last, s.u.CPU = now, r.CPU
	s.u.PeakRSS = max(s.u.PeakRSS, r.Memory)
}

// usage returns what was sampled so far.
func (s *sampler) usage() usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.u
}

// procReader reads process pid's resident set and CPU time from its /proc entry.
func procReader(proc string, pid int) readFunc {
	dir := fmt.Sprintf("%s/%d/", proc, pid)
	return func(context.Context) (ResourceSample, error) {
		status, err := os.ReadFile(dir + "status")
		if err != nil {
			return ResourceSample{}, err
		}
		stat, err := os.ReadFile(dir + "stat")
		if err != nil {
			return ResourceSample{}, err
		}
		rss, err := parseRSS(status)
		if err != nil {
			return ResourceSample{}, err
		}
		cpu, err := parseCPU(stat)
		if err != nil {
			return ResourceSample{}, err
		}
		return ResourceSample{Memory: rss, CPU: cpu}, nil
	}
}

// parseRSS reads VmRSS from /proc/{pid}/status, in bytes. A process without it (a zombie,
// a kernel thread) has a zero resident set.
func parseRSS(status []byte) (int64, error) {
	for _, line := range bytes.Split(status, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc status: malformed VmRSS line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("/proc status: malformed VmRSS line %q", line)
		}
		return kb * 1024, nil
	}
	return 0, nil
}

// parseCPU reads utime + stime from /proc/{pid}/stat. The command name (field 2) is in
// parentheses and may hold spaces and parentheses itself, so the fields are counted from
// the last ')'.
func parseCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat: no command name in %q", truncate(string(stat), 80))
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("/proc stat: malformed CPU time %q", s)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// truncate shortens s to at most n bytes for a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
