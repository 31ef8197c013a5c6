package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// waitTrimmed waits until the store's usage is at most limit.
func waitTrimmed(t *testing.T, s *Store, limit int64) Stats {
	t.Helper()
	checkFor(t, 10*time.Second, func() error {
		if st := s.Stats(); st.Bytes > limit {
			return fmt.Errorf("%d bytes stored, cap %d", st.Bytes, limit)
		}
		return nil
	})
	mustFlush(t, s)
	return s.Stats()
}

func TestSetMaxBytes(t *testing.T) {
	one := Cost(100, 1)
	tests := []struct {
		name   string
		policy Policy
		start  int64 // Options.MaxBytes
		set    int64
		// run gets a store holding "q0".."q9" at priority 0 and "low0".."low2" at priority
		// 5 (13 messages of 100 bytes) and checks what follows SetMaxBytes(set).
		run func(t *testing.T, s *Store)
	}{
		{
			name: "raised: what was refused fits", policy: RejectNew, start: 13 * one, set: 20 * one,
			run: func(t *testing.T, s *Store) {
				mustAppend(t, s, body100("fits"), Target{Queue: "q"})
				if st := s.Stats(); st.MaxBytes != 20*one || st.Refused != 1 {
					t.Errorf("stats = %+v, want the new cap and the one refusal before it", st)
				}
			},
		},
		{
			name: "removed: no cap", policy: RejectNew, start: 13 * one, set: 0,
			run: func(t *testing.T, s *Store) {
				for i := range 20 {
					mustAppend(t, s, body100(fmt.Sprint("more", i)), Target{Queue: "q"})
				}
			},
		},
		{
			name: "lowered under reject-new: refused until usage drops, nothing dropped", policy: RejectNew, start: 0, set: 5 * one,
			run: func(t *testing.T, s *Store) {
				if err := s.Append(t.Context(), []byte(body100("x")), []Target{{Queue: "q"}}); !errors.Is(err, ErrFull) {
					t.Fatalf("Append over the lowered cap = %v, want ErrFull", err)
				}
				items := mustRead(t, s, "q", 7)
				mustAck(t, s, "q", 0, items[6].Seq) // 13 - 7 = 6 left: still over
				mustFlush(t, s)
				if err := s.Append(t.Context(), []byte(body100("x")), []Target{{Queue: "q"}}); !errors.Is(err, ErrFull) {
					t.Fatalf("Append with 6 of 5 stored = %v, want ErrFull", err)
				}
				items = mustRead(t, s, "q", 2)
				mustAck(t, s, "q", 0, items[1].Seq) // 4 left
				mustFlush(t, s)
				mustAppend(t, s, body100("fits"), Target{Queue: "q"})
				if st := s.Stats(); st.Dropped[DropCap] != 0 || st.Refused != 2 {
					t.Errorf("stats = %+v, want 2 refusals and nothing dropped", st)
				}
			},
		},
		{
			name: "lowered under drop-oldest: oldest of the lowest priority dropped until under", policy: DropOldest, start: 0, set: 4 * one,
			run: func(t *testing.T, s *Store) {
				st := waitTrimmed(t, s, 4*one)
				if st.Dropped[DropCap] != 9 || st.Refused != 0 || st.Bytes != 4*one {
					t.Errorf("stats = %+v, want 9 dropped and 4 messages left", st)
				}
				if got := bodies(mustRead(t, s, "low", 10)); len(got) != 0 {
					t.Errorf("low priority kept %q, want it dropped first", got)
				}
				want := []string{body100("q6"), body100("q7"), body100("q8"), body100("q9")}
				if got := bodies(mustRead(t, s, "q", 10)); !slices.Equal(got, want) {
					t.Errorf("q kept %q, want the newest four", got)
				}
			},
		},
		{
			name: "lowered below one message: too large", policy: DropOldest, start: 0, set: one - 1,
			run: func(t *testing.T, s *Store) {
				err := s.Append(t.Context(), []byte(body100("x")), []Target{{Queue: "q"}})
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("Append = %v, want ErrTooLarge", err)
				}
				waitTrimmed(t, s, one-1)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := MustOpen(t, withMaxBytes(tt.start, tt.policy))
			for i := range 10 {
				mustAppend(t, s, body100(fmt.Sprint("q", i)), Target{Queue: "q"})
			}
			for i := range 3 {
				mustAppend(t, s, body100(fmt.Sprint("low", i)), Target{Queue: "low", Priority: 5})
			}
			if tt.start > 0 {
				if err := s.Append(t.Context(), []byte(body100("x")), []Target{{Queue: "q"}}); !errors.Is(err, ErrFull) {
					t.Fatalf("Append at the starting cap = %v, want ErrFull", err)
				}
			}
			if err := s.SetMaxBytes(tt.set); err != nil {
				t.Fatalf("SetMaxBytes(%d): %v", tt.set, err)
			}
			tt.run(t, s)
			if err := checkLive(s); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSetMaxBytes_Errors(t *testing.T) {
	s := MustOpen(t)
	if err := s.SetMaxBytes(-1); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetMaxBytes(-1) = %v, want ErrInvalid", err)
	}
	r := mustStart(t, Options{Path: filepath.Join(t.TempDir(), "s.db"), NoSync: true})
	r.stop()
	if err := r.SetMaxBytes(10); !errors.Is(err, ErrClosed) {
		t.Errorf("SetMaxBytes after Close = %v, want ErrClosed", err)
	}
}

// TestSetMaxBytes_TrimSpansTransactions lowers the cap far below a large backlog: the trim
// is spread over transactions of at most trimBudget drops. Lowered again while appends go
// on, the newest messages are what is left.
func TestSetMaxBytes_TrimSpansTransactions(t *testing.T) {
	s := MustOpen(t, withMaxBytes(0, DropOldest))
	const n = 3*trimBudget + 200
	appendMany(t, s, "q", n)
	commits := s.Stats().Commits
	one := Cost(8, 1)
	if err := s.SetMaxBytes(100 * one); err != nil {
		t.Fatal(err)
	}
	st := waitTrimmed(t, s, 100*one)
	if got, want := st.Commits-commits, uint64(n-100+trimBudget-1)/trimBudget; got < want {
		t.Errorf("%d drops in %d transactions, want at least %d (at most %d each)", st.Dropped[DropCap], got, want, trimBudget)
	}
	if st.Dropped[DropCap] != n-100 || st.Messages != 100 {
		t.Errorf("stats = %+v, want %d dropped and 100 left", st, n-100)
	}

	// Lowered again while 50 new messages arrive: whatever the interleaving, the 50
	// newest stay.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			if err := s.Append(context.Background(), fmt.Appendf(nil, "live%04d", i), []Target{{Queue: "q"}}); err != nil {
				t.Error(err)
			}
		}
	}()
	if err := s.SetMaxBytes(50 * one); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	st = waitTrimmed(t, s, 50*one)
	want := make([]string, 50)
	for i := range want {
		want[i] = fmt.Sprintf("live%04d", i)
	}
	if got := bodies(readAll(t, s, "q")); !slices.Equal(got, want) {
		t.Errorf("kept %d messages %q..., want the 50 live ones", len(got), got[:min(3, len(got))])
	}
	if st.Dropped[DropCap] != n || st.Refused != 0 {
		t.Errorf("stats = %+v, want %d dropped, none refused", st, n)
	}
}

