package conformance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseRSS(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    int64
		wantErr bool
	}{
		{name: "running process", status: "Name:\trelayer\nVmPeak:\t  1000 kB\nVmRSS:\t    7424 kB\nRssAnon:\t 2000 kB\n", want: 7424 * 1024},
		{name: "zombie has none", status: "Name:\trelayer\nState:\tZ (zombie)\n", want: 0},
		{name: "no unit", status: "VmRSS:\t7424\n", wantErr: true},
		{name: "not a number", status: "VmRSS:\tlots kB\n", wantErr: true},
		{name: "negative", status: "VmRSS:\t-1 kB\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRSS([]byte(tt.status))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %d, %v; want %d (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseCPU(t *testing.T) {
	tail := " 1 1 1 1 -1 4194560 100 0 0 0 %d %d 0 0 20 0 8 0 12345 1000 1800"
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr bool
	}{
		{name: "plain", stat: "4242 (relayer) S" + fmt.Sprintf(tail, 150, 50), want: 2 * time.Second},
		{name: "name with spaces and parentheses", stat: "4242 (my (odd) mod) R" + fmt.Sprintf(tail, 3, 0), want: 30 * time.Millisecond},
		{name: "no name", stat: "4242 relayer S 1 2 3", wantErr: true},
		{name: "truncated", stat: "4242 (relayer) S 1 1 1", wantErr: true},
		{name: "bad number", stat: "4242 (relayer) S" + " 1 1 1 1 -1 4194560 100 0 0 0 x 1 0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCPU([]byte(tt.stat))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %v, %v; want %v (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestSampler_PeakAndAverage drives the sampler over a fake /proc whose files the test
// rewrites between samples, with a clock of its own.
func TestSampler_PeakAndAverage(t *testing.T) {
	proc := t.TempDir()
	dir := filepath.Join(proc, "42")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	s := procSampler(proc, 42, func() time.Time { return now })
	ctx := context.Background()
	write := func(rssKB, ticks int) {
		t.Helper()
		stat := fmt.Sprintf("42 (m) S 1 1 1 1 -1 0 0 0 0 0 %d 0 0 0 20 0 1 0 1 1 1", ticks)
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(fmt.Sprintf("VmRSS:\t%d kB\n", rssKB)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(1000, 100)
	s.sample(ctx)
	now = now.Add(2 * time.Second)
	write(5000, 150) // 0.5 s of CPU in 2 s
	s.sample(ctx)
	now = now.Add(2 * time.Second)
	write(3000, 200)
	s.sample(ctx)
	u := s.usage()
	if u.Samples != 3 || u.PeakRSS != 5000*1024 {
		t.Errorf("samples %d, peak %d", u.Samples, u.PeakRSS)
	}
	if got := u.AverageCPUPercent(); got != 25 {
		t.Errorf("average CPU %v%%, want 25%%", got)
	}
	// The process is gone: later read errors change nothing.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	s.sample(ctx)
	if s.usage() != u {
		t.Errorf("a failed sample changed the usage: %+v", s.usage())
	}
}

func TestSampler_ReadErrorBeforeAnySample(t *testing.T) {
	s := procSampler(t.TempDir(), 42, time.Now)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.run(ctx) // one sample, then returns
	u := s.usage()
	if u.Samples != 0 || u.ReadError == "" {
		t.Errorf("usage %+v, want no sample and the read error", u)
	}
	if why := unsampled(true, u); why == "" {
		t.Error("a process never sampled was judged")
	}
}

func TestSampler_OwnProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	s := procSampler("/proc", os.Getpid(), time.Now)
	s.sample(context.Background())
	if u := s.usage(); u.Samples != 1 || u.PeakRSS <= 0 {
		t.Errorf("sampling the test process: %+v", u)
	}
}
