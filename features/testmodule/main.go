// Command testmodule is the module the feature scenarios deploy. It is a
// static binary that runs as a plain process (the process runtime finds it
// in its image directory) and as the only file of a FROM scratch image (the
// Docker runtime pulls it from the scenarios' registry). What it does is set
// by its environment, which the scenarios write into the deployment's env
// section, so one image covers every behaviour:
//
//	TESTMODULE_EXIT_AFTER=1s       exit after running that long ...
//	TESTMODULE_EXIT_CODE=1         ... with this code (default 0)
//	TESTMODULE_UNHEALTHY_AFTER=1s  healthy until then, unhealthy after
//	TESTMODULE_FAIL_STARTS=2       its first 2 starts exit with code 1 at once
//	                               (starts are counted in the journal)
//	TESTMODULE_NAME=tempSensor     its name in the journal (default: the
//	                               IOTEDGE_MODULEID the agent injects)
//	TESTMODULE_JOURNAL=/dir        append one JSON line per event to
//	                               /dir/<name>.jsonl
//	TESTMODULE_LEASE_PID=1234      exit when process 1234 is gone, so that an
//	                               interrupted test run leaves nothing behind
//	                               (process runtime only: a container has its
//	                               own process ids)
//
// Without an exit it runs until SIGTERM or SIGINT and exits 0.
//
// # Health
//
// "testmodule health" is its health check, for a Healthcheck in
// createOptions (["CMD", "<path>/testmodule", "health"]): it exits 0 when
// the file testmodule.health in the working directory says "healthy", 1
// otherwise. The module writes that file in its own working directory, which
// is where both runtimes run health checks.
//
// # Journal
//
// The journal is the scenarios' witness of what really happened to the
// module, independent of what the edge agent reports. Events:
//
//	{"event":"start","module":"m","time":"…","pid":7,"start":1}
//	{"event":"unhealthy","module":"m","time":"…","pid":7}
//	{"event":"exit","module":"m","time":"…","pid":7,"code":1}
//	{"event":"signal","module":"m","time":"…","pid":7,"signal":"terminated"}
//
// "start" counts this module's starts, this one included. "exit" is an exit
// the module chose; "signal" is a stop asked by its runtime (it then exits
// 0). A line is written with one append, so lines never interleave.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// healthFile is the health state file, relative to the working directory.
const healthFile = "testmodule.health"

// Health file contents.
const (
	stateHealthy   = "healthy"
	stateUnhealthy = "unhealthy"
)

// leasePoll is how often the lease process is checked.
const leasePoll = 500 * time.Millisecond

func main() {
	if len(os.Args) > 1 && os.Args[1] == "health" {
		os.Exit(health(os.Stdout))
	}
	cfg, err := parseConfig(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testmodule:", err)
		os.Exit(2)
	}
	os.Exit(run(cfg))
}

// health is the health check: 0 when the health file says healthy.
func health(w io.Writer) int {
	b, err := os.ReadFile(healthFile)
	if err != nil {
		fmt.Fprintln(w, "unhealthy:", err)
		return 1
	}
	if state := string(bytes.TrimSpace(b)); state != stateHealthy {
		fmt.Fprintln(w, "unhealthy:", state)
		return 1
	}
	fmt.Fprintln(w, stateHealthy)
	return 0
}

// config is the module's behaviour, read from its environment.
type config struct {
	module         string
	exitAfter      time.Duration // negative: no exit of its own
	exitCode       int
	unhealthyAfter time.Duration // negative: always healthy
	failStarts     int
	journal        string // directory; "" for none
	leasePID       int    // 0: none
}

