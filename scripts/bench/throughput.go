package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"
)

// throughputRun is one measured run of routed QoS 1 traffic.
type throughputRun struct {
	Delivered float64 // distinct messages received by the subscriber per second
	Acked     float64 // messages acknowledged (PUBACK) to the publishers per second
	CPU       cpuUse  // from the first publish to the last delivery
	Reads     float64 // the broker's read system calls per message delivered; NaN when /proc/<pid>/io is unreadable
	Dups      int     // duplicate deliveries (allowed by QoS 1, counted apart)
}

// measureThroughput sends count messages of size bytes from publishers clients of b (each
// its share, window publishes in flight) to b's subscriber, and measures the rate at which
// they arrive: count over the time from the first publish to the last new message at the
// subscriber. It fails when not every message arrives before ctx ends.
func measureThroughput(ctx context.Context, b *broker, publishers, size, count, window int) (throughputRun, error) {
	fail := newFailure()
	per := count / publishers
	count = per * publishers
	r, err := subscribe(b.addr, b.subscriber, count, fail)
	if err != nil {
		return throughputRun{}, err
	}
	pubs, err := connectPublishers(b, publishers, window, fail)
	if err != nil {
		disconnectAll(r, nil)
		return throughputRun{}, err
	}
	defer disconnectAll(r, pubs)

	cpu0, err := sampleCPU(b.proc.pid())
	if err != nil {
		return throughputRun{}, err
	}
	reads0, readsErr := readSyscalls(b.proc.pid())
	start := cpu0.at
	var wg sync.WaitGroup
	var ackedMu sync.Mutex
	var acked time.Duration // when the last publisher had all its PUBACKs
	for i, p := range pubs {
		wg.Go(func() {
			for k := range per {
				id := uint64(i*per + k)
				if err := p.publish(payload(size, id, sinceEpoch())); err != nil {
					fail.set(fmt.Errorf("publisher %d: %w", i, err))
					return
				}
			}
			if err := p.flush(); err != nil {
				fail.set(fmt.Errorf("publisher %d: %w", i, err))
				return
			}
			ackedMu.Lock()
			acked = max(acked, sinceEpoch())
			ackedMu.Unlock()
		})
	}
	complete := r.wait(ctx, fail)
	cpu1, cpuErr := sampleCPU(b.proc.pid())
	reads1, err := readSyscalls(b.proc.pid())
	readsErr = errors.Join(readsErr, err)
	unique, dups, unknown, last := r.counts()
	if !complete {
		fail.set(ctx.Err()) // stop the publishers if they are still going
	}
	wg.Wait()
	switch {
	case !complete:
		return throughputRun{}, fmt.Errorf("%d of %d messages delivered (%d duplicates, %d unknown) when the run ended: %v",
			unique, count, dups, unknown, fail.get())
	case fail.get() != nil:
		return throughputRun{}, fail.get()
	case cpuErr != nil:
		return throughputRun{}, cpuErr
	}
	wall := last - start
	reads := float64(reads1-reads0) / float64(count)
	if readsErr != nil {
		reads = math.NaN() // summarize leaves it out
	}
	return throughputRun{
		Delivered: float64(count) / wall.Seconds(),
		Acked:     float64(count) / (acked - start).Seconds(),
		CPU:       cpu0.use(cpu1),
		Reads:     reads,
		Dups:      dups,
	}, nil
}

// Durable routed throughput: the cases, and the targets of docs/peers-and-targets.md.
var (
	throughputSizes      = []int{256, 1024}
	throughputPublishers = []int{1, 4, 16}
)

const (
	targetDurableRate  = 20000 // msg/s, 1 KB, on 2 cores
	targetDurableRatio = 0.6   // of Mosquitto without persistence, same run
	throughputWindow   = 64    // publishes in flight per publisher
)

