package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/docker/dockertest"
)

// TestLifecycle_Docker runs the agent's container from an image of
// cmd/edgeagent against a fake hub, as an operator would: setup; start
// creates the network and the edgeAgent container (socket and data
// directory mounted, restart policy unless-stopped); edgectl deploy of the
// edge hub (its store on a named volume) and the temperature sensor, routed
// to $upstream; Docker brings a killed agent back, which adopts the running
// module containers; stop, while edgeHub holds messages the hub has not
// received (its upstream cut), stops the agent and the module containers;
// start starts them again and edgeHub forwards what it kept (nothing
// edgeHub acknowledged is lost); uninstall removes the containers, the
// network, the volume and the data.
//
// Module containers are named after their modules (edgeHub, tempSensor),
// so the test runs only on an engine without containers of those names,
// under the Docker lock (flock /tmp/outpost-docker.lock) when the engine
// is shared.
func TestLifecycle_Docker(t *testing.T) {
	dc := dockertest.Client(t)
	ctx := context.Background()
	for _, name := range append([]string{agentContainer}, lifecycleModules...) {
		if _, err := dc.ContainerInspect(ctx, name); err == nil {
			t.Skipf("a container %s exists on this engine: not touching it", name)
		}
	}
	// edgeHub's store. Registered before dockertest.Cleanup so that it runs
	// after the containers are gone, should the test fail before uninstall.
	volume := fmt.Sprintf("outpost-edgectl-test-%d-edgehub", os.Getpid())
	t.Cleanup(func() {
		if err := dc.VolumeRemove(context.Background(), volume, true); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("remove volume %s: %v", volume, err)
		}
	})
	dockertest.Cleanup(t) // the containers, should the test fail
	const pkg = "github.com/outpost-edge/outpost/cmd/"
	img := dockertest.BuildImage(t, ctx, "outpost-test/edgeagent", "lifecycle", pkg+"edgeagent")
	hubImg := dockertest.BuildImage(t, ctx, "outpost-test/edgehub", "lifecycle", pkg+"edgehub")
	sensorImg := dockertest.BuildImage(t, ctx, "outpost-test/tempsensor", "lifecycle", pkg+"tempsensor")
	netName := dockertest.Network(t)
	hub := fakehubtest.New(t)
	const device = "edge1"
	_, edgeCS := fakehubtest.MustDevice(t, hub, device, fakehubtest.Edge())
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
			t.Fatalf("edgectl %v = %d\n%s%s\nagent container logs:\n%s", args, code, out, errOut, containerLogTail(dc, agentContainer))
		}
		return out
	}
	// Each step needs the previous one.
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	// The agent runs in the host's network namespace to reach the fake
	// hub on loopback; so do the modules (see below).
	must("setup", "--connection-string", edgeCS, "--runtime", "docker", "--agent-image", img,
		"--network", netName, "--agent-network", "host", "--edge-hostname", "localhost",
		"--ca-file", hub.CAFile(), "--service-url", "https://"+hub.HTTPAddress(), "--mqtt-port", port, "--reconcile-period", "200ms")
	if out := must("start"); !strings.Contains(out, "Runtime started.") {
		t.Fatalf("start:\n%s", out)
	}

	step("agent container", func(t *testing.T) {
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

	var agentPID int
	step("status", func(t *testing.T) {
		code, out, _ := ectl("status")
		if code != 0 || !strings.Contains(out, "RUNNING") || !strings.Contains(out, "container edgeAgent running, restart policy unless-stopped") {
			t.Fatalf("status = %d\n%s", code, out)
		}
		info, err := dc.ContainerInspect(ctx, agentContainer)
		if err != nil {
			t.Fatal(err)
		}
		agentPID = info.State.Pid
	})

	// The deployment a user would write for this device (as
	// scripts/run-demo.sh does): host networking, where edgeHub reaches
	// the fake hub and the sensor reaches edgeHub on loopback; the data
	// directory (edgeHub's certificates) and the hub's CA mounted where the
	// paths the agent passes on point (the agent mounts nothing itself);
	// edgeHub's store on a named volume; the test's labels, so that stop
	// and uninstall (env.DockerLabels) and the clean-up find the
	// containers. The images are the test's own, on the engine already.
	labels := dockertest.Labels(t)
	hostNet := map[string]any{"EndpointsConfig": map[string]any{"host": map[string]any{}}}
	dep := lifecycleDeployment{
		hubImage: hubImg, sensorImage: sensorImg, pullNever: true,
		hubEnv: map[string]string{
			"EDGEHUB_DATA_DIR":     "/store",
			"EDGEHUB_TLS_ADDR":     fmt.Sprintf("127.0.0.1:%d", freePort(t)),
			"EDGEHUB_METRICS_ADDR": "127.0.0.1:0",
		},
		hubCreate: map[string]any{
			"Labels": labels,
			"HostConfig": map[string]any{"NetworkMode": "host", "Binds": []string{
				dir + ":" + dir, hub.CAFile() + ":" + hub.CAFile() + ":ro", volume + ":/store",
			}},
			"NetworkingConfig": hostNet,
		},
		sensorCreate: map[string]any{
			"Labels": labels,
			"HostConfig": map[string]any{"NetworkMode": "host", "Binds": []string{
				filepath.Join(dir, certsDir) + ":" + filepath.Join(dir, certsDir) + ":ro",
			}},
			"NetworkingConfig": hostNet,
		},
	}
	manifest, serviceCS := dep.write(t, hub)
	modules := map[string]container.InspectResponse{}
	// inspectModules fills modules with the module containers' state.
	inspectModules := func(t *testing.T) {
		t.Helper()
		for _, m := range lifecycleModules {
			info, err := dc.ContainerInspect(ctx, m)
			if err != nil {
				t.Fatalf("module container %s: %v", m, err)
			}
			modules[m] = info
		}
	}
	step("deploy", func(t *testing.T) {
		out := must("deploy", manifest, "--service-connection-string-file", serviceCS, "--timeout", "1m", "--poll-interval", "200ms")
		if !strings.Contains(out, "Deployed deployment.json to "+device) {
			t.Errorf("deploy:\n%s", out)
		}
		inspectModules(t)
		for m, info := range modules {
			if !info.State.Running || info.Config.Labels[agent.LabelOwner] != agent.Owner || info.Config.Labels[agent.LabelModule] != m {
				t.Errorf("%s: running %v, labels %v", m, info.State.Running, info.Config.Labels)
			}
		}
		if !mountsVolume(modules["edgeHub"], volume, "/store") {
			t.Errorf("edgeHub's mounts %+v lack the volume %s at /store", modules["edgeHub"].Mounts, volume)
		}
		waitLong(t, "the sensor's messages at the hub", func() bool { return len(tallySensor(t, hub, device).batches) > 0 })
	})

	step("docker restarts a killed agent; the modules are adopted", func(t *testing.T) {
		if err := syscall.Kill(agentPID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitLong(t, "the agent back", func() bool {
			info, err := dc.ContainerInspect(ctx, agentContainer)
			return err == nil && info.State.Running && info.State.Pid != agentPID && info.RestartCount >= 1
		})
		waitLong(t, "status RUNNING", func() bool {
			code, _, _ := ectl("status")
			return code == 0
		})
		waitReconciled(t, func() statusOutput {
			_, out, _ := ectl("-o", "json", "status")
			var st statusOutput
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				t.Fatalf("status -o json: %v\n%s", err, out)
			}
			return st
		})
		// The modules ran on meanwhile: the same containers, never
		// restarted; the new agent lists them as running, not restarted
		// by it.
		for _, m := range lifecycleModules {
			info, err := dc.ContainerInspect(ctx, m)
			if err != nil || info.ID != modules[m].ID || !info.State.Running || info.State.StartedAt != modules[m].State.StartedAt {
				t.Errorf("%s after the agent's restart: %v, %+v; want container %s still running since %s", m, err, info.State, modules[m].ID, modules[m].State.StartedAt)
			}
		}
		_, list, _ := ectl("-o", "json", "list")
		checkAdopted(t, list, lifecycleModules...)
	})

	var before sensorRun
	step("stop while edgeHub keeps messages the hub has not received", func(t *testing.T) {
		before = cutUntilDone(t, hub, device, func() string {
			_, out, _ := ectl("logs", sensorModule)
			return out
		})
		checkStopOutput(t, must("stop", "--timeout", "5s"))
		info, err := dc.ContainerInspect(ctx, agentContainer)
		if err != nil || info.State.Running || info.State.Restarting {
			t.Errorf("edgeAgent after stop: %v %+v", err, info.State)
		}
		for _, m := range lifecycleModules {
			info, err := dc.ContainerInspect(ctx, m)
			if err != nil || info.State.Running || info.State.Restarting {
				t.Errorf("module container %s after stop: %v %+v, want it stopped", m, err, info.State)
			}
		}
		code, out, _ := ectl("status")
		if code != exitUnavailable || !strings.Contains(out, "STOPPED") || !strings.Contains(out, "container edgeAgent exited") {
			t.Errorf("status after stop = %d\n%s", code, out)
		}
	})

	step("start: the modules start again and nothing is lost", func(t *testing.T) {
		hub.RestoreNetwork()
		if out := must("start"); !strings.Contains(out, "Runtime started.") {
			t.Errorf("start:\n%s", out)
		}
		for _, m := range lifecycleModules {
			waitLong(t, m+" running again", func() bool {
				info, err := dc.ContainerInspect(ctx, m)
				return err == nil && info.State.Running && info.State.StartedAt != modules[m].State.StartedAt
			})
		}
		was := modules["edgeHub"].ID
		inspectModules(t)
		if !mountsVolume(modules["edgeHub"], volume, "/store") {
			t.Errorf("edgeHub's mounts %+v lack the volume %s at /store", modules["edgeHub"].Mounts, volume)
		}
		t.Logf("edgeHub's container after the start: %s (before the stop: %s)", modules["edgeHub"].ID[:12], was[:12])
		noLoss(t, hub, device, before)
	})

	t.Run("uninstall", func(t *testing.T) {
		out := must("uninstall", "--yes", "--timeout", "5s")
		for _, want := range []string{"Runtime uninstalled successfully.", "network " + netName, "container edgeAgent",
			"container edgeHub", "container " + sensorModule, "volume " + volume, "data directory " + dir} {
			if !strings.Contains(out, want) {
				t.Errorf("uninstall does not mention %q:\n%s", want, out)
			}
		}
		for _, c := range append([]string{agentContainer}, lifecycleModules...) {
			if _, err := dc.ContainerInspect(ctx, c); !cerrdefs.IsNotFound(err) {
				t.Errorf("container %s after uninstall: %v", c, err)
			}
		}
		if _, err := dc.VolumeInspect(ctx, volume); !cerrdefs.IsNotFound(err) {
			t.Errorf("volume %s after uninstall: %v", volume, err)
		}
		if _, err := dc.NetworkInspect(ctx, netName, network.InspectOptions{}); !cerrdefs.IsNotFound(err) {
			t.Errorf("network after uninstall: %v", err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("data directory after uninstall: %v", err)
		}
	})
}

// mountsVolume reports whether the container mounts the named volume at
// target.
func mountsVolume(info container.InspectResponse, volume, target string) bool {
	for _, m := range info.Mounts {
		if m.Type == mount.TypeVolume && m.Name == volume && m.Destination == target {
			return true
		}
	}
	return false
}

// containerLogTail is the end of a container's logs, for failure messages.
func containerLogTail(dc *client.Client, name string) string {
	logs, err := dc.ContainerLogs(context.Background(), name, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "30"})
	if err != nil {
		return err.Error()
	}
	defer logs.Close()
	buf := make([]byte, 64<<10)
	n, _ := logs.Read(buf)
	return string(buf[:n])
}
