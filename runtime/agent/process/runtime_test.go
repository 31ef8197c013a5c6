package process_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/agent"
	"github.com/outpost-edge/outpost/runtime/agent/process"
	"github.com/outpost-edge/outpost/runtime/agent/restart"
)

var ctx = context.Background()

func TestRuntime_CreateStartListRunning(t *testing.T) {
	rt, _ := mustRuntime(t)
	s := spec("sleeper", "", "sleep")
	if err := rt.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	m := mustModule(t, rt, "sleeper")
	if m.State != agent.StateCreated || !m.StartedAt.IsZero() {
		t.Fatalf("after Create: %+v", m)
	}
	if m.Image != testImage || m.SpecHash != "hash-sleeper" || !strings.HasPrefix(m.ImageID, "sha256:") || len(m.ImageID) != 71 {
		t.Errorf("image fields: %+v", m)
	}
	before := time.Now()
	if err := rt.Start(ctx, "sleeper"); err != nil {
		t.Fatal(err)
	}
	m = mustModule(t, rt, "sleeper")
	if m.State != agent.StateRunning || m.Health != restart.NoHealthCheck || m.StartedAt.Before(before) {
		t.Fatalf("after Start: %+v", m)
	}
	pid := pidOf(t, rt, "sleeper")
	if !processAlive(pid) {
		t.Fatalf("pid %d not alive", pid)
	}
	// Starting a running module does nothing.
	if err := rt.Start(ctx, "sleeper"); err != nil {
		t.Fatal(err)
	}
	if again := mustModule(t, rt, "sleeper"); !again.StartedAt.Equal(m.StartedAt) || pidOf(t, rt, "sleeper") != pid {
		t.Errorf("second Start restarted the module: %+v", again)
	}
}

func TestRuntime_ExitRecorded(t *testing.T) {
	rt, _ := mustRuntime(t)
	for _, tc := range []struct {
		name string
		code string
		want int
	}{
		{"exit0", "0", 0},
		{"exit3", "3", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now()
			mustStart(t, rt, spec(tc.name, "", "exit", tc.code))
			m := waitState(t, rt, tc.name, agent.StateExited)
			if m.ExitCode != tc.want {
				t.Errorf("exit code %d, want %d", m.ExitCode, tc.want)
			}
			if m.StartedAt.Before(before) || m.ExitedAt.Before(m.StartedAt) || m.ExitedAt.After(time.Now()) {
				t.Errorf("times: started %v exited %v (test began %v)", m.StartedAt, m.ExitedAt, before)
			}
			if text := logs(t, rt, tc.name, agent.LogOptions{}); text != "exiting "+tc.code+"\n" {
				t.Errorf("log %q", text)
			}
			// An exited module starts again from the same spec.
			if err := rt.Start(ctx, tc.name); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "second run", func() bool {
				return strings.Count(logs(t, rt, tc.name, agent.LogOptions{}), "exiting") == 2
			})
			m2 := waitState(t, rt, tc.name, agent.StateExited)
			if m2.ExitCode != tc.want || !m2.StartedAt.After(m.StartedAt) {
				t.Errorf("second run: %+v, first %+v", m2, m)
			}
		})
	}
}

