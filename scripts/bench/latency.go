package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// latencyRun is one run of paced traffic: end-to-end latency from just before the
// publisher's Publish call to the subscriber's handler, over the messages sent after the
// warm-up.
type latencyRun struct {
	P50, P99, Max time.Duration
	Samples       int
	Offered       float64 // the send rate achieved, msg/s
	CPU           cpuUse  // over the whole run
}

// measureLatency paces publishers clients of b at rate messages per second in total for
// warmup+dur, sends messages of size bytes, and measures publish -> receive latency over
// those sent after warmup. Publishing is open-loop: a publisher does not wait for its
// PUBACK before the next send (up to window in flight), so a slow broker shows as
// latency, not as a lower rate. The run fails when not every message arrives before ctx
// ends.
func measureLatency(ctx context.Context, b *broker, publishers, size, rate int, warmup, dur time.Duration, window int) (latencyRun, error) {
	fail := newFailure()
	per := int(float64(rate) * (warmup + dur).Seconds() / float64(publishers))
	count := per * publishers
	interval := time.Duration(float64(time.Second) * float64(publishers) / float64(rate))
	r, err := subscribe(b.addr, b.subscriber, count, fail)
	if err != nil {
		return latencyRun{}, err
	}
	pubs, err := connectPublishers(b, publishers, window, fail)
	if err != nil {
		disconnectAll(r, nil)
		return latencyRun{}, err
	}
	defer disconnectAll(r, pubs)

	cpu0, err := sampleCPU(b.proc.pid())
	if err != nil {
		return latencyRun{}, err
	}
	start := cpu0.at
	r.recordLatency(start+warmup, int(float64(rate)*dur.Seconds()))
	var wg sync.WaitGroup
	var endMu sync.Mutex
	var sendEnd time.Duration
	for i, p := range pubs {
		// Publishers start evenly spread over one interval, not all at once.
		offset := interval * time.Duration(i) / time.Duration(publishers)
		wg.Go(func() {
			for k := range per {
				next := start + offset + time.Duration(k)*interval
				if d := next - sinceEpoch(); d > 0 {
					time.Sleep(d)
				}
				if fail.get() != nil {
					return
				}
				id := uint64(i*per + k)
				if err := p.publish(payload(size, id, sinceEpoch())); err != nil {
					fail.set(fmt.Errorf("publisher %d: %w", i, err))
					return
				}
			}
			endMu.Lock()
			sendEnd = max(sendEnd, sinceEpoch())
			endMu.Unlock()
			if err := p.flush(); err != nil {
				fail.set(fmt.Errorf("publisher %d: %w", i, err))
			}
		})
	}
	complete := r.wait(ctx, fail)
	cpu1, cpuErr := sampleCPU(b.proc.pid())
	unique, dups, unknown, _ := r.counts()
	if !complete {
		fail.set(ctx.Err())
	}
	wg.Wait()
	switch {
	case !complete:
		return latencyRun{}, fmt.Errorf("%d of %d messages delivered (%d duplicates, %d unknown) when the run ended: %v",
			unique, count, dups, unknown, fail.get())
	case fail.get() != nil:
		return latencyRun{}, fail.get()
	case cpuErr != nil:
		return latencyRun{}, cpuErr
	}
	l := r.takeLatencies()
	if len(l) == 0 {
		return latencyRun{}, fmt.Errorf("no message sent after the %v warm-up", warmup)
	}
	return latencyRun{
		P50: percentile(l, 50), P99: percentile(l, 99), Max: l[len(l)-1],
		Samples: len(l), Offered: float64(count) / (sendEnd - start).Seconds(), CPU: cpu0.use(cpu1),
	}, nil
}

// latencyCase is one paced load: rate messages per second in total from publishers
// clients.
type latencyCase struct {
	Rate, Publishers int
}

// Latency cases. One module at 1,000 msg/s is the target's case; at 5,000 msg/s the load
// is spread over 4 publishers, since the hub commits one client's publishes one after
// another (runtime/hub/ingest.go) and a single client's durable rate is about 2,000-3,000
// msg/s on this class of machine: one publisher would measure that queue, not latency.
var latencyCases = []latencyCase{{Rate: 1000, Publishers: 1}, {Rate: 5000, Publishers: 4}}

const (
	latencySize     = 1024
	latencyWindow   = 1000 // publishes in flight per publisher: effectively open-loop
	targetLatencyMS = 2.0  // p99 at 1,000 msg/s
)

