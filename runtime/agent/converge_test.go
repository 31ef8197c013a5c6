package agent_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/agenttest"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

// device is a minimal reconcile loop (List, Merge, Plan, Apply,
// Record.Update) over a FakeRuntime with a hand-driven clock: what the
// agent's Run loop will do, without its timers.
type device struct {
	t       *testing.T
	d       agent.Desired
	rt      *agenttest.FakeRuntime
	records map[string]agent.Record
	clock   time.Time
}

func newDevice(t *testing.T, d agent.Desired) *device {
	dev := &device{t: t, d: d, records: map[string]agent.Record{}, clock: now}
	dev.rt = &agenttest.FakeRuntime{Now: func() time.Time { return dev.clock }}
	dev.rt.AddImage("localhost:5000/archiver:latest")
	return dev
}

// reconcile runs one cycle and returns the plan's summary (waits relative
// to the device clock) and the runtime calls it made.
func (dev *device) reconcile() (plan, calls []string) {
	dev.t.Helper()
	dev.rt.ResetCalls()
	listed, err := dev.rt.List(context.Background())
	if err != nil {
		dev.t.Fatal(err)
	}
	cmds := agent.Plan(dev.d, agent.Merge(listed, dev.records), dev.clock)
	_ = agent.Apply(context.Background(), dev.rt, cmds, agent.Observer{Done: func(c agent.Command, err error) {
		r := dev.records[c.Module].Update(c, err, dev.clock)
		if r.IsZero() {
			delete(dev.records, c.Module)
		} else {
			dev.records[c.Module] = r
		}
	}})
	for _, c := range cmds {
		s := c.Kind.String() + " " + c.Module
		if c.Kind == agent.Wait {
			s += " +" + c.At.Sub(dev.clock).String()
		}
		plan = append(plan, s)
	}
	return plan, dev.rt.CallStrings()
}

// settle reconciles until a plan has nothing but waits, and returns the
// last plan.
func (dev *device) settle() []string {
	dev.t.Helper()
	for i := 0; i < 10; i++ {
		plan, _ := dev.reconcile()
		busy := false
		for _, c := range plan {
			busy = busy || c[:4] != "wait"
		}
		if !busy {
			return plan
		}
	}
	dev.t.Fatal("no steady state after 10 reconciles")
	return nil
}

func (dev *device) state(name string) agent.ModuleState {
	st, _, ok := dev.rt.Module(name)
	if !ok {
		dev.t.Fatalf("module %q does not exist", name)
	}
	return st
}

func (dev *device) expect(step string, got, want []string) {
	dev.t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		dev.t.Fatalf("%s:\n got %q\nwant %q", step, got, want)
	}
}

func TestConverge_DeployAndIdle(t *testing.T) {
	dev := newDevice(t, mustDesired(t))
	_, calls := dev.reconcile()
	dev.expect("deploy", calls, []string{
		"pull ghcr.io/outpost-edge/edgehub:0.1", "create edgeHub", "start edgeHub",
		"pull mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.5", "create tempSensor", "start tempSensor",
		"pull myacr.azurecr.io/filter:2.1", "create filter", "start filter",
		"create archiver",
	})
	plan, calls := dev.reconcile()
	dev.expect("idle plan", plan, nil)
	dev.expect("idle calls", calls, nil)
	if c := dev.rt.Calls(); c[0].Op != agenttest.OpList {
		t.Fatalf("first call %v", c[0])
	}
}

func TestConverge_CrashLoopBacksOffAndResets(t *testing.T) {
	dev := newDevice(t, mustDesired(t))
	dev.settle()
	for i, wait := range []time.Duration{10, 20, 40, 80, 160, 300, 300} {
		dev.clock = dev.clock.Add(time.Second)
		if err := dev.rt.Exit("tempSensor", 1); err != nil {
			t.Fatal(err)
		}
		plan, calls := dev.reconcile()
		dev.expect("after crash", plan, []string{"wait tempSensor +" + (wait * time.Second).String()})
		dev.expect("after crash", calls, nil)
		dev.clock = dev.clock.Add(wait * time.Second)
		_, calls = dev.reconcile()
		dev.expect("at the end of the back-off", calls, []string{"stop tempSensor", "start tempSensor"})
		if got := dev.records["tempSensor"].History.RestartCount; got != i+1 {
			t.Fatalf("restart count %d, want %d", got, i+1)
		}
	}
	// Ten healthy minutes later the history is forgotten.
	dev.clock = dev.clock.Add(10 * time.Minute)
	plan, _ := dev.reconcile()
	dev.expect("healthy for 10 minutes", plan, []string{"reset tempSensor"})
	if r := dev.records["tempSensor"]; r.History.RestartCount != 0 {
		t.Fatalf("history not reset: %+v", r)
	}
	dev.rt.Exit("tempSensor", 1)
	plan, _ = dev.reconcile()
	dev.expect("first crash after the reset", plan, []string{"wait tempSensor +10s"})
}

func TestConverge_UnhealthyIsStoppedAndRestarted(t *testing.T) {
	dev := newDevice(t, mustDesired(t))
	dev.settle()
	dev.rt.SetHealth("tempSensor", restart.Unhealthy)
	dev.rt.SetHealth("filter", restart.Unhealthy) // on-failure: left alone
	_, calls := dev.reconcile()
	dev.expect("unhealthy", calls, []string{"stop tempSensor"})
	plan, _ := dev.reconcile()
	dev.expect("stopped for health", plan, []string{"wait tempSensor +10s"})
	dev.clock = dev.clock.Add(10 * time.Second)
	_, calls = dev.reconcile()
	dev.expect("restart", calls, []string{"stop tempSensor", "start tempSensor"})
	if st := dev.state("tempSensor"); st.State != agent.StateRunning || st.Health != restart.NoHealthCheck {
		t.Fatalf("tempSensor %+v", st)
	}
	if st := dev.state("filter"); st.State != agent.StateRunning {
		t.Fatalf("filter %+v", st)
	}
}

