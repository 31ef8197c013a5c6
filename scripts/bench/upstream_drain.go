package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Backlog drain: the target of docs/peers-and-targets.md and the traffic.
const (
	targetDrainRate  = 30000 // msg/s, while live traffic keeps flowing
	targetBacklog    = 1_000_000
	drainBacklogPubs = 8    // modules whose messages pile up while the network is cut
	drainLivePubs    = 4    // modules sending live traffic
	drainLiveRate    = 1000 // live msg/s over all live modules
	drainSample      = 250 * time.Millisecond
)

// drainRun is one measured drain.
type drainRun struct {
	Backlog    int
	Ingest     float64       // backlog messages PUBACKed by the hub per second, network cut
	Drain      float64       // backlog messages per second, first to last backlog arrival
	Link       float64       // every message (backlog and live) per second over the drain
	Took       time.Duration // first to last backlog arrival
	FirstAfter time.Duration // network restored -> first message captured
	Live       liveStats     // live messages sent during the drain, send -> capture
	Base       liveStats     // the same live traffic before the outage, no backlog
	CPU        rigCPU        // over the drain
	Dups       int
}

// measureDrain measures the drain of a backlog with live traffic flowing:
//
//  1. baseline: the live modules send drainLiveRate msg/s for a few seconds; every one of
//     their messages is read back from the fake hub for the latency without a backlog;
//  2. the fake hub cuts the network; the backlog modules publish backlog messages as fast
//     as the hub takes them (each acknowledged once stored): they pile up in the store;
//  3. the network is restored and the live traffic starts again at once; while the link
//     drains the backlog, the newest captured messages are sampled every 250 ms for the
//     live messages' latency; once the backlog is in, the live traffic runs one more
//     second and stops;
//  4. every acknowledged message must arrive; the drain runs from the first message
//     captured after the restore to the last backlog message captured (both by the fake
//     hub's clock), found by reading the newest captures back.
func measureDrain(ctx context.Context, s *settings, backlog int) (drainRun, error) {
	mods := append(upModules("bl", drainBacklogPubs), upModules("lv", drainLivePubs)...)
	r, err := startRig(ctx, s, rigOptions{modules: mods})
	if err != nil {
		return drainRun{}, err
	}
	defer r.stop()
	fail := newFailure()
	bpubs, err := r.connectPublishersTo(0, drainBacklogPubs, upWindow, fail)
	if err != nil {
		return drainRun{}, err
	}
	defer disconnectAll(nil, bpubs)
	lpubs, err := r.connectPublishersTo(drainBacklogPubs, len(mods), upWindow, fail)
	if err != nil {
		return drainRun{}, err
	}
	defer disconnectAll(nil, lpubs)
	live := newLiveTraffic(lpubs, drainBacklogPubs, drainLiveRate, upPayload, fail)
	out := drainRun{Backlog: backlog}

	// 1. Baseline.
	live.start()
	if !upSleep(ctx, pick(s, 5*time.Second, 3*time.Second)) {
		return out, ctx.Err()
	}
	if err := live.halt(); err != nil {
		return out, err
	}
	b0 := int64(live.sent())
	if _, err := r.cloud.waitSeq(ctx, b0); err != nil {
		return out, err
	}
	evs, err := r.cloud.eventsRange(ctx, 0, b0)
	if err != nil {
		return out, err
	}
	var base liveLatencies
	for _, e := range evs {
		if k, sent, d, ok := live.latency(e); ok {
			base.add(k, sent, d)
		}
	}
	out.Base = base.stats()
	s.Log.Info("drain: baseline done", "live_messages", b0, "p99", out.Base.P99)

	// 2. The backlog, network cut.
	if err := r.cloud.cut(ctx); err != nil {
		return out, err
	}
	if err := r.cloud.waitLink(ctx, false); err != nil {
		return out, err
	}
	per := backlog / drainBacklogPubs
	backlog = per * drainBacklogPubs
	out.Backlog = backlog
	t0 := time.Now()
	var wg sync.WaitGroup
	for i, p := range bpubs {
		wg.Go(func() {
			for k := range per {
				if err := p.publish(upBody(upPayload, i, uint64(k), time.Now())); err != nil {
					fail.set(fmt.Errorf("backlog publisher %d: %w", i, err))
					return
				}
			}
			if err := p.flush(); err != nil {
				fail.set(fmt.Errorf("backlog publisher %d: %w", i, err))
			}
		})
	}
	wg.Wait()
	if err := fail.get(); err != nil {
		return out, err
	}
	out.Ingest = float64(backlog) / time.Since(t0).Seconds()
	s.Log.Info("drain: backlog stored, network cut", "messages", backlog, "took", time.Since(t0).Round(time.Millisecond))
	if n, err := r.cloud.latest(ctx, b0); err != nil || n != b0 {
		return out, fmt.Errorf("the fake hub captured %d messages while the network was cut, want none (%v)", n-b0, err)
	}

	// 3. Restore, live traffic, sample.
	cpu0 := r.sampleCPU()
	restored := cpu0.at
	if err := r.cloud.restore(ctx); err != nil {
		return out, err
	}
	sentBefore := live.sent()
	live.start()
	first, err := r.cloud.waitSeq(ctx, b0+1)
	if err != nil {
		return out, err
	}
	out.FirstAfter = first.Enqueued.Sub(restored)
	s.Log.Info("drain: first message after the restore", "after", out.FirstAfter.Round(time.Millisecond))
	var during liveLatencies
	known, read := b0+1, b0
	progress := time.Now()
	for {
		n, err := r.cloud.latest(ctx, known)
		if err != nil {
			return out, err
		}
		known = n
		// The newest captures, at most a page: a sample of the live messages that arrived
		// last (all of them while the drain is slower than a page per sample).
		tail, err := r.cloud.eventsRange(ctx, max(read, n-maxEventsPage), n)
		if err != nil {
			return out, err
		}
		read = n
		if time.Since(progress) >= 5*time.Second {
			progress = time.Now()
			s.Log.Info("drain: progress", "captured_since_restore", n-b0, "live_published", live.sent()-sentBefore)
		}
		for _, e := range tail {
			// Sent once the link was back: the messages sent before waited for the link
			// (restore → first message, measured apart), not behind the backlog.
			if k, sent, d, ok := live.latency(e); ok && !sent.Before(first.Enqueued) {
				during.add(k, sent, d)
			}
		}
		// Live messages published so far bound those captured, and at most a window per
		// live module is on its way: once this holds, at most that many backlog messages
		// are still to come. The live traffic goes on for a second more; the drain's end
		// is read back from the captures below.
		inFlight := int64(drainLivePubs * upWindow)
		if n-b0-int64(live.sent()-sentBefore) >= int64(backlog)-inFlight {
			break
		}
		if err := fail.get(); err != nil {
			return out, err
		}
		if !upSleep(ctx, drainSample) {
			return out, ctx.Err()
		}
	}
	cpu1 := r.sampleCPU()
	out.CPU = cpu0.to(cpu1)
	upSleep(ctx, time.Second) // live traffic after the drain, so that its end is in it
	if err := live.halt(); err != nil {
		return out, err
	}

	// 4. Everything in; the drain's end.
	total := b0 + int64(backlog) + int64(live.sent()-sentBefore)
	if _, err := r.cloud.waitSeq(ctx, total); err != nil {
		return out, err
	}
	n, err := r.cloud.latest(ctx, total)
	if err != nil {
		return out, err
	}
	out.Dups = int(n - total)
	lastBacklog, err := r.cloud.lastMatching(ctx, n, b0, func(e cloudEvent) bool {
		sender, _, _, ok := parseUpBody(e.Body)
		return ok && sender < drainBacklogPubs
	})
	if err != nil {
		return out, err
	}
	sample := during.stats()
	if s.Log.Enabled(ctx, slog.LevelDebug) {
		s.Log.Debug("drain: live latency by send time", "buckets", during.byTime(first.Enqueued, 250*time.Millisecond))
	}
	out.Took = lastBacklog.Enqueued.Sub(first.Enqueued)
	out.Drain = float64(backlog) / out.Took.Seconds()
	out.Link = float64(lastBacklog.Seq-b0) / out.Took.Seconds()
	out.Live = sample
	if sample.N == 0 {
		return out, fmt.Errorf("no live message was sampled during the drain")
	}
	return out, nil
}

