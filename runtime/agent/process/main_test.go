package process_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/process"
)

// The test binary plays three parts besides running the tests: the
// supervisor (argv[1] == process.SuperviseArg, as cmd/edgeagent does), a
// module (moduleEnv set: see testModule), and an agent that starts a module
// and exits (agentEnv set: see testAgent).
const (
	moduleEnv = "OUTPOST_PROCESS_TEST_MODULE"
	agentEnv  = "OUTPOST_PROCESS_TEST_AGENT"
	// testImage resolves to <ImageDir>/testmod, a link to the test binary.
	testImage = "localhost:5000/outpost/testmod:1.0"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == process.SuperviseArg {
		os.Exit(process.SuperviseMain(os.Args[2:]))
	}
	if os.Getenv(moduleEnv) == "1" {
		os.Exit(testModule(os.Args[1:]))
	}
	if dir := os.Getenv(agentEnv); dir != "" {
		os.Exit(testAgent(dir))
	}
	os.Exit(m.Run())
}

// testModule is the module program; args[0] picks what it does:
//
//	sleep               print "pid=<pid>", then sleep until killed
//	exit N              print "exiting N", exit with N
//	trap                print "pid=…"; on SIGTERM print "got SIGTERM" and exit 0
//	ignore-term         ignore SIGTERM, print "ignoring", sleep
//	show ARGS…          print each arg, the working dir and some variables, exit 0
//	lines N             print "line 1"… "line N", 2 ms apart, exit 0
//	wait FILE N         print "ready", wait for FILE, print "line 1"… "line N" at once, sleep
func testModule(args []string) int {
	if len(args) == 0 {
		fmt.Println("no mode")
		return 2
	}
	pid := func() { fmt.Printf("pid=%d\n", os.Getpid()) }
	forever := func() int {
		for {
			time.Sleep(time.Hour)
		}
	}
	switch args[0] {
	case "sleep":
		pid()
		return forever()
	case "exit":
		n, _ := strconv.Atoi(args[1])
		fmt.Printf("exiting %d\n", n)
		return n
	case "trap":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		pid()
		<-c
		fmt.Println("got SIGTERM")
		return 0
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring")
		return forever()
	case "show":
		for _, a := range args[1:] {
			fmt.Printf("arg=%s\n", a)
		}
		wd, _ := os.Getwd()
		fmt.Printf("cwd=%s\n", wd)
		for _, k := range []string{"FOO", "OUTPOST_LEAK", "PATH"} {
			fmt.Printf("env %s=%s\n", k, os.Getenv(k))
		}
		fmt.Fprintln(os.Stderr, "to stderr")
		return 0
	case "lines":
		n, _ := strconv.Atoi(args[1])
		for i := 1; i <= n; i++ {
			fmt.Printf("line %d\n", i)
			time.Sleep(2 * time.Millisecond) // distinct log times for Since/Until
		}
		return 0
	case "wait":
		n, _ := strconv.Atoi(args[2])
		fmt.Println("ready")
		for {
			if _, err := os.Stat(args[1]); err == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		w := bufio.NewWriter(os.Stdout)
		for i := 1; i <= n; i++ {
			fmt.Fprintf(w, "line %03d %s\n", i, strings.Repeat("x", 40))
			w.Flush()
		}
		return forever()
	}
	fmt.Println("unknown mode", args[0])
	return 2
}

// testAgent is an agent process that creates and starts module "adopted"
// (mode sleep) in the runtime at dir (state) and dir/images, then exits
// without stopping it, as a stopped or crashed agent does.
func testAgent(dir string) int {
	rt, err := process.New(process.Options{StateDir: filepath.Join(dir, "state"), ImageDir: filepath.Join(dir, "images")})
	if err == nil {
		err = rt.Create(context.Background(), spec("adopted", "", "sleep"))
	}
	if err == nil {
		err = rt.Start(context.Background(), "adopted")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// env is a test module's environment.
var env = []string{moduleEnv + "=1", "FOO=bar baz"}

// spec is a ModuleSpec for the test module with createOptions opts; cmd,
// when given, is written into them as Cmd.
func spec(name, opts string, cmd ...string) agent.ModuleSpec {
	if len(cmd) > 0 {
		q := make([]string, len(cmd))
		for i, c := range cmd {
			q[i] = strconv.Quote(c)
		}
		c := `"Cmd":[` + strings.Join(q, ",") + `]`
		if opts == "" {
			opts = "{" + c + "}"
		} else {
			opts = "{" + c + "," + strings.TrimPrefix(opts, "{")
		}
	}
	return agent.ModuleSpec{
		Name:          name,
		Image:         testImage,
		Env:           env,
		CreateOptions: opts,
		Labels: map[string]string{
			agent.LabelOwner:    agent.Owner,
			agent.LabelModule:   name,
			agent.LabelSpecHash: "hash-" + name,
			agent.LabelImage:    testImage,
		},
		Hash: "hash-" + name,
	}
}

// testDirs makes dir/state and dir/images with images/testmod linked to the
// test binary, and returns dir.
func testDirs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(dir, "images", "testmod")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAll(t, filepath.Join(dir, "state")) })
	return dir
}

