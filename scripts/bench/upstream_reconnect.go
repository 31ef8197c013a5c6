package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Reconnection after an outage: the target of docs/peers-and-targets.md and the traffic.
const (
	targetFirstAfter  = 5 * time.Second // network back -> first message delivered
	reconnectPubs     = 2
	reconnectLiveRate = 100 // msg/s during the whole run, outage included
)

// reconnectRun is one measured outage.
type reconnectRun struct {
	LinkUp   time.Duration // network restored -> the fake hub lists the hub's link again
	FirstMsg time.Duration // network restored -> first message captured
	CatchUp  time.Duration // network restored -> as many messages captured as were published before it
}

// measureReconnect cuts the network for outage while two modules keep sending through the
// hub (their messages are stored meanwhile), restores it, and times the link's return, the
// first captured message and the capture of everything published before the restore. All
// acknowledged messages must arrive, in order per sender.
func measureReconnect(ctx context.Context, s *settings, outage time.Duration) (reconnectRun, error) {
	r, err := startRig(ctx, s, rigOptions{modules: upModules("rc", reconnectPubs)})
	if err != nil {
		return reconnectRun{}, err
	}
	defer r.stop()
	fail := newFailure()
	pubs, err := r.connectPublishersTo(0, reconnectPubs, upWindow, fail)
	if err != nil {
		return reconnectRun{}, err
	}
	defer disconnectAll(nil, pubs)
	live := newLiveTraffic(pubs, 0, reconnectLiveRate, upPayload, fail)
	live.start()
	stopped := false
	defer func() {
		if !stopped {
			_ = live.halt()
		}
	}()
	if _, err := r.cloud.waitSeq(ctx, 20); err != nil {
		return reconnectRun{}, err
	}
	if err := r.cloud.cut(ctx); err != nil {
		return reconnectRun{}, err
	}
	if err := r.cloud.waitLink(ctx, false); err != nil {
		return reconnectRun{}, err
	}
	if !upSleep(ctx, outage) {
		return reconnectRun{}, ctx.Err()
	}
	n0, err := r.cloud.latest(ctx, 20)
	if err != nil {
		return reconnectRun{}, err
	}
	published := int64(live.sent())
	restored := time.Now()
	if err := r.cloud.restore(ctx); err != nil {
		return reconnectRun{}, err
	}
	linkUp := make(chan time.Duration, 1)
	go func() {
		if err := r.cloud.waitLink(ctx, true); err != nil {
			linkUp <- -1
			return
		}
		linkUp <- time.Since(restored)
	}()
	first, err := r.cloud.waitSeq(ctx, n0+1)
	if err != nil {
		return reconnectRun{}, err
	}
	caught, err := r.cloud.waitSeq(ctx, published)
	if err != nil {
		return reconnectRun{}, err
	}
	var out reconnectRun
	select {
	case out.LinkUp = <-linkUp:
	case <-ctx.Done():
		return out, ctx.Err()
	}
	out.FirstMsg = first.Enqueued.Sub(restored)
	out.CatchUp = caught.Enqueued.Sub(restored)
	stopped = true
	if err := live.halt(); err != nil {
		return out, err
	}
	sent := live.counts()
	total := int64(0)
	for _, n := range sent {
		total += int64(n)
	}
	if _, err := r.cloud.waitSeq(ctx, total); err != nil {
		return out, err
	}
	n, err := r.cloud.latest(ctx, total)
	if err != nil {
		return out, err
	}
	evs, err := r.cloud.eventsRange(ctx, 0, n)
	if err != nil {
		return out, err
	}
	if a := checkArrivals(evs, sent); a.Missing > 0 || a.OutOfOrder > 0 || a.Unknown > 0 {
		return out, fmt.Errorf("the fake hub's captures do not match what was acknowledged: %s", a)
	}
	return out, nil
}

