// Command testprog is the module the Docker runtime's tests run in a
// FROM scratch image: a static binary whose behaviour is set by its
// environment, so that one image covers every test.
//
//	TESTPROG_LINES=n          print "stdout i" and "stderr i" for i in 1..n
//	TESTPROG_ECHO_ENV=A,B     print "env A=<value>" for each name ("env A unset")
//	TESTPROG_TICK=250ms       print "tick i" on stdout at that interval
//	TESTPROG_HEALTHY_FOR=2s   /healthy exists for that long, then is removed
//	TESTPROG_EXIT=code        exit with code (after TESTPROG_EXIT_AFTER, if set)
//	TESTPROG_IGNORE_TERM=1    ignore SIGTERM (so that a stop has to kill)
//
// Without TESTPROG_EXIT it runs until SIGTERM or SIGINT, then prints
// "terminated" and exits 0. "testprog health" is its health check: exit 0
// when /healthy exists, 1 otherwise.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const healthFile = "/healthy"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "health" {
		if _, err := os.Stat(healthFile); err != nil {
			fmt.Println("unhealthy:", err)
			os.Exit(1)
		}
		fmt.Println("healthy")
		return
	}
	os.Exit(run())
}

func run() int {
	// Signals first: as PID 1 in a container, an unhandled SIGTERM would
	// be ignored rather than end the program.
	// Notify even when ignoring: a program blocked on nothing but nil
	// channels would be stopped by Go's deadlock detector.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	ignoreTerm := os.Getenv("TESTPROG_IGNORE_TERM") != ""

	if err := os.WriteFile(healthFile, []byte("ok\n"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "testprog:", err)
		return 2
	}
	var unhealthy <-chan time.Time
	if d, ok := duration("TESTPROG_HEALTHY_FOR"); ok {
		unhealthy = time.After(d)
	}

	n, _ := strconv.Atoi(os.Getenv("TESTPROG_LINES"))
	for i := 1; i <= n; i++ {
		fmt.Fprintf(os.Stdout, "stdout %d\n", i)
		fmt.Fprintf(os.Stderr, "stderr %d\n", i)
	}
	if names := os.Getenv("TESTPROG_ECHO_ENV"); names != "" {
		for _, name := range strings.Split(names, ",") {
			if v, ok := os.LookupEnv(name); ok {
				fmt.Printf("env %s=%s\n", name, v)
			} else {
				fmt.Printf("env %s unset\n", name)
			}
		}
	}

	var exit <-chan time.Time
	code, exitSet := 0, false
	if s, ok := os.LookupEnv("TESTPROG_EXIT"); ok {
		c, err := strconv.Atoi(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testprog: TESTPROG_EXIT:", err)
			return 2
		}
		code, exitSet = c, true
		after, _ := duration("TESTPROG_EXIT_AFTER")
		exit = time.After(after)
	}
	var tick <-chan time.Time
	if d, ok := duration("TESTPROG_TICK"); ok {
		t := time.NewTicker(d)
		defer t.Stop()
		tick = t.C
	}

	for ticks := 1; ; {
		select {
		case <-exit:
			if exitSet {
				return code
			}
		case sig := <-sigs:
			if ignoreTerm {
				fmt.Println("ignoring", sig)
				continue
			}
			fmt.Println("terminated")
			return 0
		case <-unhealthy:
			os.Remove(healthFile)
			fmt.Println("now unhealthy")
		case <-tick:
			fmt.Printf("tick %d\n", ticks)
			ticks++
		}
	}
}

func duration(name string) (time.Duration, bool) {
	s, ok := os.LookupEnv(name)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testprog: %s: %v\n", name, err)
		return 0, false
	}
	return d, true
}