// stopAll kills every module left in the runtime at stateDir, so that no
// test leaves processes behind.
func stopAll(t *testing.T, stateDir string) {
	rt, err := process.New(process.Options{StateDir: stateDir})
	if err != nil {
		t.Error(err)
		return
	}
	ms, err := rt.List(context.Background())
	if err != nil {
		t.Error(err)
	}
	for _, m := range ms {
		if m.State == agent.StateRunning {
			if err := rt.Stop(context.Background(), m.Name, 0); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	}
}

// mustRuntime returns a Runtime on a fresh state dir (or the dir of the
// first argument, from testDirs) with the test module installed.
func mustRuntime(t *testing.T, edit ...func(*process.Options)) (*process.Runtime, string) {
	t.Helper()
	dir := testDirs(t)
	return mustRuntimeAt(t, dir, edit...), dir
}

func mustRuntimeAt(t *testing.T, dir string, edit ...func(*process.Options)) *process.Runtime {
	t.Helper()
	o := process.Options{StateDir: filepath.Join(dir, "state"), ImageDir: filepath.Join(dir, "images")}
	for _, e := range edit {
		e(&o)
	}
	rt, err := process.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// mustStart creates and starts a module.
func mustStart(t *testing.T, rt *process.Runtime, s agent.ModuleSpec) {
	t.Helper()
	if err := rt.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background(), s.Name); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// module returns the listed state of name.
func module(t *testing.T, rt *process.Runtime, name string) (agent.ModuleState, bool) {
	t.Helper()
	ms, err := rt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name == name {
			return m, true
		}
	}
	return agent.ModuleState{}, false
}

// mustModule is module for a module that must be listed.
func mustModule(t *testing.T, rt *process.Runtime, name string) agent.ModuleState {
	t.Helper()
	m, ok := module(t, rt, name)
	if !ok {
		t.Fatalf("module %q not listed", name)
	}
	return m
}

// waitState waits until name is listed in state s, and returns it.
func waitState(t *testing.T, rt *process.Runtime, name string, s agent.State) agent.ModuleState {
	t.Helper()
	var m agent.ModuleState
	waitFor(t, 10*time.Second, fmt.Sprintf("module %s %s", name, s), func() bool {
		m = mustModule(t, rt, name)
		return m.State == s
	})
	return m
}

// logs returns the module's whole log as text.
func logs(t *testing.T, rt *process.Runtime, name string, opts agent.LogOptions) string {
	t.Helper()
	rc, err := rt.Logs(context.Background(), name, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitLog waits until the module's log contains s.
func waitLog(t *testing.T, rt *process.Runtime, name, s string) string {
	t.Helper()
	var text string
	waitFor(t, 10*time.Second, fmt.Sprintf("%q in the log of %s", s, name), func() bool {
		text = logs(t, rt, name, agent.LogOptions{})
		return strings.Contains(text, s)
	})
	return text
}

// pidOf reads the "pid=N" line a test module prints.
func pidOf(t *testing.T, rt *process.Runtime, name string) int {
	t.Helper()
	text := waitLog(t, rt, name, "pid=")
	if n := strings.Count(text, "pid="); n != 1 {
		t.Fatalf("module %s started %d times, want 1:\n%s", name, n, text)
	}
	_, rest, _ := strings.Cut(text, "pid=")
	line, _, _ := strings.Cut(rest, "\n")
	pid, err := strconv.Atoi(line)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// processAlive reports whether pid runs (and is no zombie).
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

// isErr fails unless errors.Is(err, want).
func isErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}
