package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Upstream throughput: the cases and the target of docs/peers-and-targets.md.
var upThroughputPublishers = []int{4, 16}

const (
	targetUpstreamRate = 15000 // msg/s, 1 KB, hub -> fake hub over the one link
	upPayload          = 1024
	upWindow           = 64 // publishes in flight per client
)

// The two ways a run sends the same traffic to the fake hub.
const (
	viaHub    = "hub"    // modules -> edge hub (stored, fsynced) -> one link -> fake hub
	viaDirect = "direct" // the same modules, each on its own TLS connection to the fake hub
)

// upThroughputRun is one measured run.
type upThroughputRun struct {
	Delivered float64 // messages captured by the fake hub per second
	Acked     float64 // messages acknowledged to the publishers per second
	CPU       rigCPU  // from the first publish to the last arrival
	Dups      int
}

// measureUpThroughput sends count messages of size bytes from publishers modules (each its
// share, upWindow in flight) through the edge hub (via viaHub) or straight to the fake hub
// (viaDirect), and measures the rate at which they arrive at the fake hub: count over the
// time from the first publish to the fake hub's capture of the count-th message. After the
// run it reads every captured message back and fails the run if one acknowledged message is
// missing or a sender's messages arrived out of order.
func measureUpThroughput(ctx context.Context, s *settings, via string, publishers, size, count int) (upThroughputRun, error) {
	r, err := startRig(ctx, s, rigOptions{modules: upModules("pub", publishers), direct: via == viaDirect})
	if err != nil {
		return upThroughputRun{}, err
	}
	defer r.stop()
	fail := newFailure()
	pubs, err := r.connectPublishersTo(0, publishers, upWindow, fail)
	if err != nil {
		return upThroughputRun{}, err
	}
	defer disconnectAll(nil, pubs)
	per := count / publishers
	count = per * publishers

	cpu0 := r.sampleCPU()
	start := cpu0.at
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked time.Time
	for i, p := range pubs {
		wg.Go(func() {
			for k := range per {
				if err := p.publish(upBody(size, i, uint64(k), time.Now())); err != nil {
					fail.set(fmt.Errorf("publisher %d: %w", i, err))
					return
				}
			}
			if err := p.flush(); err != nil {
				fail.set(fmt.Errorf("publisher %d: %w", i, err))
				return
			}
			mu.Lock()
			acked = upLater(acked, time.Now())
			mu.Unlock()
		})
	}
	type result struct {
		ev  cloudEvent
		err error
	}
	last := make(chan result, 1)
	go func() {
		ev, err := r.cloud.waitSeq(ctx, int64(count))
		last <- result{ev, err}
	}()
	var res result
	select {
	case res = <-last:
	case <-fail.ch:
		res.err = fail.get()
	}
	cpu1 := r.sampleCPU()
	if res.err != nil {
		fail.set(res.err)
		wg.Wait()
		return upThroughputRun{}, res.err
	}
	wg.Wait()
	if err := fail.get(); err != nil {
		return upThroughputRun{}, err
	}
	a, err := r.readBack(ctx, int64(count), per, publishers)
	if err != nil {
		return upThroughputRun{}, err
	}
	return upThroughputRun{
		Delivered: float64(count) / res.ev.Enqueued.Sub(start).Seconds(),
		Acked:     float64(count) / acked.Sub(start).Seconds(),
		CPU:       cpu0.to(cpu1),
		Dups:      a.Dups,
	}, nil
}

// readBack reads every message the fake hub captured (at least known of them) and checks
// them against per acknowledged messages from each of publishers senders.
func (r *upstreamRig) readBack(ctx context.Context, known int64, per, publishers int) (arrivals, error) {
	n, err := r.cloud.latest(ctx, known)
	if err != nil {
		return arrivals{}, err
	}
	evs, err := r.cloud.eventsRange(ctx, 0, n)
	if err != nil {
		return arrivals{}, err
	}
	acked := make([]int, publishers)
	for i := range acked {
		acked[i] = per
	}
	a := checkArrivals(evs, acked)
	if a.Missing > 0 || a.OutOfOrder > 0 || a.Unknown > 0 {
		return a, fmt.Errorf("the fake hub's captures do not match what was acknowledged: %s", a)
	}
	return a, nil
}

