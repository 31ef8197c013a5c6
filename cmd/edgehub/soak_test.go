package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fakehub"
)

// Soak settings: `make soak DURATION=2h` passes -soak.duration and -soak.out; make test
// runs the defaults (75 s of traffic: two cuts, a SIGTERM and a SIGKILL restart).
var (
	soakDuration = flag.Duration("soak.duration", 75*time.Second, "soak: how long traffic runs")
	soakCycle    = flag.Duration("soak.cycle", 0, "soak: one network cut and one hub restart per cycle (0: 2/5 of the duration, within 30s..5m)")
	soakCutFor   = flag.Duration("soak.cut-for", 0, "soak: how long each network cut lasts (0: a fifth of the cycle)")
	soakEvery    = flag.Duration("soak.sample", time.Second, "soak: sampling interval")
	soakOut      = flag.String("soak.out", "", "soak: directory for samples.csv and summary.md (none when empty)")
)

// TestSoak runs steady traffic from modules and leaf devices through the edgehub binary to
// a fake IoT Hub for -soak.duration, cutting the network to IoT Hub and restarting the hub
// (alternately SIGTERM and SIGKILL) once per -soak.cycle. It samples the hub's RSS,
// goroutines, open files and queue depth, and fails when an acknowledged message never
// reached IoT Hub, when messages arrived out of order, or when the resources did not stay
// flat in steady state (judgeFlat).
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: runs the edgehub binary for a minute or more")
	}
	cycle, cutFor := *soakCycle, *soakCutFor
	if cycle == 0 {
		cycle = min(5*time.Minute, max(30*time.Second, *soakDuration*2/5))
	}
	if cutFor == 0 {
		cutFor = cycle / 5
	}
	if cutFor >= cycle/2 {
		t.Fatalf("-soak.cut-for %v must be under half of the cycle %v", cutFor, cycle)
	}
	dir := t.TempDir()
	c := newCloud(t, dir, 4, 2)
	h := newHubRunner(t, filepath.Join(dir, "data"), append(c.hubArgs, "--metrics-addr", "127.0.0.1:0")...)
	h.start()

	events := collectEvents(t, c.s)
	// 6 senders, each about 40 msg/s of 512 bytes.
	f := startPacedFleet(t, c.senders, 512, 25*time.Millisecond, h.currentAddr)
	waitUntil(t, 20*time.Second, "every sender accepted and acknowledged once", func() bool { return f.eachAckedAtLeast(nil, 1) })

	var (
		samples  []soakSample
		online   = true
		life     = 1
		ready    = time.Now()
		start    = time.Now()
		cuts     int
		restarts int
	)
	sample := func() {
		p := h.current()
		if p == nil {
			return
		}
		if !h.alive() {
			t.Fatalf("soak: the hub (process %d) exited by itself at %v\n%s", life, time.Since(start).Round(time.Second), h.logTail(20))
		}
		rss, fds, err := readProcess(p.cmd.Process.Pid)
		if err != nil {
			t.Fatalf("soak: %v", err)
		}
		m, err := scrapeMetrics(p.metrics, "go_goroutines", "outpost_edgehub_queue_length")
		if err != nil {
			t.Logf("soak: metrics at %v: %v", time.Since(start).Round(time.Second), err)
			return
		}
		samples = append(samples, soakSample{
			at: time.Since(start), life: life, sinceStart: time.Since(ready), online: online,
			rss: rss, goroutines: int(m["go_goroutines"]), fds: fds,
			queue: int(m["outpost_edgehub_queue_length"]), acked: f.totalAcked(),
		})
	}

	tick := time.NewTicker(*soakEvery)
	defer tick.Stop()
	cycleStart := time.Now()
	for time.Since(start) < *soakDuration {
		<-tick.C
		sample()
		inCycle := time.Since(cycleStart)
		switch {
		case online && inCycle >= cycle/4 && inCycle < cycle/4+cutFor:
			c.s.CutNetwork()
			online = false
			cuts++
		case !online && inCycle >= cycle/4+cutFor:
			c.s.RestoreNetwork()
			online = true
		case inCycle >= cycle:
			restarts++
			if restarts%2 == 1 {
				h.stop()
			} else {
				h.kill()
			}
			h.start()
			life++
			ready = time.Now()
			cycleStart = time.Now()
		}
	}
	if !online {
		c.s.RestoreNetwork()
		online = true
	}
	f.stop()

	// Everything acknowledged must reach IoT Hub, and the queues empty.
	var d delivery
	deadline := time.Now().Add(60 * time.Second)
	for {
		d = f.compare(events.all())
		if d.missingCount() == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitUntil(t, 30*time.Second, "the hub's queues to drain", func() bool {
		m, err := scrapeMetrics(h.current().metrics, "outpost_edgehub_queue_length")
		return err == nil && m["outpost_edgehub_queue_length"] == 0
	})
	for range 3 { // a few samples after the drain, so the last third reflects a rested hub
		<-tick.C
		sample()
	}
	if events.overflowed() {
		t.Fatal("soak: the fake hub's event ring overflowed between two reads; the delivery check is void")
	}

	verdict := judgeFlat(samples)
	summary := soakSummary(*soakDuration, cutFor, cuts, restarts, d, verdict, samples)
	t.Log("\n" + summary)
	if *soakOut != "" {
		if err := writeSoakFiles(*soakOut, samples, summary); err != nil {
			t.Errorf("soak: writing %s: %v", *soakOut, err)
		}
	}
	d.report(t, f)
	if cuts == 0 || restarts == 0 {
		t.Errorf("soak: %d network cuts and %d hub restarts: -soak.duration %v is too short for the cycle %v", cuts, restarts, *soakDuration, cycle)
	}
	for _, p := range verdict.problems {
		t.Errorf("soak: not flat: %s", p)
	}
}