// TestSetMaxBytes_TrimWhenRunStarts: a file opened with a cap below its usage, or a cap
// lowered before Run, is trimmed once Run starts (not only at the next append).
func TestSetMaxBytes_TrimWhenRunStarts(t *testing.T) {
	tests := []struct {
		name string
		open int64 // Options.MaxBytes of the second Open
		set  int64 // SetMaxBytes before Run; 0: not called
	}{
		{"opened below its usage", 3 * Cost(100, 1), 0},
		{"lowered before Run", 0, 3 * Cost(100, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No sweep tick to wake the committer: Run itself must start the trim.
			o := Options{Path: filepath.Join(t.TempDir(), "s.db"), NoSync: true, FullPolicy: DropOldest, SweepInterval: time.Hour}
			r := mustStart(t, o)
			for i := range 10 {
				mustAppend(t, r.Store, body100(fmt.Sprint(i)), Target{Queue: "q"})
			}
			r.stop()
			o.MaxBytes = tt.open
			s, err := Open(o)
			if err != nil {
				t.Fatal(err)
			}
			if tt.set > 0 {
				if err := s.SetMaxBytes(tt.set); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			defer func() {
				cancel()
				<-done
				if err := check(s); err != nil {
					t.Error(err)
				}
				s.Close()
			}()
			st := waitTrimmed(t, s, 3*Cost(100, 1))
			if st.Dropped[DropCap] != 7 {
				t.Errorf("stats = %+v, want 7 dropped", st)
			}
		})
	}
}

// appendMany appends n 8-byte messages "m0000000".. to queue from 16 writers.
func appendMany(t *testing.T, s *Store, queue string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := s.Append(context.Background(), fmt.Appendf(nil, "m%07d", i), []Target{{Queue: queue}}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