func upstreamReconnectScenario() scenario {
	return scenario{
		ID:    "upstream-reconnect",
		Title: "Network back to first delivered message",
		Limit: func(s *settings) time.Duration { return pick(s, 25*time.Minute, 3*time.Minute) },
		Run: func(ctx context.Context, s *settings, _ []*section) (*section, error) {
			return runReconnectScenario(ctx, s)
		},
	}
}

// reconnectOutages are the outages measured: the longer ones let the link's reconnection
// back-off grow to its cap.
func reconnectOutages(s *settings) []time.Duration {
	return pick(s, []time.Duration{3 * time.Second, 15 * time.Second, 45 * time.Second},
		[]time.Duration{3 * time.Second, 15 * time.Second})
}

func runReconnectScenario(ctx context.Context, s *settings) (*section, error) {
	outages := reconnectOutages(s)
	sec := &section{ID: "upstream-reconnect", Title: "Network back → first delivered message (after an outage)"}
	var names []string
	for _, o := range outages {
		names = append(names, o.String())
	}
	sec.Intro = fmt.Sprintf("Each run starts a fresh fake IoT Hub and edge hub as in the upstream throughput section; "+
		"%d modules send %s msg/s of %s through the hub for the whole run. The fake hub cuts the network (every "+
		"connection dropped, new ones refused) for the outage (%s), while the hub stores what the modules send, then "+
		"restores it. Measured from the restore: when the fake hub lists the hub's link again (polled every 20 ms), "+
		"when it captures the first message (its own clock) and when it has captured as many messages as were published "+
		"before the restore (caught up). The link reconnects with capped exponential back-off and jitter, so the longer the outage, the "+
		"longer the last wait can be. There is no reference broker here: the figure is against the target. Every "+
		"acknowledged message must arrive, in order per sender. Medians of %d runs (lowest–highest). Only this "+
		"scenario: `go run ./scripts/bench -scenarios upstream-reconnect`.",
		reconnectPubs, thousands(reconnectLiveRate), sizeLabel(upPayload), strings.Join(names, ", "), s.Runs)
	tb := table{Header: []string{"outage", "restore → link up", "restore → first message", "restore → caught up", "target", "verdict"}}
	worst := summary{}
	worstOutage := time.Duration(0)
	met := true
	for _, o := range outages {
		what := fmt.Sprintf("reconnect after %v", o)
		res, notes := upAlternate(ctx, s, s.Runs, []string{viaHub}, pick(s, 3*time.Minute, 90*time.Second)+o, what,
			func(ctx context.Context, _ string) (reconnectRun, error) { return measureReconnect(ctx, s, o) })
		sec.Notes = append(sec.Notes, notes...)
		rs := res[viaHub]
		link := summarize(values(rs, func(r reconnectRun) float64 { return float64(r.LinkUp) }))
		first := summarize(values(rs, func(r reconnectRun) float64 { return float64(r.FirstMsg) }))
		caught := summarize(values(rs, func(r reconnectRun) float64 { return float64(r.CatchUp) }))
		ok := first.N > 0 && first.Median < float64(targetFirstAfter)
		met = met && ok
		if first.N > 0 && (worst.N == 0 || first.Median > worst.Median) {
			worst, worstOutage = first, o
		}
		tb.Rows = append(tb.Rows, []string{o.String(), upSeconds(link), upSeconds(first), upSeconds(caught),
			"< 5 s to the first message", upVerdict(ok, first.N)})
	}
	sec.Tables = []table{tb}
	c := check{ID: "upstream-reconnect", Area: "network back → first message delivered upstream",
		Target: "< 5 s", Measured: "no successful run"}
	if worst.N > 0 {
		c.Measured = fmt.Sprintf("%s (worst median, after a %v outage)", upSeconds(summary{Median: worst.Median, N: 1}), worstOutage)
		c.Met = met
	}
	sec.Checks = append(sec.Checks, c)
	return sec, nil
}