// soakSummary is the soak's report in Markdown.
func soakSummary(duration, cutFor time.Duration, cuts, restarts int, d delivery, v flatness, samples []soakSample) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak of the edge hub\n\n")
	fmt.Fprintf(&b, "- traffic for %v: 6 senders (4 modules, 2 leaf devices) at about 40 msg/s each, 512 B, QoS 1, routed to $upstream\n", duration)
	fmt.Fprintf(&b, "- %d network cuts of %v, %d hub restarts (SIGTERM and SIGKILL alternately)\n", cuts, cutFor, restarts)
	fmt.Fprintf(&b, "- delivery: %s\n", d)
	fmt.Fprintf(&b, "- resources: %s\n", v)
	if len(v.problems) == 0 {
		b.WriteString("- verdict: flat\n")
	} else {
		fmt.Fprintf(&b, "- verdict: NOT flat: %s\n", strings.Join(v.problems, "; "))
	}
	var maxQueue int
	var maxRSS int64
	for _, s := range samples {
		maxQueue = max(maxQueue, s.queue)
		maxRSS = max(maxRSS, s.rss)
	}
	fmt.Fprintf(&b, "- peaks: queue %d messages, RSS %s; %d samples\n", maxQueue, mib(maxRSS), len(samples))
	return b.String()
}

// eventLog collects the fake hub's events as they arrive, so that a long soak does not
// depend on the size of the hub's event ring.
type eventLog struct {
	mu       sync.Mutex
	events   []fakehub.Event
	overflow bool
}

// collectEvents reads s's events every 100 ms until the test ends.
func collectEvents(t *testing.T, s *fakehub.Server) *eventLog {
	l := &eventLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var after int64
		for ctx.Err() == nil {
			evs := s.Events(after, 0)
			if len(evs) > 0 {
				l.mu.Lock()
				if evs[0].Seq != after+1 {
					l.overflow = true
				}
				l.events = append(l.events, evs...)
				l.mu.Unlock()
				after = evs[len(evs)-1].Seq
			}
			sleepCtx(ctx, 100*time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return l
}

func (l *eventLog) all() []fakehub.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]fakehub.Event(nil), l.events...)
}

func (l *eventLog) overflowed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.overflow
}

func TestJudgeFlat(t *testing.T) {
	const mb = 1 << 20
	run := func(n int, f func(i int) soakSample) []soakSample {
		out := make([]soakSample, n)
		for i := range out {
			s := soakSample{online: true, sinceStart: time.Minute, rss: 20 * mb, goroutines: 50, fds: 20}
			out[i] = f(i)
			out[i].online, out[i].sinceStart = s.online, s.sinceStart
			if out[i].rss == 0 {
				out[i].rss = s.rss
			}
			if out[i].goroutines == 0 {
				out[i].goroutines = s.goroutines
			}
			if out[i].fds == 0 {
				out[i].fds = s.fds
			}
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		samples  []soakSample
		problems int
	}{
		{"flat", run(30, func(int) soakSample { return soakSample{} }), 0},
		{"RSS noise within the slack", run(30, func(i int) soakSample { return soakSample{rss: int64(20*mb + i%3*mb)} }), 0},
		{"RSS leak", run(30, func(i int) soakSample { return soakSample{rss: int64(20*mb + i*mb)} }), 1},
		{"goroutine leak", run(30, func(i int) soakSample { return soakSample{goroutines: 50 + 2*i} }), 1},
		{"file descriptor leak", run(30, func(i int) soakSample { return soakSample{fds: 20 + i} }), 1},
		{"everything leaks", run(30, func(i int) soakSample {
			return soakSample{rss: int64(20*mb + i*mb), goroutines: 50 + 2*i, fds: 20 + i}
		}), 3},
		{"a backlog is not a leak", run(30, func(i int) soakSample {
			if i > 20 {
				return soakSample{rss: 200 * mb, queue: 5000}
			}
			return soakSample{}
		}), 0},
		{"too few samples", run(4, func(int) soakSample { return soakSample{} }), 1},
		{"offline samples do not count", func() []soakSample {
			s := run(30, func(int) soakSample { return soakSample{} })
			for i := range s {
				s[i].online = false
			}
			return s
		}(), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := judgeFlat(tc.samples)
			if len(v.problems) != tc.problems {
				t.Errorf("judgeFlat: %d problems %q, want %d (%s)", len(v.problems), v.problems, tc.problems, v)
			}
		})
	}
}

func TestSumMetrics(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
outpost_edgehub_queue_length{endpoint="$upstream",priority="0"} 12
outpost_edgehub_queue_length{endpoint="/modules/a b/inputs/i",priority="1"} 3
outpost_edgehub_queue_length_other 99
outpost_edgehub_queue_bytes{endpoint="$upstream",priority="0"} 1e+06
`
	got := sumMetrics(text, "go_goroutines", "outpost_edgehub_queue_length", "absent")
	want := map[string]float64{"go_goroutines": 42, "outpost_edgehub_queue_length": 15}
	if len(got) != len(want) {
		t.Fatalf("sumMetrics = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("sumMetrics[%q] = %v, want %v", k, got[k], v)
		}
	}
}
