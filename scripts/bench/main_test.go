package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, o options)
		wantErr string
	}{
		{name: "defaults", check: func(t *testing.T, o options) {
			if o.Runs != 5 || o.Quick || o.Profile != "auto" || o.Hub != "bin/edgehub" || o.out != "docs/benchmarks.md" || o.scenarios != nil {
				t.Fatalf("%+v", o)
			}
		}},
		{name: "quick means one run", env: map[string]string{"BENCH_QUICK": "1"}, check: func(t *testing.T, o options) {
			if !o.Quick || o.Runs != 1 {
				t.Fatalf("quick %v runs %d", o.Quick, o.Runs)
			}
		}},
		{name: "BENCH_RUNS wins over quick's default", env: map[string]string{"BENCH_QUICK": "1", "BENCH_RUNS": "3"}, check: func(t *testing.T, o options) {
			if o.Runs != 3 {
				t.Fatalf("runs %d", o.Runs)
			}
		}},
		{name: "flag wins over BENCH_RUNS", args: []string{"-runs", "2"}, env: map[string]string{"BENCH_RUNS": "7"}, check: func(t *testing.T, o options) {
			if o.Runs != 2 {
				t.Fatalf("runs %d", o.Runs)
			}
		}},
		{name: "scenarios and hub arguments", args: []string{"-scenarios", "latency, memory", "-hub-args", "--store-nosync  --x=1"},
			check: func(t *testing.T, o options) {
				if !reflect.DeepEqual(o.scenarios, []string{"latency", "memory"}) || !reflect.DeepEqual(o.HubArgs, []string{"--store-nosync", "--x=1"}) {
					t.Fatalf("scenarios %q hub args %q", o.scenarios, o.HubArgs)
				}
			}},
		{name: "bad BENCH_RUNS", env: map[string]string{"BENCH_RUNS": "many"}, wantErr: "BENCH_RUNS"},
		{name: "zero runs", args: []string{"-runs", "-1"}, wantErr: "-runs"},
		{name: "bad profile", env: map[string]string{"BENCH_PROFILE": "sometimes"}, wantErr: "-profile"},
		{name: "positional argument", args: []string{"all"}, wantErr: "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.args, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "direct", args: []string{"-runs", "2"}, want: "go run ./scripts/bench -runs 2"},
		{name: "through make", env: map[string]string{"BENCH_COMMAND": "make bench", "BENCH_QUICK": "1"}, want: "BENCH_QUICK=1 make bench"},
		{name: "values are quoted", env: map[string]string{"BENCH_COMMAND": "make bench", "BENCH_SCENARIOS": "a b"}, want: "BENCH_SCENARIOS='a b' make bench"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := commandLine(tt.args, func(k string) string { return tt.env[k] }); got != tt.want {
				t.Fatalf("commandLine = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDurableMissed(t *testing.T) {
	met := &section{Checks: []check{{ID: checkDurable, Met: true}, {ID: checkDurableRatio, Met: true}}}
	missed := &section{Checks: []check{{ID: checkDurable, Met: true}, {ID: checkDurableRatio, Met: false}}}
	other := &section{Checks: []check{{ID: "memory", Met: false}}}
	tests := []struct {
		name string
		done []*section
		want bool
	}{
		{name: "no throughput section", done: []*section{other}, want: false},
		{name: "both met", done: []*section{met, other}, want: false},
		{name: "ratio missed", done: []*section{missed}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := durableMissed(tt.done); got != tt.want {
				t.Fatalf("durableMissed = %v, want %v", got, tt.want)
			}
		})
	}
}