func throughputScenario(kinds []brokerKind) scenario {
	return scenario{
		ID:    "throughput",
		Title: "Durable routed throughput",
		Limit: func(s *settings) time.Duration { return pick(s, 20*time.Minute, 4*time.Minute) },
		Run: func(ctx context.Context, s *settings, _ []*section) (*section, error) {
			return runThroughputScenario(ctx, s, kinds)
		},
	}
}

func runThroughputScenario(ctx context.Context, s *settings, kinds []brokerKind) (*section, error) {
	count := pick(s, 20000, 4000)
	sec := &section{ID: "throughput", Title: "Durable routed throughput (QoS 1, module → hub → module)"}
	sec.Intro = fmt.Sprintf("Each run starts a fresh broker, connects one subscriber and P publishers over plain MQTT "+
		"on 127.0.0.1, and sends %s messages in total (each publisher its share, at most %d publishes awaiting "+
		"their PUBACK). The rate is the messages counted at the subscriber (distinct ids) over the time from the first "+
		"publish to the last new message. Hub: publishers are modules `pub000`… sending to output `o1`, one route each "+
		"`FROM /messages/modules/pubN/outputs/o1 INTO BrokeredEndpoint(\"/modules/sink/inputs/input1\")`, every "+
		"message fsynced before its PUBACK; the subscriber is module `sink`. Mosquitto: the same clients publish to and "+
		"subscribe to one topic, persistence off. Medians of %d runs, (lowest–highest) in brackets. \"PUBACKed\" is the "+
		"rate at which the hub acknowledged (stored) the publishes; \"hub reads/msg\" its read system calls (syscr of "+
		"/proc/<pid>/io, every connection's) per message delivered. CPU columns are CPU time over the run's wall time "+
		"(100%% = one core of %d); \"others' CPU\" is what the rest of the machine used meanwhile (other processes, "+
		"kernel threads such as the file system's journal): where it is high, the case ran on a busy machine.", thousands(float64(count)), throughputWindow, s.Runs, runtime.NumCPU())
	tb := table{Header: []string{"payload", "publishers", kinds[0].Label + " msg/s", kinds[1].Label + " msg/s",
		"ratio", "hub PUBACKed msg/s", "hub reads/msg", "hub CPU", kinds[1].Label + " CPU", "others' CPU", "target", "verdict"}}
	ch := &chart{Title: throughputChartTitle, XLabel: throughputChartXLabel,
		Series: []string{kinds[0].Label, kinds[1].Label}}
	var clients, other []float64 // CPU of the load clients and of other processes, every run
	var best struct {
		hub, ref summary
		pubs     int
		found    bool
	}
	for _, size := range throughputSizes {
		for _, pubs := range throughputPublishers {
			what := fmt.Sprintf("throughput %s x%d", sizeLabel(size), pubs)
			res, notes := sideBySide(ctx, s, kinds, pubs, pick(s, 90*time.Second, 30*time.Second), what,
				func(ctx context.Context, b *broker) (throughputRun, error) {
					return measureThroughput(ctx, b, pubs, size, count, throughputWindow)
				})
			sec.Notes = append(sec.Notes, notes...)
			hub := summarize(values(res[kinds[0].ID], func(r throughputRun) float64 { return r.Delivered }))
			ref := summarize(values(res[kinds[1].ID], func(r throughputRun) float64 { return r.Delivered }))
			acked := summarize(values(res[kinds[0].ID], func(r throughputRun) float64 { return r.Acked }))
			hubCPU := summarize(values(res[kinds[0].ID], func(r throughputRun) float64 { return r.CPU.Broker }))
			readsPerMsg := summarize(values(res[kinds[0].ID], func(r throughputRun) float64 { return r.Reads }))
			refCPU := summarize(values(res[kinds[1].ID], func(r throughputRun) float64 { return r.CPU.Broker }))
			var caseOther []float64
			for _, k := range kinds {
				for _, r := range res[k.ID] {
					clients = append(clients, r.CPU.Clients)
					caseOther = append(caseOther, r.CPU.Other)
				}
			}
			other = append(other, caseOther...)
			target, verdictCell := "–", "–"
			if size == 1024 {
				target = fmt.Sprintf("≥ %s msg/s and ≥ %.1fx", thousands(targetDurableRate), targetDurableRatio)
				verdictCell = verdict(durableMet(hub, ref))
				if hub.N > 0 && (!best.found || hub.Median > best.hub.Median) {
					best.hub, best.ref, best.pubs, best.found = hub, ref, pubs, true
				}
			}
			tb.Rows = append(tb.Rows, []string{sizeLabel(size), fmt.Sprint(pubs), rate(hub), rate(ref), ratio(hub, ref),
				rate(acked), perMessage(readsPerMsg), percent(hubCPU), percent(refCPU), percent(summarize(caseOther)), target, verdictCell})
			ch.Groups = append(ch.Groups, barGroup{Label: fmt.Sprintf("%s x%d", sizeLabel(size), pubs), Bars: []summary{hub, ref}})
		}
	}
	ch.Lines = []refLine{{Value: targetDurableRate, Label: "target 20,000 (1 KB)",
		From: len(throughputPublishers), To: 2 * len(throughputPublishers)}}
	sec.Tables = []table{tb}
	sec.Notes = append([]string{cpuNote(clients, other)}, sec.Notes...)
	sec.Chart = ch
	area := "durable routed throughput, 1 KB, QoS 1"
	if !best.found {
		sec.Checks = append(sec.Checks,
			check{ID: checkDurable, Area: area, Target: "≥ 20,000 msg/s on 2 cores", Measured: "no successful run"},
			check{ID: checkDurableRatio, Area: area, Target: "≥ 0.6x Mosquitto in the same run", Measured: "no successful run"})
		return sec, nil
	}
	sec.Checks = append(sec.Checks,
		check{ID: checkDurable, Area: area, Target: "≥ 20,000 msg/s on 2 cores, on disk before PUBACK",
			Measured: fmt.Sprintf("%s msg/s (best case: %d publishers)", thousands(best.hub.Median), best.pubs),
			Met:      best.hub.Median >= targetDurableRate},
		check{ID: checkDurableRatio, Area: area, Target: "≥ 0.6x the same traffic through Mosquitto (no persistence)",
			Measured: fmt.Sprintf("%s (%s vs %s msg/s, %d publishers)", ratio(best.hub, best.ref),
				thousands(best.hub.Median), thousands(best.ref.Median), best.pubs),
			Met: best.ref.N > 0 && best.hub.Median >= targetDurableRatio*best.ref.Median})
	return sec, nil
}

