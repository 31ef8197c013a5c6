package agent_test

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/agenttest"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

var errBoom = errors.New("boom")

func TestCommand_Execute(t *testing.T) {
	spec := agent.ModuleSpec{Name: "m", Image: "example/m:1", Labels: map[string]string{agent.LabelSpecHash: "h1", agent.LabelImage: "example/m:1"}, Hash: "h1"}
	auth := &deployment.RegistryCredential{Username: "u", Password: "p", Address: "example"}
	tests := []struct {
		name      string
		setup     func(*agenttest.FakeRuntime)
		cmd       agent.Command
		wantCalls []string
		wantErr   error // nil: success
		check     func(t *testing.T, rt *agenttest.FakeRuntime)
	}{
		{name: "pull", cmd: agent.Command{Kind: agent.Pull, Module: "m", Image: "example/m:1", Auth: auth},
			wantCalls: []string{"pull example/m:1"},
			check: func(t *testing.T, rt *agenttest.FakeRuntime) {
				if !rt.HasImage("example/m:1") || rt.Calls()[0].Auth != auth {
					t.Fatal("image not pulled with the credential")
				}
			}},
		{name: "pull-error-wrapped", setup: func(rt *agenttest.FakeRuntime) { rt.Fail(agenttest.OpPull, "", errBoom) },
			cmd: agent.Command{Kind: agent.Pull, Module: "m", Image: "example/m:1"}, wantCalls: []string{"pull example/m:1"}, wantErr: errBoom},
		{name: "pull-without-image", cmd: agent.Command{Kind: agent.Pull, Module: "m"}, wantErr: agent.ErrInvalidCommand},
		{name: "create", setup: func(rt *agenttest.FakeRuntime) { rt.AddImage("example/m:1") },
			cmd: agent.Command{Kind: agent.Create, Module: "m", Spec: &spec}, wantCalls: []string{"create m"},
			check: func(t *testing.T, rt *agenttest.FakeRuntime) {
				st, got, ok := rt.Module("m")
				if !ok || st.State != agent.StateCreated || st.SpecHash != "h1" || !reflect.DeepEqual(got, spec) {
					t.Fatalf("module = %+v, spec %+v", st, got)
				}
			}},
		{name: "create-image-missing", cmd: agent.Command{Kind: agent.Create, Module: "m", Spec: &spec}, wantCalls: []string{"create m"}, wantErr: agent.ErrImageNotFound},
		{name: "create-exists", setup: func(rt *agenttest.FakeRuntime) {
			rt.AddImage("example/m:1")
			rt.Put(agent.ModuleState{Name: "m", State: agent.StateExited})
		}, cmd: agent.Command{Kind: agent.Create, Module: "m", Spec: &spec}, wantCalls: []string{"create m"}, wantErr: agent.ErrExists},
		{name: "create-without-spec", cmd: agent.Command{Kind: agent.Create, Module: "m"}, wantErr: agent.ErrInvalidCommand},
		{name: "create-spec-of-another-module", cmd: agent.Command{Kind: agent.Create, Module: "other", Spec: &spec}, wantErr: agent.ErrInvalidCommand},
		{name: "start", setup: func(rt *agenttest.FakeRuntime) { rt.Put(agent.ModuleState{Name: "m", State: agent.StateCreated}) },
			cmd: agent.Command{Kind: agent.Start, Module: "m"}, wantCalls: []string{"start m"},
			check: func(t *testing.T, rt *agenttest.FakeRuntime) {
				if st, _, _ := rt.Module("m"); st.State != agent.StateRunning || !st.StartedAt.Equal(now) {
					t.Fatalf("module = %+v", st)
				}
			}},
		{name: "start-missing-fails", cmd: agent.Command{Kind: agent.Start, Module: "m"}, wantCalls: []string{"start m"}, wantErr: agent.ErrNotFound},
		{name: "stop", setup: func(rt *agenttest.FakeRuntime) { rt.Put(agent.ModuleState{Name: "m", State: agent.StateRunning}) },
			cmd: agent.Command{Kind: agent.Stop, Module: "m", Timeout: 7 * time.Second}, wantCalls: []string{"stop m"},
			check: func(t *testing.T, rt *agenttest.FakeRuntime) {
				if st, _, _ := rt.Module("m"); st.State != agent.StateExited || rt.Calls()[0].Timeout != 7*time.Second {
					t.Fatalf("module = %+v, call %+v", st, rt.Calls()[0])
				}
			}},
		{name: "stop-missing-succeeds", cmd: agent.Command{Kind: agent.Stop, Module: "m"}, wantCalls: []string{"stop m"}},
		{name: "stop-error", setup: func(rt *agenttest.FakeRuntime) { rt.Fail(agenttest.OpStop, "m", errBoom) },
			cmd: agent.Command{Kind: agent.Stop, Module: "m"}, wantCalls: []string{"stop m"}, wantErr: errBoom},
		{name: "remove", setup: func(rt *agenttest.FakeRuntime) { rt.Put(agent.ModuleState{Name: "m", State: agent.StateExited}) },
			cmd: agent.Command{Kind: agent.Remove, Module: "m"}, wantCalls: []string{"remove m"},
			check: func(t *testing.T, rt *agenttest.FakeRuntime) {
				if _, _, ok := rt.Module("m"); ok {
					t.Fatal("module still there")
				}
			}},
		{name: "remove-missing-succeeds", cmd: agent.Command{Kind: agent.Remove, Module: "m"}, wantCalls: []string{"remove m"}},
		{name: "remove-error", setup: func(rt *agenttest.FakeRuntime) { rt.Fail(agenttest.OpRemove, "", errBoom) },
			cmd: agent.Command{Kind: agent.Remove, Module: "m"}, wantCalls: []string{"remove m"}, wantErr: errBoom},
		{name: "restart-is-stop-then-start", setup: func(rt *agenttest.FakeRuntime) {
			rt.Put(agent.ModuleState{Name: "m", State: agent.StateExited, ExitCode: 1})
		},
			cmd: agent.Command{Kind: agent.Restart, Module: "m", Timeout: time.Second}, wantCalls: []string{"stop m", "start m"},
			check: func(t *testing.T, rt *agenttest.FakeRuntime) {
				if st, _, _ := rt.Module("m"); st.State != agent.StateRunning {
					t.Fatalf("module = %+v", st)
				}
			}},
		{name: "restart-stop-fails-no-start", setup: func(rt *agenttest.FakeRuntime) { rt.Fail(agenttest.OpStop, "m", errBoom) },
			cmd: agent.Command{Kind: agent.Restart, Module: "m"}, wantCalls: []string{"stop m"}, wantErr: errBoom},
		{name: "wait-does-nothing", cmd: agent.Command{Kind: agent.Wait, Module: "m", At: now}, wantCalls: nil},
		{name: "reset-does-nothing", cmd: agent.Command{Kind: agent.Reset, Module: "m"}, wantCalls: nil},
		{name: "zero-kind", cmd: agent.Command{Module: "m"}, wantErr: agent.ErrInvalidCommand},
		{name: "unknown-kind", cmd: agent.Command{Kind: 99, Module: "m"}, wantErr: agent.ErrInvalidCommand},
		{name: "no-module", cmd: agent.Command{Kind: agent.Start}, wantErr: agent.ErrInvalidCommand},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt := &agenttest.FakeRuntime{Now: func() time.Time { return now }}
			if tc.setup != nil {
				tc.setup(rt)
			}
			err := tc.cmd.Execute(context.Background(), rt)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("Execute: %v", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("Execute = %v, want %v", err, tc.wantErr)
			case err != nil && !strings.Contains(err.Error(), `"`+tc.cmd.Module+`"`) && tc.cmd.Module != "":
				t.Fatalf("error %q does not name module %q", err, tc.cmd.Module)
			}
			if got := rt.CallStrings(); !reflect.DeepEqual(got, tc.wantCalls) {
				t.Fatalf("calls = %q, want %q", got, tc.wantCalls)
			}
			if tc.check != nil {
				tc.check(t, rt)
			}
		})
	}
}

