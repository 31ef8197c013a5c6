package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
	"github.com/outpost-edge/outpost/fakehub/fakehubtest"
	"github.com/outpost-edge/outpost/runtime/agent/process"
)

// agentCrashRounds is how many times TestCrash_AgentKill kills the agent.
const agentCrashRounds = 3

// TestCrash_AgentKill runs the edgeagent binary with the process runtime against a fake IoT
// Hub, deploys a module and kills the agent with SIGKILL several times, at random moments
// after it restarted: the module keeps running (same pid, same process), and every new
// agent adopts it (reports it running with the same restartCount and start time, without
// starting it again).
func TestCrash_AgentKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds edgeagent, starts processes and kills them")
	}
	sleep, err := execPath("sleep")
	if err != nil {
		t.Skip("no sleep executable:", err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	s := fakehubtest.New(t)
	_, edgeCS := fakehubtest.MustDevice(t, s, "edge1", fakehubtest.Edge())
	dir := t.TempDir()
	csFile := filepath.Join(dir, "edge.cs")
	if err := os.WriteFile(csFile, []byte(edgeCS), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir, imageDir := filepath.Join(dir, "data"), filepath.Join(dir, "images")
	if err := os.Mkdir(imageDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sleep, filepath.Join(imageDir, "sleeper")); err != nil {
		t.Fatal(err)
	}
	stopModules(t, dataDir) // registered first: runs after the agent is killed
	_, port, _ := net.SplitHostPort(s.MQTTAddress())
	a := &agentRunner{t: t, bin: buildEdgeagent(t, dir), logPath: filepath.Join(dir, "edgeagent.log"),
		args: []string{"--connection-string-file", csFile, "--data-dir", dataDir, "--image-dir", imageDir,
			"--ca-file", s.CAFile(), "--service-url", "https://" + s.HTTPAddress(), "--mqtt-port", port,
			"--reconcile-period", "200ms", "--log-format", "json"}}
	t.Cleanup(a.kill)
	a.start()

	deploy(t, s, 0)
	first := waitReportedRunning(t, s, a, desiredVersion(t, s))
	mods := map[string]moduleRecord{}
	for _, name := range []string{"sleeper", "edgeHub"} {
		mods[name] = readModuleRecord(t, dataDir, name)
	}
	t.Logf("deployed: sleeper pid %d, edgeHub pid %d; sleeper restartCount %v, lastStartTimeUtc %v",
		mods["sleeper"].Pid, mods["edgeHub"].Pid, first.restartCount, first.lastStart)
	stillRunning := func(round int, when string) {
		t.Helper()
		for name, mod := range mods {
			if err := sameProcess(mod.Pid, mod.PidStart); err != nil {
				t.Fatalf("round %d: %s, module %s is gone: %v", round, when, name, err)
			}
		}
	}

	for round := 1; round <= agentCrashRounds; round++ {
		a.kill()
		stillRunning(round, "after SIGKILL of the agent")
		waitUntil(t, 10*time.Second, "IoT Hub to see $edgeAgent disconnected", func() bool { return twinConnectionState(t, s) == "Disconnected" })
		// A new deployment version while the agent is down, which leaves sleeper as it is:
		// the next agent's report of it proves that it went through a whole reconcile.
		deploy(t, s, round)
		want := desiredVersion(t, s)
		// The next agent is killed too, at a random moment of its start.
		a.start()
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond) // not synchronisation: a random kill point
		a.kill()
		stillRunning(round, "after SIGKILL of a starting agent")
		a.start()
		got := waitReportedRunning(t, s, a, want)
		stillRunning(round, "after the agent restarted")
		for name, mod := range mods {
			if again := readModuleRecord(t, dataDir, name); again.Pid != mod.Pid || again.Run != mod.Run {
				t.Errorf("round %d: module %s was started again: pid %d run %d, was pid %d run %d", round, name, again.Pid, again.Run, mod.Pid, mod.Run)
			}
		}
		if got.restartCount != first.restartCount || got.lastStart != first.lastStart {
			t.Errorf("round %d: reported restartCount %v lastStartTimeUtc %v, want %v and %v (adopted, not restarted)",
				round, got.restartCount, got.lastStart, first.restartCount, first.lastStart)
		}
		t.Logf("round %d: 2 agents killed; deployment version %d applied by the third, sleeper pid %d adopted (restartCount %v)",
			round, want, mods["sleeper"].Pid, got.restartCount)
	}
}

// deploy applies a deployment with an edgeHub and the module "sleeper", both sleep 300
// from the image directory; round changes only the runtime settings' minDockerVersion,
// which no module depends on.
func deploy(t *testing.T, s *fakehub.Server, round int) {
	t.Helper()
	manifest := fmt.Sprintf(`{
	  "$edgeAgent": {"properties.desired": {
	    "schemaVersion": "1.1",
	    "runtime": {"type": "docker", "settings": {"minDockerVersion": "v1.%d"}},
	    "systemModules": {
	      "edgeAgent": {"type": "docker", "settings": {"image": "outpost/edgeagent:dev"}},
	      "edgeHub": {"type": "docker", "status": "running", "restartPolicy": "always",
	                  "settings": {"image": "localhost:5000/outpost/sleeper:1.0", "createOptions": "{\"Cmd\":[\"300\"]}"}}},
	    "modules": {
	      "sleeper": {"version": "1", "type": "docker", "status": "running", "restartPolicy": "always",
	                  "settings": {"image": "localhost:5000/outpost/sleeper:1.0", "createOptions": "{\"Cmd\":[\"300\"]}"}}}}},
	  "$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": {}, "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}}}
	}`, 25+round)
	var content map[string]json.RawMessage
	if err := json.Unmarshal([]byte(manifest), &content); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyConfigurationContent("edge1", content); err != nil {
		t.Fatal(err)
	}
}

// desiredVersion is the $version of $edgeAgent's desired properties.
func desiredVersion(t *testing.T, s *fakehub.Server) int64 {
	t.Helper()
	tw, err := s.GetTwin("edge1", "$edgeAgent")
	if err != nil {
		t.Fatal(err)
	}
	return toInt64(tw.Properties.Desired["$version"])
}

func toInt64(v any) int64 {
	switch n := v.(type) {
	case float64:
		return int64(n)
	case int64:
		return n
	case int:
		return int64(n)
	case json.Number:
		i, _ := n.Int64()
		return i
	}
	return -1
}

// agentRunner starts and kills the edgeagent binary, appending its log to one file.
type agentRunner struct {
	t       *testing.T
	bin     string
	args    []string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	starts  int
}

// start runs the agent and waits until it logs that it is ready.
func (a *agentRunner) start() {
	a.t.Helper()
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		a.t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		logf.Close()
		a.t.Fatal(err)
	}
	cmd := exec.Command(a.bin, a.args...)
	cmd.Stderr = pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // killed as a group; modules run in sessions of their own
	if err := cmd.Start(); err != nil {
		logf.Close()
		pr.Close()
		pw.Close()
		a.t.Fatal(err)
	}
	pw.Close()
	a.starts++
	a.cmd, a.exited = cmd, make(chan struct{})
	exited := a.exited
	go func() {
		cmd.Wait()
		close(exited)
	}()
	ready := make(chan struct{})
	go func() {
		defer pr.Close()
		defer logf.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			logf.Write(append(sc.Bytes(), '\n'))
			var rec struct {
				Msg string `json:"msg"`
			}
			if !found && json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "edgeagent ready" {
				found = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-exited:
		a.t.Fatalf("edgeagent (start %d) exited before it was ready: %v\n%s", a.starts, cmd.ProcessState, a.logTail(20))
	case <-time.After(20 * time.Second):
		a.t.Fatalf("edgeagent (start %d) not ready within 20s\n%s", a.starts, a.logTail(20))
	}
}

// kill sends SIGKILL to the agent's process group and waits until it is reaped.
func (a *agentRunner) kill() {
	if a.cmd == nil {
		return
	}
	syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-a.exited:
	case <-time.After(10 * time.Second):
		a.t.Errorf("edgeagent pid %d did not exit after SIGKILL", a.cmd.Process.Pid)
	}
	a.cmd = nil
	if a.t.Failed() {
		a.t.Logf("edgeagent log (last lines):\n%s", a.logTail(30))
	}
}

