package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// liveTraffic is paced QoS 1 traffic from a few modules (the "live" messages that must keep
// flowing while a backlog drains): each publisher sends at its share of the rate, without
// waiting for PUBACKs (up to its window), messages numbered on from where its last phase
// stopped, so that each sender's order can be checked across phases.
type liveTraffic struct {
	pubs   []*publisher
	offset int // the sender index of pubs[0] in the bodies
	rate   int // msg/s over all publishers
	size   int
	fail   *failure

	next []atomic.Uint64 // next message number, per publisher
	stop chan struct{}
	wg   sync.WaitGroup
}

func newLiveTraffic(pubs []*publisher, offset, rate, size int, fail *failure) *liveTraffic {
	return &liveTraffic{pubs: pubs, offset: offset, rate: rate, size: size, fail: fail, next: make([]atomic.Uint64, len(pubs))}
}

// start begins a phase of traffic.
func (l *liveTraffic) start() {
	l.stop = make(chan struct{})
	interval := time.Duration(float64(time.Second) * float64(len(l.pubs)) / float64(l.rate))
	begin := time.Now()
	for i, p := range l.pubs {
		offset := interval * time.Duration(i) / time.Duration(len(l.pubs)) // spread over one interval
		l.wg.Go(func() {
			t := time.NewTimer(0)
			defer t.Stop()
			for k := 0; ; k++ {
				t.Reset(time.Until(begin.Add(offset + time.Duration(k)*interval)))
				select {
				case <-l.stop:
					return
				case <-l.fail.ch:
					return
				case <-t.C:
				}
				n := l.next[i].Load()
				if err := p.publish(upBody(l.size, l.offset+i, n, time.Now())); err != nil {
					l.fail.set(fmt.Errorf("live publisher %d: %w", i, err))
					return
				}
				l.next[i].Store(n + 1)
			}
		})
	}
}

// halt ends the phase and waits for every PUBACK.
func (l *liveTraffic) halt() error {
	close(l.stop)
	l.wg.Wait()
	for i, p := range l.pubs {
		if err := p.flush(); err != nil {
			return fmt.Errorf("live publisher %d: %w", i, err)
		}
	}
	return l.fail.get()
}

// sent is the number of messages published so far, all phases.
func (l *liveTraffic) sent() int {
	n := 0
	for i := range l.next {
		n += int(l.next[i].Load())
	}
	return n
}

// counts is sent per publisher.
func (l *liveTraffic) counts() []int {
	out := make([]int, len(l.next))
	for i := range l.next {
		out[i] = int(l.next[i].Load())
	}
	return out
}

// latency reports whether a captured event is one of this traffic's messages, and returns
// its latency from send to capture.
func (l *liveTraffic) latency(e cloudEvent) (key liveKey, sent time.Time, d time.Duration, ok bool) {
	sender, seq, sent, ok := parseUpBody(e.Body)
	if !ok || sender < l.offset || sender >= l.offset+len(l.pubs) {
		return liveKey{}, time.Time{}, 0, false
	}
	return liveKey{sender, seq}, sent, e.Enqueued.Sub(sent), true
}

type liveKey struct {
	sender int
	seq    uint64
}

// liveLatencies collects live messages' latencies, once per message.
type liveLatencies struct {
	seen map[liveKey]bool
	all  []time.Duration
	sent []time.Time // by sample, as all
}

func (ls *liveLatencies) add(k liveKey, sent time.Time, d time.Duration) {
	if ls.seen == nil {
		ls.seen = map[liveKey]bool{}
	}
	if ls.seen[k] {
		return
	}
	ls.seen[k] = true
	ls.all = append(ls.all, d)
	ls.sent = append(ls.sent, sent)
}

// byTime describes the samples by send time, from start in steps of step: the count and the
// highest latency of each step (a debugging aid: where in a drain the slow ones were).
func (ls *liveLatencies) byTime(start time.Time, step time.Duration) string {
	type bucket struct {
		n   int
		max time.Duration
	}
	var bs []bucket
	for i, at := range ls.sent {
		k := int(at.Sub(start) / step)
		if k < 0 {
			continue
		}
		for len(bs) <= k {
			bs = append(bs, bucket{})
		}
		bs[k].n++
		bs[k].max = max(bs[k].max, ls.all[i])
	}
	var b strings.Builder
	for k, x := range bs {
		fmt.Fprintf(&b, "%v:%d/%v ", time.Duration(k)*step, x.n, x.max.Round(time.Millisecond))
	}
	return b.String()
}

// liveStats summarizes one run's latencies.
type liveStats struct {
	P50, P99, Max time.Duration
	N             int
}

func (ls *liveLatencies) stats() liveStats {
	if len(ls.all) == 0 {
		return liveStats{}
	}
	s := slices.Clone(ls.all)
	slices.Sort(s)
	return liveStats{P50: percentile(s, 50), P99: percentile(s, 99), Max: s[len(s)-1], N: len(s)}
}
