package agent_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

// now is the time every test plans at.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// password is the registry password in testdata/deployment.json; it must
// never show up in reports, logs or command strings.
const password = "s3cr3t-Pa55word!"

// mustConfig parses testdata/deployment.json, then applies edits.
func mustConfig(t testing.TB, edits ...func(*deployment.AgentConfig)) *deployment.AgentConfig {
	t.Helper()
	data, err := os.ReadFile("testdata/deployment.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := deployment.ParseAgent(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range edits {
		e(cfg)
	}
	return cfg
}

// mustDesired is the Desired the tests start from: the test deployment and
// an injected connection string for every module.
func mustDesired(t testing.TB, edits ...func(*deployment.AgentConfig)) agent.Desired {
	t.Helper()
	cfg := mustConfig(t, edits...)
	inject := map[string]map[string]string{}
	for _, m := range append([]deployment.Module{cfg.SystemModules.EdgeHub}, cfg.ModulesInStartOrder()...) {
		inject[m.Name] = map[string]string{
			"IOTEDGE_MODULEID":        m.Name,
			"EdgeHubConnectionString": "HostName=hub;DeviceId=dev;ModuleId=" + m.Name + ";SharedAccessKey=bW9kdWxla2V5",
		}
	}
	return agent.Desired{Config: cfg, Inject: inject}
}

// editModule changes one desired module (edgeHub or a user module).
func editModule(name string, fn func(*deployment.Module)) func(*deployment.AgentConfig) {
	return func(c *deployment.AgentConfig) {
		if name == deployment.EdgeHubName {
			fn(&c.SystemModules.EdgeHub)
			return
		}
		m, ok := c.Modules[name]
		if !ok {
			m = deployment.Module{Name: name, Type: "docker", Status: deployment.StatusRunning,
				RestartPolicy: deployment.RestartAlways, ImagePullPolicy: deployment.PullOnCreate,
				StartupOrder: deployment.DefaultStartupOrder, Image: "example/" + name + ":1", CreateOptions: "{}"}
		}
		fn(&m)
		c.Modules[name] = m
	}
}

// module returns the desired module name of d.
func module(t testing.TB, d agent.Desired, name string) deployment.Module {
	t.Helper()
	for _, m := range d.Modules() {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no desired module %q", name)
	return deployment.Module{}
}

// State builders: a module of d as the runtime would report it after
// creating it from the current spec.
func created(t testing.TB, d agent.Desired, name string) agent.ModuleState {
	t.Helper()
	m := module(t, d, name)
	return agent.ModuleState{Name: name, State: agent.StateCreated, Image: m.Image, SpecHash: d.Spec(m).Hash}
}

func runningFor(t testing.TB, d agent.Desired, name string, since time.Duration) agent.ModuleState {
	t.Helper()
	s := created(t, d, name)
	s.State, s.StartedAt = agent.StateRunning, now.Add(-since)
	return s
}

func exitedAgo(t testing.TB, d agent.Desired, name string, code int, ago time.Duration) agent.ModuleState {
	t.Helper()
	s := created(t, d, name)
	s.State, s.ExitCode, s.StartedAt, s.ExitedAt = agent.StateExited, code, now.Add(-ago-time.Minute), now.Add(-ago)
	return s
}

// converged is every desired module as Plan wants it: running, or created
// when desired stopped.
func converged(t testing.TB, d agent.Desired) []agent.ModuleState {
	t.Helper()
	var out []agent.ModuleState
	for _, m := range d.Modules() {
		if m.Status == deployment.StatusRunning {
			out = append(out, runningFor(t, d, m.Name, time.Minute))
		} else {
			out = append(out, created(t, d, m.Name))
		}
	}
	return out
}

// replace returns states with the entry of the same name replaced by s (or
// s appended).
func replace(states []agent.ModuleState, s ...agent.ModuleState) []agent.ModuleState {
	out := append([]agent.ModuleState(nil), states...)
next:
	for _, n := range s {
		for i := range out {
			if out[i].Name == n.Name {
				out[i] = n
				continue next
			}
		}
		out = append(out, n)
	}
	return out
}

// withRecord sets a state's record.
func withRecord(s agent.ModuleState, r agent.Record) agent.ModuleState {
	s.Record = r
	return s
}

func history(n int, last time.Duration) agent.Record {
	return agent.Record{History: restart.History{RestartCount: n, LastRestart: now.Add(-last)}}
}

// summary renders commands compactly: "kind module/cause", plus "+delay"
// from now for waits.
func summary(cmds []agent.Command) []string {
	out := []string{}
	for _, c := range cmds {
		s := fmt.Sprintf("%s %s/%s", c.Kind, c.Module, c.Cause)
		if c.Kind == agent.Wait {
			s += fmt.Sprintf(" +%s", c.At.Sub(now))
		}
		out = append(out, s)
	}
	return out
}