// lastMatching returns the newest captured event with seq in (floor, upto] that match
// accepts, reading back a page at a time.
func (c *fakeCloud) lastMatching(ctx context.Context, upto, floor int64, match func(cloudEvent) bool) (cloudEvent, error) {
	for upto > floor {
		from := max(floor, upto-maxEventsPage)
		evs, err := c.eventsRange(ctx, from, upto)
		if err != nil {
			return cloudEvent{}, err
		}
		for i := len(evs) - 1; i >= 0; i-- {
			if match(evs[i]) {
				return evs[i], nil
			}
		}
		upto = from
	}
	return cloudEvent{}, fmt.Errorf("no matching event after seq %d", floor)
}

// upSleep waits d; false if ctx ended first.
func upSleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func upstreamDrainScenario() scenario {
	return scenario{
		ID:    "upstream-drain",
		Title: "Backlog drain with live traffic",
		Limit: func(s *settings) time.Duration { return pick(s, 45*time.Minute, 5*time.Minute) },
		Run: func(ctx context.Context, s *settings, _ []*section) (*section, error) {
			return runDrainScenario(ctx, s)
		},
	}
}

// drainRuns is how many drains a run of the harness measures: each of a million messages
// takes minutes (most of it building the backlog).
func drainRuns(s *settings) int { return min(s.Runs, 3) }