// parseConfig reads the configuration; a malformed variable is an error
// naming it.
func parseConfig(getenv func(string) string) (config, error) {
	c := config{module: getenv("TESTMODULE_NAME"), journal: getenv("TESTMODULE_JOURNAL")}
	if c.module == "" {
		c.module = getenv("IOTEDGE_MODULEID")
	}
	if c.module == "" {
		c.module = "testmodule"
	}
	if strings.ContainsAny(c.module, "/\\") || c.module == "." || c.module == ".." {
		return config{}, fmt.Errorf("module name %q: not usable as a journal file name", c.module)
	}
	var err error
	if c.exitAfter, err = durationVar(getenv, "TESTMODULE_EXIT_AFTER"); err != nil {
		return config{}, err
	}
	if c.unhealthyAfter, err = durationVar(getenv, "TESTMODULE_UNHEALTHY_AFTER"); err != nil {
		return config{}, err
	}
	if c.exitCode, err = intVar(getenv, "TESTMODULE_EXIT_CODE", 0, 255); err != nil {
		return config{}, err
	}
	if c.failStarts, err = intVar(getenv, "TESTMODULE_FAIL_STARTS", 0, 1000); err != nil {
		return config{}, err
	}
	if c.leasePID, err = intVar(getenv, "TESTMODULE_LEASE_PID", 0, 1<<22); err != nil {
		return config{}, err
	}
	if c.failStarts > 0 && c.journal == "" {
		return config{}, errors.New("TESTMODULE_FAIL_STARTS needs TESTMODULE_JOURNAL to count starts")
	}
	return c, nil
}

// durationVar reads a duration variable; -1 when it is not set.
func durationVar(getenv func(string) string, name string) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return -1, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q: want a non-negative Go duration such as 1s", name, v)
	}
	return d, nil
}

func intVar(getenv func(string) string, name string, lo, hi int) (int, error) {
	v := getenv(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s=%q: want an integer in %d..%d", name, v, lo, hi)
	}
	return n, nil
}

// event is one journal line.
type event struct {
	Event  string    `json:"event"`
	Module string    `json:"module"`
	Time   time.Time `json:"time"`
	PID    int       `json:"pid"`
	Start  int       `json:"start,omitempty"`
	Code   *int      `json:"code,omitempty"`
	Signal string    `json:"signal,omitempty"`
}

// journal appends events to the module's journal file.
type journal struct {
	path   string // "" when there is no journal
	module string
}

func (j journal) write(e event) {
	if j.path == "" {
		return
	}
	e.Module, e.Time, e.PID = j.module, time.Now().UTC(), os.Getpid()
	line, _ := json.Marshal(e)
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testmodule: journal:", err)
		return
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		fmt.Fprintln(os.Stderr, "testmodule: journal:", err)
	}
}

// starts counts the "start" events already in the journal.
func (j journal) starts() int {
	if j.path == "" {
		return 0
	}
	b, err := os.ReadFile(j.path)
	if err != nil {
		return 0
	}
	n := 0
	for _, line := range bytes.Split(b, []byte("\n")) {
		var e event
		if json.Unmarshal(line, &e) == nil && e.Event == "start" {
			n++
		}
	}
	return n
}

func run(c config) int {
	// Signals first: as PID 1 in a container, an unhandled SIGTERM would be
	// ignored rather than end the program.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	j := journal{module: c.module}
	if c.journal != "" {
		j.path = filepath.Join(c.journal, c.module+".jsonl")
	}
	start := j.starts() + 1
	j.write(event{Event: "start", Start: start})
	fmt.Printf("testmodule %s: start %d\n", c.module, start)

	if err := os.WriteFile(healthFile, []byte(stateHealthy+"\n"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "testmodule: health file:", err)
	}

	exit := func(code int) int {
		j.write(event{Event: "exit", Code: &code})
		fmt.Printf("testmodule %s: exit %d\n", c.module, code)
		return code
	}
	if start <= c.failStarts {
		return exit(1)
	}

	var exitC, unhealthyC <-chan time.Time
	if c.exitAfter >= 0 {
		exitC = time.After(c.exitAfter)
	}
	if c.unhealthyAfter >= 0 {
		unhealthyC = time.After(c.unhealthyAfter)
	}
	var leaseC <-chan time.Time
	if c.leasePID > 0 {
		t := time.NewTicker(leasePoll)
		defer t.Stop()
		leaseC = t.C
	}
	for {
		select {
		case s := <-sigs:
			j.write(event{Event: "signal", Signal: s.String()})
			fmt.Printf("testmodule %s: %s\n", c.module, s)
			return 0
		case <-exitC:
			return exit(c.exitCode)
		case <-unhealthyC:
			unhealthyC = nil
			if err := os.WriteFile(healthFile, []byte(stateUnhealthy+"\n"), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "testmodule: health file:", err)
			}
			j.write(event{Event: "unhealthy"})
			fmt.Printf("testmodule %s: unhealthy\n", c.module)
		case <-leaseC:
			if !alive(c.leasePID) {
				fmt.Printf("testmodule %s: process %d is gone; exiting\n", c.module, c.leasePID)
				return 0
			}
		}
	}
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
