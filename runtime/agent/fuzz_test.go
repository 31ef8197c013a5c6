package agent_test

import (
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

// FuzzPlan builds arbitrary current states for the test deployment (plus an
// unknown module and edgeAgent) from the fuzzer's bytes and checks Plan's
// invariants: it never touches edgeAgent, every command names a module and
// carries a reason, a module's commands are contiguous, removals come
// before the desired modules, a desired-stopped module is never started,
// waits are in the future, and Plan is deterministic.
func FuzzPlan(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24})
	f.Add([]byte{0xff, 0, 0x80, 3, 2, 1, 0x40, 9, 9, 9, 2, 2, 2, 5, 5, 5, 7, 7, 7, 1, 1, 1, 0, 0})
	d := mustDesired(f, editModule("filter", func(m *deployment.Module) { m.Status = deployment.StatusStopped }))
	d.BootTime = now.Add(-time.Hour)
	desired := map[string]deployment.Module{}
	for _, m := range d.Modules() {
		desired[m.Name] = m
	}
	names := []string{"edgeHub", "tempSensor", "filter", "archiver", "old", deployment.EdgeAgentName}
	states := []agent.State{agent.StateMissing, agent.StateCreated, agent.StateRunning, agent.StateExited, agent.StateDead, "odd"}

	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return int(b)
		}
		var current []agent.ModuleState
		for _, name := range names {
			flags := next()
			if flags&1 == 0 {
				continue
			}
			s := agent.ModuleState{Name: name, State: states[next()%len(states)], ExitCode: next() % 3, Health: restart.Health(next() % 4)}
			if m, ok := desired[name]; ok && flags&2 != 0 {
				s.SpecHash = d.Spec(m).Hash
			}
			s.StartedAt = now.Add(-time.Duration(next()) * time.Minute)
			s.ExitedAt = s.StartedAt.Add(time.Duration(next()-64) * time.Second)
			s.Record.History = restart.History{RestartCount: next() % 8, LastRestart: now.Add(-time.Duration(next()) * time.Second)}
			s.Record.StoppedFor = []agent.Cause{agent.CauseNone, agent.CauseStatus, agent.CauseUnhealthy}[flags>>2%3]
			if flags&0x40 != 0 {
				s.Record.Retry = agent.Retry{Failures: 1, At: now.Add(time.Duration(next()-128) * time.Second), Hash: s.SpecHash}
			}
			current = append(current, s)
		}

		cmds := agent.Plan(d, current, now)
		again := agent.Plan(d, current, now)
		if len(cmds) != len(again) {
			t.Fatal("Plan is not deterministic")
		}
		done := map[string]bool{}
		last := ""
		seenDesired := false
		for i, c := range cmds {
			if c.String() != again[i].String() {
				t.Fatalf("Plan is not deterministic: %v vs %v", c, again[i])
			}
			if c.Module == "" || c.Reason == "" || c.Kind < agent.Pull || c.Kind > agent.Reset {
				t.Fatalf("malformed command %+v", c)
			}
			if c.Module == deployment.EdgeAgentName {
				t.Fatalf("Plan touched edgeAgent: %v", c)
			}
			if c.Module != last {
				if done[c.Module] {
					t.Fatalf("commands for %q are not contiguous: %v", c.Module, summary(cmds))
				}
				done[c.Module] = true
				last = c.Module
			}
			m, isDesired := desired[c.Module]
			if isDesired {
				seenDesired = true
			} else if seenDesired {
				t.Fatalf("removal after a desired module: %v", summary(cmds))
			}
			if isDesired && m.Status == deployment.StatusStopped && (c.Kind == agent.Start || c.Kind == agent.Restart) {
				t.Fatalf("desired-stopped module started: %v", c)
			}
			if c.Kind == agent.Wait && !c.At.After(now) {
				t.Fatalf("wait in the past: %v", c)
			}
			if c.Kind == agent.Create && (c.Spec == nil || c.Spec.Hash != d.Spec(m).Hash) {
				t.Fatalf("create without the desired spec: %+v", c)
			}
		}
	})
}
