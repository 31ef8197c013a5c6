package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/outpost-edge/outpost/runtime/store
cpu: AMD EPYC
BenchmarkAppend1KB_Parallel/writers=2-2         	    9634	    216000 ns/op	   4.74 MB/s	         1.700 msgs/commit	      4631 msgs/s
BenchmarkAppendAck/writers=16-2                 	   34429	     87140 ns/op	  11.75 MB/s	         0.2000 file-MB	     11476 msgs/s
BenchmarkAppendAck/writers=16-2 some log line the benchmark printed
PASS
ok  	github.com/outpost-edge/outpost/runtime/store	12.345s
`
	got, err := parseGoBench(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []goBench{
		{Name: "Append1KB_Parallel/writers=2", Metrics: map[string]float64{"ns/op": 216000, "MB/s": 4.74, "msgs/commit": 1.7, "msgs/s": 4631}},
		{Name: "AppendAck/writers=16", Metrics: map[string]float64{"ns/op": 87140, "MB/s": 11.75, "file-MB": 0.2, "msgs/s": 11476}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseGoBench\n got %+v\nwant %+v", got, want)
	}

	errs := []struct{ name, out, want string }{
		{name: "no result", out: "PASS\nok x 1s\n", want: "no benchmark result"},
		{name: "unpaired value", out: "BenchmarkX-2 10 5 ns/op 7\n", want: "do not pair up"},
		{name: "bad value", out: "BenchmarkX-2 10 five ns/op\n", want: `value "five"`},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseGoBench(tt.out); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestBenchName(t *testing.T) {
	tests := map[string]string{
		"BenchmarkAppend-2":             "Append",
		"BenchmarkAppend/writers=16-16": "Append/writers=16",
		"BenchmarkNoSuffix":             "NoSuffix",
		"BenchmarkDash/a-b":             "Dash/a-b",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			if got := benchName(in); got != want {
				t.Fatalf("benchName(%q) = %q, want %q", in, got, want)
			}
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr string
	}{
		{name: "plain", stat: "1234 (edgehub) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 0 0",
			want: 3 * time.Second},
		{name: "command with spaces and parentheses", stat: "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5 0 0",
			want: 30 * time.Millisecond},
		{name: "no command", stat: "1234 edgehub S", wantErr: "no command name"},
		{name: "too short", stat: "1 (x) S 1 2", wantErr: "fields"},
		{name: "bad number", stat: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 ten 2 0 0 20 0 1 0 5 0 0", wantErr: `"ten"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU(tt.stat)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseStatCPU = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestParseIOSyscr(t *testing.T) {
	io := "rchar: 323934931\nwchar: 323929600\nsyscr: 632687\nsyscw: 632675\nread_bytes: 0\n"
	if n, err := parseIOSyscr(io); err != nil || n != 632687 {
		t.Fatalf("parseIOSyscr = %d, %v; want 632687", n, err)
	}
	for _, bad := range []string{"rchar: 1\nwchar: 2\n", "syscr: many\n"} {
		if n, err := parseIOSyscr(bad); err == nil {
			t.Errorf("parseIOSyscr(%q) = %d, want an error", bad, n)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr string
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice: busy = 100+0+50+0+5+0 = 155 ticks.
		{name: "busy leaves out idle, iowait and guest", stat: "cpu  100 0 50 9000 300 0 5 0 40 0\ncpu0 1 2 3\n", want: 1550 * time.Millisecond},
		{name: "old kernels have fewer fields", stat: "cpu 10 0 10 100\n", want: 200 * time.Millisecond},
		{name: "not the total", stat: "cpu0 1 2 3 4\n", wantErr: "not the cpu total"},
		{name: "bad field", stat: "cpu 1 x 3 4\n", wantErr: `"x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat(tt.stat)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseProcStat = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestReadMemory_Self(t *testing.T) {
	m, err := readMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.Peak < m.RSS {
		t.Fatalf("memory = %+v: want 0 < RSS <= Peak", m)
	}
}

func TestPprofParsing(t *testing.T) {
	out := `File: profhub
Type: delay
Duration: 8.22s, Total samples = 5.30s (64.48%)
Showing nodes accounting for 256.40s, 100% of 256.46s total
      flat  flat%   sum%        cum   cum%
   256.39s   100%   100%    256.39s   100%  runtime.selectgo
         0     0%   100%     94.23s 36.74%  github.com/outpost-edge/outpost/runtime/store.(*Store).submit
         0     0%   100%      5.67s  2.21%  github.com/outpost-edge/outpost/runtime/hub.(*pump).run
         0     0%   100%      4.70s  2.23%  github.com/outpost-edge/outpost/runtime/hub.(*deliverer).deliver (inline)
         0     0%   100%    250.5ms  0.1%  github.com/mochi-mqtt/server/v2.(*Client).Read
         0     0%   100%     1.50mins  40%  main.long
`
	d, err := pprofDuration(out)
	if err != nil || d != 8220*time.Millisecond {
		t.Fatalf("pprofDuration = %v, %v; want 8.22s", d, err)
	}
	cum, err := pprofCumulative(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{
		"runtime.selectgo":                               256390 * time.Millisecond,
		"runtime/store.(*Store).submit":                  94230 * time.Millisecond,
		"runtime/hub.(*pump).run":                        5670 * time.Millisecond,
		"runtime/hub.(*deliverer).deliver":               4700 * time.Millisecond,
		"github.com/mochi-mqtt/server/v2.(*Client).Read": 250500 * time.Microsecond,
		"main.long": 90 * time.Second,
	}
	if !reflect.DeepEqual(cum, want) {
		t.Fatalf("pprofCumulative\n got %v\nwant %v", cum, want)
	}
	for _, bad := range []string{"Duration: soon, x\n", "no header\n"} {
		if _, err := pprofDuration(bad); err == nil {
			t.Errorf("pprofDuration(%q) did not fail", bad)
		}
	}
	if _, err := pprofCumulative("  flat  flat%  sum%  cum  cum%\n 0 0% 0% lots 1% f\n"); err == nil {
		t.Error("a bad cumulative value did not fail")
	}
	if _, err := pprofCumulative("nothing\n"); err == nil {
		t.Error("output without a table did not fail")
	}
}
