package docker

// Integration tests against a real Docker Engine (skipped with -short, or
// when no engine answers; see dockertest.Client). They are in package
// docker, not docker_test, for one reason: they move the edgeHub gateway
// alias to a module of their own naming (Runtime.hub), so that they never
// create a container called "edgeHub" that another test process on the same
// engine might be using.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/docker/dockertest"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

const testprog = "github.com/outpost-edge/outpost/runtime/agent/docker/dockertest/testprog"

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }

// engineEnv is one integration test's runtime on its own network.
type engineEnv struct {
	t     *testing.T
	ctx   context.Context
	cli   *client.Client
	rt    *Runtime
	image string // the local testprog image
}

func newEngineEnv(t *testing.T, opts Options) *engineEnv {
	t.Helper()
	cli := dockertest.Client(t)
	dockertest.Cleanup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	img := dockertest.BuildImage(t, ctx, "outpost-dockertest/testprog", "1", testprog)
	opts.Client = cli
	opts.Network = dockertest.Network(t)
	rt, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	rt.hub = moduleName("hub")
	return &engineEnv{t: t, ctx: ctx, cli: cli, rt: rt, image: img}
}

// moduleName makes a container name no other test process uses.
func moduleName(base string) string { return fmt.Sprintf("%s-%d", base, os.Getpid()) }

// spec is a module of the testprog image with the agent's and the test's
// labels.
func (e *engineEnv) spec(name, createOptions string, env ...string) agent.ModuleSpec {
	labels := dockertest.Labels(e.t)
	labels[agent.LabelOwner] = agent.Owner
	labels[agent.LabelModule] = name
	labels[agent.LabelSpecHash] = "hash-" + name
	labels[agent.LabelImage] = "manifest/" + name + ":1"
	labels[agent.LabelVersion] = "1"
	return agent.ModuleSpec{Name: name, Image: e.image, Env: env, CreateOptions: createOptions, Labels: labels, Hash: "hash-" + name}
}

func (e *engineEnv) create(spec agent.ModuleSpec) {
	e.t.Helper()
	if err := e.rt.Create(e.ctx, spec); err != nil {
		e.t.Fatalf("Create: %v", err)
	}
}

func (e *engineEnv) start(name string) {
	e.t.Helper()
	if err := e.rt.Start(e.ctx, name); err != nil {
		e.t.Fatalf("Start: %v", err)
	}
}

// find returns the listed state of module name.
func (e *engineEnv) find(name string) (agent.ModuleState, bool) {
	e.t.Helper()
	list, err := e.rt.List(e.ctx)
	if err != nil {
		e.t.Fatalf("List: %v", err)
	}
	for _, m := range list {
		if m.Name == name {
			return m, true
		}
	}
	return agent.ModuleState{}, false
}

// waitState polls List until module name satisfies ok.
func (e *engineEnv) waitState(name, what string, ok func(agent.ModuleState) bool) agent.ModuleState {
	e.t.Helper()
	var last agent.ModuleState
	checkFor(e.t, 20*time.Second, func() error {
		m, found := e.find(name)
		last = m
		if found && ok(m) {
			return nil
		}
		return fmt.Errorf("module %s not %s: %+v (listed: %v)", name, what, m, found)
	})
	return last
}

