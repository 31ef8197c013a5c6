package process

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// SuperviseArg is argv[1] of a supervisor process: the runtime starts every
// module through its own executable (Options.Executable) run as
//
//	<executable> __outpost-process-supervise <module name>
//
// and the program's main must then hand over to SuperviseMain before doing
// anything else:
//
//	if len(os.Args) > 1 && os.Args[1] == process.SuperviseArg {
//		os.Exit(process.SuperviseMain(os.Args[2:]))
//	}
const SuperviseArg = "__outpost-process-supervise"

// statusFD is the supervisor's descriptor for its start reply
// (exec.Cmd.ExtraFiles[0]).
const statusFD = 3

// Bounds of the supervisor protocol.
const (
	maxConfigBytes = 4 << 20
	// drainTimeout bounds the wait for the end of the module's output once
	// it has exited (a process that left the group may hold the pipe).
	drainTimeout = 2 * time.Second
	// startTimeout bounds the wait for the supervisor's start reply.
	startTimeout = 30 * time.Second
)

// superviseConfig is what the runtime sends a supervisor on its stdin.
type superviseConfig struct {
	Name        string   `json:"name"`
	Run         int      `json:"run"`
	Path        string   `json:"path"`
	Args        []string `json:"args,omitempty"`
	Env         []string `json:"env"`
	Dir         string   `json:"dir"`
	Log         string   `json:"log"`
	LogMaxBytes int64    `json:"logMaxBytes"`
	Exit        string   `json:"exit"`
}

// startReply is the supervisor's one-line answer on statusFD: the module's
// pid and start time, or why it could not be started.
type startReply struct {
	Pid      int    `json:"pid,omitempty"`
	Start    uint64 `json:"start,omitempty"`
	Err      string `json:"err,omitempty"`
	ExitCode int    `json:"exitCode,omitempty"` // with Err: 127 or 126
}

// SuperviseMain runs one module as a supervisor does, and returns the
// supervisor's exit status (0 once the module has run, whatever its own
// exit code; non-zero when it could not be started). args are the
// arguments after SuperviseArg, informational only (the module name, so
// that ps shows it); the real instructions come from the runtime on stdin.
//
// The supervisor starts the module in a process group of its own with
// stdout and stderr on a pipe, writes each output line with its time to the
// module's log file (rotating it), waits for the module, kills what is left
// of its process group (as a container's processes die with its init), and
// writes the exit code to the module's exit file. It ignores SIGHUP and
// passes SIGTERM and SIGINT on to the module's process group. It is meant
// to be called only by a process the runtime started.
func SuperviseMain(args []string) int {
	status := os.NewFile(statusFD, "status")
	if status == nil {
		fmt.Fprintln(os.Stderr, "process supervisor: started without a status descriptor; only the process runtime starts supervisors")
		return 2
	}
	// The module must not inherit the status pipe, or the runtime would
	// wait for the module's end instead of our reply.
	syscall.CloseOnExec(statusFD)
	signal.Ignore(syscall.SIGHUP)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)

	var cfg superviseConfig
	if err := json.NewDecoder(io.LimitReader(os.Stdin, maxConfigBytes)).Decode(&cfg); err != nil {
		reply(status, startReply{Err: fmt.Sprintf("supervisor: read config: %v", err), ExitCode: 126})
		return 1
	}
	return supervise(cfg, status, term)
}

func reply(status *os.File, r startReply) {
	b, _ := json.Marshal(r) // cannot fail: plain fields
	status.Write(append(b, '\n'))
	status.Close()
}

