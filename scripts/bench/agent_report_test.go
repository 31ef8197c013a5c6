package main

import (
	"strings"
	"testing"
	"time"
)

// checkByID returns the check with id, failing t when there is none.
func checkByID(t *testing.T, sec *section, id string) check {
	t.Helper()
	for _, c := range sec.Checks {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", id, sec.Checks)
	return check{}
}

func TestFillDeploySection(t *testing.T) {
	ms := time.Millisecond
	runs := func(started ...time.Duration) []deployRun {
		var r []deployRun
		for _, s := range started {
			r = append(r, deployRun{Started: s, Reported: s + 30*ms, FirstMsg: s + 10*ms})
		}
		return r
	}
	refs := []referenceRun{{Started: 400 * ms, FirstMsg: 420 * ms}, {Started: 500 * ms, FirstMsg: 520 * ms}, {Started: 600 * ms, FirstMsg: 620 * ms}}
	tests := []struct {
		name        string
		docker      deployResult
		met         bool
		notMeasured bool
		measured    string
	}{
		{name: "median under 1.5 s", docker: deployResult{Runtime: runtimeDocker, Agent: runs(900*ms, 1000*ms, 3000*ms), Ref: refs},
			met: true, measured: "1,000 ms to the container's start"},
		{name: "median over 1.5 s", docker: deployResult{Runtime: runtimeDocker, Agent: runs(1400*ms, 1600*ms, 1700*ms), Ref: refs},
			met: false, measured: "3.20x"},
		{name: "no successful run", docker: deployResult{Runtime: runtimeDocker, Notes: []string{"run 1 failed"}},
			met: false, measured: "no successful run"},
		{name: "no engine", docker: deployResult{Runtime: runtimeDocker, Skipped: "the Docker half was skipped: no Docker Engine answers"},
			notMeasured: true, measured: "no Docker Engine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sec := &section{}
			process := deployResult{Runtime: runtimeProcess, Agent: runs(20*ms, 30*ms, 40*ms), Ref: refs}
			fillDeploySection(sec, []deployResult{process, tt.docker}, 3)
			if len(sec.Checks) != 1 {
				t.Fatalf("%d checks, want the Docker one only: %+v", len(sec.Checks), sec.Checks)
			}
			c := checkByID(t, sec, "agent-deploy-docker")
			if c.Met != tt.met || c.NotMeasured != tt.notMeasured || !strings.Contains(c.Measured, tt.measured) {
				t.Fatalf("check %+v, want met %v, not measured %v, measured mentioning %q", c, tt.met, tt.notMeasured, tt.measured)
			}
			if got := sec.Tables[0].Rows[0][4]; got != "0.06x" { // process: 30 ms against 500 ms
				t.Errorf("process ratio %q, want 0.06x", got)
			}
		})
	}
}

func TestFillRestartSection(t *testing.T) {
	s := time.Second
	// restartConfigs[0] has a 10 s back-off, [1] a 1 s one.
	agent := [][]restartRun{
		{{Noticed: 3 * s, Running: 10*s + 40*time.Millisecond}, {Noticed: 1 * s, Running: 10*s + 60*time.Millisecond}},
		{{Noticed: 4 * s, Running: 4 * s}, {Noticed: 2 * s, Running: 2*s + 500*time.Millisecond}, {Noticed: 5 * s, Running: 5 * s}},
	}
	sec := &section{}
	fillRestartSection(sec, []restartResult{
		{Runtime: runtimeProcess, Agent: agent, Ref: []time.Duration{time.Millisecond}},
		{Runtime: runtimeDocker, Skipped: "the Docker half was skipped: no Docker Engine answers"},
	}, 3)
	tests := []struct {
		id, measured string
		met, skipped bool
	}{
		{id: "agent-restart-process-0", met: true, measured: "50.0 ms beyond it"},
		{id: "agent-restart-process-1", met: false, measured: "3,000 ms beyond it"},
		{id: "agent-restart-docker", skipped: true, measured: "no Docker Engine"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			c := checkByID(t, sec, tt.id)
			if c.Met != tt.met || c.NotMeasured != tt.skipped || !strings.Contains(c.Measured, tt.measured) {
				t.Fatalf("check %+v, want met %v, not measured %v, measured mentioning %q", c, tt.met, tt.skipped, tt.measured)
			}
		})
	}
	if !strings.Contains(strings.Join(sec.Notes, "\n"), "process runtime, default back-off (unit 10 s): 2 of 3 runs succeeded") {
		t.Errorf("no note of the missing run in %q", sec.Notes)
	}
}

func TestFillMemorySection(t *testing.T) {
	mib := int64(1 << 20)
	run := func(agent, hub int64) agentMemoryRun {
		return agentMemoryRun{Load: rssPeaks{Agent: agent * mib, Hub: hub * mib, AgentHub: (agent + hub) * mib, Supervisors: 20 * mib},
			SupervisorsOf: 3, Updates: 3}
	}
	tests := []struct {
		name     string
		runs     []agentMemoryRun
		met      bool
		measured string
	}{
		{name: "under 40 MiB", runs: []agentMemoryRun{run(15, 22), run(14, 21), run(16, 30)}, met: true, measured: "agent + hub 37.0 MiB"},
		{name: "over 40 MiB", runs: []agentMemoryRun{run(15, 26)}, met: false, measured: "41.0 MiB"},
		{name: "no run", met: false, measured: "no successful run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sec := &section{}
			fillMemorySection(sec, tt.runs)
			c := checkByID(t, sec, "agent-memory")
			if c.Met != tt.met || !strings.Contains(c.Measured, tt.measured) {
				t.Fatalf("check %+v, want met %v, measured mentioning %q", c, tt.met, tt.measured)
			}
		})
	}
}
