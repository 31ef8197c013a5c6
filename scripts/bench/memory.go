package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// memoryRun is a broker's resident memory idle and under load.
type memoryRun struct {
	Idle   int64 // VmRSS after idleWait with no client, bytes
	Loaded int64 // highest VmRSS sampled while the clients connected and sent, bytes
	Peak   int64 // VmHWM at the end of the run (at least Loaded), bytes
	P99    time.Duration
}

// rssSampleEvery is the period of VmRSS samples under load.
const rssSampleEvery = 200 * time.Millisecond

// measureMemory reads b's RSS idle (after idleWait), then connects clients publishers
// and the subscriber and sends rate messages per second in total, of size bytes, for
// dur, sampling VmRSS all along.
func measureMemory(ctx context.Context, b *broker, clients, size, rate int, idleWait, dur time.Duration) (memoryRun, error) {
	select {
	case <-time.After(idleWait):
	case <-ctx.Done():
		return memoryRun{}, ctx.Err()
	}
	idle, err := readMemory(b.proc.pid())
	if err != nil {
		return memoryRun{}, err
	}
	var (
		wg      sync.WaitGroup
		loaded  int64
		readErr error
	)
	stop := make(chan struct{})
	wg.Go(func() {
		t := time.NewTicker(rssSampleEvery)
		defer t.Stop()
		for {
			m, err := readMemory(b.proc.pid())
			if err != nil {
				readErr = err
				return
			}
			loaded = max(loaded, m.RSS)
			select {
			case <-t.C:
			case <-stop:
				return
			}
		}
	})
	lat, err := measureLatency(ctx, b, clients, size, rate, 0, dur, 1000)
	close(stop)
	wg.Wait()
	if err != nil {
		return memoryRun{}, err
	}
	if readErr != nil {
		return memoryRun{}, readErr
	}
	end, err := readMemory(b.proc.pid())
	if err != nil {
		return memoryRun{}, err
	}
	loaded = max(loaded, end.RSS)
	// The kernel updates VmHWM lazily (when the RSS shrinks, on unmap), so it can lag the
	// RSS just sampled: the peak is at least what was seen.
	return memoryRun{Idle: idle.RSS, Loaded: loaded, Peak: max(end.Peak, loaded), P99: lat.P99}, nil
}

// The memory target's load: 100 clients sending 1,000 msg/s in total.
const (
	memoryClients  = 100
	memoryRate     = 1000
	memorySize     = 1024
	targetMemoryMB = 40 // agent + hub, read as MiB; the agent-memory scenario measures both together
)

func memoryScenario(kinds []brokerKind) scenario {
	return scenario{
		ID:    "memory",
		Title: "Memory",
		Limit: func(s *settings) time.Duration { return pick(s, 10*time.Minute, 2*time.Minute) },
		Run: func(ctx context.Context, s *settings, _ []*section) (*section, error) {
			return runMemoryScenario(ctx, s, kinds)
		},
	}
}

func runMemoryScenario(ctx context.Context, s *settings, kinds []brokerKind) (*section, error) {
	idleWait, dur := pick(s, 2*time.Second, time.Second), pick(s, 10*time.Second, 3*time.Second)
	sec := &section{ID: "memory", Title: "Memory (RSS) idle and with 100 clients"}
	sec.Intro = fmt.Sprintf("Resident memory of the broker process from `/proc/<pid>/status`: VmRSS %v after start with "+
		"no client; then %d publishers and one subscriber connect and send %s msg/s in total (1 KB, QoS 1, routed as in "+
		"the throughput runs) for %v, VmRSS sampled every %v (the highest sample is shown), and VmHWM (the peak) at the "+
		"end. Medians of %d runs.", idleWait, memoryClients, thousands(memoryRate), dur, rssSampleEvery, s.Runs)
	res, notes := sideBySide(ctx, s, kinds, memoryClients, idleWait+dur+60*time.Second, "memory",
		func(ctx context.Context, b *broker) (memoryRun, error) {
			return measureMemory(ctx, b, memoryClients, memorySize, memoryRate, idleWait, dur)
		})
	sec.Notes = notes
	get := func(id string, f func(memoryRun) int64) summary {
		return summarize(values(res[id], func(r memoryRun) float64 { return float64(f(r)) }))
	}
	hubLoaded := get(kinds[0].ID, func(r memoryRun) int64 { return r.Loaded })
	met := hubLoaded.N > 0 && hubLoaded.Median <= targetMemoryMB*(1<<20)
	tb := table{Header: []string{"", kinds[0].Label, kinds[1].Label, "target", "verdict"}}
	row := func(name string, f func(memoryRun) int64, target, v string) {
		tb.Rows = append(tb.Rows, []string{name, mebibytes(get(kinds[0].ID, f)), mebibytes(get(kinds[1].ID, f)), target, v})
	}
	row("idle RSS", func(r memoryRun) int64 { return r.Idle }, "–", "–")
	row(fmt.Sprintf("RSS, %d clients at %s msg/s", memoryClients, thousands(memoryRate)), func(r memoryRun) int64 { return r.Loaded },
		"agent + hub ≤ 40 MB (hub alone here)", verdict(met))
	row("peak RSS (VmHWM)", func(r memoryRun) int64 { return r.Peak }, "–", "–")
	p99 := func(id string) summary {
		return summarize(values(res[id], func(r memoryRun) float64 { return float64(r.P99) }))
	}
	tb.Rows = append(tb.Rows, []string{"p99 latency under this load", millis(p99(kinds[0].ID)) + " ms", millis(p99(kinds[1].ID)) + " ms", "–", "–"})
	sec.Tables = []table{tb}
	measured := "no successful run"
	if hubLoaded.N > 0 {
		measured = fmt.Sprintf("hub %s alone, started by the harness (agent + hub: the agent-memory scenario)", mebibytes(hubLoaded))
	}
	sec.Checks = append(sec.Checks, check{ID: "memory", Area: "memory with 100 clients at 1,000 msg/s",
		Target: "agent + hub ≤ 40 MB RSS", Measured: measured, Met: met})
	return sec, nil
}
