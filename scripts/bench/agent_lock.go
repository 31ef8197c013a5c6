package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dockerLockPath is the lock every user of this machine's Docker Engine takes (flock) so
// that runs never overlap: an edge agent manages every Outpost container on the engine,
// so two at once would remove each other's modules.
const dockerLockPath = "/tmp/outpost-docker.lock"

// lockDocker takes the Docker lock for the Docker half of a scenario, and returns its
// release. When the harness runs under `flock /tmp/outpost-docker.lock ...` already (an
// ancestor process is that flock), the lock is the caller's and nothing is taken: a second
// flock on the same file from here would wait for ever.
func lockDocker(ctx context.Context, log *slog.Logger) (func(), error) {
	if pid, ok := lockingAncestor(os.Getpid(), dockerLockPath); ok {
		log.Debug("the Docker lock is held by the command that started the harness", "flock_pid", pid)
		return func() {}, nil
	}
	f, err := os.OpenFile(dockerLockPath, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("docker lock: %w", err)
	}
	for waited := false; ; {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("docker lock %s: %w", dockerLockPath, err)
		}
		if !waited {
			log.Info("waiting for the Docker lock (another run uses the engine)", "lock", dockerLockPath)
			waited = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("docker lock %s: %w", dockerLockPath, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// lockingAncestor looks up the process's ancestors for a flock(1) holding path: a
// process named flock whose arguments name path.
func lockingAncestor(pid int, path string) (int, bool) {
	for range 32 { // a bound, in case of a loop
		ppid, err := parentPid(pid)
		if err != nil || ppid <= 1 {
			return 0, false
		}
		pid = ppid
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			return 0, false
		}
		if isFlockOf(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), path) {
			return pid, true
		}
	}
	return 0, false
}

// isFlockOf reports whether argv is a flock(1) command line locking path.
func isFlockOf(argv []string, path string) bool {
	if len(argv) < 2 || (argv[0] != "flock" && !strings.HasSuffix(argv[0], "/flock")) {
		return false
	}
	args := argv[1:]
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-w" || a == "--wait" || a == "--timeout" || a == "-E" || a == "--conflict-exit-code":
			i++ // an option with a value
		case strings.HasPrefix(a, "-"):
			// another option
		default:
			return a == path // the first argument that is not an option is the lock file
		}
	}
	return false
}

// parentPid reads the parent of pid from /proc/<pid>/stat (field 4).
func parentPid(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat of %d: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("stat of %d: too short", pid)
	}
	return strconv.Atoi(f[1])
}