// logs reads module name's logs (not followed).
func (e *engineEnv) logs(name string, opts agent.LogOptions) []string {
	e.t.Helper()
	rc, err := e.rt.Logs(e.ctx, name, opts)
	if err != nil {
		e.t.Fatalf("Logs: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		e.t.Fatalf("reading logs: %v", err)
	}
	if len(b) == 0 {
		return nil
	}
	if b[len(b)-1] != '\n' {
		e.t.Errorf("logs do not end with a newline: %q", b)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// checkFor polls fn until it returns nil, failing t with its last error
// after timeout.
func checkFor(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

func TestEngine_Lifecycle(t *testing.T) {
	e := newEngineEnv(t, Options{})
	name := moduleName("lifecycle")
	createOptions := `{
		"Env": ["FROM_OPTIONS=1"],
		"Labels": {"extra": "kept", "` + agent.LabelModule + `": "overridden"},
		"ExposedPorts": {"8080/tcp": {}},
		"HostConfig": {
			"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
			"RestartPolicy": {"Name": "always"}
		}
	}`
	e.create(e.spec(name, createOptions, "A=1", "TESTPROG_ECHO_ENV=A,FROM_OPTIONS"))

	m, ok := e.find(name)
	if !ok || m.State != agent.StateCreated {
		t.Fatalf("after Create: %+v (listed %v), want created", m, ok)
	}
	if m.Image != "manifest/"+name+":1" || m.SpecHash != "hash-"+name || !strings.HasPrefix(m.ImageID, "sha256:") {
		t.Errorf("after Create: image %q spec hash %q image id %q", m.Image, m.SpecHash, m.ImageID)
	}
	if err := e.rt.Create(e.ctx, e.spec(name, "{}")); !errors.Is(err, agent.ErrExists) {
		t.Errorf("second Create: %v, want ErrExists", err)
	}

	e.start(name)
	m = e.waitState(name, "running", func(m agent.ModuleState) bool { return m.State == agent.StateRunning })
	if m.StartedAt.IsZero() || m.Health != restart.NoHealthCheck {
		t.Errorf("running: started %v health %v, want a start time and no health check", m.StartedAt, m.Health)
	}
	if err := e.rt.Start(e.ctx, name); err != nil {
		t.Errorf("Start of a running module: %v", err)
	}

	info, err := e.cli.ContainerInspect(e.ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.HostConfig.RestartPolicy.Name; got != "no" {
		t.Errorf("restart policy %q, want no", got)
	}
	if info.Config.Labels["extra"] != "kept" || info.Config.Labels[agent.LabelModule] != name || info.Config.Labels[agent.LabelOwner] != agent.Owner {
		t.Errorf("labels %v", info.Config.Labels)
	}
	if _, ok := info.NetworkSettings.Networks[e.rt.Network()]; !ok {
		t.Errorf("networks %v, want %s", slices.Collect(maps.Keys(info.NetworkSettings.Networks)), e.rt.Network())
	}
	if b := info.NetworkSettings.Ports["8080/tcp"]; len(b) == 0 || b[0].HostIP != "127.0.0.1" || b[0].HostPort == "" {
		t.Errorf("port 8080 bound to %v, want 127.0.0.1:<port>", b)
	}
	checkFor(t, 10*time.Second, func() error {
		got := e.logs(name, agent.LogOptions{})
		want := []string{"env A=1", "env FROM_OPTIONS unset"}
		if !slices.Equal(got, want) {
			return fmt.Errorf("logs %q, want %q (spec.Env replaces createOptions.Env)", got, want)
		}
		return nil
	})

	if err := e.rt.Stop(e.ctx, name, 5*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	m, _ = e.find(name)
	if m.State != agent.StateExited || m.ExitCode != 0 || !m.ExitedAt.After(m.StartedAt) {
		t.Errorf("after Stop: %+v, want exited 0 after its start", m)
	}
	if err := e.rt.Stop(e.ctx, name, time.Second); err != nil {
		t.Errorf("Stop of a stopped module: %v", err)
	}
	if err := e.rt.Remove(e.ctx, name); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if m, ok := e.find(name); ok {
		t.Errorf("listed after Remove: %+v", m)
	}
	for op, err := range map[string]error{
		"Remove": e.rt.Remove(e.ctx, name),
		"Start":  e.rt.Start(e.ctx, name),
		"Stop":   e.rt.Stop(e.ctx, name, time.Second),
	} {
		if !errors.Is(err, agent.ErrNotFound) {
			t.Errorf("%s after Remove: %v, want ErrNotFound", op, err)
		}
	}
	if _, err := e.rt.Logs(e.ctx, name, agent.LogOptions{}); !errors.Is(err, agent.ErrNotFound) {
		t.Errorf("Logs after Remove: %v, want ErrNotFound", err)
	}
}

func TestEngine_ExitCodeRecorded(t *testing.T) {
	e := newEngineEnv(t, Options{})
	name := moduleName("exit3")
	e.create(e.spec(name, "", "TESTPROG_EXIT=3"))
	e.start(name)
	m := e.waitState(name, "exited", func(m agent.ModuleState) bool { return m.State == agent.StateExited })
	if m.ExitCode != 3 || m.ExitedAt.IsZero() {
		t.Errorf("exited: code %d at %v, want 3 at a time", m.ExitCode, m.ExitedAt)
	}
	if err := e.rt.Remove(e.ctx, name); err != nil {
		t.Errorf("Remove of an exited module: %v", err)
	}
}

func TestEngine_StopKillsAfterTimeout(t *testing.T) {
	e := newEngineEnv(t, Options{})
	name := moduleName("stubborn")
	e.create(e.spec(name, "", "TESTPROG_IGNORE_TERM=1"))
	e.start(name)
	e.waitState(name, "running", func(m agent.ModuleState) bool { return m.State == agent.StateRunning })
	if err := e.rt.Remove(e.ctx, name); !errors.Is(err, ErrRunning) {
		t.Errorf("Remove of a running module: %v, want ErrRunning", err)
	}
	begin := time.Now()
	if err := e.rt.Stop(e.ctx, name, 1*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if took := time.Since(begin); took < time.Second {
		t.Errorf("Stop took %s: it did not wait for the timeout", took)
	}
	m, _ := e.find(name)
	if m.State != agent.StateExited || m.ExitCode != 137 {
		t.Errorf("after Stop: %s code %d, want exited 137 (killed)", m.State, m.ExitCode)
	}
}

func TestEngine_Networking(t *testing.T) {
	const gateway = "edge-gw.outpost.test"
	e := newEngineEnv(t, Options{GatewayHostName: gateway})

	hub := e.rt.hub
	e.create(e.spec(hub, ""))
	plain := moduleName("plain")
	e.create(e.spec(plain, "null"))
	own := moduleName("own-network")
	e.create(e.spec(own, `{"HostConfig": {"NetworkMode": "bridge"}, "NetworkingConfig": {"EndpointsConfig": {"bridge": {}}}}`))

	for _, tc := range []struct {
		name      string
		network   string
		alias     bool
		notOnMine bool
	}{
		{name: hub, network: e.rt.Network(), alias: true},
		{name: plain, network: e.rt.Network()},
		{name: own, network: "bridge", notOnMine: true},
	} {
		info, err := e.cli.ContainerInspect(e.ctx, tc.name)
		if err != nil {
			t.Fatal(err)
		}
		ep, ok := info.NetworkSettings.Networks[tc.network]
		if !ok {
			t.Errorf("%s: networks %v, want %s", tc.name, slices.Collect(maps.Keys(info.NetworkSettings.Networks)), tc.network)
			continue
		}
		if got := slices.Contains(ep.Aliases, gateway); got != tc.alias {
			t.Errorf("%s: aliases %v, gateway alias wanted: %v", tc.name, ep.Aliases, tc.alias)
		}
		if _, on := info.NetworkSettings.Networks[e.rt.Network()]; on && tc.notOnMine {
			t.Errorf("%s: attached to %s although createOptions names its networks", tc.name, e.rt.Network())
		}
	}
}

func TestEngine_HealthcheckTurnsUnhealthy(t *testing.T) {
	e := newEngineEnv(t, Options{})
	name := moduleName("health")
	createOptions := `{"Healthcheck": {"Test": ["CMD", "/testprog", "health"], "Interval": 100000000, "Timeout": 2000000000, "Retries": 1}}`
	e.create(e.spec(name, createOptions, "TESTPROG_HEALTHY_FOR=2s"))
	e.start(name)
	e.waitState(name, "healthy", func(m agent.ModuleState) bool { return m.Health == restart.Healthy })
	m := e.waitState(name, "unhealthy", func(m agent.ModuleState) bool { return m.Health == restart.Unhealthy })
	if m.State != agent.StateRunning {
		t.Errorf("unhealthy module is %s, want still running", m.State)
	}
}

func TestEngine_Logs(t *testing.T) {
	e := newEngineEnv(t, Options{})
	name := moduleName("logs")
	e.create(e.spec(name, "", "TESTPROG_LINES=5", "TESTPROG_TICK=100ms"))
	e.start(name)

	var all []string
	checkFor(t, 10*time.Second, func() error {
		all = e.logs(name, agent.LogOptions{})
		if !slices.Contains(all, "tick 2") {
			return fmt.Errorf("logs %q: no tick 2 yet", all)
		}
		return nil
	})
	var stdout, stderr []string
	for _, l := range all {
		switch {
		case strings.HasPrefix(l, "stdout "):
			stdout = append(stdout, l)
		case strings.HasPrefix(l, "stderr "):
			stderr = append(stderr, l)
		case strings.HasPrefix(l, "tick "):
		default:
			t.Errorf("unexpected log line %q", l)
		}
	}
	wantOut := []string{"stdout 1", "stdout 2", "stdout 3", "stdout 4", "stdout 5"}
	wantErr := []string{"stderr 1", "stderr 2", "stderr 3", "stderr 4", "stderr 5"}
	if !slices.Equal(stdout, wantOut) || !slices.Equal(stderr, wantErr) {
		t.Errorf("stdout %q stderr %q, want both streams whole and in order", stdout, stderr)
	}

	t.Run("tail", func(t *testing.T) {
		got := e.logs(name, agent.LogOptions{Tail: 3})
		if len(got) != 3 || !strings.HasPrefix(got[2], "tick ") {
			t.Errorf("tail 3: %q", got)
		}
	})
	t.Run("timestamps", func(t *testing.T) {
		for _, l := range e.logs(name, agent.LogOptions{Tail: 2, Timestamps: true}) {
			ts, rest, _ := strings.Cut(l, " ")
			if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasPrefix(rest, "tick ") {
				t.Errorf("line %q: want an RFC 3339 time and the line (%v)", l, err)
			}
		}
	})
	t.Run("since-until", func(t *testing.T) {
		since := time.Now()
		checkFor(t, 5*time.Second, func() error {
			got := e.logs(name, agent.LogOptions{Since: since})
			if len(got) == 0 {
				return errors.New("no line since now yet")
			}
			for _, l := range got {
				if !strings.HasPrefix(l, "tick ") {
					return fmt.Errorf("since now: line %q from before", l)
				}
			}
			return nil
		})
		if got := e.logs(name, agent.LogOptions{Until: time.Now().Add(-time.Hour)}); len(got) != 0 {
			t.Errorf("until an hour ago: %q, want nothing", got)
		}
	})
	t.Run("follow", func(t *testing.T) {
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		rc, err := e.rt.Logs(ctx, name, agent.LogOptions{Follow: true, Tail: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		sc := bufio.NewScanner(rc)
		var got []string
		for len(got) < 3 && sc.Scan() {
			got = append(got, sc.Text())
		}
		if len(got) < 3 {
			t.Fatalf("followed %q, then %v", got, sc.Err())
		}
		var first, last int
		fmt.Sscanf(got[0], "tick %d", &first)
		fmt.Sscanf(got[2], "tick %d", &last)
		if last != first+2 {
			t.Errorf("followed %q, want consecutive ticks as they come", got)
		}
		cancel()
		done := make(chan error, 1)
		go func() { _, err := io.Copy(io.Discard, rc); done <- err }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("followed stream ended with %v, want a clean end", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("followed stream still open 5s after its context ended")
		}
	})
}

func TestEngine_DeletedByHandDisappears(t *testing.T) {
	e := newEngineEnv(t, Options{})
	name := moduleName("by-hand")
	e.create(e.spec(name, ""))
	e.start(name)
	if _, ok := e.find(name); !ok {
		t.Fatal("not listed after Start")
	}
	if err := e.cli.ContainerRemove(e.ctx, name, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if m, ok := e.find(name); ok {
		t.Errorf("listed after docker rm -f: %+v", m)
	}
}

func TestEngine_CreateErrors(t *testing.T) {
	e := newEngineEnv(t, Options{})
	spec := e.spec(moduleName("absent-image"), "")
	spec.Image = "outpost-dockertest/absent:1"
	if err := e.rt.Create(e.ctx, spec); !errors.Is(err, agent.ErrImageNotFound) {
		t.Errorf("Create from an absent image: %v, want ErrImageNotFound", err)
	}
	spec = e.spec(moduleName("bad-options"), `{"Env": "A=1"}`)
	if err := e.rt.Create(e.ctx, spec); !errors.Is(err, ErrCreateOptions) {
		t.Errorf("Create with bad createOptions: %v, want ErrCreateOptions", err)
	}
}

func TestEngine_Pull(t *testing.T) {
	e := newEngineEnv(t, Options{})
	const user, password = "edge", "Pa55-w0rd!x"
	reg := dockertest.StartRegistry(t, user, password)
	auth := &deployment.RegistryCredential{Username: user, Password: password, Address: reg.Addr()}
	removeImage := func(ref string) {
		t.Cleanup(func() { e.cli.ImageRemove(context.Background(), ref, image.RemoveOptions{}) })
	}

	t.Run("with-credentials", func(t *testing.T) {
		ref, _ := reg.Push(t, e.ctx, e.image)
		removeImage(ref)
		var events []agent.PullProgress
		if err := e.rt.Pull(e.ctx, ref, auth, func(p agent.PullProgress) { events = append(events, p) }); err != nil {
			t.Fatalf("Pull: %v", err)
		}
		downloading := slices.ContainsFunc(events, func(p agent.PullProgress) bool {
			return p.Status == "Downloading" && p.Layer != "" && p.Total > 0 && p.Current > 0
		})
		complete := slices.ContainsFunc(events, func(p agent.PullProgress) bool { return p.Status == "Pull complete" && p.Layer != "" })
		if !downloading || !complete {
			t.Errorf("progress %+v: want Downloading with sizes and Pull complete for a layer", events)
		}
		name := moduleName("pulled")
		spec := e.spec(name, "", "TESTPROG_EXIT=0")
		spec.Image = ref
		e.create(spec)
	})
	t.Run("wrong-password", func(t *testing.T) {
		ref, _ := reg.Push(t, e.ctx, e.image)
		bad := &deployment.RegistryCredential{Username: user, Password: "not-" + password, Address: reg.Addr()}
		err := e.rt.Pull(e.ctx, ref, bad, nil)
		if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "authentication") {
			t.Errorf("Pull with a wrong password: %v, want ErrUnauthorized mentioning authentication", err)
		}
		if err != nil && strings.Contains(err.Error(), bad.Password) {
			t.Errorf("error %q shows the password", err)
		}
		if err := e.rt.Pull(e.ctx, ref, nil, nil); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("Pull without credentials: %v, want ErrUnauthorized", err)
		}
	})
	t.Run("pinned-digest", func(t *testing.T) {
		ref, digest := reg.Push(t, e.ctx, e.image)
		pinned := dockertest.PinnedRef(ref, digest)
		removeImage(pinned)
		if err := e.rt.Pull(e.ctx, pinned, auth, nil); err != nil {
			t.Fatalf("Pull %s: %v", pinned, err)
		}
		wrong := dockertest.PinnedRef(ref, "sha256:"+strings.Repeat("0", 64))
		err := e.rt.Pull(e.ctx, wrong, auth, nil)
		if !errors.Is(err, ErrImageUnknown) {
			t.Errorf("Pull with a wrong digest: %v, want ErrImageUnknown", err)
		}
	})
	t.Run("require-digest", func(t *testing.T) {
		strict, err := New(Options{Client: e.cli, Network: e.rt.Network(), RequireDigest: true})
		if err != nil {
			t.Fatal(err)
		}
		ref, digest := reg.Push(t, e.ctx, e.image)
		// The earlier subtests pulled the same tag.
		e.cli.ImageRemove(e.ctx, ref, image.RemoveOptions{Force: true})
		if err := strict.Pull(e.ctx, ref, auth, nil); !errors.Is(err, ErrUnpinned) {
			t.Errorf("Pull of a tag: %v, want ErrUnpinned", err)
		}
		if _, err := e.cli.ImageInspect(e.ctx, ref); err == nil {
			t.Errorf("refused image %s was pulled all the same", ref)
		}
		pinned := dockertest.PinnedRef(ref, digest)
		removeImage(pinned)
		if err := strict.Pull(e.ctx, pinned, auth, nil); err != nil {
			t.Errorf("Pull of %s: %v", pinned, err)
		}
		spec := e.spec(moduleName("strict"), "")
		if err := strict.Create(e.ctx, spec); !errors.Is(err, ErrUnpinned) {
			t.Errorf("Create from tag %s: %v, want ErrUnpinned", spec.Image, err)
		}
		spec.Image = pinned
		if err := strict.Create(e.ctx, spec); err != nil {
			t.Errorf("Create from %s: %v", pinned, err)
		}
	})
	t.Run("unknown-image", func(t *testing.T) {
		err := e.rt.Pull(e.ctx, reg.Addr()+"/outpost-dockertest/absent:1", auth, nil)
		if !errors.Is(err, ErrImageUnknown) {
			t.Errorf("Pull of an image the registry lacks: %v, want ErrImageUnknown", err)
		}
	})
}
