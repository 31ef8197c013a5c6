package docker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
)

func TestContainerOps_ErrorMapping(t *testing.T) {
	ctx := context.Background()
	engineDown := errors.New("Cannot connect to the Docker daemon")
	type op func(rt *Runtime) error
	start := func(rt *Runtime) error { return rt.Start(ctx, "m") }
	stop := func(rt *Runtime) error { return rt.Stop(ctx, "m", time.Second) }
	remove := func(rt *Runtime) error { return rt.Remove(ctx, "m") }
	logs := func(rt *Runtime) error { _, err := rt.Logs(ctx, "m", agent.LogOptions{}); return err }
	for _, tc := range []struct {
		name    string
		engine  *fakeEngine
		op      op
		want    error // errors.Is; nil: success
		wantMsg string
	}{
		{name: "start-ok", engine: &fakeEngine{}, op: start},
		{name: "start-404", engine: &fakeEngine{startErr: notFound("container: m")}, op: start, want: agent.ErrNotFound, wantMsg: "No such container"},
		{name: "start-other", engine: &fakeEngine{startErr: engineDown}, op: start, want: engineDown},
		{name: "stop-ok", engine: &fakeEngine{}, op: stop},
		{name: "stop-404", engine: &fakeEngine{stopErr: notFound("container: m")}, op: stop, want: agent.ErrNotFound},
		{name: "stop-other", engine: &fakeEngine{stopErr: engineDown}, op: stop, want: engineDown},
		{name: "remove-ok", engine: &fakeEngine{}, op: remove},
		{name: "remove-404", engine: &fakeEngine{removeErr: notFound("container: m")}, op: remove, want: agent.ErrNotFound},
		{name: "remove-409-running", engine: &fakeEngine{removeErr: conflict("You cannot remove a running container")}, op: remove, want: ErrRunning, wantMsg: "cannot remove a running container"},
		{name: "remove-other", engine: &fakeEngine{removeErr: engineDown}, op: remove, want: engineDown},
		{name: "logs-404", engine: &fakeEngine{}, op: logs, want: agent.ErrNotFound},
		{
			name: "logs-stream-404", op: logs, want: agent.ErrNotFound,
			engine: &fakeEngine{inspect: map[string]container.InspectResponse{"m": inspected("m", "running")}, logsErr: notFound("container: m")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op(newRuntime(tc.engine, Options{}))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), `"m"`) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q: want the module name and %q", err, tc.wantMsg)
			}
			if tc.want != agent.ErrNotFound && errors.Is(err, agent.ErrNotFound) {
				t.Errorf("error %v is not a 404 but wraps ErrNotFound", err)
			}
		})
	}
}

func TestStop_Timeout(t *testing.T) {
	for _, tc := range []struct {
		timeout time.Duration
		want    int
	}{
		{10 * time.Second, 10},
		{1500 * time.Millisecond, 2},
		{time.Millisecond, 1},
		{0, 0},
		{-time.Second, 0},
	} {
		t.Run(tc.timeout.String(), func(t *testing.T) {
			f := &fakeEngine{}
			if err := newRuntime(f, Options{}).Stop(context.Background(), "m", tc.timeout); err != nil {
				t.Fatal(err)
			}
			if f.stopOpts.Timeout == nil || *f.stopOpts.Timeout != tc.want {
				t.Errorf("engine timeout %v, want %d s", f.stopOpts.Timeout, tc.want)
			}
		})
	}
}

func TestRemove_KeepsNamedVolumes(t *testing.T) {
	f := &fakeEngine{}
	if err := newRuntime(f, Options{}).Remove(context.Background(), "m"); err != nil {
		t.Fatal(err)
	}
	if f.removeOpts.Force || !f.removeOpts.RemoveVolumes {
		t.Errorf("remove options %+v: want no force (a running module is refused) and anonymous volumes removed", f.removeOpts)
	}
}

// inspected is an inspect answer for a container of the agent.
func inspected(name string, status container.ContainerState) container.InspectResponse {
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID:    "id-" + name,
			Name:  "/" + name,
			Image: "sha256:abc",
			State: &container.State{Status: status, StartedAt: "0001-01-01T00:00:00Z", FinishedAt: "0001-01-01T00:00:00Z"},
		},
		Config: &container.Config{
			Image: "registry.io/" + name + ":resolved",
			Labels: map[string]string{
				agent.LabelOwner: agent.Owner, agent.LabelModule: name,
				agent.LabelImage: "$upstream:443/" + name + ":1", agent.LabelSpecHash: "hash-" + name,
			},
		},
	}
}

