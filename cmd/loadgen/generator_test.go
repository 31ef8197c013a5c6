package main

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outpost-edge/outpost/runtime/iothub"
	"github.com/outpost-edge/outpost/runtime/moduleclient"
)

// fakeSender records sends; with block set, each send waits until release is closed or its
// ctx is done.
type fakeSender struct {
	mu       sync.Mutex
	times    []time.Time
	outputs  []string
	msgs     []iothub.Message
	inFlight int
	peak     int
	block    bool
	release  chan struct{}
	failSeq  string // a sequenceNumber whose send fails
}

func (f *fakeSender) SendOutput(ctx context.Context, output string, m iothub.Message) error {
	f.mu.Lock()
	f.inFlight++
	f.peak = max(f.peak, f.inFlight)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()
	if f.block {
		select {
		case <-f.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if m.Properties["sequenceNumber"] == f.failSeq {
		return moduleclient.ErrTooLarge
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.times = append(f.times, time.Now())
	f.outputs = append(f.outputs, output)
	f.msgs = append(f.msgs, m)
	return nil
}

func newTestGenerator(cfg config, f *fakeSender) *generator {
	return &generator{cfg: cfg, client: f, log: slog.New(slog.DiscardHandler), name: "loadgen", batchID: "batch"}
}

func TestGenerator_Pacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSender{}
		g := newTestGenerator(config{count: 5, rate: 10, size: 200, outputs: []string{"output1"}, inFlight: 4}, f)
		start := time.Now()
		s := g.Run(t.Context())
		if s.sent != 5 || s.failed != 0 || s.unfinished != 0 {
			t.Fatalf("summary %+v", s)
		}
		for i, at := range f.times {
			if want := time.Duration(i) * 100 * time.Millisecond; at.Sub(start) != want {
				t.Errorf("message %d sent at +%v, want +%v", i+1, at.Sub(start), want)
			}
		}
		if s.elapsed != 400*time.Millisecond || s.rate() != 12.5 {
			t.Errorf("elapsed %v, rate %v", s.elapsed, s.rate())
		}
	})
}

func TestGenerator_InFlightBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSender{block: true, release: make(chan struct{})}
		g := newTestGenerator(config{count: 100, size: 10, outputs: []string{"output1"}, inFlight: 8}, f)
		done := make(chan summary)
		go func() { done <- g.Run(t.Context()) }()
		synctest.Wait()
		f.mu.Lock()
		inFlight := f.inFlight
		f.mu.Unlock()
		if inFlight != 8 {
			t.Errorf("%d sends in flight, want 8", inFlight)
		}
		close(f.release)
		s := <-done
		if s.sent != 100 || f.peak != 8 {
			t.Errorf("sent %d, peak in flight %d; want 100 and 8", s.sent, f.peak)
		}
	})
}

func TestGenerator_MessagesAndOutputs(t *testing.T) {
	f := &fakeSender{}
	g := newTestGenerator(config{count: 6, size: 300, outputs: []string{"a", "b", "c"}, inFlight: 1}, f)
	s := g.Run(t.Context())
	if s.sent != 6 {
		t.Fatalf("sent %d", s.sent)
	}
	for i, m := range f.msgs {
		seq := strconv.Itoa(i + 1)
		if want := []string{"a", "b", "c"}[i%3]; f.outputs[i] != want {
			t.Errorf("message %s on %q, want %q", seq, f.outputs[i], want)
		}
		if m.Properties["sequenceNumber"] != seq || m.Properties["batchId"] != "batch" {
			t.Errorf("message %s properties %v", seq, m.Properties)
		}
		if len(m.Body) != 300 || m.System[iothub.SysContentType] != "application/json" || m.System[iothub.SysContentEncoding] != "utf-8" {
			t.Errorf("message %s: %d bytes, system %v", seq, len(m.Body), m.System)
		}
	}
}

func TestGenerator_CountsFailuresAndStops(t *testing.T) {
	t.Run("failed send", func(t *testing.T) {
		f := &fakeSender{failSeq: "2"}
		s := newTestGenerator(config{count: 3, size: 10, outputs: []string{"o"}, inFlight: 1}, f).Run(t.Context())
		if s.sent != 2 || s.failed != 1 {
			t.Errorf("summary %+v, want 2 sent and 1 failed", s)
		}
	})
	t.Run("stopped mid-run", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeSender{block: true, release: make(chan struct{})}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan summary)
			go func() {
				done <- newTestGenerator(config{count: 0, size: 10, outputs: []string{"o"}, inFlight: 3}, f).Run(ctx)
			}()
			synctest.Wait()
			cancel()
			s := <-done
			if s.sent != 0 || s.failed != 0 || s.unfinished != 3 {
				t.Errorf("summary %+v, want 3 unfinished", s)
			}
		})
	})
	t.Run("stopped while pacing", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeSender{}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan summary)
			go func() {
				done <- newTestGenerator(config{count: 0, rate: 1, size: 10, outputs: []string{"o"}, inFlight: 3}, f).Run(ctx)
			}()
			time.Sleep(2500 * time.Millisecond)
			cancel()
			s := <-done
			if s.sent != 3 || s.unfinished != 0 {
				t.Errorf("summary %+v, want 3 sent (at 0, 1 and 2 s)", s)
			}
		})
	})
}
