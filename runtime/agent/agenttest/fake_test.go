package agenttest_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/agenttest"
)

func TestFakeRuntime_Faults(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	rt := &agenttest.FakeRuntime{}
	rt.Fail(agenttest.OpPull, "a:1", boom)
	if err := rt.Pull(ctx, "a:1", nil, nil); !errors.Is(err, boom) {
		t.Fatalf("Pull a:1 = %v, want boom", err)
	}
	if err := rt.Pull(ctx, "b:1", nil, nil); err != nil {
		t.Fatalf("Pull b:1 = %v: the fault is for a:1 only", err)
	}
	if rt.HasImage("a:1") || !rt.HasImage("b:1") {
		t.Fatal("a failed pull must not add the image")
	}
	rt.Fail(agenttest.OpPull, "a:1", nil)
	if err := rt.Pull(ctx, "a:1", nil, nil); err != nil {
		t.Fatalf("Pull after clearing the fault = %v", err)
	}
	rt.Fail(agenttest.OpList, "", boom)
	if _, err := rt.List(ctx); !errors.Is(err, boom) {
		t.Fatalf("List = %v, want boom", err)
	}
	want := []string{"pull a:1", "pull b:1", "pull a:1", "list"}
	var got []string
	for _, c := range rt.Calls() {
		got = append(got, c.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("calls = %q, want %q", got, want)
	}
}

func TestFakeRuntime_Lifecycle(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rt := &agenttest.FakeRuntime{Now: func() time.Time { return clock }, StopExitCode: 143}
	rt.AddImage("m:1")
	spec := agent.ModuleSpec{Name: "m", Image: "m:1", Labels: map[string]string{agent.LabelSpecHash: "h", agent.LabelImage: "orig/m:1"}}
	steps := []struct {
		name string
		do   func() error
		want agent.State
	}{
		{"create", func() error { return rt.Create(ctx, spec) }, agent.StateCreated},
		{"start", func() error { return rt.Start(ctx, "m") }, agent.StateRunning},
		{"start-again-is-a-no-op", func() error { return rt.Start(ctx, "m") }, agent.StateRunning},
		{"stop", func() error { return rt.Stop(ctx, "m", time.Second) }, agent.StateExited},
		{"stop-again-is-a-no-op", func() error { return rt.Stop(ctx, "m", time.Second) }, agent.StateExited},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if st, _, _ := rt.Module("m"); st.State != s.want {
			t.Fatalf("%s: state %q, want %q", s.name, st.State, s.want)
		}
	}
	st, _, _ := rt.Module("m")
	if st.ExitCode != 143 || st.Image != "orig/m:1" || st.SpecHash != "h" || st.ImageID != agenttest.ImageID("m:1") {
		t.Fatalf("state %+v", st)
	}
	if err := rt.Start(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	if err := rt.Remove(ctx, "m"); err == nil {
		t.Fatal("removed a running module")
	}
}

// TestFakeRuntime_Concurrent is meant for -race.
func TestFakeRuntime_Concurrent(t *testing.T) {
	ctx := context.Background()
	rt := &agenttest.FakeRuntime{}
	rt.AddImage("m:1")
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				_ = rt.Create(ctx, agent.ModuleSpec{Name: "m", Image: "m:1"})
				_ = rt.Start(ctx, "m")
				_, _ = rt.List(ctx)
				_ = rt.Stop(ctx, "m", 0)
				_ = rt.Remove(ctx, "m")
				_ = rt.Calls()
			}
		}()
	}
	wg.Wait()
	if n := len(rt.Calls()); n != 4*50*5 {
		t.Fatalf("%d calls recorded, want %d", n, 4*50*5)
	}
}
