package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// superviseCommand is the hidden command edgectl start runs, detached, to
// keep the agent running under the process runtime.
const superviseCommand = "supervise-agent"

// Watchdog timing.
const (
	// watchdogFirstDelay is the wait before the first restart of an agent
	// that died; it doubles at each restart up to watchdogMaxDelay.
	watchdogFirstDelay = time.Second
	watchdogMaxDelay   = time.Minute
	// watchdogResetAfter is how long an agent must run for its next death
	// to be restarted after watchdogFirstDelay again.
	watchdogResetAfter = 2 * time.Minute
	// agentStopGrace is how long the agent may take to stop on SIGTERM
	// before it is killed.
	agentStopGrace = time.Minute
	// logMaxBytes is the size at which the agent's log is rotated: copied
	// to <log>.1 and truncated (the agent keeps writing to it, appending).
	logMaxBytes = 10 << 20
	// logCheckEvery is how often the watchdog looks at the log's size.
	logCheckEvery = time.Minute
)

func newSuperviseCmd(a *app) *cobra.Command {
	var bin, logPath string
	cmd := &cobra.Command{
		Use:    superviseCommand + " --agent-binary FILE --log FILE -- AGENT-ARGS...",
		Short:  "Run the edge agent and restart it when it dies (started by edgectl start)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if bin == "" || logPath == "" {
				return usage(errors.New("--agent-binary and --log are required"))
			}
			w, err := newWatchdog(a.dataDir, bin, logPath, args)
			if err != nil {
				return failed(err)
			}
			defer w.close()
			if err := w.run(cmd.Context()); err != nil {
				return failed(err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&bin, "agent-binary", "", "the edgeagent executable")
	cmd.Flags().StringVar(&logPath, "log", "", "the agent's log file (appended to)")
	return cmd
}

// watchdog runs the agent and restarts it with back-off when it dies, as
// Docker's restart policy does for the agent's container. The modules are
// not its children and keep running meanwhile: the restarted agent adopts
// them.
type watchdog struct {
	dataDir string
	bin     string
	args    []string
	logPath string
	logFile *os.File
	log     *slog.Logger
	state   watchdogState
}

func newWatchdog(dataDir, bin, logPath string, args []string) (*watchdog, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent log: %w", err)
	}
	self, err := procOf(os.Getpid())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("watchdog needs Linux /proc: %w", err)
	}
	w := &watchdog{
		dataDir: dataDir, bin: bin, args: args, logPath: logPath, logFile: f,
		log:   slog.New(slog.NewTextHandler(f, nil)).With("component", "watchdog"),
		state: watchdogState{Watchdog: self, AgentBinary: bin, Log: logPath, StartedAt: time.Now().UTC()},
	}
	return w, nil
}

func (w *watchdog) close() { w.logFile.Close() }

// run starts the agent and keeps it running until ctx ends; then it stops
// the agent (SIGTERM, SIGKILL after agentStopGrace) and removes its state
// file.
func (w *watchdog) run(ctx context.Context) error {
	// The watchdog runs in a session of its own, with no terminal to hang
	// up; a stray SIGHUP must not end it either. (Caught, not ignored: an
	// ignored signal would stay ignored in the agent after exec.)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	defer os.Remove(filepath.Join(w.dataDir, watchdogFile))
	delay := watchdogFirstDelay
	logTick := time.NewTicker(logCheckEvery)
	defer logTick.Stop()
	for {
		rotateLog(w.logPath, logMaxBytes, w.log)
		cmd, exited, err := w.startAgent()
		if err != nil {
			// A missing or broken binary: try again later, as for a death.
			w.log.Error("cannot start the edge agent", "binary", w.bin, "err", err)
			w.state.LastExit = err.Error()
		} else {
			started := time.Now()
			w.log.Info("edge agent started", "pid", cmd.Process.Pid, "restarts", w.state.Restarts)
		wait:
			for {
				select {
				case <-ctx.Done():
					w.stopAgent(cmd, exited)
					w.log.Info("watchdog stopped")
					return nil
				case <-logTick.C:
					rotateLog(w.logPath, logMaxBytes, w.log)
				case err := <-exited:
					w.state.LastExit = describeExit(err)
					break wait
				}
			}
			if time.Since(started) >= watchdogResetAfter {
				delay = watchdogFirstDelay
			}
		}
		w.log.Warn("edge agent died; restarting it", "exit", w.state.LastExit, "in", delay.String())
		w.state.Agent = procID{}
		if err := writeWatchdog(w.dataDir, w.state); err != nil {
			w.log.Error("cannot save the watchdog state", "err", err)
		}
		select {
		case <-ctx.Done():
			w.log.Info("watchdog stopped")
			return nil
		case <-time.After(delay):
		}
		w.state.Restarts++
		delay = min(2*delay, watchdogMaxDelay)
	}
}

// startAgent starts the agent with its output on the log, and records it.
func (w *watchdog) startAgent() (*exec.Cmd, <-chan error, error) {
	cmd := exec.Command(w.bin, w.args...)
	cmd.Stdout, cmd.Stderr = w.logFile, w.logFile
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	id, err := procOf(cmd.Process.Pid)
	if err != nil {
		// It died already; Wait reports how.
		id = procID{Pid: cmd.Process.Pid}
	}
	w.state.Agent = id
	if err := writeWatchdog(w.dataDir, w.state); err != nil {
		w.log.Error("cannot save the watchdog state", "err", err)
	}
	return cmd, exited, nil
}

// stopAgent stops the agent gracefully, then by force.
func (w *watchdog) stopAgent(cmd *exec.Cmd, exited <-chan error) {
	w.log.Info("stopping the edge agent", "pid", cmd.Process.Pid)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		w.log.Info("edge agent stopped", "exit", describeExit(err))
	case <-time.After(agentStopGrace):
		cmd.Process.Kill()
		err := <-exited
		w.log.Warn("edge agent killed after the grace period", "grace", agentStopGrace.String(), "exit", describeExit(err))
	}
}

// describeExit says how the agent ended.
func describeExit(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("killed by signal %d (%s)", int(ws.Signal()), ws.Signal())
		}
		return fmt.Sprintf("exit status %d", ee.ExitCode())
	}
	if err != nil {
		return err.Error()
	}
	return "exit status 0"
}

// rotateLog copies the log to <path>.1 and truncates it once it exceeds
// max bytes. The agent writes with O_APPEND, so it carries on at the start
// of the truncated file (a few lines written during the copy may be lost).
func rotateLog(path string, max int64, log *slog.Logger) {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() <= max {
		return
	}
	if err := copyFile(path, path+".1"); err != nil {
		log.Warn("cannot rotate the agent's log", "err", err)
		return
	}
	if err := os.Truncate(path, 0); err != nil {
		log.Warn("cannot rotate the agent's log", "err", err)
	}
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
