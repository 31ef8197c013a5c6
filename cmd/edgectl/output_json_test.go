package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/agenttest"
)

// TestEveryCommandOutputsJSON runs every command of edgectl with
// --output json (or -o json) on the test fakes and checks that stdout is
// JSON and nothing else: one value, or JSON lines for logs. Each command
// runs on a path that succeeds or fails with a report (check, deploy's
// timeout, conformance's failing module); errors without a report go to
// stderr as text. The hidden supervise-agent (the watchdog edgectl start
// runs) prints nothing of its own.
func TestEveryCommandOutputsJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fake hub, a conformance run and a stand-in watchdog")
	}
	unitBin := filepath.Join(t.TempDir(), "edgeagent")
	if err := os.WriteFile(unitBin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		// prepare returns edgectl's arguments (after --data-dir DIR) and
		// its environment; dir is a fresh data directory.
		prepare func(t *testing.T, dir string) ([]string, env)
		codes   []int // accepted exit codes
		lines   bool  // JSON lines rather than one value
	}{
		{name: "list", prepare: runningDevice("list"), codes: []int{exitOK}},
		{name: "logs", prepare: runningDevice("logs", "web"), codes: []int{exitOK}, lines: true},
		{name: "restart MODULE", prepare: runningDevice("restart", "web"), codes: []int{exitOK}},
		{name: "status", prepare: runningDevice("status"), codes: []int{exitOK}},
		{name: "status of a stopped agent", prepare: func(t *testing.T, dir string) ([]string, env) {
			writeConfig(t, testConfig(dir))
			return []string{"status"}, env{}
		}, codes: []int{exitUnavailable}},
		{name: "config", prepare: runningDevice("config"), codes: []int{exitOK}},
		{name: "check", prepare: runningDevice("check", "--dont-run", "hub-reachable,clock-skew"), codes: []int{exitOK, exitFailed}},
		{name: "check --list", prepare: func(t *testing.T, dir string) ([]string, env) { return []string{"check", "--list"}, env{} }, codes: []int{exitOK}},
		{name: "deploy --no-wait", prepare: func(t *testing.T, dir string) ([]string, env) {
			h := newHubFixture(t)
			return append([]string{"deploy", "testdata/manifest.json", "--no-wait"}, h.args...), env{}
		}, codes: []int{exitOK}},
		{name: "deploy followed until its timeout", prepare: func(t *testing.T, dir string) ([]string, env) {
			h := newHubFixture(t) // no agent: nothing ever runs
			return append([]string{"deploy", "testdata/manifest.json", "--timeout", "300ms", "--poll-interval", "50ms"}, h.args...), env{}
		}, codes: []int{exitTimeout}},
		{name: "conformance", prepare: func(t *testing.T, dir string) ([]string, env) {
			falseCmd, err := exec.LookPath("false")
			if err != nil {
				t.Skip("no false command")
			}
			spec := filepath.Join(t.TempDir(), "spec.json")
			if err := os.WriteFile(spec, []byte(`{"module":"notamodule","connectTimeoutSeconds":1}`), 0o600); err != nil {
				t.Fatal(err)
			}
			return []string{"conformance", falseCmd, "--spec", spec}, env{}
		}, codes: []int{exitFailed}},
		{name: "setup", prepare: func(t *testing.T, dir string) ([]string, env) {
			return []string{"setup", "--connection-string", testCS("edge1", testKey), "--edge-hostname", "edge1.local"}, env{}
		}, codes: []int{exitOK}},
		{name: "setup refused", prepare: func(t *testing.T, dir string) ([]string, env) {
			setUpIn(t, dir)
			return []string{"setup", "--connection-string", testCS("edge1", testKey), "--edge-hostname", "edge9.local"}, env{}
		}, codes: []int{exitRefused}},
		{name: "start (already running)", prepare: func(t *testing.T, dir string) ([]string, env) {
			setUpIn(t, dir)
			startAPI(t, dir, &agenttest.FakeRuntime{}, nil, testConfig(dir))
			return []string{"start"}, env{}
		}, codes: []int{exitOK}},
		{name: "stop", prepare: func(t *testing.T, dir string) ([]string, env) {
			setUpIn(t, dir)
			return []string{"stop"}, env{}
		}, codes: []int{exitOK}},
		{name: "restart (the runtime)", prepare: restartableDevice, codes: []int{exitOK}},
		{name: "login", prepare: func(t *testing.T, dir string) ([]string, env) {
			return []string{"login", "--address", "a.io", "--username", "u", "--password-stdin"}, env{Stdin: strings.NewReader("pw-secret\n")}
		}, codes: []int{exitOK}},
		{name: "logout", prepare: func(t *testing.T, dir string) ([]string, env) {
			if code, _, errOut := cli(t, env{Stdin: strings.NewReader("pw")}, "--data-dir", dir, "login", "--address", "a.io", "--username", "u", "--password-stdin"); code != 0 {
				t.Fatalf("login = %d %s", code, errOut)
			}
			return []string{"logout", "--address", "a.io"}, env{}
		}, codes: []int{exitOK}},
		{name: "uninstall, confirmed on stdin", prepare: func(t *testing.T, dir string) ([]string, env) {
			setUpIn(t, dir)
			return []string{"uninstall"}, env{Stdin: strings.NewReader("y\n")}
		}, codes: []int{exitOK}},
		{name: "install-service", prepare: func(t *testing.T, dir string) ([]string, env) {
			setUpIn(t, dir)
			return []string{"install-service", "--path", filepath.Join(t.TempDir(), "outpost-edge.service"), "--agent-binary", unitBin}, env{}
		}, codes: []int{exitOK}},
		{name: "install-service --dry-run", prepare: func(t *testing.T, dir string) ([]string, env) {
			setUpIn(t, dir)
			return []string{"install-service", "--dry-run", "--agent-binary", unitBin}, env{}
		}, codes: []int{exitOK}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			args, e := tt.prepare(t, dir)
			flag := []string{"--output", "json"}
			if i%2 == 1 {
				flag = []string{"-o", "json"}
			}
			code, out, errOut := cli(t, e, append(append([]string{"--data-dir", dir}, flag...), args...)...)
			if !containsInt(tt.codes, code) {
				t.Fatalf("edgectl %s = %d, want one of %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, tt.codes, out, errOut)
			}
			if n, err := jsonValues(out); err != nil || n == 0 || (!tt.lines && n != 1) {
				t.Errorf("stdout is not JSON (%d value(s), %v):\n%s", n, err, out)
			}
		})
	}
}

