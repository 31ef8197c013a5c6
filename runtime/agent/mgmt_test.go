package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/agenttest"
	"github.com/outpost-edge/outpost/runtime/deployment"
)

// mgmtServer runs ms on a socket in a temporary directory until the test
// ends, and returns an HTTP client for it.
func mgmtServer(t *testing.T, ms *agent.ManagementServer) *http.Client {
	t.Helper()
	if ms.Path == "" {
		ms.Path = filepath.Join(t.TempDir(), agent.ManagementSocket)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ms.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
		if _, err := os.Lstat(ms.Path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket left behind: %v", err)
		}
	})
	c := unixClient(ms.Path)
	waitFor(t, "the management socket", func() bool {
		resp, err := c.Get("http://agent/status")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return c
}

func unixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
}

// call sends a request and returns the status and body.
func call(t *testing.T, c *http.Client, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://agent"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return v
}

func TestManagementServer_RuntimeOnly(t *testing.T) {
	rt := &agenttest.FakeRuntime{Now: func() time.Time { return now }}
	rt.Put(agent.ModuleState{Name: "web", State: agent.StateRunning, StartedAt: now.Add(-3 * time.Minute), Image: "x/web:1"})
	rt.Put(agent.ModuleState{Name: "job", State: agent.StateExited, ExitCode: 1, StartedAt: now.Add(-time.Hour), ExitedAt: now.Add(-5 * time.Second), Image: "x/job:1"})
	if err := rt.SetLogs("web", "one\ntwo\nthree\n"); err != nil {
		t.Fatal(err)
	}
	ms := &agent.ManagementServer{Runtime: rt, Now: func() time.Time { return now },
		Info: agent.AgentStatus{Version: "1.2.3", DataDir: "/data"}, Config: map[string]string{"runtime": "process"}}
	c := mgmtServer(t, ms)

	fi, err := os.Stat(ms.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode = %v, want a socket with 0600", fi.Mode())
	}

	t.Run("modules", func(t *testing.T) {
		code, body := call(t, c, "GET", "/modules")
		if code != 200 {
			t.Fatalf("GET /modules = %d %s", code, body)
		}
		mods := decode[[]agent.ModuleInfo](t, body)
		if len(mods) != 2 || mods[0].Name != "job" || mods[1].Name != "web" {
			t.Fatalf("modules = %+v", mods)
		}
		if mods[0].Description != "Failed (1) 5 seconds ago" || mods[0].ExitCode == nil || *mods[0].ExitCode != 1 {
			t.Errorf("job = %+v", mods[0])
		}
		if mods[1].Description != "Up 3 minutes" || mods[1].Image != "x/web:1" {
			t.Errorf("web = %+v", mods[1])
		}
	})
	t.Run("logs", func(t *testing.T) {
		code, body := call(t, c, "GET", "/modules/web/logs?tail=2")
		if code != 200 || body != "two\nthree\n" {
			t.Fatalf("logs = %d %q", code, body)
		}
		code, body = call(t, c, "GET", "/modules/web/logs?since=soon")
		if code != 400 || !strings.Contains(body, "since") {
			t.Errorf("bad since = %d %s", code, body)
		}
		code, body = call(t, c, "GET", "/modules/nope/logs")
		if code != 404 {
			t.Errorf("unknown module logs = %d %s", code, body)
		}
	})
	t.Run("restart", func(t *testing.T) {
		rt.ResetCalls()
		if code, body := call(t, c, "POST", "/modules/web/restart"); code != 204 {
			t.Fatalf("restart = %d %s", code, body)
		}
		if got := strings.Join(rt.CallStrings(), ","); got != "stop web,start web" {
			t.Errorf("calls = %s", got)
		}
		code, body := call(t, c, "POST", "/modules/job/restart")
		if code != 409 || !strings.Contains(body, "not running") {
			t.Errorf("restart exited = %d %s", code, body)
		}
		if code, body := call(t, c, "POST", "/modules/nope/restart"); code != 404 {
			t.Errorf("restart unknown = %d %s", code, body)
		}
		if code, body := call(t, c, "GET", "/modules/web/restart"); code != 405 {
			t.Errorf("GET restart = %d %s", code, body)
		}
	})
	t.Run("status", func(t *testing.T) {
		code, body := call(t, c, "GET", "/status")
		st := decode[agent.AgentStatus](t, body)
		if code != 200 || st.Version != "1.2.3" || st.DataDir != "/data" || st.PID != os.Getpid() || st.Hub.State != agent.HubUnknown || !st.StartedAt.Equal(now) {
			t.Errorf("status = %d %+v", code, st)
		}
	})
	t.Run("config", func(t *testing.T) {
		code, body := call(t, c, "GET", "/config")
		if code != 200 || decode[map[string]string](t, body)["runtime"] != "process" {
			t.Errorf("config = %d %s", code, body)
		}
	})
	t.Run("runtime failure", func(t *testing.T) {
		rt.Fail(agenttest.OpList, "", errors.New("engine down"))
		defer rt.Fail(agenttest.OpList, "", nil)
		code, body := call(t, c, "GET", "/modules")
		if code != 500 || !strings.Contains(body, "engine down") {
			t.Errorf("GET /modules = %d %s", code, body)
		}
	})
}

