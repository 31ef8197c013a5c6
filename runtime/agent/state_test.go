package agent_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
)

func TestRecord_Update(t *testing.T) {
	hist := restart.History{RestartCount: 3, LastRestart: now.Add(-time.Hour)}
	retry := agent.Retry{Failures: 2, At: now.Add(-time.Second), Last: now.Add(-time.Minute), Hash: "h", Err: "old"}
	tests := []struct {
		name string
		r    agent.Record
		c    agent.Command
		err  error
		want agent.Record
	}{
		{name: "restart-counts", r: agent.Record{History: hist, StoppedFor: agent.CauseUnhealthy, Retry: retry},
			c:    agent.Command{Kind: agent.Restart},
			want: agent.Record{History: restart.History{RestartCount: 4, LastRestart: now}}},
		{name: "start-is-not-counted", r: agent.Record{History: hist, StoppedFor: agent.CauseStatus, Retry: retry},
			c: agent.Command{Kind: agent.Start}, want: agent.Record{History: hist}},
		{name: "stop-for-status-marks-and-clears-history", r: agent.Record{History: hist},
			c: agent.Command{Kind: agent.Stop, Cause: agent.CauseStatus}, want: agent.Record{StoppedFor: agent.CauseStatus}},
		{name: "stop-for-health-marks", r: agent.Record{History: hist},
			c: agent.Command{Kind: agent.Stop, Cause: agent.CauseUnhealthy}, want: agent.Record{History: hist, StoppedFor: agent.CauseUnhealthy}},
		{name: "stop-for-update-changes-nothing", r: agent.Record{History: hist},
			c: agent.Command{Kind: agent.Stop, Cause: agent.CauseUpdated}, want: agent.Record{History: hist}},
		{name: "remove-forgets", r: agent.Record{History: hist, Retry: retry},
			c: agent.Command{Kind: agent.Remove, Cause: agent.CauseRemoved}, want: agent.Record{}},
		{name: "remove-for-update-forgets", r: agent.Record{History: hist},
			c: agent.Command{Kind: agent.Remove, Cause: agent.CauseUpdated}, want: agent.Record{}},
		{name: "remove-dead-keeps-history", r: agent.Record{History: hist},
			c: agent.Command{Kind: agent.Remove, Cause: agent.CauseDead}, want: agent.Record{History: hist}},
		{name: "reset-clears-history", r: agent.Record{History: hist, StoppedFor: agent.CauseUnhealthy},
			c: agent.Command{Kind: agent.Reset}, want: agent.Record{StoppedFor: agent.CauseUnhealthy}},
		{name: "pull-and-create-change-nothing", r: agent.Record{History: hist, Retry: retry},
			c: agent.Command{Kind: agent.Create, Hash: "h"}, want: agent.Record{History: hist, Retry: retry}},
		{name: "first-failure", r: agent.Record{History: hist},
			c: agent.Command{Kind: agent.Pull, Hash: "h"}, err: errors.New("no route"),
			want: agent.Record{History: hist, Retry: agent.Retry{Failures: 1, At: now.Add(10 * time.Second), Last: now, Hash: "h", Err: "no route"}}},
		{name: "repeated-failure-backs-off", r: agent.Record{Retry: retry},
			c: agent.Command{Kind: agent.Create, Hash: "h"}, err: errors.New("again"),
			want: agent.Record{Retry: agent.Retry{Failures: 3, At: now.Add(40 * time.Second), Last: now, Hash: "h", Err: "again"}}},
		{name: "failure-for-another-spec-starts-over", r: agent.Record{Retry: retry},
			c: agent.Command{Kind: agent.Create, Hash: "h2"}, err: errors.New("x"),
			want: agent.Record{Retry: agent.Retry{Failures: 1, At: now.Add(10 * time.Second), Last: now, Hash: "h2", Err: "x"}}},
		{name: "failure-long-after-the-last-starts-over", r: agent.Record{Retry: agent.Retry{Failures: 6, Last: now.Add(-time.Hour), Hash: "h"}},
			c: agent.Command{Kind: agent.Start, Hash: "h"}, err: errors.New("x"),
			want: agent.Record{Retry: agent.Retry{Failures: 1, At: now.Add(10 * time.Second), Last: now, Hash: "h", Err: "x"}}},
		{name: "skipped-is-not-a-failure", r: agent.Record{History: hist},
			c: agent.Command{Kind: agent.Start}, err: fmt.Errorf("x: %w", agent.ErrSkipped), want: agent.Record{History: hist}},
		{name: "failed-restart-is-not-counted", r: agent.Record{History: hist},
			c: agent.Command{Kind: agent.Restart, Hash: "h"}, err: errors.New("x"),
			want: agent.Record{History: hist, Retry: agent.Retry{Failures: 1, At: now.Add(10 * time.Second), Last: now, Hash: "h", Err: "x"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.Update(tc.c, tc.err, now); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Update:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestRetryDelay(t *testing.T) {
	want := []time.Duration{10, 20, 40, 80, 160, 300, 300}
	for i, w := range want {
		if got := agent.RetryDelay(i + 1); got != w*time.Second {
			t.Errorf("RetryDelay(%d) = %v, want %v", i+1, got, w*time.Second)
		}
	}
}

func TestMerge(t *testing.T) {
	listed := []agent.ModuleState{{Name: "b", State: agent.StateRunning}, {Name: "a", State: agent.StateExited}}
	records := map[string]agent.Record{
		"a":    {History: restart.History{RestartCount: 1}},
		"gone": {StoppedFor: agent.CauseStatus},
		"zero": {},
	}
	got := agent.Merge(listed, records)
	want := []agent.ModuleState{
		{Name: "a", State: agent.StateExited, Record: records["a"]},
		{Name: "b", State: agent.StateRunning},
		{Name: "gone", State: agent.StateMissing, Record: records["gone"]},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Merge:\n got %+v\nwant %+v", got, want)
	}
	if listed[1].Record != (agent.Record{}) {
		t.Fatal("Merge modified its input")
	}
}

func TestRecord_JSONRoundTrip(t *testing.T) {
	r := agent.Record{
		History:    restart.History{RestartCount: 2, LastRestart: now},
		StoppedFor: agent.CauseUnhealthy,
		Retry:      agent.Retry{Failures: 1, At: now, Last: now, Hash: "h", Err: "e"},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back agent.Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Fatalf("round trip: %s gave %+v", b, back)
	}
	if b, _ := json.Marshal(agent.Record{}); string(b) != "{}" {
		t.Fatalf("zero record encodes as %s", b)
	}
	if err := json.Unmarshal([]byte(`{"stoppedFor":"nonsense"}`), &back); err == nil {
		t.Fatal("unknown cause accepted")
	}
}