func TestApply_OneModuleFailingDoesNotBlockOthers(t *testing.T) {
	d := mustDesired(t)
	rt := &agenttest.FakeRuntime{Now: func() time.Time { return now }}
	rt.AddImage("localhost:5000/archiver:latest")
	rt.Fail(agenttest.OpPull, "mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.5", errBoom)
	cmds := agent.Plan(d, nil, now)

	var done []string
	err := agent.Apply(context.Background(), rt, cmds, agent.Observer{Done: func(c agent.Command, err error) {
		s := c.Kind.String() + " " + c.Module
		switch {
		case errors.Is(err, agent.ErrSkipped):
			s += " skipped"
		case err != nil:
			s += " failed"
		}
		done = append(done, s)
	}})
	if !errors.Is(err, errBoom) || !strings.Contains(err.Error(), `module "tempSensor"`) {
		t.Fatalf("Apply = %v, want the pull failure of tempSensor", err)
	}
	want := []string{
		"pull edgeHub", "create edgeHub", "start edgeHub",
		"pull tempSensor failed", "create tempSensor skipped", "start tempSensor skipped",
		"pull filter", "create filter", "start filter",
		"create archiver",
	}
	if !reflect.DeepEqual(done, want) {
		t.Fatalf("done:\n got %q\nwant %q", done, want)
	}
	for _, name := range []string{"edgeHub", "filter"} {
		if st, _, _ := rt.Module(name); st.State != agent.StateRunning {
			t.Errorf("%s is %q, want running", name, st.State)
		}
	}
	if _, _, ok := rt.Module("tempSensor"); ok {
		t.Error("tempSensor was created after its pull failed")
	}
}