func TestConverge_UpdateStatusChangeAndRemoval(t *testing.T) {
	dev := newDevice(t, mustDesired(t))
	dev.settle()
	dev.records["tempSensor"] = history(3, time.Hour)

	dev.d = mustDesired(t, editModule("tempSensor", func(m *deployment.Module) { m.Version = "1.1" }))
	_, calls := dev.reconcile()
	dev.expect("update", calls, []string{
		"pull mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.5",
		"stop tempSensor", "remove tempSensor", "create tempSensor", "start tempSensor",
	})
	if _, ok := dev.records["tempSensor"]; ok {
		t.Fatal("an update kept the old restart history")
	}
	_, spec, _ := dev.rt.Module("tempSensor")
	if spec.Labels[agent.LabelVersion] != "1.1" {
		t.Fatalf("recreated with %v", spec.Labels)
	}

	dev.d = mustDesired(t, editModule("tempSensor", func(m *deployment.Module) {
		m.Version, m.Status, m.RestartPolicy = "1.1", deployment.StatusStopped, deployment.RestartNever
	}))
	_, calls = dev.reconcile()
	dev.expect("status stopped", calls, []string{"stop tempSensor"})
	dev.clock = dev.clock.Add(time.Hour)
	plan, _ := dev.reconcile()
	dev.expect("stays stopped", plan, nil)

	dev.d = mustDesired(t, editModule("tempSensor", func(m *deployment.Module) { m.Version, m.RestartPolicy = "1.1", deployment.RestartNever }))
	_, calls = dev.reconcile()
	dev.expect("status running again, policy never", calls, []string{"start tempSensor"})

	dev.d = mustDesired(t, editModule("tempSensor", func(m *deployment.Module) { m.Version = "1.1" }), func(c *deployment.AgentConfig) { delete(c.Modules, "filter") })
	_, calls = dev.reconcile()
	dev.expect("removal", calls, []string{"stop filter", "remove filter"})
	if _, _, ok := dev.rt.Module("filter"); ok {
		t.Fatal("filter still exists")
	}
}

func TestConverge_RebootStartsInOrder(t *testing.T) {
	dev := newDevice(t, mustDesired(t))
	dev.settle()
	// The host goes down: every module exits, some with codes the policies
	// would not restart (on-failure with 0).
	for _, name := range []string{"edgeHub", "tempSensor", "filter"} {
		dev.rt.Exit(name, 0)
	}
	dev.clock = dev.clock.Add(time.Hour)
	dev.d.BootTime = dev.clock.Add(-time.Minute)
	_, calls := dev.reconcile()
	dev.expect("boot", calls, []string{"start edgeHub", "start tempSensor", "start filter"})
	plan, _ := dev.reconcile()
	dev.expect("after boot", plan, nil)
}

func TestConverge_DeletedByHandAndDead(t *testing.T) {
	dev := newDevice(t, mustDesired(t))
	dev.settle()
	dev.rt.Delete("edgeHub")
	dev.rt.Die("tempSensor")
	dev.clock = dev.clock.Add(time.Minute)
	_, calls := dev.reconcile()
	dev.expect("recreate", calls, []string{
		"pull ghcr.io/outpost-edge/edgehub:0.1", "create edgeHub", "start edgeHub",
		"pull mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.5", "remove tempSensor", "create tempSensor", "stop tempSensor", "start tempSensor",
	})
	if got := dev.records["tempSensor"].History.RestartCount; got != 1 {
		t.Fatalf("a dead module's recreate counts as a restart: count %d", got)
	}
}

func TestConverge_FailingPullBacksOffPerModule(t *testing.T) {
	dev := newDevice(t, mustDesired(t))
	dev.rt.Fail(agenttest.OpPull, "myacr.azurecr.io/filter:2.1", errors.New("unauthorized"))
	_, calls := dev.reconcile()
	dev.expect("first attempt", calls, []string{
		"pull ghcr.io/outpost-edge/edgehub:0.1", "create edgeHub", "start edgeHub",
		"pull mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.5", "create tempSensor", "start tempSensor",
		"pull myacr.azurecr.io/filter:2.1",
		"create archiver",
	})
	plan, calls := dev.reconcile()
	dev.expect("retry pending", plan, []string{"wait filter +10s"})
	dev.expect("retry pending", calls, nil)
	dev.clock = dev.clock.Add(10 * time.Second)
	_, calls = dev.reconcile()
	dev.expect("second attempt", calls, []string{"pull myacr.azurecr.io/filter:2.1"})
	plan, _ = dev.reconcile()
	dev.expect("longer wait", plan, []string{"wait filter +20s"})

	dev.rt.Fail(agenttest.OpPull, "myacr.azurecr.io/filter:2.1", nil)
	dev.clock = dev.clock.Add(20 * time.Second)
	_, calls = dev.reconcile()
	dev.expect("fixed", calls, []string{"pull myacr.azurecr.io/filter:2.1", "create filter", "start filter"})
	if r, ok := dev.records["filter"]; ok {
		t.Fatalf("record after success: %+v", r)
	}
}