func (a *agentRunner) logTail(n int) string {
	b, _ := os.ReadFile(a.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// buildEdgeagent builds this command into dir.
func buildEdgeagent(t *testing.T, dir string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "edgeagent")
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// stopModules stops and removes, on cleanup, the modules left in dataDir: they outlive
// the agent by design.
func stopModules(t *testing.T, dataDir string) {
	t.Cleanup(func() {
		rt, err := process.New(process.Options{StateDir: filepath.Join(dataDir, processDir)})
		if err != nil {
			return
		}
		ctx := context.Background()
		list, _ := rt.List(ctx)
		for _, m := range list {
			rt.Stop(ctx, m.Name, 5*time.Second)
			rt.Remove(ctx, m.Name)
		}
	})
}

// moduleRecord is the part of the process runtime's state file (package process, "On
// disk") that identifies the module's process.
type moduleRecord struct {
	Pid      int    `json:"pid"`
	PidStart uint64 `json:"pidStart"`
	Run      int    `json:"run"`
	State    string `json:"state"`
}

func readModuleRecord(t *testing.T, dataDir, name string) moduleRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, processDir, "modules", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var r moduleRecord
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Pid <= 0 || r.PidStart == 0 || r.State != "running" {
		t.Fatalf("module %s recorded as %+v, want running with a pid", name, r)
	}
	return r
}

// sameProcess checks that pid is alive, not a zombie, and started at start (field 22 of
// /proc/<pid>/stat, in clock ticks since boot), so the same process and not a reused pid.
func sameProcess(pid int, start uint64) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return err
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // fields 3.. (comm may hold spaces)
	if len(fields) < 20 {
		return fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return fmt.Errorf("pid %d is a zombie", pid)
	}
	got, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return err
	}
	if got != start {
		return fmt.Errorf("pid %d started at %d, the module at %d: another process", pid, got, start)
	}
	return nil
}