func supervise(cfg superviseConfig, status *os.File, term <-chan os.Signal) int {
	lw, err := openLog(cfg.Log, cfg.LogMaxBytes)
	if err != nil {
		reply(status, startReply{Err: fmt.Sprintf("open log: %v", err), ExitCode: 126})
		return 1
	}
	defer lw.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		reply(status, startReply{Err: fmt.Sprintf("pipe: %v", err), ExitCode: 126})
		return 1
	}
	defer pr.Close()
	env := cfg.Env
	if env == nil {
		env = []string{} // nil would mean our own environment
	}
	cmd := &exec.Cmd{
		Path:        cfg.Path,
		Args:        append([]string{cfg.Path}, cfg.Args...),
		Env:         env,
		Dir:         cfg.Dir,
		Stdout:      pw, // one pipe for both keeps their order
		Stderr:      pw,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if err := cmd.Start(); err != nil {
		pw.Close()
		code := 126
		if errors.Is(err, fs.ErrNotExist) {
			code = 127
		}
		reply(status, startReply{Err: err.Error(), ExitCode: code})
		return 1
	}
	pw.Close()
	pid := cmd.Process.Pid
	start, err := startTime(pid)
	if err != nil {
		// Cannot happen while the child is unreaped; without the start time
		// the runtime could not tell the module from a reused pid.
		syscall.Kill(-pid, syscall.SIGKILL)
		cmd.Wait()
		reply(status, startReply{Err: err.Error(), ExitCode: 126})
		return 1
	}
	reply(status, startReply{Pid: pid, Start: start})

	copied := make(chan error, 1)
	go func() { copied <- copyLines(pr, lw, time.Now) }()
	waited := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-term:
				syscall.Kill(-pid, s.(syscall.Signal))
			case <-waited:
				return
			}
		}
	}()

	cmd.Wait()
	exitedAt := time.Now()
	close(waited)
	code := exitCode(cmd.ProcessState)
	syscall.Kill(-pid, syscall.SIGKILL) // the rest of the group dies with its leader

	ex := exitRecord{Run: cfg.Run, Pid: pid, ExitCode: code, ExitedAt: exitedAt}
	select {
	case err := <-copied:
		if err != nil {
			ex.Err = fmt.Sprintf("log: %v", err)
		}
	case <-time.After(drainTimeout):
		ex.Err = "log: output still open after the module exited; the rest is lost"
	}
	b, _ := json.Marshal(ex) // cannot fail: plain fields
	if err := writeFileAtomic(cfg.Exit, b); err != nil {
		// Nobody to tell: the runtime will see the module exited with -1.
		return 1
	}
	return 0
}

// exitCode is Docker's convention: the exit status, or 128 + the signal
// number for a process killed by a signal (143 for SIGTERM, 137 for SIGKILL).
func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// launch starts a supervisor for cfg and waits for its start reply. The
// supervisor runs in a session of its own, so that nothing aimed at the
// agent (a terminal's Ctrl-C, the agent's exit) reaches it; the runtime
// reaps it when it is its child. sup identifies the supervisor.
func (r *Runtime) launch(ctx context.Context, cfg superviseConfig) (sup proc, rep startReply, err error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return proc{}, startReply{}, err
	}
	sr, sw, err := os.Pipe()
	if err != nil {
		return proc{}, startReply{}, err
	}
	defer sr.Close()
	cmd := &exec.Cmd{
		Path:        r.exe,
		Args:        []string{r.exe, SuperviseArg, cfg.Name},
		Env:         []string{},
		Dir:         "/", // hold no directory of the agent's busy
		Stdin:       bytes.NewReader(b),
		ExtraFiles:  []*os.File{sw},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	sw.Close()
	if err != nil {
		return proc{}, startReply{}, fmt.Errorf("start supervisor %s: %w", r.exe, err)
	}
	sup.Pid = cmd.Process.Pid
	sup.Start, err = startTime(sup.Pid) // our unreaped child: it cannot have gone
	go func() {
		cmd.Wait()
		r.kick()
	}()
	if err != nil {
		cmd.Process.Kill()
		return proc{}, startReply{}, fmt.Errorf("supervisor: %w", err)
	}

	got := make(chan error, 1)
	go func() { got <- json.NewDecoder(io.LimitReader(sr, 1<<16)).Decode(&rep) }()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case err = <-got:
		if err != nil {
			err = fmt.Errorf("supervisor %d gave no start reply: %w", sup.Pid, err)
		}
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = fmt.Errorf("supervisor %d gave no start reply within %s", sup.Pid, startTimeout)
	}
	if err != nil {
		// The module may or may not have started; without its pid it
		// cannot be managed. SIGTERM makes the supervisor pass SIGTERM on
		// to the module once it has one, then record its exit as usual.
		cmd.Process.Signal(syscall.SIGTERM)
		return proc{}, startReply{}, err
	}
	return sup, rep, nil
}

// proc identifies a process across pid reuse.
type proc struct {
	Pid   int
	Start uint64
}
