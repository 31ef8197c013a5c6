package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Disk used against the byte cap.
const (
	capPubs = 4
	// capFileLimit and bboltAllocStep bound store.db for the verdict: bbolt keeps whole
	// 4 KB pages, B+tree pages left half full by splits and a free list, so the file is the
	// accounted bytes plus a page overhead, and past 16 MiB it grows the file 16 MiB ahead
	// of its needs (bbolt's DefaultAllocSize). What the target rules out is a file that
	// keeps growing past the cap.
	capFileLimit   = 1.5
	bboltAllocStep = 16 << 20
	// capRegrowLimit is how much the file may grow when the store fills up a second time
	// after draining: freed pages must be reused.
	capRegrowLimit = 1.1
)

// capRun is one measured fill.
type capRun struct {
	Cap          int64
	Accounted    float64 // the store's own count of stored bytes when the cap was reached
	File1, File2 int64   // store.db when the cap was reached, first and second time
	Accepted     int     // messages acknowledged before the first refusal
	Refused      float64 // publishes refused because the store was full (connection closed)
}

// measureCap fills the hub's store with the network cut until the byte cap refuses
// publishes, lets the backlog drain, fills it again, and reads store.db's size each time
// the cap was reached, and the hub's metrics. Every acknowledged message must arrive.
func measureCap(ctx context.Context, s *settings, capBytes int64) (capRun, error) {
	r, err := startRig(ctx, s, rigOptions{modules: upModules("cap", capPubs), maxBytes: capBytes, metrics: true})
	if err != nil {
		return capRun{}, err
	}
	defer r.stop()
	out := capRun{Cap: capBytes}
	// Each module connects once while the network is up: its first connection is
	// authenticated by IoT Hub, the later ones (network cut) from the hub's cache.
	for i := range capPubs {
		c, _, err := r.connectModule(i, nil)
		if err != nil {
			return out, err
		}
		c.Disconnect(50)
	}
	next := make([]int, capPubs) // next message number per sender
	fill := func() error {
		if err := r.cloud.cut(ctx); err != nil {
			return err
		}
		if err := r.cloud.waitLink(ctx, false); err != nil {
			return err
		}
		return r.fillStore(ctx, next)
	}
	const (
		storeBytes = "outpost_edgehub_store_bytes"
		messages   = "outpost_edgehub_store_messages"
		refused    = `outpost_edgehub_messages_refused_total{reason="store_full"}`
	)
	if err := fill(); err != nil {
		return out, err
	}
	m, err := r.hubMetrics(ctx, storeBytes, refused)
	if err != nil {
		return out, err
	}
	if _, ok := m[storeBytes]; !ok {
		return out, fmt.Errorf("the hub's metrics have no %s", storeBytes)
	}
	out.Accounted, out.Refused = m[storeBytes], m[refused]
	for _, n := range next {
		out.Accepted += n
	}
	if out.File1, err = fileSize(r.storeFile()); err != nil {
		return out, err
	}
	drain := func() error {
		if err := r.cloud.restore(ctx); err != nil {
			return err
		}
		total := int64(0)
		for _, n := range next {
			total += int64(n)
		}
		if _, err := r.cloud.waitSeq(ctx, total); err != nil {
			return err
		}
		for { // every delivered message acknowledged in the store: its space is free
			m, err := r.hubMetrics(ctx, messages)
			if err != nil {
				return err
			}
			if n, ok := m[messages]; ok && n == 0 {
				return nil
			}
			if !upSleep(ctx, 50*time.Millisecond) {
				return ctx.Err()
			}
		}
	}
	if err := drain(); err != nil {
		return out, err
	}
	if err := fill(); err != nil {
		return out, err
	}
	if out.File2, err = fileSize(r.storeFile()); err != nil {
		return out, err
	}
	if err := drain(); err != nil {
		return out, err
	}
	n, err := r.cloud.latest(ctx, 0)
	if err != nil {
		return out, err
	}
	if n <= 100_000 { // what the fake hub's ring holds
		evs, err := r.cloud.eventsRange(ctx, 0, n)
		if err != nil {
			return out, err
		}
		if a := checkArrivals(evs, next); a.Missing > 0 || a.OutOfOrder > 0 || a.Unknown > 0 {
			return out, fmt.Errorf("the fake hub's captures do not match what was acknowledged: %s", a)
		}
	}
	return out, nil
}