func TestApply_SkipsWaitsAndReportsProgress(t *testing.T) {
	rt := &agenttest.FakeRuntime{Progress: []agent.PullProgress{{Layer: "l1", Status: "Downloading", Current: 5, Total: 10}, {Status: "Pull complete"}}}
	cmds := []agent.Command{
		{Kind: agent.Wait, Module: "a", At: now},
		{Kind: agent.Pull, Module: "b", Image: "example/b:1"},
	}
	var progress []string
	var done []string
	err := agent.Apply(context.Background(), rt, cmds, agent.Observer{
		Progress: func(module string, p agent.PullProgress) { progress = append(progress, module+" "+p.Status) },
		Done:     func(c agent.Command, err error) { done = append(done, c.String()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"b Downloading", "b Pull complete"}; !reflect.DeepEqual(progress, want) {
		t.Fatalf("progress = %q, want %q", progress, want)
	}
	if len(done) != 1 || !strings.HasPrefix(done[0], "pull") {
		t.Fatalf("done = %q: the wait must not be reported", done)
	}
}

func TestApply_StopsWhenContextIsDone(t *testing.T) {
	rt := &agenttest.FakeRuntime{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := agent.Apply(ctx, rt, []agent.Command{{Kind: agent.Start, Module: "a"}}, agent.Observer{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply = %v, want context.Canceled", err)
	}
	if calls := rt.CallStrings(); len(calls) != 0 {
		t.Fatalf("calls after cancel: %q", calls)
	}
}

func TestCommand_StringAndLogValueHideSecrets(t *testing.T) {
	d := mustDesired(t)
	for _, c := range agent.Plan(d, nil, now) {
		for _, s := range []string{c.String(), c.LogValue().String()} {
			if strings.Contains(s, password) || strings.Contains(s, "SharedAccessKey") {
				t.Fatalf("%v leaks a secret: %s", c.Kind, s)
			}
			if !strings.Contains(s, c.Module) {
				t.Fatalf("%q does not name the module", s)
			}
		}
	}
	c := agent.Command{Kind: agent.Pull, Module: "filter", Image: "myacr.azurecr.io/filter:2.1", Credential: "acr", Cause: agent.CauseAdded}
	if got, want := c.String(), `pull "filter" image "myacr.azurecr.io/filter:2.1" (credential "acr"): added`; got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
}

func TestFakeRuntime_Logs(t *testing.T) {
	rt := &agenttest.FakeRuntime{}
	rt.Put(agent.ModuleState{Name: "m", State: agent.StateRunning})
	if err := rt.SetLogs("m", "one\ntwo\nthree\n"); err != nil {
		t.Fatal(err)
	}
	r, err := rt.Logs(context.Background(), "m", agent.LogOptions{Tail: 2})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	if string(b) != "two\nthree\n" {
		t.Fatalf("logs = %q", b)
	}
	if _, err := rt.Logs(context.Background(), "x", agent.LogOptions{}); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("logs of a missing module: %v", err)
	}
}
