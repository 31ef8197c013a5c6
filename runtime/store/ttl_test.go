package store

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestTTL_ReadSkipsExpired(t *testing.T) {
	c := newClock()
	s := MustOpen(t, withClock(c))
	mustAppend(t, s, "short", Target{Queue: "q", TTL: 10 * time.Second})
	mustAppend(t, s, "forever", Target{Queue: "q"})
	mustAppend(t, s, "hour", Target{Queue: "q", TTL: time.Hour})
	enq := c.Now()
	c.Add(20 * time.Second)
	items := mustRead(t, s, "q", 10)
	if got := bodies(items); !slices.Equal(got, []string{"forever", "hour"}) {
		t.Fatalf("bodies = %q", got)
	}
	if !items[1].ExpiresAt.Equal(enq.Add(time.Hour)) || !items[1].EnqueuedAt.Equal(enq) {
		t.Errorf("times = %v / %v", items[1].EnqueuedAt, items[1].ExpiresAt)
	}
	mustFlush(t, s) // the skipped item was queued for deletion by Read
	st := s.Stats()
	if st.Dropped[DropTTL] != 1 || st.Messages != 2 || st.Queues[0].Len != 2 {
		t.Errorf("stats = %+v", st)
	}
}

// TestTTL_SweepMixedTTLs: expired entries are deleted wherever they sit in the queue.
func TestTTL_SweepMixedTTLs(t *testing.T) {
	c := newClock()
	s := MustOpen(t, withClock(c))
	for _, m := range []struct {
		body string
		ttl  time.Duration
	}{{"hour", time.Hour}, {"forever", 0}, {"ten-s", 10 * time.Second}, {"minute", time.Minute}, {"ten-s-2", 10 * time.Second}} {
		mustAppend(t, s, m.body, Target{Queue: "q", TTL: m.ttl})
	}
	c.Add(30 * time.Second)
	sweepNow(t, s)
	if st := s.Stats(); st.Dropped[DropTTL] != 2 || st.Messages != 3 {
		t.Fatalf("after 30s: %+v", st)
	}
	c.Add(2 * time.Minute)
	sweepNow(t, s)
	st := s.Stats()
	if st.Dropped[DropTTL] != 3 || st.Messages != 2 || st.Bytes != Cost(4, 1)+Cost(7, 1) {
		t.Fatalf("after 2m30s: %+v", st)
	}
	if got := bodies(mustRead(t, s, "q", 10)); !slices.Equal(got, []string{"hour", "forever"}) {
		t.Errorf("left = %q", got)
	}
}

// TestTTL_SweepLaneTurnsUnsorted: a lane whose expiries stop growing with seq must be
// scanned whole, not only at its head.
func TestTTL_SweepLaneTurnsUnsorted(t *testing.T) {
	c := newClock()
	s := MustOpen(t, withClock(c))
	mustAppend(t, s, "h1", Target{Queue: "q", TTL: time.Hour})
	mustAppend(t, s, "h2", Target{Queue: "q", TTL: time.Hour})
	sweepNow(t, s) // establishes a sorted hint
	mustAppend(t, s, "s1", Target{Queue: "q", TTL: time.Second})
	c.Add(10 * time.Second)
	sweepNow(t, s)
	if st := s.Stats(); st.Dropped[DropTTL] != 1 || st.Messages != 2 {
		t.Errorf("the expired tail entry was not swept: %+v", st)
	}
}

// TestTTL_SweepSortedLaneHead: in a single-TTL lane the expired prefix goes, the rest stays.
func TestTTL_SweepSortedLaneHead(t *testing.T) {
	c := newClock()
	s := MustOpen(t, withClock(c))
	for i := range 10 {
		mustAppend(t, s, fmt.Sprint("m", i), Target{Queue: "q", TTL: time.Minute})
		c.Add(10 * time.Second)
	}
	// mi expires at 10i+60 s and now is 100 s: m0..m4 are expired.
	sweepNow(t, s)
	if st := s.Stats(); st.Dropped[DropTTL] != 5 || st.Messages != 5 {
		t.Fatalf("stats = %+v", st)
	}
	c.Add(25 * time.Second) // 125 s: m5 and m6 expire
	sweepNow(t, s)
	if got := bodies(mustRead(t, s, "q", 10)); !slices.Equal(got, []string{"m7", "m8", "m9"}) {
		t.Errorf("left = %q", got)
	}
}

func TestTTL_SweepAfterReopen(t *testing.T) {
	c := newClock()
	o := Options{Path: filepath.Join(t.TempDir(), "s.db"), NoSync: true, Now: c.Now}
	r := mustStart(t, o)
	mustAppend(t, r.Store, "old", Target{Queue: "q", TTL: time.Minute})
	mustAppend(t, r.Store, "keep", Target{Queue: "q", TTL: time.Hour})
	r.stop()
	c.Add(2 * time.Minute)
	r = mustStart(t, o)
	defer r.stop()
	sweepNow(t, r.Store)
	if st := r.Stats(); st.Dropped[DropTTL] != 1 || st.Messages != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// TestTTL_SpaceReused: expiring and re-filling must not grow the file for ever.
func TestTTL_SpaceReused(t *testing.T) {
	c := newClock()
	s := MustOpen(t, withClock(c))
	body := make([]byte, 4096)
	var sizes []int64
	for round := range 10 {
		for range 200 {
			if err := s.Append(t.Context(), body, []Target{{Queue: "q", TTL: time.Second}}); err != nil {
				t.Fatal(err)
			}
		}
		c.Add(2 * time.Second)
		sweepNow(t, s)
		st := s.Stats()
		if st.Messages != 0 || st.Bytes != 0 {
			t.Fatalf("round %d: not everything expired: %+v", round, st)
		}
		sizes = append(sizes, st.FileBytes)
	}
	if last := sizes[len(sizes)-1]; last > 2*sizes[1] {
		t.Errorf("file keeps growing: %v", sizes)
	}
}

// TestTTL_ReadStopsAtSkipBudget: a Read facing more expired entries than it may skip
// returns early and signals Wait; the next Read continues.
func TestTTL_ReadStopsAtSkipBudget(t *testing.T) {
	c := newClock()
	s := MustOpen(t, withClock(c))
	const expired = maxSkip + 100
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < expired; i += 8 {
				if err := s.Append(t.Context(), []byte("old"), []Target{{Queue: "q", TTL: time.Second}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	c.Add(time.Minute)
	mustAppend(t, s, "live", Target{Queue: "q"})
	wait := s.Wait("q")
	for len(wait) > 0 { // drop the append signals
		<-wait
	}
	if items := mustRead(t, s, "q", 10); len(items) != 0 {
		t.Fatalf("first read returned %q past %d expired entries", bodies(items), expired)
	}
	select {
	case <-wait:
	default:
		t.Fatal("a truncated Read did not signal Wait")
	}
	if got := bodies(mustRead(t, s, "q", 10)); !slices.Equal(got, []string{"live"}) {
		t.Errorf("second read = %q", got)
	}
	mustFlush(t, s)
	mustFlush(t, s) // expiries beyond one transaction's budget
	checkFor(t, 10*time.Second, func() error {
		if st := s.Stats(); st.Dropped[DropTTL] != expired {
			mustFlush(t, s)
			return fmt.Errorf("dropped %d of %d", st.Dropped[DropTTL], expired)
		}
		return nil
	})
}