func latencyScenario(kinds []brokerKind) scenario {
	return scenario{
		ID:    "latency",
		Title: "Latency at fixed rates",
		Limit: func(s *settings) time.Duration { return pick(s, 10*time.Minute, 2*time.Minute) },
		Run: func(ctx context.Context, s *settings, _ []*section) (*section, error) {
			return runLatencyScenario(ctx, s, kinds)
		},
	}
}

func runLatencyScenario(ctx context.Context, s *settings, kinds []brokerKind) (*section, error) {
	warmup, dur := pick(s, time.Second, 500*time.Millisecond), pick(s, 5*time.Second, 2*time.Second)
	sec := &section{ID: "latency", Title: "Latency at fixed rates (QoS 1, 1 KB, publish → receive)"}
	sec.Intro = fmt.Sprintf("Publishers are paced open-loop (a send does not wait for the previous PUBACK) for %v; "+
		"the latency of each message sent after a %v warm-up is the time from just before the publisher's `Publish` "+
		"call to the subscriber's message handler, both in the harness process (the send time travels in the payload). "+
		"Same routes and clients as the throughput runs. p50 and p99 are per run; the table shows their medians over %d "+
		"runs, (lowest–highest) in brackets.", dur, warmup, s.Runs)
	tb := table{Header: []string{"rate", "publishers", kinds[0].Label + " p50 ms", kinds[0].Label + " p99 ms",
		kinds[1].Label + " p50 ms", kinds[1].Label + " p99 ms", "hub: rate sent", "hub CPU", "others' CPU", "target", "verdict"}}
	var clients, other []float64
	for _, c := range latencyCases {
		what := fmt.Sprintf("latency %d msg/s x%d", c.Rate, c.Publishers)
		res, notes := sideBySide(ctx, s, kinds, c.Publishers, warmup+dur+30*time.Second, what,
			func(ctx context.Context, b *broker) (latencyRun, error) {
				return measureLatency(ctx, b, c.Publishers, latencySize, c.Rate, warmup, dur, latencyWindow)
			})
		sec.Notes = append(sec.Notes, notes...)
		var caseOther []float64
		for _, k := range kinds {
			for _, r := range res[k.ID] {
				clients = append(clients, r.CPU.Clients)
				caseOther = append(caseOther, r.CPU.Other)
			}
		}
		other = append(other, caseOther...)
		offered := summarize(values(res[kinds[0].ID], func(r latencyRun) float64 { return r.Offered }))
		hubCPU := summarize(values(res[kinds[0].ID], func(r latencyRun) float64 { return r.CPU.Broker }))
		p := func(id string, f func(latencyRun) time.Duration) summary {
			return summarize(values(res[id], func(r latencyRun) float64 { return float64(f(r)) }))
		}
		hub50, hub99 := p(kinds[0].ID, func(r latencyRun) time.Duration { return r.P50 }), p(kinds[0].ID, func(r latencyRun) time.Duration { return r.P99 })
		ref50, ref99 := p(kinds[1].ID, func(r latencyRun) time.Duration { return r.P50 }), p(kinds[1].ID, func(r latencyRun) time.Duration { return r.P99 })
		target, vcell := "–", "–"
		if c.Rate == 1000 {
			met := hub99.N > 0 && hub99.Median <= targetLatencyMS*float64(time.Millisecond)
			target, vcell = "p99 ≤ 2 ms", verdict(met)
			measured := "no successful run"
			if hub99.N > 0 {
				measured = fmt.Sprintf("p99 %s ms (p50 %s ms; %s p99 %s ms)", ms(hub99.Median), ms(hub50.Median), kinds[1].Label, ms(ref99.Median))
			}
			sec.Checks = append(sec.Checks, check{ID: "latency-1000", Area: "latency module → module at 1,000 msg/s",
				Target: "p99 ≤ 2 ms", Measured: measured, Met: met})
		}
		tb.Rows = append(tb.Rows, []string{thousands(float64(c.Rate)) + " msg/s", fmt.Sprint(c.Publishers),
			millis(hub50), millis(hub99), millis(ref50), millis(ref99), rate(offered) + " msg/s", percent(hubCPU), percent(summarize(caseOther)), target, vcell})
	}
	sec.Tables = []table{tb}
	sec.Notes = append([]string{"\"hub: rate sent\" is the rate the publishers achieved against the hub: below the asked rate, " +
		"the hub could not keep up and its PUBACKs throttled the publishers (at most " + fmt.Sprint(latencyWindow) +
		" publishes in flight each).", cpuNote(clients, other)}, sec.Notes...)
	return sec, nil
}