func TestRuntime_Stop(t *testing.T) {
	rt, _ := mustRuntime(t)
	for _, tc := range []struct {
		name     string
		mode     string
		ready    string
		timeout  time.Duration
		wantCode int
		wantLog  string
		minTime  time.Duration // Stop takes at least this long
	}{
		{"graceful", "trap", "pid=", 10 * time.Second, 0, "got SIGTERM", 0},
		{"terminated", "sleep", "pid=", 10 * time.Second, 143, "", 0},
		{"ignores-sigterm", "ignore-term", "ignoring", 300 * time.Millisecond, 137, "", 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustStart(t, rt, spec(tc.name, "", tc.mode))
			waitLog(t, rt, tc.name, tc.ready) // its signal handling is set up
			began := time.Now()
			if err := rt.Stop(ctx, tc.name, tc.timeout); err != nil {
				t.Fatal(err)
			}
			took := time.Since(began)
			m := mustModule(t, rt, tc.name)
			if m.State != agent.StateExited || m.ExitCode != tc.wantCode {
				t.Errorf("after Stop: state %s code %d, want exited %d", m.State, m.ExitCode, tc.wantCode)
			}
			if took < tc.minTime || took > tc.minTime+5*time.Second {
				t.Errorf("Stop took %s, want about %s", took, tc.minTime)
			}
			if tc.wantLog != "" {
				if text := logs(t, rt, tc.name, agent.LogOptions{}); !strings.Contains(text, tc.wantLog) {
					t.Errorf("log %q lacks %q", text, tc.wantLog)
				}
			}
			// Stopping a stopped module does nothing.
			if err := rt.Stop(ctx, tc.name, time.Second); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestRuntime_EnvArgsAndWorkingDir(t *testing.T) {
	t.Setenv("OUTPOST_LEAK", "leaked") // the agent's environment must not reach modules
	rt, dir := mustRuntime(t)
	wd := t.TempDir()
	for _, tc := range []struct {
		name, opts string
		cmd        []string
		want       []string
	}{
		{
			name: "cmd-and-workingdir",
			opts: `{"WorkingDir":"` + wd + `","HostConfig":{"Binds":["/x:/y"]}}`,
			cmd:  []string{"show", "a b", "c"},
			want: []string{"arg=a b\narg=c\n", "cwd=" + wd + "\n"},
		},
		{
			name: "default-workingdir",
			cmd:  []string{"show"},
			want: []string{"cwd=" + filepath.Join(dir, "state", "work", "default-workingdir") + "\n"},
		},
		{
			name: "entrypoint",
			opts: `{"entrypoint":["testmod","show","from-entrypoint"]}`,
			cmd:  []string{"from-cmd"},
			want: []string{"arg=from-entrypoint\narg=from-cmd\n"},
		},
		{
			name: "cmd-as-string",
			opts: `{"Cmd":"show"}`,
			want: []string{"cwd="},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustStart(t, rt, spec(tc.name, tc.opts, tc.cmd...))
			waitState(t, rt, tc.name, agent.StateExited)
			text := logs(t, rt, tc.name, agent.LogOptions{})
			want := append(tc.want,
				"env FOO=bar baz\n",
				"env OUTPOST_LEAK=\n",
				"env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
				"to stderr\n")
			for _, w := range want {
				if !strings.Contains(text, w) {
					t.Errorf("log lacks %q:\n%s", w, text)
				}
			}
		})
	}
}

func TestRuntime_Errors(t *testing.T) {
	rt, dir := mustRuntime(t)
	mustStart(t, rt, spec("running", "", "sleep"))
	if err := rt.Create(ctx, spec("created", "", "sleep")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"create-exists", func() error { return rt.Create(ctx, spec("running", "")) }, agent.ErrExists},
		{"create-no-image", func() error {
			s := spec("noimage", "")
			s.Image = "outpost/nosuchmodule:1.0"
			return rt.Create(ctx, s)
		}, agent.ErrImageNotFound},
		{"create-dot-name", func() error { return rt.Create(ctx, spec("..", "")) }, process.ErrName},
		{"start-missing", func() error { return rt.Start(ctx, "missing") }, agent.ErrNotFound},
		{"stop-missing", func() error { return rt.Stop(ctx, "missing", time.Second) }, agent.ErrNotFound},
		{"remove-missing", func() error { return rt.Remove(ctx, "missing") }, agent.ErrNotFound},
		{"logs-missing", func() error { _, err := rt.Logs(ctx, "missing", agent.LogOptions{}); return err }, agent.ErrNotFound},
		{"remove-running", func() error { return rt.Remove(ctx, "running") }, process.ErrNotStopped},
		{"start-slash-name", func() error { return rt.Start(ctx, "a/b") }, process.ErrName},
	} {
		t.Run(tc.name, func(t *testing.T) { isErr(t, tc.call(), tc.want) })
	}
	t.Run("remove", func(t *testing.T) {
		if err := rt.Stop(ctx, "running", 0); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"running", "created"} {
			if err := rt.Remove(ctx, name); err != nil {
				t.Fatal(err)
			}
			if _, ok := module(t, rt, name); ok {
				t.Errorf("%s still listed", name)
			}
		}
		for _, p := range []string{"modules/running.json", "modules/running.exit", "logs/running.log", "work/running"} {
			if _, err := os.Stat(filepath.Join(dir, "state", p)); !os.IsNotExist(err) {
				t.Errorf("%s left behind (%v)", p, err)
			}
		}
		// The name is free again.
		mustStart(t, rt, spec("running", "", "exit", "0"))
		if m := waitState(t, rt, "running", agent.StateExited); m.ExitCode != 0 {
			t.Errorf("recreated module: %+v", m)
		}
	})
}