func TestModuleState(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	t1 := t0.Add(time.Minute)
	for _, tc := range []struct {
		name string
		edit func(*container.InspectResponse)
		want agent.ModuleState
	}{
		{
			name: "created",
			want: agent.ModuleState{Name: "m", State: agent.StateCreated, Image: "$upstream:443/m:1", ImageID: "sha256:abc", SpecHash: "hash-m"},
		},
		{
			name: "running-healthy",
			edit: func(i *container.InspectResponse) {
				i.State.Status, i.State.StartedAt = "running", t0.Format(time.RFC3339Nano)
				i.State.Health = &container.Health{Status: container.Healthy}
			},
			want: agent.ModuleState{Name: "m", State: agent.StateRunning, Health: restart.Healthy, StartedAt: t0, Image: "$upstream:443/m:1", ImageID: "sha256:abc", SpecHash: "hash-m"},
		},
		{
			name: "running-unhealthy",
			edit: func(i *container.InspectResponse) {
				i.State.Status = "running"
				i.State.Health = &container.Health{Status: container.Unhealthy}
			},
			want: agent.ModuleState{Name: "m", State: agent.StateRunning, Health: restart.Unhealthy, Image: "$upstream:443/m:1", ImageID: "sha256:abc", SpecHash: "hash-m"},
		},
		{
			name: "running-starting",
			edit: func(i *container.InspectResponse) {
				i.State.Status = "running"
				i.State.Health = &container.Health{Status: container.Starting}
			},
			want: agent.ModuleState{Name: "m", State: agent.StateRunning, Health: restart.HealthStarting, Image: "$upstream:443/m:1", ImageID: "sha256:abc", SpecHash: "hash-m"},
		},
		{
			name: "health-none",
			edit: func(i *container.InspectResponse) {
				i.State.Status = "running"
				i.State.Health = &container.Health{Status: container.NoHealthcheck}
			},
			want: agent.ModuleState{Name: "m", State: agent.StateRunning, Image: "$upstream:443/m:1", ImageID: "sha256:abc", SpecHash: "hash-m"},
		},
		{
			name: "paused-is-running",
			edit: func(i *container.InspectResponse) { i.State.Status = "paused" },
			want: agent.ModuleState{Name: "m", State: agent.StateRunning, Image: "$upstream:443/m:1", ImageID: "sha256:abc", SpecHash: "hash-m"},
		},
		{
			name: "restarting-is-running",
			edit: func(i *container.InspectResponse) { i.State.Status = "restarting" },
			want: agent.ModuleState{Name: "m", State: agent.StateRunning, Image: "$upstream:443/m:1", ImageID: "sha256:abc", SpecHash: "hash-m"},
		},
		{
			name: "exited-with-code",
			edit: func(i *container.InspectResponse) {
				i.State.Status, i.State.ExitCode = "exited", 3
				i.State.StartedAt, i.State.FinishedAt = t0.Format(time.RFC3339Nano), t1.Format(time.RFC3339Nano)
			},
			want: agent.ModuleState{Name: "m", State: agent.StateExited, ExitCode: 3, StartedAt: t0, ExitedAt: t1, Image: "$upstream:443/m:1", ImageID: "sha256:abc", SpecHash: "hash-m"},
		},
		{
			name: "removing-is-exited",
			edit: func(i *container.InspectResponse) { i.State.Status, i.State.ExitCode = "removing", 137 },
			want: agent.ModuleState{Name: "m", State: agent.StateExited, ExitCode: 137, Image: "$upstream:443/m:1", ImageID: "sha256:abc", SpecHash: "hash-m"},
		},
		{
			name: "dead",
			edit: func(i *container.InspectResponse) { i.State.Status = "dead" },
			want: agent.ModuleState{Name: "m", State: agent.StateDead, Image: "$upstream:443/m:1", ImageID: "sha256:abc", SpecHash: "hash-m"},
		},
		{
			name: "unknown-status-passed-through",
			edit: func(i *container.InspectResponse) { i.State.Status = "frozen" },
			want: agent.ModuleState{Name: "m", State: "frozen", Image: "$upstream:443/m:1", ImageID: "sha256:abc", SpecHash: "hash-m"},
		},
		{
			name: "without-agent-labels",
			edit: func(i *container.InspectResponse) { i.Config.Labels = map[string]string{agent.LabelOwner: agent.Owner} },
			want: agent.ModuleState{Name: "m", State: agent.StateCreated, Image: "registry.io/m:resolved", ImageID: "sha256:abc"},
		},
		{
			name: "bad-time-is-zero",
			edit: func(i *container.InspectResponse) { i.State.Status, i.State.StartedAt = "running", "yesterday" },
			want: agent.ModuleState{Name: "m", State: agent.StateRunning, Image: "$upstream:443/m:1", ImageID: "sha256:abc", SpecHash: "hash-m"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := inspected("m", "created")
			if tc.edit != nil {
				tc.edit(&info)
			}
			if got := moduleState(info); got != tc.want {
				t.Errorf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestModuleState_PartialInspect(t *testing.T) {
	// An engine answer without State or Config must not panic.
	got := moduleState(container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{Name: "/m"}})
	if got.Name != "m" || got.State != "" {
		t.Errorf("got %+v", got)
	}
	got = moduleState(container.InspectResponse{Config: &container.Config{Labels: map[string]string{agent.LabelModule: "m"}}})
	if got.Name != "m" {
		t.Errorf("got %+v, want the name from the label", got)
	}
}

func TestList(t *testing.T) {
	f := &fakeEngine{
		containers: []container.Summary{{ID: "id-a"}, {ID: "id-gone"}, {ID: "id-b"}},
		inspect: map[string]container.InspectResponse{
			"id-a": inspected("a", "running"),
			"id-b": inspected("b", "exited"),
		},
	}
	list, err := newRuntime(f, Options{}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "a" || list[0].State != agent.StateRunning || list[1].Name != "b" || list[1].State != agent.StateExited {
		t.Errorf("list %+v: want a running and b exited, and the container removed meanwhile left out", list)
	}
	if !f.called("list " + agent.LabelOwner + "=" + agent.Owner) {
		t.Errorf("calls %v: want a list filtered by the owner label", f.calls)
	}
}

func TestList_Errors(t *testing.T) {
	down := errors.New("engine down")
	for _, tc := range []struct {
		name   string
		engine *fakeEngine
		want   error
	}{
		{name: "list", engine: &fakeEngine{listErr: down}, want: down},
		{name: "inspect", engine: &fakeEngine{containers: []container.Summary{{ID: "id-a"}}, inspectErr: down}, want: down},
		{name: "vanished", engine: &fakeEngine{containers: []container.Summary{{ID: "id-a"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := newRuntime(tc.engine, Options{}).List(context.Background())
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("List: %v, want %v", err, tc.want)
			}
			if tc.want == nil && (err != nil || len(list) != 0) {
				t.Errorf("List: %v %v, want an empty list (the only container vanished)", list, err)
			}
		})
	}
}

func TestEnsureNetwork(t *testing.T) {
	for _, tc := range []struct {
		name    string
		engine  *fakeEngine
		created bool
		wantErr string
	}{
		{name: "exists", engine: &fakeEngine{networks: map[string]bool{"n": true}}},
		{name: "missing", engine: &fakeEngine{}, created: true},
		{name: "created-meanwhile", engine: &fakeEngine{networkCreateErr: conflict("network with name n already exists")}, created: true},
		{name: "inspect-fails", engine: &fakeEngine{networkErr: errors.New("engine down")}, wantErr: "engine down"},
		{name: "create-fails", engine: &fakeEngine{networkCreateErr: errors.New("no free subnet")}, created: true, wantErr: "no free subnet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := newRuntime(tc.engine, Options{Network: "n"}).EnsureNetwork(context.Background())
			if (err != nil) != (tc.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("EnsureNetwork: %v, want error %q", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), `network "n"`) {
				t.Errorf("error %q does not name the network", err)
			}
			if got := len(tc.engine.networkCreated) == 1; got != tc.created {
				t.Fatalf("created: %v, want %v", got, tc.created)
			}
			if tc.created {
				opts := tc.engine.networkCreated[0]
				if opts.Driver != "bridge" || opts.Labels[agent.LabelOwner] != agent.Owner {
					t.Errorf("network options %+v: want a bridge labelled as ours", opts)
				}
			}
		})
	}
}

func TestNew_Defaults(t *testing.T) {
	rt := newRuntime(&fakeEngine{}, Options{})
	if rt.Network() != DefaultNetwork || rt.hub != "edgeHub" || rt.log == nil || rt.now == nil {
		t.Errorf("defaults: network %q hub %q", rt.Network(), rt.hub)
	}
	if err := rt.Close(); err != nil {
		t.Errorf("Close of a runtime on a client it does not own: %v", err)
	}
}
