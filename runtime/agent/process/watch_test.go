package process_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/process"
)

// TestWatchExits kills a module with SIGKILL, as a crash would, and expects
// its exit event well before Run's poll (set to an hour, so only the exit
// watch can tell): when the runtime started the supervisor (its exit wakes
// Run), and when a second runtime adopted the module (the exit poll).
func TestWatchExits(t *testing.T) {
	slowPoll := func(o *process.Options) { o.PollInterval = time.Hour }
	for _, tc := range []struct {
		name    string
		adopted bool
	}{
		{"own supervisor", false},
		{"adopted module", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			starter, dir := mustRuntime(t, slowPoll)
			mustStart(t, starter, spec("victim", "", "sleep"))
			rt := starter
			if tc.adopted {
				rt = mustRuntimeAt(t, dir, slowPoll)
			}
			runCtx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- rt.Run(runCtx) }()
			t.Cleanup(func() {
				cancel()
				<-done
			})
			ch, err := rt.WatchExits(runCtx)
			if err != nil {
				t.Fatal(err)
			}
			pid := pidOf(t, rt, "victim")
			killed := time.Now()
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-ch:
				d := time.Since(killed)
				t.Logf("exit event %s after the kill", d)
				if got != "victim" {
					t.Errorf("exit of %q, want victim", got)
				}
				if d > time.Second {
					t.Errorf("exit event %s after the kill, want within 1 s", d)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no exit event within 10 s of the kill")
			}
			if m := mustModule(t, rt, "victim"); m.State != agent.StateExited || m.ExitCode != 137 {
				t.Errorf("after the event: %+v, want exited 137", m)
			}
		})
	}
}

func TestWatchExits_ClosedWhenContextEnds(t *testing.T) {
	rt, _ := mustRuntime(t)
	wctx, cancel := context.WithCancel(context.Background())
	ch, err := rt.WatchExits(wctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Error("an event without any exit")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after ctx ended")
	}
}

// TestWatchExits_Stop: a Stop is an exit too, told without Run.
func TestWatchExits_Stop(t *testing.T) {
	rt, _ := mustRuntime(t)
	mustStart(t, rt, spec("stopped", "", "sleep"))
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := rt.WatchExits(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Stop(ctx, "stopped", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-ch:
		if got != "stopped" {
			t.Errorf("exit of %q, want stopped", got)
		}
	default:
		t.Error("no exit event after Stop returned")
	}
}
