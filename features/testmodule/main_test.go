package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    config
		wantErr string
	}{
		{
			name: "defaults",
			env:  map[string]string{},
			want: config{module: "testmodule", exitAfter: -1, unhealthyAfter: -1},
		},
		{
			name: "name from the agent",
			env:  map[string]string{"IOTEDGE_MODULEID": "$edgeHub"},
			want: config{module: "$edgeHub", exitAfter: -1, unhealthyAfter: -1},
		},
		{
			name: "own name wins",
			env:  map[string]string{"IOTEDGE_MODULEID": "$edgeHub", "TESTMODULE_NAME": "edgeHub"},
			want: config{module: "edgeHub", exitAfter: -1, unhealthyAfter: -1},
		},
		{
			name: "every setting",
			env: map[string]string{
				"TESTMODULE_NAME": "probe", "TESTMODULE_EXIT_AFTER": "1s", "TESTMODULE_EXIT_CODE": "3",
				"TESTMODULE_UNHEALTHY_AFTER": "250ms", "TESTMODULE_FAIL_STARTS": "2",
				"TESTMODULE_JOURNAL": "/j", "TESTMODULE_LEASE_PID": "42",
			},
			want: config{module: "probe", exitAfter: time.Second, exitCode: 3, unhealthyAfter: 250 * time.Millisecond, failStarts: 2, journal: "/j", leasePID: 42},
		},
		{
			name: "exit at once",
			env:  map[string]string{"TESTMODULE_EXIT_AFTER": "0s"},
			want: config{module: "testmodule", exitAfter: 0, unhealthyAfter: -1},
		},
		{name: "bad duration", env: map[string]string{"TESTMODULE_EXIT_AFTER": "soon"}, wantErr: "TESTMODULE_EXIT_AFTER"},
		{name: "negative duration", env: map[string]string{"TESTMODULE_UNHEALTHY_AFTER": "-1s"}, wantErr: "TESTMODULE_UNHEALTHY_AFTER"},
		{name: "exit code out of range", env: map[string]string{"TESTMODULE_EXIT_CODE": "256"}, wantErr: "TESTMODULE_EXIT_CODE"},
		{name: "fail starts without journal", env: map[string]string{"TESTMODULE_FAIL_STARTS": "1"}, wantErr: "TESTMODULE_JOURNAL"},
		{name: "name with a slash", env: map[string]string{"TESTMODULE_NAME": "a/b"}, wantErr: "journal file name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestHealth(t *testing.T) {
	tests := []struct {
		name    string
		content *string // nil: no file
		want    int
	}{
		{name: "no file yet", want: 1},
		{name: "healthy", content: ptr("healthy\n"), want: 0},
		{name: "unhealthy", content: ptr("unhealthy\n"), want: 1},
		{name: "garbage", content: ptr("ok"), want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			if tt.content != nil {
				if err := os.WriteFile(healthFile, []byte(*tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := health(io.Discard); got != tt.want {
				t.Errorf("health() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestJournalStarts(t *testing.T) {
	j := journal{path: filepath.Join(t.TempDir(), "m.jsonl"), module: "m"}
	if n := j.starts(); n != 0 {
		t.Fatalf("starts of a missing journal = %d, want 0", n)
	}
	code := 1
	j.write(event{Event: "start", Start: 1})
	j.write(event{Event: "exit", Code: &code})
	j.write(event{Event: "start", Start: 2})
	if n := j.starts(); n != 2 {
		t.Errorf("starts = %d, want 2", n)
	}
}

func ptr(s string) *string { return &s }
