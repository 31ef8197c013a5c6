package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// logLine is one line of the edge agent's stderr (--log-format json), stamped with the
// time the harness read it: the agent writes a line at once, so that time is when the
// agent did what the line says, give or take the pipe, and it is on the harness's clock,
// like every other time the agent scenarios take.
type logLine struct {
	At   time.Time
	Msg  string
	Text string // the line as written
	// Module is the line's "module" attribute, or the module of its "command" group
	// (agent.Command's log value: "module command done" and friends).
	Module string
	// Kind is the command's kind ("pull", "create", "start", "restart", ...), if any.
	Kind string
}

// parseLogLine reads the fields the scenarios wait for from one JSON log line. A line
// that is not a JSON object keeps only its text.
func parseLogLine(text string, at time.Time) logLine {
	l := logLine{At: at, Text: text}
	var v struct {
		Msg     string          `json:"msg"`
		Module  json.RawMessage `json:"module"`
		Command json.RawMessage `json:"command"`
	}
	if json.Unmarshal([]byte(text), &v) != nil {
		return l
	}
	l.Msg = v.Msg
	var module string
	if json.Unmarshal(v.Module, &module) == nil {
		l.Module = module
	}
	var cmd struct {
		Kind   string `json:"kind"`
		Module string `json:"module"`
	}
	if json.Unmarshal(v.Command, &cmd) == nil {
		l.Kind = cmd.Kind
		if l.Module == "" {
			l.Module = cmd.Module
		}
	}
	return l
}

// agentProc is bin/edgeagent run by the harness, its stderr followed line by line so
// that a scenario can wait for a line and know when it came.
type agentProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // Wait's result, set before done is closed

	log io.Writer // every line, as written (a file in the environment's directory)

	mu    sync.Mutex
	lines []logLine     // the lines kept, the oldest dropped beyond keptLogLines
	base  int           // the index (since start) of lines[0]
	more  chan struct{} // closed at the next line, then replaced
}

// keptLogLines bounds the lines an agentProc keeps (a long run logs a few per reconcile).
const keptLogLines = 20000

// startAgentProc starts bin with args and the harness's environment (the Docker
// runtime reads DOCKER_HOST from it; modules get none of it), copying its log to log.
func startAgentProc(bin string, args []string, log io.Writer) (*agentProc, error) {
	a := &agentProc{cmd: exec.Command(bin, args...), done: make(chan struct{}), more: make(chan struct{}), log: log}
	a.cmd.Stdout = io.Discard
	// The agent dies with the harness (its modules do not: the next run sweeps them).
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := a.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := a.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		a.read(stderr)
		a.err = a.cmd.Wait() // only after the last read from the pipe, as exec requires
		close(a.done)
		a.mu.Lock()
		close(a.more) // wake the waiters: no line will come
		a.mu.Unlock()
	}()
	return a, nil
}

func (a *agentProc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := parseLogLine(sc.Text(), time.Now())
		_, _ = io.WriteString(a.log, l.Text+"\n") // a copy for debugging: best effort
		a.mu.Lock()
		a.lines = append(a.lines, l)
		if len(a.lines) > keptLogLines {
			drop := len(a.lines) / 2
			a.lines = append([]logLine(nil), a.lines[drop:]...)
			a.base += drop
		}
		close(a.more)
		a.more = make(chan struct{})
		a.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r) // a line too long for the scanner: drain to EOF
}

// mark returns the index of the next line, for waitLine.
func (a *agentProc) mark() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.base + len(a.lines)
}

// errAgentExited is waitLine's error when the agent exits first.
var errAgentExited = errors.New("the edge agent exited")

// waitLine returns the first line at index from or later for which match is true. It
// fails when ctx ends or the agent exits first.
func (a *agentProc) waitLine(ctx context.Context, from int, match func(logLine) bool) (logLine, error) {
	for {
		a.mu.Lock()
		for i := max(from, a.base); i < a.base+len(a.lines); i++ {
			if l := a.lines[i-a.base]; match(l) {
				a.mu.Unlock()
				return l, nil
			}
		}
		from = a.base + len(a.lines)
		more := a.more
		a.mu.Unlock()
		select {
		case <-more:
			select {
			case <-a.done:
				// Lines may still be unread after the last wake-up: look once more.
				if l, ok := a.find(from, match); ok {
					return l, nil
				}
				return logLine{}, fmt.Errorf("%w (%v); its last lines:\n%s", errAgentExited, a.err, a.lastLines(20))
			default:
			}
		case <-ctx.Done():
			return logLine{}, ctx.Err()
		}
	}
}

func (a *agentProc) find(from int, match func(logLine) bool) (logLine, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := max(from, a.base); i < a.base+len(a.lines); i++ {
		if l := a.lines[i-a.base]; match(l) {
			return l, true
		}
	}
	return logLine{}, false
}

// lastLines returns the last n lines, for error messages.
func (a *agentProc) lastLines(n int) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var b strings.Builder
	for _, l := range a.lines[max(0, len(a.lines)-n):] {
		b.WriteString(l.Text + "\n")
	}
	return b.String()
}

func (a *agentProc) pid() int { return a.cmd.Process.Pid }

// stop sends SIGTERM and waits up to grace (the agent reports its shutdown first), then
// kills it. The modules keep running: the caller removes them.
func (a *agentProc) stop(grace time.Duration) error {
	select {
	case <-a.done:
		return a.exitErr()
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-a.done:
		return a.exitErr()
	case <-t.C:
		_ = a.cmd.Process.Kill()
		<-a.done
		return fmt.Errorf("the edge agent did not stop within %v of SIGTERM and was killed", grace)
	}
}

func (a *agentProc) exitErr() error {
	var ee *exec.ExitError
	if errors.As(a.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
		return fmt.Errorf("the edge agent exited: %w; its last lines:\n%s", a.err, a.lastLines(20))
	}
	return a.err
}

// procStartTime returns the start time of pid (field 22 of /proc/<pid>/stat, in clock
// ticks since boot), which tells a process from a later one that reused its pid.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatStart(string(b))
}

// parseStatStart reads field 22 (starttime) of a /proc/<pid>/stat line; fields are
// counted after the command name's closing parenthesis, as in parseStatCPU.
func parseStatStart(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat %q: no command name", truncate(stat, 40))
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3
	if len(f) < 20 {
		return 0, fmt.Errorf("stat %q: %d fields after the command name, want at least 20", truncate(stat, 40), len(f))
	}
	var n uint64
	if _, err := fmt.Sscan(f[19], &n); err != nil {
		return 0, fmt.Errorf("stat: starttime %q: %w", f[19], err)
	}
	return n, nil
}

// sameProcess reports whether pid is alive and is the process that started at start.
func sameProcess(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := procStartTime(pid)
	return err == nil && st == start
}
