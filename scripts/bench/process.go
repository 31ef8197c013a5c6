package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a broker process started by the harness. Its stderr is kept (the last lines)
// for error messages; lines are also offered to watch until it returns true.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, set before done is closed

	mu   sync.Mutex
	tail []string // last stderr lines
}

// tailLines is how many stderr lines a proc keeps for diagnostics.
const tailLines = 30

// startProc starts bin with args. watch, when not nil, sees every stderr line until it
// returns true (the process is then considered ready); startProc returns once watch said
// so, or fails when the process exits first or ready does not come within readyTimeout.
// With watch nil, startProc returns at once.
func startProc(name, bin string, args []string, watch func(line string) bool, readyTimeout time.Duration) (*proc, error) {
	p := &proc{name: name, cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stdout = io.Discard
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, bin, err)
	}
	ready := make(chan struct{})
	go func() {
		p.readStderr(stderr, watch, ready)
		p.err = p.cmd.Wait() // only after the last read from the pipe, as exec requires
		close(p.done)
	}()
	if watch == nil {
		return p, nil
	}
	t := time.NewTimer(readyTimeout)
	defer t.Stop()
	select {
	case <-ready:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready (%v); its last lines:\n%s", name, p.err, p.lastLines())
	case <-t.C:
		_ = p.stop(5 * time.Second)
		return nil, fmt.Errorf("%s not ready within %v; its last lines:\n%s", name, readyTimeout, p.lastLines())
	}
}

func (p *proc) readStderr(r io.Reader, watch func(string) bool, ready chan struct{}) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	watching := watch != nil
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.tail = append(p.tail, line)
		if len(p.tail) > tailLines {
			p.tail = p.tail[len(p.tail)-tailLines:]
		}
		p.mu.Unlock()
		if watching && watch(line) {
			watching = false
			close(ready)
		}
	}
	_, _ = io.Copy(io.Discard, r) // a line too long for the scanner: drain to EOF
}

func (p *proc) lastLines() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// pid is the process id, for /proc.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits up to grace for the process to exit, then kills it. It
// returns an error when the process had to be killed or exited with a failure status
// other than the one SIGTERM causes.
func (p *proc) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.exitError()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return p.exitError()
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %v of SIGTERM and was killed", p.name, grace)
	}
}

func (p *proc) exitError() error {
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
		return fmt.Errorf("%s exited: %w; its last lines:\n%s", p.name, p.err, p.lastLines())
	}
	return p.err
}

// memory is a process's resident set, from /proc/{pid}/status.
type memory struct {
	RSS, Peak int64 // VmRSS and VmHWM, in bytes
}

// readMemory reads VmRSS and VmHWM of pid.
func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for line := range strings.Lines(string(b)) {
		key, rest, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(rest) // "1234 kB"
		if len(f) != 2 || f[1] != "kB" {
			return memory{}, fmt.Errorf("/proc/%d/status: %s: unexpected %q", pid, key, rest)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("/proc/%d/status: %s: %w", pid, key, err)
		}
		if key == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.Peak = kb << 10
		}
	}
	if m.RSS == 0 {
		return memory{}, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	return m, nil
}

// clockTicks is USER_HZ, the unit of /proc/{pid}/stat times: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// readCPU returns the CPU time (user + system) pid has used, from /proc/{pid}/stat.
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// readSyscalls returns the read system calls pid has made, from /proc/{pid}/io (syscr).
func readSyscalls(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	return parseIOSyscr(string(b))
}

// parseIOSyscr reads the syscr line of a /proc/{pid}/io file.
func parseIOSyscr(io string) (int64, error) {
	for line := range strings.Lines(io) {
		if v, ok := strings.CutPrefix(line, "syscr:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("io: syscr %q: %w", strings.TrimSpace(v), err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("io %q: no syscr line", truncate(io, 40))
}

// parseStatCPU reads utime and stime (fields 14 and 15) from a /proc/{pid}/stat line. The
// command name (field 2) is in parentheses and may hold spaces, so fields are counted
// after its closing parenthesis.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat %q: no command name", truncate(stat, 40))
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("stat %q: %d fields after the command name, want at least 13", truncate(stat, 40), len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat: cpu time %q: %w", s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// freePort returns a loopback TCP port that was free a moment ago, for a broker that
// cannot be told to pick its own (Mosquitto).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitDial polls addr until a TCP connection succeeds or ctx ends.
func waitDial(ctx context.Context, addr string) error {
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not accepting connections: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// cpuSample is a snapshot of CPU time: the broker's, the harness's (its load clients) and
// the whole machine's busy time.
type cpuSample struct {
	at              time.Duration // sinceEpoch
	broker, harness time.Duration
	machineBusy     time.Duration // all cores, from /proc/stat
}

// cpuUse is CPU time over a run's wall time, in % of one core (200% = both cores of a
// 2-core machine): the broker, the harness's load clients, and everything else on the
// machine (other processes: the noise).
type cpuUse struct {
	Broker, Clients, Other float64
}

func sampleCPU(brokerPID int) (cpuSample, error) {
	s := cpuSample{at: sinceEpoch()}
	var err error
	if s.broker, err = readCPU(brokerPID); err != nil {
		return s, err
	}
	if s.harness, err = readCPU(os.Getpid()); err != nil {
		return s, err
	}
	if s.machineBusy, err = machineBusy(); err != nil {
		return s, err
	}
	return s, nil
}

// use returns the CPU used between a and b.
func (a cpuSample) use(b cpuSample) cpuUse {
	wall := float64(b.at - a.at)
	if wall <= 0 {
		return cpuUse{}
	}
	broker, harness := float64(b.broker-a.broker), float64(b.harness-a.harness)
	other := max(0, float64(b.machineBusy-a.machineBusy)-broker-harness)
	return cpuUse{Broker: 100 * broker / wall, Clients: 100 * harness / wall, Other: 100 * other / wall}
}

// machineBusy is the busy time of all CPUs since boot (/proc/stat's first line: every
// field but idle and iowait).
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseProcStat(string(b))
}

func parseProcStat(stat string) (time.Duration, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: first line %q is not the cpu total", truncate(line, 40))
	}
	var busy int64
	for i, s := range f[1:] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: field %d %q: %w", i+1, s, err)
		}
		// Fields: user nice system idle iowait irq softirq steal guest guest_nice. guest
		// time is already counted in user, so stop at steal.
		switch {
		case i == 3 || i == 4: // idle, iowait
		case i >= 8: // guest, guest_nice
		default:
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}