func TestManagementServer_Socket(t *testing.T) {
	t.Run("stale socket is replaced", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), agent.ManagementSocket)
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close() // leaves the file, as a crashed agent does
		c := mgmtServer(t, &agent.ManagementServer{Path: path, Runtime: &agenttest.FakeRuntime{}})
		if code, _ := call(t, c, "GET", "/modules"); code != 200 {
			t.Fatalf("GET /modules = %d", code)
		}
	})
	t.Run("socket in use", func(t *testing.T) {
		ms := &agent.ManagementServer{Runtime: &agenttest.FakeRuntime{}}
		mgmtServer(t, ms)
		err := (&agent.ManagementServer{Path: ms.Path, Runtime: &agenttest.FakeRuntime{}}).Run(context.Background())
		if !errors.Is(err, agent.ErrSocketInUse) {
			t.Fatalf("second Run = %v, want ErrSocketInUse", err)
		}
	})
	t.Run("not a socket", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), agent.ManagementSocket)
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := (&agent.ManagementServer{Path: path, Runtime: &agenttest.FakeRuntime{}}).Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("Run = %v", err)
		}
	})
	t.Run("path too long", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), strings.Repeat("d", 120), agent.ManagementSocket)
		err := (&agent.ManagementServer{Path: path, Runtime: &agenttest.FakeRuntime{}}).Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "shorter data directory") {
			t.Fatalf("Run = %v", err)
		}
	})
	t.Run("missing runtime", func(t *testing.T) {
		if err := (&agent.ManagementServer{Path: "x.sock"}).Run(context.Background()); err == nil {
			t.Fatal("Run without a Runtime succeeded")
		}
	})
}

// slowPull is a runtime whose pulls report progress and then wait.
type slowPull struct {
	*agenttest.FakeRuntime
	release chan struct{}
}

func (s *slowPull) Pull(ctx context.Context, image string, auth *deployment.RegistryCredential, progress func(agent.PullProgress)) error {
	progress(agent.PullProgress{Layer: "l1", Status: "Downloading", Current: 40, Total: 100})
	progress(agent.PullProgress{Layer: "l2", Status: "Downloading", Current: 0, Total: 100})
	progress(agent.PullProgress{Layer: "l2", Status: "Download complete"})
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.FakeRuntime.Pull(ctx, image, auth, nil)
}

