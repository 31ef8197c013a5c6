package docker

import (
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
)

// TestEngine_WatchExits kills a module's container from outside, as a
// crash would, and expects its die event promptly.
func TestEngine_WatchExits(t *testing.T) {
	e := newEngineEnv(t, Options{})
	name := moduleName("watched")
	e.create(e.spec(name, "", "TESTPROG_TICK=1s"))
	ch, err := e.rt.WatchExits(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.start(name)
	e.waitState(name, "running", func(m agent.ModuleState) bool { return m.State == agent.StateRunning })
	killed := time.Now()
	if err := e.cli.ContainerKill(e.ctx, name, "KILL"); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-ch:
			if got != name {
				continue // another module of this engine
			}
			t.Logf("die event %s after the kill", time.Since(killed))
			if d := time.Since(killed); d > 2*time.Second {
				t.Errorf("die event after %s, want it within 2 s", d)
			}
			return
		case <-deadline:
			t.Fatal("no exit event within 10 s of the kill")
		}
	}
}
