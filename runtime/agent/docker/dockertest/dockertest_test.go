package dockertest

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/registry"
)

const testprog = "github.com/outpost-edge/outpost/runtime/agent/docker/dockertest/testprog"

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestRegistry_BasicAuth(t *testing.T) {
	reg := StartRegistry(t, "edge", "pa55word")
	for _, tc := range []struct {
		name       string
		user, pass string
		want       int
	}{
		{"no-credentials", "", "", http.StatusUnauthorized},
		{"wrong-password", "edge", "nope", http.StatusUnauthorized},
		{"wrong-user", "other", "pa55word", http.StatusUnauthorized},
		{"right", "edge", "pa55word", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+reg.Addr()+"/v2/", nil)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("GET /v2/: %s, want %d", resp.Status, tc.want)
			}
			if tc.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("challenge %q, want Basic", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestPush_PullRoundTrip(t *testing.T) {
	cli := Client(t)
	Cleanup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	local := BuildImage(t, ctx, "outpost-dockertest/selftest", "1", testprog)
	if again := BuildImage(t, ctx, "outpost-dockertest/selftest", "1", testprog); again != local {
		t.Errorf("second BuildImage: %q, want %q", again, local)
	}
	reg := StartRegistry(t, "edge", "pa55word")
	ref, digest := reg.Push(t, ctx, local)
	if !strings.HasPrefix(ref, reg.Addr()+"/outpost-dockertest/selftest:1") || !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("Push: %q %q", ref, digest)
	}
	auth, _ := registry.EncodeAuthConfig(registry.AuthConfig{Username: "edge", Password: "pa55word", ServerAddress: reg.Addr()})
	pinned := PinnedRef(ref, digest)
	rc, err := cli.ImagePull(ctx, pinned, image.PullOptions{RegistryAuth: auth})
	if err != nil {
		t.Fatal(err)
	}
	var statuses []string
	dec := json.NewDecoder(rc)
	for dec.More() {
		var m struct{ Status, Error string }
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		if m.Error != "" {
			t.Fatalf("pull: %s", m.Error)
		}
		statuses = append(statuses, m.Status)
	}
	rc.Close()
	if !strings.Contains(strings.Join(statuses, ","), "Downloading") {
		t.Errorf("pull statuses %q: the layer was not downloaded", statuses)
	}
	info, err := cli.ImageInspect(ctx, pinned)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Labels[LabelRun] != run || info.Config.Labels[LabelPush] == "" {
		t.Errorf("pulled image labels %v: want the run and a push nonce", info.Config.Labels)
	}

	// The pulled image runs: the binary is static and alone in the image.
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: pinned, Env: []string{"TESTPROG_EXIT=7"}, Labels: Labels(t)}, nil, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	waitC, errC := cli.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	select {
	case res := <-waitC:
		if res.StatusCode != 7 {
			t.Errorf("exit code %d, want 7", res.StatusCode)
		}
	case err := <-errC:
		t.Fatal(err)
	}
}

func TestPinnedRef(t *testing.T) {
	const d = "sha256:abc"
	for in, want := range map[string]string{
		"127.0.0.1:5000/a/b:1": "127.0.0.1:5000/a/b@" + d,
		"127.0.0.1:5000/a/b":   "127.0.0.1:5000/a/b@" + d,
		"b:latest":             "b@" + d,
	} {
		if got := PinnedRef(in, d); got != want {
			t.Errorf("PinnedRef(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAlive(t *testing.T) {
	if !alive(run) {
		t.Error("this process is not alive")
	}
	for _, pid := range []string{"", "x", "0", "-1", "4194305"} {
		if alive(pid) {
			t.Errorf("alive(%q)", pid)
		}
	}
}

func TestSweep_RemovesWhatDeadRunsLeft(t *testing.T) {
	cli := Client(t)
	Cleanup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	local := BuildImage(t, ctx, "outpost-dockertest/selftest", "1", testprog)

	dead := "4194303" // above any pid the kernel hands out by default
	if alive(dead) {
		t.Skipf("pid %s exists", dead)
	}
	// What an interrupted run with that pid would have left: a container,
	// and a network. Ours (this run's) must survive the sweep.
	mk := func(pid string) (containerID, netName string) {
		netName = networkPrefix + pid + "-1"
		if _, err := cli.NetworkCreate(ctx, netName, network.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		c, err := cli.ContainerCreate(ctx, &container.Config{Image: local, Labels: map[string]string{LabelRun: pid, LabelTest: t.Name()}}, nil, nil, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		return c.ID, netName
	}
	staleC, staleNet := mk(dead)
	t.Cleanup(func() { removeRun(context.Background(), cli, dead) })
	ownC, ownNet := mk(run)
	t.Cleanup(func() { cli.NetworkRemove(context.Background(), ownNet) })

	if err := sweep(ctx, cli); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if _, err := cli.ContainerInspect(ctx, staleC); err == nil {
		t.Error("the dead run's container survived the sweep")
	}
	if _, err := cli.NetworkInspect(ctx, staleNet, network.InspectOptions{}); err == nil {
		t.Error("the dead run's network survived the sweep")
	}
	if _, err := cli.ContainerInspect(ctx, ownC); err != nil {
		t.Errorf("this run's container: %v", err)
	}
	if _, err := cli.NetworkInspect(ctx, ownNet, network.InspectOptions{}); err != nil {
		t.Errorf("this run's network: %v", err)
	}
}