// runningDevice prepares a data directory whose agent (the management API
// of a fake runtime: "web" running, "job" failed) answers; the command is
// args.
func runningDevice(args ...string) func(t *testing.T, dir string) ([]string, env) {
	return func(t *testing.T, dir string) ([]string, env) {
		t.Helper()
		ec := testConfig(dir)
		writeConfig(t, ec)
		rt := &agenttest.FakeRuntime{}
		n := time.Now()
		rt.Put(agent.ModuleState{Name: "web", State: agent.StateRunning, StartedAt: n.Add(-time.Minute), Image: "x/web:1"})
		rt.Put(agent.ModuleState{Name: "job", State: agent.StateExited, ExitCode: 1, ExitedAt: n.Add(-time.Minute), Image: "x/job:1"})
		if err := rt.SetLogs("web", "one\ntwo\n"); err != nil {
			t.Fatal(err)
		}
		startAPI(t, dir, rt, nil, ec)
		return args, env{}
	}
}

// setUpIn runs edgectl setup (process runtime) in dir.
func setUpIn(t *testing.T, dir string) {
	t.Helper()
	if code, out, errOut := cli(t, env{}, "--data-dir", dir, "setup", "--connection-string", testCS("edge1", testKey), "--edge-hostname", "edge1.local"); code != 0 {
		t.Fatalf("setup = %d\n%s%s", code, out, errOut)
	}
}

// restartableDevice prepares edgectl restart of the whole runtime without
// a real agent: the "watchdog" start launches is a script that records its
// pid and sleeps, and once it runs a fake management API answers on the
// agent's socket, as the agent would.
func restartableDevice(t *testing.T, dir string) ([]string, env) {
	t.Helper()
	setUpIn(t, dir)
	marker := filepath.Join(t.TempDir(), "watchdog.pid")
	script := filepath.Join(t.TempDir(), "watchdog.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho $$ > '"+marker+".tmp' && mv '"+marker+".tmp' '"+marker+"'\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ms := &agent.ManagementServer{Path: filepath.Join(dir, agent.ManagementSocket), Runtime: &agenttest.FakeRuntime{}, Config: testConfig(dir),
		Info: agent.AgentStatus{Version: "test", Runtime: "process", DeviceID: "edge1", DataDir: dir}}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		// Serve once the watchdog runs, so that stop finds no agent and
		// start's wait finds one.
		deadline := time.Now().Add(time.Minute)
		for ctx.Err() == nil && time.Now().Before(deadline) {
			if _, err := os.Stat(marker); err == nil {
				served <- ms.Run(ctx)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		served <- nil
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("management server: %v", err)
		}
		if b, err := os.ReadFile(marker); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return []string{"restart", "--agent-binary", "/bin/true", "--timeout", "30s"}, env{Executable: func() (string, error) { return script, nil }}
}

// jsonValues counts the JSON values in out, failing on anything else.
func jsonValues(out string) (int, error) {
	dec := json.NewDecoder(strings.NewReader(out))
	n := 0
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// TestExitCodesDocumented checks that the exit codes in the root help (and
// every command's) are those of docs/edgectl.md's table, and that codeOf
// and the commands use no other.
func TestExitCodesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/edgectl.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := bytes.Cut(doc, []byte("### Exit status"))
	if !ok {
		t.Fatal("docs/edgectl.md has no Exit status section")
	}
	var documented []int
	for _, m := range regexp.MustCompile(`(?m)^\| (\d+) \|`).FindAllSubmatch(table, -1) {
		n, _ := strconv.Atoi(string(m[1]))
		if len(documented) > 0 && n <= documented[len(documented)-1] {
			break // the next table
		}
		documented = append(documented, n)
	}
	used := []int{exitOK, exitFailed, exitUsage, exitTimeout, exitUnavailable, exitRefused}
	if len(documented) != len(used) {
		t.Fatalf("docs/edgectl.md documents exit codes %v, the code uses %v", documented, used)
	}
	code, help, _ := cli(t, env{}, "--help")
	if code != 0 {
		t.Fatalf("--help = %d", code)
	}
	help = strings.Join(strings.Fields(help), " ")
	for _, n := range documented {
		if !containsInt(used, n) {
			t.Errorf("exit code %d is documented but not used", n)
		}
		if !regexp.MustCompile(`[:,] ` + strconv.Itoa(n) + ` `).MatchString(help[strings.Index(help, "Exit status"):]) {
			t.Errorf("the root help's exit status list lacks %d:\n%s", n, help)
		}
	}
}
