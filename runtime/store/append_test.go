package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAppend_ReadBackInOrder(t *testing.T) {
	s := MustOpen(t)
	want := []string{"m1", "m2", "m3", "m4"}
	for _, b := range want {
		mustAppend(t, s, b, Target{Queue: "q"})
	}
	items := mustRead(t, s, "q", 10)
	if got := bodies(items); !slices.Equal(got, want) {
		t.Fatalf("bodies = %q, want %q", got, want)
	}
	for i, it := range items {
		if it.Seq != uint64(i+1) || it.Queue != "q" || it.Priority != 0 || !it.ExpiresAt.IsZero() {
			t.Errorf("item %d = %+v", i, it)
		}
	}
	st := s.Stats()
	if st.Messages != 4 || st.Appends != 4 || st.Bytes != 4*Cost(2, 1) {
		t.Errorf("stats = %+v", st)
	}
}

func TestAppend_SharedBodyStoredOnce(t *testing.T) {
	s := MustOpen(t)
	targets := []Target{{Queue: "a"}, {Queue: "b", Priority: 1}, {Queue: "c", Priority: 2}}
	mustAppend(t, s, "shared", targets...)
	st := s.Stats()
	if st.Messages != 1 || st.Bytes != Cost(6, 3) {
		t.Fatalf("after append: messages %d bytes %d, want 1 and %d", st.Messages, st.Bytes, Cost(6, 3))
	}
	for i, tg := range targets {
		items := mustRead(t, s, tg.Queue, 10)
		if len(items) != 1 || string(items[0].Body) != "shared" {
			t.Fatalf("queue %q: %+v", tg.Queue, items)
		}
		mustAck(t, s, tg.Queue, tg.Priority, items[0].Seq)
		mustFlush(t, s)
		st := s.Stats()
		left := len(targets) - i - 1
		wantMsgs, wantBytes := 1, Cost(6, left)
		if left == 0 {
			wantMsgs, wantBytes = 0, 0
		}
		if st.Messages != wantMsgs || st.Bytes != wantBytes {
			t.Errorf("after ack of %q: messages %d bytes %d, want %d and %d", tg.Queue, st.Messages, st.Bytes, wantMsgs, wantBytes)
		}
		if err := checkLive(s); err != nil {
			t.Fatal(err)
		}
	}
}

// checkLive runs the invariant check on a running store: Flush first so that memory and
// disk agree, then check in a read transaction.
func checkLive(s *Store) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		return err
	}
	return check(s)
}

func TestAppend_InvalidArguments(t *testing.T) {
	s := MustOpen(t, withMaxBytes(1000, RejectNew))
	tests := []struct {
		name    string
		body    []byte
		targets []Target
		want    error
	}{
		{"no targets", []byte("x"), nil, ErrInvalid},
		{"empty queue name", []byte("x"), []Target{{Queue: ""}}, ErrInvalid},
		{"queue name too long", []byte("x"), []Target{{Queue: strings.Repeat("q", MaxQueueName+1)}}, ErrInvalid},
		{"negative priority", []byte("x"), []Target{{Queue: "q", Priority: -1}}, ErrInvalid},
		{"negative TTL", []byte("x"), []Target{{Queue: "q", TTL: -time.Second}}, ErrInvalid},
		{"same queue twice", []byte("x"), []Target{{Queue: "q"}, {Queue: "r"}, {Queue: "q", Priority: 2}}, ErrInvalid},
		{"larger than the cap", make([]byte, 1000), []Target{{Queue: "q"}}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Append(context.Background(), tt.body, tt.targets)
			if !errors.Is(err, tt.want) {
				t.Errorf("Append = %v, want %v", err, tt.want)
			}
		})
	}
	if st := s.Stats(); st.Appends != 0 || st.Messages != 0 || len(st.Queues) != 0 {
		t.Errorf("something was stored: %+v", st)
	}
}