func TestPullTracker(t *testing.T) {
	inner := &slowPull{FakeRuntime: &agenttest.FakeRuntime{}, release: make(chan struct{})}
	tr := agent.TrackPulls(inner)
	var seen []agent.PullProgress
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() {
		done <- tr.Pull(context.Background(), "x/m:1", nil, func(p agent.PullProgress) {
			mu.Lock()
			seen = append(seen, p)
			mu.Unlock()
		})
	}()
	waitFor(t, "the pull to report progress", func() bool { return tr.Pulls()["x/m:1"].Done == 1 })
	st := tr.Pulls()["x/m:1"]
	if st.Total != 200 || st.Current != 140 || st.Layers != 2 {
		t.Errorf("pull status = %+v, want 140/200 over 2 layers", st)
	}
	close(inner.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(tr.Pulls()) != 0 {
		t.Errorf("Pulls after the pull = %v", tr.Pulls())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 {
		t.Errorf("caller saw %d events, want 3", len(seen))
	}
	if !inner.HasImage("x/m:1") {
		t.Error("the wrapped runtime did not pull")
	}
}

// With an agent attached, the API shows the deployment's view: statuses by
// the restart policy, the agent's own row, the reported deployment status,
// and logs with the agent's secrets redacted.
func TestManagementServer_WithAgent(t *testing.T) {
	h := newHarness(t)
	var tracked *agent.PullTracker
	h.wrap = func(rt agent.Runtime) agent.Runtime { tracked = agent.TrackPulls(rt); return tracked }
	h.twin.SetDesired(deploymentDoc(t))
	h.start()
	h.waitConverged()

	ms := &agent.ManagementServer{Runtime: tracked, Pulls: tracked, Agent: h.a, Now: h.clock.Now}
	c := mgmtServer(t, ms)
	ms.OnHubConnection(true, nil)

	code, body := call(t, c, "GET", "/modules")
	if code != 200 {
		t.Fatalf("GET /modules = %d %s", code, body)
	}
	got := map[string]agent.ModuleInfo{}
	for _, m := range decode[[]agent.ModuleInfo](t, body) {
		got[m.Name] = m
	}
	for name, want := range map[string]agent.RuntimeStatus{
		"edgeAgent": agent.StatusRunning, "edgeHub": agent.StatusRunning, "tempSensor": agent.StatusRunning,
		"filter": agent.StatusRunning, "archiver": agent.StatusStopped,
	} {
		if got[name].RuntimeStatus != want || !got[name].Desired {
			t.Errorf("%s = %+v, want %s", name, got[name], want)
		}
	}
	if got["edgeAgent"].Image != "ghcr.io/outpost-edge/edgeagent:0.1" {
		t.Errorf("edgeAgent image = %q", got["edgeAgent"].Image)
	}

	code, body = call(t, c, "GET", "/status")
	st := decode[agent.AgentStatus](t, body)
	if code != 200 || st.DeviceID != "edge1" || st.IoTHubHostName != "hub.example.net" || st.Version != "0.1.0" ||
		st.Hub.State != agent.HubConnected || st.Deployment.Code != 200 || st.Deployment.LastDesiredVersion == 0 ||
		st.Deployment.SavedVersion != st.Deployment.LastDesiredVersion || st.Deployment.DesiredVersion != st.Deployment.LastDesiredVersion {
		t.Errorf("status = %d %+v", code, st)
	}
	ms.OnHubConnection(false, errors.New("connection lost"))
	st = decode[agent.AgentStatus](t, func() string { _, b := call(t, c, "GET", "/status"); return b }())
	if st.Hub.State != agent.HubDisconnected || st.Hub.LastError != "connection lost" {
		t.Errorf("hub after a loss = %+v", st.Hub)
	}

	// Module keys are secrets: a module printing its environment does not
	// leak one through the API.
	key := keyOf("filter")
	if err := h.rt.SetLogs("filter", "starting\nEdgeHubConnectionString=...;SharedAccessKey="+key+"\n"); err != nil {
		t.Fatal(err)
	}
	code, body = call(t, c, "GET", "/modules/filter/logs")
	if code != 200 || strings.Contains(body, key) || !strings.Contains(body, "SharedAccessKey=***") {
		t.Errorf("logs = %d %q", code, body)
	}

	h.rt.ResetCalls()
	if code, body := call(t, c, "POST", "/modules/filter/restart"); code != 204 {
		t.Fatalf("restart = %d %s", code, body)
	}
	if calls := mutating(h.rt.CallStrings()); len(calls) < 2 || calls[0] != "stop filter" || calls[1] != "start filter" {
		t.Errorf("calls = %v", calls)
	}
	if code, body := call(t, c, "POST", "/modules/edgeAgent/restart"); code != 404 || !strings.Contains(body, "edgeagent service") {
		t.Errorf("restart edgeAgent = %d %s", code, body)
	}
}