// reportedModule is what $edgeAgent reports about the module under test.
type reportedModule struct {
	restartCount any
	lastStart    any
}

// waitReportedRunning waits until $edgeAgent has reported lastDesiredVersion version with
// lastDesiredStatus 200 and sleeper running, and returns what it reported of sleeper.
func waitReportedRunning(t *testing.T, s *fakehub.Server, a *agentRunner, version int64) reportedModule {
	t.Helper()
	var got reportedModule
	var rep map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for {
		tw, err := s.GetTwin("edge1", "$edgeAgent")
		if err != nil {
			t.Fatal(err)
		}
		rep = tw.Properties.Reported
		status, _ := rep["lastDesiredStatus"].(map[string]any)
		mods, _ := rep["modules"].(map[string]any)
		m, _ := mods["sleeper"].(map[string]any)
		got = reportedModule{restartCount: m["restartCount"], lastStart: m["lastStartTimeUtc"]}
		if toInt64(rep["lastDesiredVersion"]) == version && fmt.Sprint(status["code"]) == "200" && m["runtimeStatus"] == "running" {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("edgeagent (start %d) did not report deployment version %d applied with sleeper running within 20s; reported %v",
				a.starts, version, rep)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// twinConnectionState is $edgeAgent's connectionState in IoT Hub.
func twinConnectionState(t *testing.T, s *fakehub.Server) string {
	t.Helper()
	tw, err := s.GetTwin("edge1", "$edgeAgent")
	if err != nil {
		t.Fatal(err)
	}
	return tw.ConnectionState
}

// waitUntil polls cond until it holds or timeout passes, then fails the test naming what.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