// fillStore publishes 1 KB messages from every module, numbered on from next, until the
// hub refuses one because its store is full (it closes the publisher's connection), and
// adds to next the messages acknowledged.
func (r *upstreamRig) fillStore(ctx context.Context, next []int) error {
	var wg sync.WaitGroup
	errs := make([]error, len(next))
	for i := range next {
		wg.Go(func() {
			n, err := r.fillOne(ctx, i, next[i])
			next[i] += n
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// fillOne publishes from module i until its connection is closed, and returns how many
// messages were acknowledged: a prefix, since the hub stores a connection's publishes in
// order and closes the connection at the first it cannot store.
func (r *upstreamRig) fillOne(ctx context.Context, i, from int) (int, error) {
	closed := make(chan struct{})
	var once sync.Once
	c, topic, err := r.connectModule(i, func(error) { once.Do(func() { close(closed) }) })
	if err != nil {
		return 0, err
	}
	defer c.Disconnect(0)
	var pending []paho.Token
	acked := 0
	wait := func() bool { // the oldest PUBACK: false once the connection refused one
		tok := pending[0]
		pending = pending[1:]
		select {
		case <-tok.Done():
		case <-time.After(ackTimeout):
			return false
		}
		if tok.Error() != nil {
			return false
		}
		acked++
		return true
	}
	for k := from; ; k++ {
		if ctx.Err() != nil {
			return acked, ctx.Err()
		}
		if len(pending) >= upWindow && !wait() {
			break
		}
		select {
		case <-closed:
		default:
			pending = append(pending, c.Publish(topic, 1, false, upBody(upPayload, i, uint64(k), time.Now())))
			continue
		}
		break
	}
	for len(pending) > 0 && wait() {
	}
	return acked, nil
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func upstreamCapScenario() scenario {
	return scenario{
		ID:    "upstream-cap",
		Title: "Disk used against the byte cap",
		Limit: func(s *settings) time.Duration { return pick(s, 15*time.Minute, 3*time.Minute) },
		Run: func(ctx context.Context, s *settings, _ []*section) (*section, error) {
			return runCapScenario(ctx, s)
		},
	}
}

func runCapScenario(ctx context.Context, s *settings) (*section, error) {
	capBytes := pick(s, int64(48<<20), int64(16<<20))
	sec := &section{ID: "upstream-cap", Title: "Disk used against the byte cap (store full, network cut)"}
	sec.Intro = fmt.Sprintf("Each run starts a fresh fake IoT Hub and an edge hub with `--store-max-bytes %d` (%s) and "+
		"`--store-full-policy reject-new`, cuts the network and has %d modules publish %s messages through the hub until "+
		"it refuses them (it closes a publisher's connection when its store is full). Measured then: the store's own count "+
		"of stored bytes (metric `store_bytes`, what the cap checks) and the size of `store.db` on disk. The network is "+
		"restored, the backlog drains (every acknowledged message must arrive), and the store is filled again: its file "+
		"must not grow much, since bbolt reuses freed pages but never shrinks the file. Verdict: `store.db` at most "+
		"%.1f× the cap plus 16 MiB (bbolt's page overhead, and the 16 MiB it grows its file ahead of its needs) and at "+
		"most %.0f%% larger after the second fill. Medians of %d runs "+
		"(lowest–highest). Only this scenario: `go run ./scripts/bench -scenarios upstream-cap`.",
		capBytes, upMiB(float64(capBytes)), capPubs, sizeLabel(upPayload), capFileLimit, 100*(capRegrowLimit-1), s.Runs)
	res, notes := upAlternate(ctx, s, s.Runs, []string{viaHub}, pick(s, 4*time.Minute, 2*time.Minute), "byte cap",
		func(ctx context.Context, _ string) (capRun, error) { return measureCap(ctx, s, capBytes) })
	sec.Notes = append(sec.Notes, notes...)
	rs := res[viaHub]
	accounted := summarize(values(rs, func(r capRun) float64 { return r.Accounted }))
	file1 := summarize(values(rs, func(r capRun) float64 { return float64(r.File1) }))
	file2 := summarize(values(rs, func(r capRun) float64 { return float64(r.File2) }))
	accepted := summarize(values(rs, func(r capRun) float64 { return float64(r.Accepted) }))
	over := summarize(values(rs, func(r capRun) float64 { return float64(r.File1) / float64(r.Cap) }))
	regrow := summarize(values(rs, func(r capRun) float64 { return float64(r.File2) / float64(r.File1) }))
	met := file1.N > 0 && file1.Median <= capFileLimit*float64(capBytes)+bboltAllocStep && regrow.Median <= capRegrowLimit
	sec.Tables = []table{{
		Header: []string{"cap", "accepted messages", "stored bytes (store's count)", "store.db at the cap", "store.db / cap",
			"store.db after drain + second fill", "target", "verdict"},
		Rows: [][]string{{upMiB(float64(capBytes)), rate(accepted), mebibytes(accounted), mebibytes(file1), upTimes(over),
			mebibytes(file2), "cap enforced on disk, space reused", upVerdict(met, file1.N)}},
	}}
	c := check{ID: "upstream-cap", Area: "disk used against the byte cap (store full)",
		Target:   fmt.Sprintf("byte cap enforced on disk, space reused (store.db ≤ %.1f× the cap + 16 MiB, ≤ +%.0f%% on refill)", capFileLimit, 100*(capRegrowLimit-1)),
		Measured: "no successful run"}
	if file1.N > 0 {
		c.Measured = fmt.Sprintf("store.db %s for a %s cap (%s), %s after a drain and a second fill",
			upMiB(file1.Median), upMiB(float64(capBytes)), upTimes(over), upMiB(file2.Median))
		c.Met = met
	}
	sec.Checks = append(sec.Checks, c)
	return sec, nil
}

func upMiB(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

// upTimes formats a summary of ratios: "1.23×".
func upTimes(s summary) string {
	if s.N == 0 {
		return "failed"
	}
	if s.N == 1 {
		return fmt.Sprintf("%.2f×", s.Median)
	}
	return fmt.Sprintf("%.2f× (%.2f–%.2f)", s.Median, s.Min, s.Max)
}