func runDrainScenario(ctx context.Context, s *settings) (*section, error) {
	backlog := pick(s, targetBacklog, 100_000)
	runs := drainRuns(s)
	sec := &section{ID: "upstream-drain", Title: "Backlog drain after an outage, live traffic flowing (QoS 1, 1 KB)"}
	sec.Intro = fmt.Sprintf("Each run starts a fresh fake IoT Hub and edge hub as in the upstream throughput section, "+
		"with %d backlog modules and %d live modules. First the live modules send %s msg/s for a few seconds "+
		"(the **reference**: the same live traffic's latency, send → capture by the fake hub, with no backlog). Then the "+
		"fake hub cuts the network (`POST /fake/control/network/cut`) and the backlog modules publish %s messages, "+
		"acknowledged by the hub once stored; they pile up in its store. The network is restored "+
		"(`.../network/restore`) and the live traffic starts again at once. The drain rate is the backlog over the time "+
		"from the first message the fake hub captured after the restore to the last backlog message it captured (the "+
		"fake hub's clock, read back from its captures); \"link\" counts the live messages too. The latency of the live "+
		"messages sent during the drain (once the link was back) is sampled from the newest captures every %s. Every acknowledged message must arrive "+
		"(a run fails otherwise); duplicates are counted. Medians of %d runs (lowest–highest). Only this scenario: "+
		"`go run ./scripts/bench -scenarios upstream-drain`.",
		drainBacklogPubs, drainLivePubs, thousands(drainLiveRate), thousands(float64(backlog)), drainSample, runs)
	if backlog < targetBacklog {
		sec.Intro += fmt.Sprintf(" **Quick mode: a backlog of %s instead of %s.**", thousands(float64(backlog)), thousands(targetBacklog))
	}
	res, notes := upAlternate(ctx, s, runs, []string{viaHub}, pick(s, 12*time.Minute, 3*time.Minute), "drain",
		func(ctx context.Context, _ string) (drainRun, error) { return measureDrain(ctx, s, backlog) })
	sec.Notes = append(sec.Notes, notes...)
	rs := res[viaHub]
	drain := summarize(values(rs, func(r drainRun) float64 { return r.Drain }))
	link := summarize(values(rs, func(r drainRun) float64 { return r.Link }))
	ingest := summarize(values(rs, func(r drainRun) float64 { return r.Ingest }))
	took := summarize(values(rs, func(r drainRun) float64 { return float64(r.Took) }))
	firstAfter := summarize(values(rs, func(r drainRun) float64 { return float64(r.FirstAfter) }))
	lp50 := summarize(values(rs, func(r drainRun) float64 { return float64(r.Live.P50) }))
	lp99 := summarize(values(rs, func(r drainRun) float64 { return float64(r.Live.P99) }))
	lmax := summarize(values(rs, func(r drainRun) float64 { return float64(r.Live.Max) }))
	bp50 := summarize(values(rs, func(r drainRun) float64 { return float64(r.Base.P50) }))
	bp99 := summarize(values(rs, func(r drainRun) float64 { return float64(r.Base.P99) }))
	hubCPU := summarize(values(rs, func(r drainRun) float64 { return r.CPU.Hub }))
	cloudCPU := summarize(values(rs, func(r drainRun) float64 { return r.CPU.Cloud }))
	other := summarize(values(rs, func(r drainRun) float64 { return r.CPU.Other }))
	samples, dups := 0, 0
	for _, r := range rs {
		samples += r.Live.N
		dups += r.Dups
	}
	sec.Tables = []table{{
		Header: []string{"backlog", "drain msg/s", "link msg/s (with live)", "drain time", "restore → first message",
			"backlog built at (msg/s, PUBACKed)", "hub CPU", "fake hub CPU", "others' CPU", "target", "verdict"},
		Rows: [][]string{{thousands(float64(backlog)), rate(drain), rate(link), upSeconds(took), upSeconds(firstAfter),
			rate(ingest), percent(hubCPU), percent(cloudCPU), percent(other),
			fmt.Sprintf("≥ %s msg/s", thousands(targetDrainRate)), drainVerdict(drain, backlog)}},
	}, {
		Caption: fmt.Sprintf("Live traffic (%s msg/s, %d modules), send → capture by the fake hub, ms:", thousands(drainLiveRate), drainLivePubs),
		Header:  []string{"", "p50", "p99", "max"},
		Rows: [][]string{
			{"during the drain", millis(lp50), millis(lp99), millis(lmax)},
			{"reference: no backlog", millis(bp50), millis(bp99), "–"},
		},
	}}
	sec.Notes = append(sec.Notes, fmt.Sprintf("%d live latency samples during the drains; %d duplicate arrivals over all runs.", samples, dups))
	c := check{ID: "upstream-drain", Area: "backlog drain after an outage, live traffic flowing",
		Target: "≥ 30,000 msg/s (1,000,000-message backlog)", Measured: "no successful run"}
	if drain.N > 0 {
		c.Measured = fmt.Sprintf("%s msg/s, backlog %s; live p99 %s ms (%s ms without backlog)",
			thousands(drain.Median), thousands(float64(backlog)), ms(lp99.Median), ms(bp99.Median))
		c.Met = drain.Median >= targetDrainRate && backlog >= targetBacklog
		if backlog < targetBacklog {
			c.Measured += fmt.Sprintf(" (quick mode: a backlog of %s, not the target's %s)", thousands(float64(backlog)), thousands(targetBacklog))
			c.NotMeasured = true
		}
	}
	sec.Checks = append(sec.Checks, c)
	return sec, nil
}

// drainVerdict is the table's verdict: none for a backlog smaller than the target's.
func drainVerdict(drain summary, backlog int) string {
	if drain.N > 0 && backlog < targetBacklog {
		return "– (backlog below the target's)"
	}
	return upVerdict(drain.N > 0 && drain.Median >= targetDrainRate, drain.N)
}

// upSeconds formats a summary of durations in nanoseconds as seconds.
func upSeconds(s summary) string {
	if s.N == 0 {
		return "failed"
	}
	f := func(ns float64) string { return fmt.Sprintf("%.2f s", ns/float64(time.Second)) }
	if s.N == 1 {
		return f(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.Median), f(s.Min), f(s.Max))
}

func upVerdict(met bool, n int) string {
	if n == 0 {
		return "–"
	}
	return verdict(met)
}