func upLater(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// upAlternate runs measure runs times for each way of sending (vias), alternating which
// goes first, each attempt with its own time limit and a fresh set-up. It returns the
// values of the runs that succeeded, by via, and a note for each that failed.
func upAlternate[T any](ctx context.Context, s *settings, runs int, vias []string, limit time.Duration, what string,
	measure func(ctx context.Context, via string) (T, error)) (map[string][]T, []string) {
	res := map[string][]T{}
	var notes []string
	for run := range runs {
		for j := range vias {
			via := vias[(run+j)%len(vias)]
			if ctx.Err() != nil {
				notes = append(notes, fmt.Sprintf("%s, %s, run %d: not run, the scenario's time limit was reached", what, viaLabel(via), run+1))
				continue
			}
			s.waitQuiet(ctx)
			rctx, cancel := context.WithTimeout(ctx, limit)
			v, err := measure(rctx, via)
			cancel()
			if err != nil {
				s.Log.Warn("run failed", "case", what, "via", via, "run", run+1, "err", err)
				notes = append(notes, fmt.Sprintf("%s, %s, run %d failed: %v", what, viaLabel(via), run+1, oneLine(err)))
				continue
			}
			s.Log.Info("run", "case", what, "via", via, "run", run+1, "result", fmt.Sprintf("%+v", v))
			res[via] = append(res[via], v)
		}
	}
	return res, notes
}

func viaLabel(via string) string {
	switch via {
	case viaHub:
		return "through the Outpost hub"
	case viaDirect:
		return "straight to the fake hub"
	}
	return via
}

func upstreamThroughputScenario() scenario {
	return scenario{
		ID:    "upstream",
		Title: "Upstream throughput over the one link",
		Limit: func(s *settings) time.Duration { return pick(s, 20*time.Minute, 4*time.Minute) },
		Run: func(ctx context.Context, s *settings, _ []*section) (*section, error) {
			return runUpstreamThroughput(ctx, s)
		},
	}
}

func runUpstreamThroughput(ctx context.Context, s *settings) (*section, error) {
	// At most 100,000: the fake hub keeps the last 100,000 captures, all read back.
	count := pick(s, 90000, 20000)
	sec := &section{ID: "upstream", Title: "Upstream throughput over the one link (QoS 1, 1 KB, modules → hub → fake IoT Hub)"}
	sec.Intro = fmt.Sprintf("Each run starts a fresh fake IoT Hub (`cmd/fakehub`, built from this tree) with the edge "+
		"device `edge1` and P modules registered, and a fresh edge hub (`%s`, the binary under test) connected to it over its one upstream link "+
		"(MQTT over TLS as `edge1/$edgeHub`, the on-behalf-of extension of docs/upstream.md), with the route "+
		"`FROM /messages/* INTO $upstream`. P modules connect to the hub (plain MQTT on 127.0.0.1, authenticated once "+
		"upstream) and send %s messages of %s in total at QoS 1, each at most %d awaiting their PUBACK; the hub stores "+
		"every message (fsync) before its PUBACK and forwards it over the link. The rate is the messages sent over the time from the "+
		"first publish to the fake hub's capture of the last message (its own clock, via a long poll of "+
		"`GET /fake/events`); afterwards every captured message is read back: a missing acknowledged message or one "+
		"out of order per sender fails the run. **Reference**: the same P modules with the same credentials publish the "+
		"same messages straight to the fake hub, each on its own TLS connection, as devices without an edge hub would. "+
		"It measures the same sink (the fake hub's MQTT server and capture) with the same clients, so the ratio is what "+
		"the edge hub costs in the path (durable store, then one link instead of P connections); a broker such as "+
		"Mosquitto would not do: it speaks neither the IoT Hub dialect nor the extension, and has no upstream. Medians of %d runs "+
		"(lowest–highest); CPU in %% of one core over the run. Only this scenario: `go run ./scripts/bench -scenarios upstream`.",
		relPath(s.Repo, s.Hub), thousands(float64(count)), sizeLabel(upPayload), upWindow, s.Runs)
	tb := table{Header: []string{"publishers", "through the hub msg/s", "straight to the fake hub msg/s", "ratio",
		"hub PUBACKed msg/s", "hub CPU", "fake hub CPU (hub run)", "fake hub CPU (direct run)", "others' CPU", "target", "verdict"}}
	var best struct {
		hub, ref summary
		pubs     int
		found    bool
	}
	for _, pubs := range upThroughputPublishers {
		what := fmt.Sprintf("upstream %s x%d", sizeLabel(upPayload), pubs)
		res, notes := upAlternate(ctx, s, s.Runs, []string{viaHub, viaDirect}, pick(s, 3*time.Minute, time.Minute), what,
			func(ctx context.Context, via string) (upThroughputRun, error) {
				return measureUpThroughput(ctx, s, via, pubs, upPayload, count)
			})
		sec.Notes = append(sec.Notes, notes...)
		hub := summarize(values(res[viaHub], func(r upThroughputRun) float64 { return r.Delivered }))
		ref := summarize(values(res[viaDirect], func(r upThroughputRun) float64 { return r.Delivered }))
		acked := summarize(values(res[viaHub], func(r upThroughputRun) float64 { return r.Acked }))
		hubCPU := summarize(values(res[viaHub], func(r upThroughputRun) float64 { return r.CPU.Hub }))
		cloudHub := summarize(values(res[viaHub], func(r upThroughputRun) float64 { return r.CPU.Cloud }))
		cloudRef := summarize(values(res[viaDirect], func(r upThroughputRun) float64 { return r.CPU.Cloud }))
		var other []float64
		dups := 0
		for _, v := range []string{viaHub, viaDirect} {
			for _, r := range res[v] {
				other = append(other, r.CPU.Other)
				dups += r.Dups
			}
		}
		if dups > 0 {
			sec.Notes = append(sec.Notes, fmt.Sprintf("%s: %d duplicate arrivals over all runs (QoS 1 allows them; none is expected without a reconnection).", what, dups))
		}
		if hub.N > 0 && acked.Median < 1.1*hub.Median {
			sec.Notes = append(sec.Notes, fmt.Sprintf("%d publishers: the hub acknowledged (stored, fsync before each "+
				"PUBACK) the publishes at %s msg/s and the link forwarded them as fast: the link kept up with ingest. "+
				"Its own rate, reading a stored backlog, is in the backlog drain section.", pubs, thousands(acked.Median)))
		}
		verdictCell := "–"
		if hub.N > 0 {
			verdictCell = verdict(hub.Median >= targetUpstreamRate)
			if !best.found || hub.Median > best.hub.Median {
				best.hub, best.ref, best.pubs, best.found = hub, ref, pubs, true
			}
		}
		tb.Rows = append(tb.Rows, []string{fmt.Sprint(pubs), rate(hub), rate(ref), ratio(hub, ref), rate(acked),
			percent(hubCPU), percent(cloudHub), percent(cloudRef), percent(summarize(other)),
			fmt.Sprintf("≥ %s msg/s", thousands(targetUpstreamRate)), verdictCell})
	}
	sec.Tables = []table{tb}
	area := "upstream throughput, hub → fake hub over the one link, 1 KB, QoS 1"
	c := check{ID: "upstream-throughput", Area: area, Target: "≥ 15,000 msg/s", Measured: "no successful run"}
	if best.found {
		c.Measured = fmt.Sprintf("%s msg/s (best case: %d publishers; straight to the fake hub: %s msg/s, %s)",
			thousands(best.hub.Median), best.pubs, thousands(best.ref.Median), ratio(best.hub, best.ref))
		c.Met = best.hub.Median >= targetUpstreamRate
	}
	sec.Checks = append(sec.Checks, c)
	return sec, nil
}
