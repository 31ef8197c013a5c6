package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// results collects AppendAsync outcomes in the order the callbacks ran.
type results struct {
	mu    sync.Mutex
	order []int
	errs  map[int]error
	calls map[int]int
}

func newResults() *results { return &results{errs: map[int]error{}, calls: map[int]int{}} }

// done returns the callback of append i.
func (r *results) done(i int) func(error) {
	return func(err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.order = append(r.order, i)
		r.errs[i] = err
		r.calls[i]++
	}
}

func (r *results) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.order)
}

// wait polls until n callbacks ran.
func (r *results) wait(t testing.TB, n int) {
	t.Helper()
	checkFor(t, 10*time.Second, func() error {
		if c := r.count(); c < n {
			return fmt.Errorf("%d of %d callbacks", c, n)
		}
		return nil
	})
}

// openIdle opens a store without running it.
func openIdle(t *testing.T, mods ...func(*Options)) *Store {
	t.Helper()
	o := Options{Path: filepath.Join(t.TempDir(), "s.db"), NoSync: true}
	for _, m := range mods {
		m(&o)
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// runIdle starts Run on a store from openIdle and stops it at cleanup (before Close).
func runIdle(t *testing.T, s *Store) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			if err := check(s); err != nil {
				t.Errorf("invariants: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestAppendAsync_CommittedInSubmissionOrder submits appends from one goroutine before Run
// starts: nothing completes without the committer, then they are committed together, the
// callbacks run in submission order, and Read returns the messages in that order.
func TestAppendAsync_CommittedInSubmissionOrder(t *testing.T) {
	s := openIdle(t)
	const n = 200
	r := newResults()
	for i := range n {
		if err := s.AppendAsync(context.Background(), []byte(fmt.Sprint(i)), []Target{{Queue: "q"}}, r.done(i)); err != nil {
			t.Fatalf("AppendAsync %d: %v", i, err)
		}
	}
	if c := r.count(); c != 0 {
		t.Fatalf("%d callbacks ran before Run started", c)
	}
	runIdle(t, s)
	r.wait(t, n)
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(r.order, want) {
		t.Fatalf("callbacks ran in order %v", r.order)
	}
	for i, err := range r.errs {
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	got := bodies(readAll(t, s, "q"))
	for i := range got {
		if got[i] != fmt.Sprint(i) {
			t.Fatalf("read %q at %d", got[i], i)
		}
	}
	if len(got) != n {
		t.Fatalf("read %d items, want %d", len(got), n)
	}
	if st := s.Stats(); st.Commits != 1 || st.Appends != n {
		t.Errorf("commits %d appends %d: want the queued appends in one transaction", st.Commits, st.Appends)
	}
}

// TestAppendAsync_CallbackAfterCommit: when done(nil) runs the message is committed and
// readable; the callback may use Read from the committer's goroutine.
func TestAppendAsync_CallbackAfterCommit(t *testing.T) {
	s := MustOpen(t)
	seen := make(chan []string, 1)
	err := s.AppendAsync(context.Background(), []byte("m"), []Target{{Queue: "q"}}, func(err error) {
		if err != nil {
			seen <- []string{err.Error()}
			return
		}
		items, rerr := s.Read("q", 10)
		if rerr != nil {
			seen <- []string{rerr.Error()}
			return
		}
		seen <- bodies(items)
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-seen:
		if !slices.Equal(got, []string{"m"}) {
			t.Fatalf("Read in the callback = %q, want [m]", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no callback")
	}
}

// TestAppendAsync_Refusals covers the errors returned at once (done is never called) and
// the ones reported through done.
func TestAppendAsync_Refusals(t *testing.T) {
	t.Run("returned at once", func(t *testing.T) {
		s := MustOpen(t, withMaxBytes(Cost(100, 1), RejectNew))
		never := func(err error) { t.Errorf("done called with %v", err) }
		tests := []struct {
			name    string
			body    []byte
			targets []Target
			done    func(error)
			want    error
		}{
			{"no targets", []byte("x"), nil, never, ErrInvalid},
			{"bad priority", []byte("x"), []Target{{Queue: "q", Priority: -1}}, never, ErrInvalid},
			{"no callback", []byte("x"), []Target{{Queue: "q"}}, nil, ErrInvalid},
			{"costs more than the cap", make([]byte, 101), []Target{{Queue: "q"}}, never, ErrTooLarge},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := s.AppendAsync(context.Background(), tt.body, tt.targets, tt.done); !errors.Is(err, tt.want) {
					t.Errorf("AppendAsync = %v, want %v", err, tt.want)
				}
			})
		}
		mustFlush(t, s) // a done called late would still be caught
	})

	t.Run("store full", func(t *testing.T) {
		s := MustOpen(t, withMaxBytes(Cost(10, 1)+Cost(10, 1)/2, RejectNew))
		r := newResults()
		for i := range 3 {
			if err := s.AppendAsync(context.Background(), []byte(fmt.Sprintf("%010d", i)), []Target{{Queue: "q"}}, r.done(i)); err != nil {
				t.Fatal(err)
			}
		}
		r.wait(t, 3)
		if r.errs[0] != nil || !errors.Is(r.errs[1], ErrFull) || !errors.Is(r.errs[2], ErrFull) {
			t.Fatalf("results %v, want nil, ErrFull, ErrFull", r.errs)
		}
		if st := s.Stats(); st.Refused != 2 || st.Messages != 1 {
			t.Errorf("refused %d messages %d, want 2 and 1", st.Refused, st.Messages)
		}
	})

	t.Run("disk error", func(t *testing.T) {
		s := openIdle(t)
		s.failCommit = func() error { return errInjected }
		runIdle(t, s)
		r := newResults()
		if err := s.AppendAsync(context.Background(), []byte("x"), []Target{{Queue: "q"}}, r.done(0)); err != nil {
			t.Fatal(err)
		}
		r.wait(t, 1)
		if !errors.Is(r.errs[0], ErrDisk) || !errors.Is(r.errs[0], errInjected) {
			t.Fatalf("done(%v), want ErrDisk wrapping the cause", r.errs[0])
		}
		if got := mustRead(t, s, "q", 10); len(got) != 0 {
			t.Errorf("a failed append is readable: %q", bodies(got))
		}
	})

	t.Run("ctx ends before the committer takes it", func(t *testing.T) {
		s := openIdle(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		r := newResults()
		if err := s.AppendAsync(ctx, []byte("lost"), []Target{{Queue: "q"}}, r.done(0)); err != nil {
			t.Fatal(err)
		}
		r.wait(t, 1) // Run is not running: only ctx can end it
		if !errors.Is(r.errs[0], context.DeadlineExceeded) {
			t.Fatalf("done(%v), want DeadlineExceeded", r.errs[0])
		}
		runIdle(t, s)
		mustAppend(t, s, "kept", Target{Queue: "q"})
		if got := bodies(readAll(t, s, "q")); !slices.Equal(got, []string{"kept"}) {
			t.Errorf("q = %q, want only kept", got)
		}
		if r.calls[0] != 1 {
			t.Errorf("done called %d times", r.calls[0])
		}
	})

	t.Run("full queue and ctx ends: reported once", func(t *testing.T) {
		s := openIdle(t, func(o *Options) { o.QueueDepth = 1 })
		r := newResults()
		if err := s.AppendAsync(context.Background(), []byte("fills"), []Target{{Queue: "q"}}, r.done(0)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		err := s.AppendAsync(ctx, []byte("blocked"), []Target{{Queue: "q"}}, r.done(1))
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("AppendAsync = %v, want nil or DeadlineExceeded", err)
		}
		if err == nil {
			r.wait(t, 1)
		}
		runIdle(t, s)
		r.wait(t, 1)
		mustFlush(t, s)
		reports := r.calls[1]
		if err != nil {
			reports++
		}
		if reports != 1 {
			t.Fatalf("the blocked append was reported %d times (returned %v, done %d times)", reports, err, r.calls[1])
		}
		if err == nil && !errors.Is(r.errs[1], context.DeadlineExceeded) {
			t.Fatalf("done(%v), want DeadlineExceeded", r.errs[1])
		}
	})

	t.Run("after Run returned", func(t *testing.T) {
		s := openIdle(t)
		stop := runIdle(t, s)
		stop()
		err := s.AppendAsync(context.Background(), []byte("x"), []Target{{Queue: "q"}}, func(err error) { t.Errorf("done called with %v", err) })
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("AppendAsync = %v, want ErrClosed", err)
		}
	})

	t.Run("Close without Run", func(t *testing.T) {
		s := openIdle(t)
		r := newResults()
		if err := s.AppendAsync(context.Background(), []byte("x"), []Target{{Queue: "q"}}, r.done(0)); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		r.wait(t, 1)
		if !errors.Is(r.errs[0], ErrClosed) {
			t.Fatalf("done(%v), want ErrClosed", r.errs[0])
		}
	})
}

// TestAppendAsync_ShutdownRace submits from many goroutines, without waiting, while Run
// stops: every append gets exactly one result (returned or through done), and every one
// reported committed is in the file after a reopen.
func TestAppendAsync_ShutdownRace(t *testing.T) {
	for round := range 5 {
		t.Run(fmt.Sprint("round ", round), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			s, err := Open(Options{Path: path, NoSync: true, QueueDepth: 256})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			runDone := make(chan error, 1)
			go func() { runDone <- s.Run(ctx) }()
			const writers = 8
			r := newResults()
			var submitted atomic.Int64
			returned := make([][]int, writers) // per writer: ids refused by AppendAsync itself
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						id := w*1_000_000 + i
						submitted.Add(1)
						err := s.AppendAsync(context.Background(), []byte(fmt.Sprint(id)), []Target{{Queue: "q"}}, r.done(id))
						if err != nil {
							if !errors.Is(err, ErrClosed) {
								t.Errorf("AppendAsync = %v", err)
							}
							returned[w] = append(returned[w], id)
							return // stop at the first refusal: the store is closed
						}
					}
				}()
			}
			checkFor(t, 10*time.Second, func() error {
				if s.Stats().Appends < 500 {
					return errors.New("not enough committed yet")
				}
				return nil
			})
			cancel()
			wg.Wait()
			if err := <-runDone; err != nil {
				t.Fatal(err)
			}
			nReturned := 0
			for _, ids := range returned {
				nReturned += len(ids)
			}
			r.wait(t, int(submitted.Load())-nReturned)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			r.mu.Lock()
			for _, ids := range returned {
				for _, id := range ids {
					if r.calls[id] != 0 {
						t.Errorf("append %d refused by AppendAsync, yet done called %d times", id, r.calls[id])
					}
				}
			}
			committed, closed := map[string]bool{}, 0
			for id, c := range r.calls {
				if c != 1 {
					t.Errorf("append %d: done called %d times", id, c)
				}
				switch err := r.errs[id]; {
				case err == nil:
					committed[fmt.Sprint(id)] = true
				case errors.Is(err, ErrClosed):
					closed++
				default:
					t.Errorf("append %d: done(%v), want nil or ErrClosed", id, err)
				}
			}
			r.mu.Unlock()
			s2, err := Open(Options{Path: path, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			if err := check(s2); err != nil {
				t.Fatal(err)
			}
			present := map[string]bool{}
			for _, b := range bodies(readAll(t, s2, "q")) {
				present[b] = true
			}
			for id := range committed {
				if !present[id] {
					t.Fatalf("append %s reported committed, missing after reopen", id)
				}
			}
			if len(present) != len(committed) {
				t.Errorf("%d messages in the file, %d reported committed", len(present), len(committed))
			}
			t.Logf("%d submitted: %d committed, %d failed with ErrClosed through done, %d refused at once",
				submitted.Load(), len(committed), closed, nReturned)
		})
	}
}

// TestAppendAsync_FailedTransactionFailsOnlyItsAppends: appends of a failed transaction get
// ErrDisk; the ones submitted after it, in a later transaction, are committed.
func TestAppendAsync_FailedTransactionFailsOnlyItsAppends(t *testing.T) {
	s := openIdle(t)
	var fail atomic.Bool
	fail.Store(true)
	s.failCommit = func() error {
		if fail.Swap(false) { // the first transaction only
			return errInjected
		}
		return nil
	}
	r := newResults()
	for i := range 3 {
		if err := s.AppendAsync(context.Background(), []byte(fmt.Sprint("first", i)), []Target{{Queue: "q"}}, r.done(i)); err != nil {
			t.Fatal(err)
		}
	}
	runIdle(t, s)
	r.wait(t, 3)
	for i := range 3 {
		if !errors.Is(r.errs[i], ErrDisk) {
			t.Fatalf("append %d of the failed transaction: done(%v)", i, r.errs[i])
		}
	}
	if err := s.AppendAsync(context.Background(), []byte("later"), []Target{{Queue: "q"}}, r.done(3)); err != nil {
		t.Fatal(err)
	}
	r.wait(t, 4)
	if r.errs[3] != nil {
		t.Fatalf("later append: %v", r.errs[3])
	}
	if got := bodies(readAll(t, s, "q")); !slices.Equal(got, []string{"later"}) {
		t.Errorf("q = %q, want [later]", strings.Join(got, " "))
	}
}
