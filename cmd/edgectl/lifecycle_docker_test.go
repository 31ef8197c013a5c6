package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/docker/dockertest"
)

// TestLifecycle_Docker runs the agent's container from an image of
// cmd/edgeagent against a fake hub: start creates the network and the
// edgeAgent container (socket and data directory mounted, restart policy
// unless-stopped), Docker brings a killed agent back, stop leaves it
// stopped, uninstall removes the container, the network and the data.
// No deployment: module containers are named after their modules and
// would meet those of other tests on a shared engine.
func TestLifecycle_Docker(t *testing.T) {
	dc := dockertest.Client(t)
	dockertest.Cleanup(t) // the edgeAgent container, should the test fail
	ctx := context.Background()
	if _, err := dc.ContainerInspect(ctx, agentContainer); err == nil {
		t.Skipf("a container %s exists on this engine: not touching it", agentContainer)
	}
	img := dockertest.BuildImage(t, ctx, "outpost-test/edgeagent", "lifecycle", "github.com/outpost-edge/outpost/cmd/edgeagent")
	netName := dockertest.Network(t)
	hub := fakehubtest.New(t)
	_, edgeCS := fakehubtest.MustDevice(t, hub, "edge1", fakehubtest.Edge())
	_, port, _ := net.SplitHostPort(hub.MQTTAddress())
	dir := filepath.Join(t.TempDir(), "data")
	e := env{DockerLabels: dockertest.Labels(t)}
	ectl := func(args ...string) (int, string, string) {
		t.Helper()
		return cli(t, e, append([]string{"--data-dir", dir}, args...)...)
	}
	must := func(args ...string) string {
		t.Helper()
		code, out, errOut := ectl(args...)
		if code != 0 {
			logs, _ := dc.ContainerLogs(ctx, agentContainer, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "30"})
			var tail strings.Builder
			if logs != nil {
				buf := make([]byte, 64<<10)
				n, _ := logs.Read(buf)
				tail.Write(buf[:n])
				logs.Close()
			}
			t.Fatalf("edgectl %v = %d\n%s%s\nagent container logs:\n%s", args, code, out, errOut, tail.String())
		}
		return out
	}

	// The agent runs in the host's network namespace to reach the fake
	// hub on loopback; modules would join netName.
	must("setup", "--connection-string", edgeCS, "--runtime", "docker", "--agent-image", img,
		"--network", netName, "--agent-network", "host", "--edge-hostname", "localhost",
		"--ca-file", hub.CAFile(), "--service-url", "https://"+hub.HTTPAddress(), "--mqtt-port", port, "--reconcile-period", "200ms")
	if out := must("start"); !strings.Contains(out, "Runtime started.") {
		t.Fatalf("start:\n%s", out)
	}

	t.Run("agent container", func(t *testing.T) {
		info, err := dc.ContainerInspect(ctx, agentContainer)
		if err != nil {
			t.Fatal(err)
		}
		if p := info.HostConfig.RestartPolicy.Name; p != container.RestartPolicyUnlessStopped {
			t.Errorf("restart policy %q, want unless-stopped", p)
		}
		for _, b := range []string{"/var/run/docker.sock:" + containerDockerSocket, dir + ":" + dir, hub.CAFile() + ":" + hub.CAFile() + ":ro"} {
			if !slices.Contains(info.HostConfig.Binds, b) {
				t.Errorf("binds %v lack %s", info.HostConfig.Binds, b)
			}
		}
		if l := info.Config.Labels; l[agent.LabelOwner] != agent.Owner || l[agent.LabelModule] != "edgeAgent" || l[agent.LabelImage] != img {
			t.Errorf("labels %v", l)
		}
		n, err := dc.NetworkInspect(ctx, netName, network.InspectOptions{})
		if err != nil || n.Labels[agent.LabelOwner] != agent.Owner {
			t.Errorf("network %s: %v, labels %v; want it created, labelled", netName, err, n.Labels)
		}
	})

	var pid int
	t.Run("status", func(t *testing.T) {
		code, out, _ := ectl("status")
		if code != 0 || !strings.Contains(out, "RUNNING") || !strings.Contains(out, "container edgeAgent running, restart policy unless-stopped") {
			t.Fatalf("status = %d\n%s", code, out)
		}
		info, err := dc.ContainerInspect(ctx, agentContainer)
		if err != nil {
			t.Fatal(err)
		}
		pid = info.State.Pid
	})

	t.Run("docker restarts a killed agent", func(t *testing.T) {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitLong(t, "the agent back", func() bool {
			info, err := dc.ContainerInspect(ctx, agentContainer)
			return err == nil && info.State.Running && info.State.Pid != pid && info.RestartCount >= 1
		})
		waitLong(t, "status RUNNING", func() bool {
			code, _, _ := ectl("status")
			return code == 0
		})
	})

	t.Run("stop", func(t *testing.T) {
		if out := must("stop", "--timeout", "5s"); !strings.Contains(out, "Runtime stopped.") {
			t.Errorf("stop:\n%s", out)
		}
		info, err := dc.ContainerInspect(ctx, agentContainer)
		if err != nil || info.State.Running || info.State.Restarting {
			t.Errorf("edgeAgent after stop: %v %+v", err, info.State)
		}
		code, out, _ := ectl("status")
		if code != exitUnavailable || !strings.Contains(out, "STOPPED") || !strings.Contains(out, "container edgeAgent exited") {
			t.Errorf("status after stop = %d\n%s", code, out)
		}
	})

	t.Run("uninstall", func(t *testing.T) {
		if out := must("uninstall", "--yes"); !strings.Contains(out, "Runtime uninstalled successfully.") ||
			!strings.Contains(out, "network "+netName) || !strings.Contains(out, "container edgeAgent") {
			t.Errorf("uninstall:\n%s", out)
		}
		if _, err := dc.ContainerInspect(ctx, agentContainer); !cerrdefs.IsNotFound(err) {
			t.Errorf("edgeAgent after uninstall: %v", err)
		}
		if _, err := dc.NetworkInspect(ctx, netName, network.InspectOptions{}); !cerrdefs.IsNotFound(err) {
			t.Errorf("network after uninstall: %v", err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("data directory after uninstall: %v", err)
		}
	})
}
