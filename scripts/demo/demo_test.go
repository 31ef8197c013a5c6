package demo

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// demoTimeout bounds the whole run: building (cached in CI), starting the device, deploying,
// and the messages.
const demoTimeout = 3 * time.Minute

// exitAfter is how many readings and alerts the demo waits for (DEMO_EXIT_AFTER).
const exitAfter = 3

// TestRunDemo runs the README's run command (scripts/run-demo.sh) non-interactively on
// random loopback ports in a fresh data directory, with the default process runtime, and
// checks what it shows: the modules running in `edgectl list`, readings from tempSensor and
// alerts from filter arriving at the fake hub through the edge hub, and a clean stop that
// leaves no process behind.
func TestRunDemo(t *testing.T) {
	runDemo(t, "process")
}

// TestRunDemo_Docker is TestRunDemo with RUNTIME=docker. It runs only when
// OUTPOST_DEMO_DOCKER=1: the containers take the fixed names of Azure's modules
// (edgeAgent, edgeHub, ...), global to the engine, which other Docker tests of the suite
// (cmd/edgectl's) use too, so the two must not run at the same time.
func TestRunDemo_Docker(t *testing.T) {
	if os.Getenv("OUTPOST_DEMO_DOCKER") != "1" {
		t.Skip("set OUTPOST_DEMO_DOCKER=1 to run the demo on Docker (it uses the engine-wide container names edgeAgent, edgeHub, tempSensor, filter)")
	}
	runDemo(t, "docker")
}

func runDemo(t *testing.T, runtime string) {
	if testing.Short() {
		t.Skip("end to end: builds and runs the whole demo")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is needed to run scripts/run-demo.sh")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	ports := freePorts(t, 4)

	ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "run-demo.sh"))
	cmd.Dir = root
	cmd.Env = append(environWithout("RUNTIME", "OUTPOST_DIR", "DEMO_EXIT_AFTER"),
		"RUNTIME="+runtime,
		"OUTPOST_DIR="+dataDir,
		"MQTT_ADDR=127.0.0.1:"+ports[0],
		"HTTP_ADDR=127.0.0.1:"+ports[1],
		"EDGEHUB_PORT="+ports[2],
		"EDGEHUB_METRICS_ADDR=127.0.0.1:"+ports[3],
		"DEMO_EXIT_AFTER="+strconv.Itoa(exitAfter),
		"DEMO_TIMEOUT=60s",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so that whatever it leaves behind can be found and killed; on
	// timeout SIGTERM lets its trap stop the device first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Minute
	t.Cleanup(func() { stopEverything(t, root, dataDir, runtime, cmd) })

	start := time.Now()
	runErr := cmd.Run()
	t.Logf("run-demo.sh took %v; its output:\n%s", time.Since(start).Round(time.Second), out.String())
	if runErr != nil {
		t.Fatalf("run-demo.sh: %v", runErr)
	}
	shown := out.String()

	// edgectl list, after the deployment and again at the end.
	for _, m := range []string{"edgeAgent", "edgeHub", "tempSensor", "filter"} {
		re := regexp.MustCompile(`(?m)^` + m + `\s+running\s+Up `)
		if n := len(re.FindAllString(shown, -1)); n < 2 {
			t.Errorf("edgectl list showed %s running %d time(s), want 2 (after the deployment and at the end)", m, n)
		}
	}
	// Messages as the fake hub captured them, sent by the edge hub on the modules' behalf.
	for _, want := range []struct {
		what string
		re   *regexp.Regexp
	}{
		{"tempSensor readings", regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  demo-edge/tempSensor\s+via edgeHub\s+temperatureOutput\s+machine [0-9.]+ °C`)},
		{"filter alerts", regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  demo-edge/filter\s+via edgeHub\s+alertOutput\s+ALERT machine [0-9.]+ °C`)},
	} {
		if n := len(want.re.FindAllString(shown, -1)); n < exitAfter {
			t.Errorf("%d line(s) of %s arriving at the hub through the edge hub, want at least %d", n, want.what, exitAfter)
		}
	}
	if !regexp.MustCompile(`version \d+ deployed: every module is as desired`).MatchString(shown) {
		t.Error("edgectl deploy did not report the deployment done")
	}
	for _, want := range []string{
		"-- module status (reported by demo-edge's edge agent): edgeAgent running, edgeHub running, filter running, tempSensor running",
		"/console/",
		"Runtime stopped.",
	} {
		if !strings.Contains(shown, want) {
			t.Errorf("the demo did not show %q", want)
		}
	}
	// edgectl stop returns once the modules exited; their supervisors follow at once.
	var left []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		if left = processesUsing(t, dataDir); len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling for exits: nothing to wait on
	}
	if len(left) > 0 {
		t.Errorf("processes left running after the demo exited: %s", strings.Join(left, "; "))
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. They are released before the
// demo binds them; another process could take one in between, which fails the run loudly.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var ports []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// environWithout is the test's environment without the named variables.
func environWithout(names ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || name == n
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return env
}

// processesUsing lists the processes whose command line or environment mention dir: the
// fake hub, the watchdog, the agent, the module supervisors and the modules of this run
// all do.
func processesUsing(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("cannot list processes: %v", err)
	}
	var found []string
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // gone, or not ours
		}
		environ, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if bytes.Contains(cmdline, []byte(dir)) || bytes.Contains(environ, []byte(dir)) {
			found = append(found, e.Name()+" "+strings.ReplaceAll(strings.TrimSpace(string(cmdline)), "\x00", " "))
		}
	}
	return found
}

// stopEverything makes sure nothing of the run survives the test, whatever happened: the
// device is stopped as the script's trap would, and every process that still uses the data
// directory, or is in the script's process group, is killed.
func stopEverything(t *testing.T, root, dataDir, runtime string, cmd *exec.Cmd) {
	edgectl := []string{"--data-dir", filepath.Join(dataDir, "device"), "stop", "--timeout", "5s"}
	if runtime == "docker" {
		// The containers' names are the engine's: remove them, not only stop them.
		edgectl = []string{"--data-dir", filepath.Join(dataDir, "device"), "uninstall", "--yes"}
	}
	stop := exec.Command(filepath.Join(root, "bin", "edgectl"), edgectl...)
	if out, err := stop.CombinedOutput(); err != nil && !errors.Is(err, exec.ErrNotFound) {
		t.Logf("edgectl %s at cleanup: %v: %s", edgectl[2], err, out)
	}
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the script's group: fake hub, viewer
	}
	for _, p := range processesUsing(t, dataDir) {
		pid, _ := strconv.Atoi(strings.Fields(p)[0])
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