// TestAppend_Concurrent appends from many goroutines while a consumer reads and acks;
// every message must arrive exactly once, in each writer's order within its lane.
func TestAppend_Concurrent(t *testing.T) {
	s := MustOpen(t)
	const writers, perWriter = 16, 150
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range perWriter {
				body := fmt.Sprintf("%d/%d", w, n)
				targets := []Target{{Queue: "q", Priority: w % 2}}
				if n%5 == 0 {
					targets = append(targets, Target{Queue: "audit"})
				}
				if err := s.Append(context.Background(), []byte(body), targets); err != nil {
					t.Errorf("Append(%s): %v", body, err)
					return
				}
			}
		}()
	}
	seen := make(map[string]bool)
	last := make(map[string]int) // writer/priority -> last n
	deadline := time.Now().Add(30 * time.Second)
	for len(seen) < writers*perWriter {
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d", len(seen), writers*perWriter)
		}
		items := mustRead(t, s, "q", 64)
		if len(items) == 0 {
			select {
			case <-s.Wait("q"):
			case <-time.After(time.Second):
			}
			continue
		}
		top := map[int]uint64{}
		for _, it := range items {
			b := string(it.Body)
			if seen[b] {
				t.Fatalf("duplicate %s", b)
			}
			seen[b] = true
			var w, n int
			fmt.Sscanf(b, "%d/%d", &w, &n)
			key := fmt.Sprint(w, "@", it.Priority)
			if p, ok := last[key]; ok && n <= p {
				t.Fatalf("writer %d out of order: %d after %d", w, n, p)
			}
			last[key] = n
			top[it.Priority] = max(top[it.Priority], it.Seq)
		}
		for p, seq := range top {
			mustAck(t, s, "q", p, seq)
		}
	}
	wg.Wait()
	mustFlush(t, s)
	st := s.Stats()
	if st.Appends != writers*perWriter {
		t.Errorf("appends = %d", st.Appends)
	}
	wantAudit := writers * ((perWriter + 4) / 5)
	if got := len(readAll(t, s, "audit")); got != wantAudit {
		t.Errorf("audit queue has %d, want %d", got, wantAudit)
	}
	if st.Commits >= st.Appends {
		t.Logf("no group commit happened: %d commits for %d appends", st.Commits, st.Appends)
	}
	if err := checkLive(s); err != nil {
		t.Fatal(err)
	}
}