func TestRuntime_Pull(t *testing.T) {
	rt, dir := mustRuntime(t)
	images := filepath.Join(dir, "images")
	if err := os.WriteFile(filepath.Join(images, "plain"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(images, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	noImageDir := mustRuntimeAt(t, dir, func(o *process.Options) { o.ImageDir = "" })
	exe, _ := os.Executable()
	for _, tc := range []struct {
		name  string
		rt    *process.Runtime
		image string
		ok    bool
	}{
		{"registry-image", rt, "localhost:5000/team/testmod:1.0", true},
		{"digest", rt, "testmod@sha256:0123", true},
		{"exec-absolute", noImageDir, "exec:" + exe + ":latest", true},
		{"missing", rt, "outpost/tempsensor:1.0", false},
		{"not-executable", rt, "outpost/plain:1.0", false},
		{"directory", rt, "outpost/dir:1.0", false},
		{"exec-relative", rt, "exec:bin/x:latest", false},
		{"exec-missing", rt, "exec:/nonexistent/x:latest", false},
		{"no-image-dir", noImageDir, "outpost/testmod:1.0", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rt.Pull(ctx, tc.image, nil, nil)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			isErr(t, err, agent.ErrImageNotFound)
		})
	}
}

func TestRuntime_BadCreateOptions(t *testing.T) {
	rt, _ := mustRuntime(t)
	for _, tc := range []struct {
		name, opts, wantInErr string
	}{
		{"not-json", `{"Cmd":`, "not a JSON object"},
		{"not-object", `["a"]`, "not a JSON object"},
		{"cmd-number", `{"Cmd":42}`, "Cmd"},
		{"cmd-mixed", `{"Cmd":["a",1]}`, "Cmd"},
		{"workingdir-relative", `{"WorkingDir":"data"}`, "WorkingDir"},
		{"entrypoint-missing", `{"Entrypoint":["/nonexistent/bin"]}`, "Entrypoint"},
		{"entrypoint-relative-path", `{"Entrypoint":["bin/x"]}`, "Entrypoint"},
		{"health-bad-test", `{"Healthcheck":{"Test":["RUN","x"]}}`, "Healthcheck"},
		{"health-cmd-empty", `{"Healthcheck":{"Test":["CMD"]}}`, "Healthcheck"},
		{"health-negative-interval", `{"Healthcheck":{"Test":["CMD","true"],"Interval":-1}}`, "Interval"},
		{"health-tiny-timeout", `{"Healthcheck":{"Test":["CMD","true"],"Timeout":999}}`, "Timeout"},
		{"health-negative-retries", `{"Healthcheck":{"Test":["CMD","true"],"Retries":-2}}`, "Retries"},
		{"health-interval-string", `{"Healthcheck":{"Test":["CMD","true"],"Interval":"5s"}}`, "Healthcheck"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := rt.Create(ctx, spec(tc.name, tc.opts))
			isErr(t, err, process.ErrCreateOptions)
			if !strings.Contains(err.Error(), tc.wantInErr) || !strings.Contains(err.Error(), tc.name) {
				t.Errorf("error %q should name the module and %q", err, tc.wantInErr)
			}
			if _, ok := module(t, rt, tc.name); ok {
				t.Error("module created anyway")
			}
		})
	}
}

func TestRuntime_StartFailure(t *testing.T) {
	rt, dir := mustRuntime(t)
	script := filepath.Join(dir, "images", "script")
	for _, tc := range []struct {
		name   string
		break_ func() error
		code   int
	}{
		{"executable-removed", func() error { return os.Remove(script) }, 127},
		{"not-executable", func() error { return os.Chmod(script, 0o644) }, 126},
		{"workingdir-missing", func() error { return os.Remove(filepath.Join(dir, "wd")) }, 127},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(script, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(script, 0o755); err != nil { // it exists after the first case
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(dir, "wd"), 0o755); err != nil {
				t.Fatal(err)
			}
			s := spec(tc.name, `{"WorkingDir":"`+filepath.Join(dir, "wd")+`"}`)
			s.Image = "outpost/script:1.0"
			if err := rt.Create(ctx, s); err != nil {
				t.Fatal(err)
			}
			if err := tc.break_(); err != nil {
				t.Fatal(err)
			}
			isErr(t, rt.Start(ctx, tc.name), process.ErrStart)
			if m := mustModule(t, rt, tc.name); m.State != agent.StateExited || m.ExitCode != tc.code {
				t.Errorf("after a failed start: %+v, want exited %d", m, tc.code)
			}
		})
	}
}