// The chart's texts (drawn with the glyphs of font.go).
const (
	throughputChartTitle  = "Durable routed throughput, QoS 1, msg/s delivered"
	throughputChartXLabel = "payload x publishers (median; whiskers: lowest to highest run)"
)

// Check IDs other scenarios look up.
const (
	checkDurable      = "durable-throughput"
	checkDurableRatio = "durable-ratio"
)

func durableMet(hub, ref summary) bool {
	return hub.N > 0 && ref.N > 0 && hub.Median >= targetDurableRate && hub.Median >= targetDurableRatio*ref.Median
}

// cpuNote says how busy the machine was besides the broker: the load clients (this
// process) and any other process, a sign of noise when large.
func cpuNote(clients, other []float64) string {
	c, o := summarize(clients), summarize(other)
	if c.N == 0 {
		return "CPU: no successful run."
	}
	return fmt.Sprintf("Besides the broker, the load clients (this harness) used %s of one core (median over all runs, "+
		"range %.0f–%.0f%%) and the rest of the machine (other processes, kernel threads) %s (range %.0f–%.0f%%); "+
		"the machine has %d cores.",
		percent(c), c.Min, c.Max, percent(o), o.Min, o.Max, runtime.NumCPU())
}

// perMessage formats a median count per message.
func perMessage(s summary) string {
	if s.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", s.Median)
}

func percent(s summary) string {
	if s.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", s.Median)
}