// TestAppend_GroupCommit queues appends before Run starts: Run must commit them together.
func TestAppend_GroupCommit(t *testing.T) {
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "s.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 50
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- s.Append(context.Background(), []byte(fmt.Sprint(i)), []Target{{Queue: "q"}}) }()
	}
	checkFor(t, 10*time.Second, func() error {
		if len(s.ops) != n {
			return fmt.Errorf("%d queued", len(s.ops))
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Commits != 1 || st.Appends != n {
		t.Errorf("commits %d appends %d, want 1 and %d", st.Commits, st.Appends, n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestAppend_CtxDoneBeforeCommitStoresNothing(t *testing.T) {
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "s.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	// Run is not started: the append waits in the queue until ctx ends.
	if err := s.Append(ctx, []byte("lost"), []Target{{Queue: "q"}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append = %v, want DeadlineExceeded", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(runCtx) }()
	mustAppend(t, s, "kept", Target{Queue: "q"})
	if got := bodies(mustRead(t, s, "q", 10)); !slices.Equal(got, []string{"kept"}) {
		t.Errorf("bodies = %q, want only the message whose Append succeeded", got)
	}
	stop()
	<-done
}

func TestRun_Lifecycle(t *testing.T) {
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "s.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	mustAppend(t, s, "a", Target{Queue: "q"})
	if err := s.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
	items := mustRead(t, s, "q", 1)
	mustAck(t, s, "q", 0, items[0].Seq) // committed by the shutdown
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if err := s.Append(context.Background(), []byte("b"), []Target{{Queue: "q"}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Run = %v, want ErrClosed", err)
	}
	if err := s.Ack("q", 0, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Ack after Run = %v, want ErrClosed", err)
	}
	if err := s.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Run = %v, want ErrClosed", err)
	}
	if st := s.Stats(); st.Messages != 0 || st.Queues[0].Checkpoint != 1 {
		t.Errorf("the ack was not committed at shutdown: %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read("q", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestClose_WithoutRunFailsWaitingAppends(t *testing.T) {
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "s.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error)
	go func() { errc <- s.Append(context.Background(), []byte("x"), []Target{{Queue: "q"}}) }()
	checkFor(t, 10*time.Second, func() error {
		if len(s.ops) != 1 {
			return errors.New("append not queued yet")
		}
		return nil
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("Append = %v, want ErrClosed", err)
	}
}

func TestOpen_InvalidOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		opts Options
	}{
		{"no path", Options{}},
		{"negative cap", Options{Path: filepath.Join(dir, "a.db"), MaxBytes: -1}},
		{"unknown policy", Options{Path: filepath.Join(dir, "b.db"), FullPolicy: Policy(7)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open(tt.opts); !errors.Is(err, ErrInvalid) {
				t.Errorf("Open = %v, want ErrInvalid", err)
			}
		})
	}
}

// TestAppend_FullQueueBlocksUntilCtxDone: the submission queue is bounded.
func TestAppend_FullQueueBlocksUntilCtxDone(t *testing.T) {
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "s.db"), NoSync: true, QueueDepth: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	go s.Append(context.Background(), []byte("fills the queue"), []Target{{Queue: "q"}})
	checkFor(t, 10*time.Second, func() error {
		if len(s.ops) != 1 {
			return errors.New("first append not queued yet")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Append(ctx, []byte("blocked"), []Target{{Queue: "q"}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Append on a full queue = %v, want DeadlineExceeded", err)
	}
}

func TestWaitTarget(t *testing.T) {
	tests := []struct {
		name           string
		last, maxBatch int
		want           int
	}{
		{"first transaction", 0, 1024, 0},
		{"lone writer", 1, 1024, 0},
		{"two by chance", 2, 1024, 0},
		{"just below the threshold", minWaitBatch - 1, 1024, 0},
		{"at the threshold", minWaitBatch, 1024, minWaitBatch},
		{"many writers", 200, 1024, 200},
		{"capped at MaxBatch", 5000, 1024, 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := waitTarget(tt.last, tt.maxBatch); got != tt.want {
				t.Errorf("waitTarget(%d, %d) = %d, want %d", tt.last, tt.maxBatch, got, tt.want)
			}
		})
	}
}

// TestAppend_NoWaitAfterSmallBatch commits a transaction of two appends, then a lone
// append: with a group-commit window of an hour, it commits only if the committer does
// not wait for a second writer after a small transaction.
func TestAppend_NoWaitAfterSmallBatch(t *testing.T) {
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "s.db"), NoSync: true, BatchDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	errs := make(chan error, 2)
	for i := range 2 {
		go func() { errs <- s.Append(context.Background(), []byte(fmt.Sprint(i)), []Target{{Queue: "q"}}) }()
	}
	checkFor(t, 10*time.Second, func() error {
		if len(s.ops) != 2 {
			return fmt.Errorf("%d queued", len(s.ops))
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Commits != 1 {
		t.Fatalf("%d commits for the first two appends, want 1", st.Commits)
	}
	lone := make(chan error, 1)
	go func() { lone <- s.Append(context.Background(), []byte("lone"), []Target{{Queue: "q"}}) }()
	select {
	case err := <-lone:
		if err != nil {
			t.Errorf("lone append after a transaction of two: %v", err)
		}
	case <-time.After(30 * time.Second):
		// Stopping the store cuts the committer's wait short and commits the append.
		t.Errorf("lone append after a transaction of two not committed after 30 s: the committer waited for more")
		cancel()
		<-lone
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