func TestRuntime_CorruptStateIsDead(t *testing.T) {
	rt, dir := mustRuntime(t)
	for name, content := range map[string]string{
		"garbage":  "{not json",
		"future":   `{"version":99,"name":"future"}`,
		"misnamed": `{"version":1,"name":"other"}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, "state", "modules", name+".json"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		m := mustModule(t, rt, name)
		if m.State != agent.StateDead {
			t.Errorf("%s: %+v, want dead", name, m)
		}
		isErr(t, rt.Start(ctx, name), process.ErrCorrupt)
		if err := rt.Remove(ctx, name); err != nil {
			t.Fatal(err)
		}
		if _, ok := module(t, rt, name); ok {
			t.Errorf("%s still listed after Remove", name)
		}
	}
}

func TestRuntime_ListOnlyOwnedModules(t *testing.T) {
	rt, _ := mustRuntime(t)
	s := spec("foreign", "", "exit", "0")
	delete(s.Labels, agent.LabelOwner)
	if err := rt.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, ok := module(t, rt, "foreign"); ok {
		t.Error("a module without the owner label is listed")
	}
}

func TestRuntime_New(t *testing.T) {
	if _, err := process.New(process.Options{}); err == nil {
		t.Error("New without StateDir succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := process.New(process.Options{StateDir: file}); err == nil {
		t.Error("New with a file as StateDir succeeded")
	}
}

func TestRuntime_Concurrent(t *testing.T) {
	rt, _ := mustRuntime(t)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- rt.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	stop := make(chan struct{})
	var lists sync.WaitGroup
	lists.Add(1)
	go func() {
		defer lists.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := rt.List(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "m" + string(rune('0'+i))
			for range 2 {
				if err := rt.Create(ctx, spec(name, "", "sleep")); err != nil {
					t.Error(err)
					return
				}
				for _, step := range []func() error{
					func() error { return rt.Start(ctx, name) },
					func() error { return rt.Start(ctx, name) },
					func() error { return rt.Stop(ctx, name, 5*time.Second) },
					func() error { return rt.Remove(ctx, name) },
				} {
					if err := step(); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	lists.Wait()
	if ms, _ := rt.List(ctx); len(ms) != 0 {
		t.Errorf("left: %+v", ms)
	}
}

func TestRuntime_RunTwice(t *testing.T) {
	rt, _ := mustRuntime(t)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	background := func() { go func() { done <- rt.Run(runCtx) }() }
	background()
	// A Run with a done context returns at once: nil, having run once, or
	// ErrRunning while the background Run runs. The background Run itself
	// may have lost the race to such a probe; it is then started again.
	ended, endedCancel := context.WithCancel(ctx)
	endedCancel()
	waitFor(t, 5*time.Second, "the background Run to hold", func() bool {
		select {
		case err := <-done:
			isErr(t, err, process.ErrRunning)
			background()
		default:
		}
		err := rt.Run(ended)
		if err != nil {
			isErr(t, err, process.ErrRunning)
		}
		return err != nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := rt.Run(ended); err != nil {
		t.Errorf("Run after the first returned: %v", err)
	}
}

// TestRuntime_ExitSeenWithoutList checks that Run records an exit by itself:
// the state file says exited before anyone calls List.
func TestRuntime_ExitSeenWithoutList(t *testing.T) {
	rt, dir := mustRuntime(t, func(o *process.Options) { o.PollInterval = 20 * time.Millisecond })
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go rt.Run(runCtx)
	mustStart(t, rt, spec("quick", "", "exit", "5"))
	waitFor(t, 10*time.Second, "exit recorded in the state file", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "state", "modules", "quick.json"))
		return strings.Contains(string(b), `"state": "exited"`) && strings.Contains(string(b), `"exitCode": 5`)
	})
}

// shellAvailable skips tests that need /bin/sh.
func shellAvailable(t *testing.T) {
	if _, err := exec.LookPath("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
}
