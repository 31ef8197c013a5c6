package store

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// lazyAcks makes acknowledgements wait for an append (or Flush, or Close): no delay or
// count would trigger a transaction of their own during a test.
func lazyAcks(o *Options) { o.AckDelay, o.AckBatch = time.Hour, 1<<30 }

// committerPass runs one pass of the committer's loop that has no write to commit (a TTL
// sweep with nothing expired) and waits for it: a synchronisation point after which a
// transaction that the pass should not have committed would be visible.
func committerPass(t testing.TB, s *Store) {
	t.Helper()
	done := make(chan struct{})
	select {
	case s.sweepReq <- done:
	case <-time.After(10 * time.Second):
		t.Fatal("sweep request not taken: is Run running?")
	}
	<-done
}

func checkpoint(s *Store, queue string) uint64 {
	for _, q := range s.Stats().Queues {
		if q.Queue == queue && q.Priority == 0 {
			return q.Checkpoint
		}
	}
	return 0
}

// TestAck_LazyRidesOnTheNextAppend: an Ack applies in memory at once (Read and Rewind do
// not return the item again) but costs no transaction of its own; the next append's
// transaction commits it.
func TestAck_LazyRidesOnTheNextAppend(t *testing.T) {
	s := MustOpen(t, lazyAcks)
	for i := range 3 {
		mustAppend(t, s, fmt.Sprint("m", i), Target{Queue: "q"})
	}
	mustRead(t, s, "q", 3)
	before := s.Stats()
	mustAck(t, s, "q", 0, 2)
	committerPass(t, s)
	committerPass(t, s) // the wake-up of the first, if any, is handled by now
	if st := s.Stats(); st.Commits != before.Commits || checkpoint(s, "q") != 0 {
		t.Fatalf("the ack was committed on its own: commits %d -> %d, checkpoint %d", before.Commits, st.Commits, checkpoint(s, "q"))
	}
	s.Rewind("q")
	if got := bodies(mustRead(t, s, "q", 10)); !slices.Equal(got, []string{"m2"}) {
		t.Fatalf("after Rewind = %q, want only the unacknowledged m2", got)
	}
	mustAppend(t, s, "m3", Target{Queue: "q"})
	st := s.Stats()
	if st.Commits != before.Commits+1 {
		t.Errorf("commits %d -> %d, want one: the append's", before.Commits, st.Commits)
	}
	if checkpoint(s, "q") != 2 || st.Acked != 2 || st.Messages != 2 {
		t.Errorf("after the append: checkpoint %d, acked %d, messages %d; want 2, 2, 2", checkpoint(s, "q"), st.Acked, st.Messages)
	}
}

// TestAck_LazyFreesRoomForTheAppendItRidesOn: under RejectNew, an append that fits only
// once the pending acks are applied is stored: the transaction applies the acks first.
func TestAck_LazyFreesRoomForTheAppendItRidesOn(t *testing.T) {
	s := MustOpen(t, lazyAcks, withMaxBytes(2*Cost(10, 1), RejectNew))
	mustAppend(t, s, "0123456789", Target{Queue: "q"})
	mustAppend(t, s, "abcdefghij", Target{Queue: "q"})
	items := mustRead(t, s, "q", 2)
	mustAck(t, s, "q", 0, items[0].Seq)
	if err := s.Append(context.Background(), []byte("ABCDEFGHIJ"), []Target{{Queue: "q"}}); err != nil {
		t.Fatalf("Append after an ack freed its room = %v", err)
	}
	if st := s.Stats(); st.Refused != 0 || st.Messages != 2 {
		t.Errorf("refused %d messages %d, want 0 and 2", st.Refused, st.Messages)
	}
}

// TestAck_LazyCommitTriggers: with no append to ride on, acks are committed after
// AckDelay, after AckBatch items, by Flush, and when Run stops.
func TestAck_LazyCommitTriggers(t *testing.T) {
	const n = 10
	tests := []struct {
		name    string
		opts    func(*Options)
		trigger func(t *testing.T, s *Store, acked func()) // acks and triggers the commit
		// minWait is the least time between the first Ack and the commit.
		minWait time.Duration
	}{
		{"after AckDelay", func(o *Options) { o.AckDelay, o.AckBatch = 50*time.Millisecond, 1<<30 },
			func(t *testing.T, s *Store, acked func()) { acked() }, 50 * time.Millisecond},
		{"after AckBatch items", func(o *Options) { o.AckDelay, o.AckBatch = time.Hour, n },
			func(t *testing.T, s *Store, acked func()) {
				mustAck(t, s, "q", 0, n-1)
				committerPass(t, s)
				if checkpoint(s, "q") != 0 {
					t.Fatalf("committed after %d of %d items", n-1, n)
				}
				acked()
			}, 0},
		{"by Flush", lazyAcks, func(t *testing.T, s *Store, acked func()) { acked(); mustFlush(t, s) }, 0},
		{"negative AckDelay: at once", func(o *Options) { o.AckDelay = -1 }, func(t *testing.T, s *Store, acked func()) { acked() }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := MustOpen(t, tt.opts)
			for i := range n {
				mustAppend(t, s, fmt.Sprint("m", i), Target{Queue: "q"})
			}
			mustRead(t, s, "q", n)
			before := s.Stats().Commits
			start := time.Now()
			tt.trigger(t, s, func() { mustAck(t, s, "q", 0, n) })
			checkFor(t, 10*time.Second, func() error {
				if c := checkpoint(s, "q"); c != n {
					return fmt.Errorf("checkpoint %d", c)
				}
				return nil
			})
			if took := time.Since(start); took < tt.minWait {
				t.Errorf("committed %v after the ack, before AckDelay %v", took, tt.minWait)
			}
			if st := s.Stats(); st.Commits-before > 2 || st.Messages != 0 {
				t.Errorf("%d transactions for the acks, %d messages left", st.Commits-before, st.Messages)
			}
		})
	}
}

// TestAck_LazyCommittedByShutdown: acks still waiting when Run stops are committed before
// it returns, so a clean restart does not deliver them again.
func TestAck_LazyCommittedByShutdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	r := mustStart(t, Options{Path: path, NoSync: true, AckDelay: time.Hour, AckBatch: 1 << 30})
	for i := range 4 {
		mustAppend(t, r.Store, fmt.Sprint("m", i), Target{Queue: "q"})
	}
	mustRead(t, r.Store, "q", 4)
	mustAck(t, r.Store, "q", 0, 3)
	r.stop()
	s, err := Open(Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := bodies(readAll(t, s, "q")); !slices.Equal(got, []string{"m3"}) {
		t.Fatalf("after a clean restart q = %q, want [m3]", got)
	}
}

// TestAck_LazyAfterCrash takes a crash image of the file (what a SIGKILL or a power loss
// leaves: the last committed transaction) while acks wait: the acknowledged items are
// delivered again, nothing appended is lost, and an ack committed by an append stays.
func TestAck_LazyAfterCrash(t *testing.T) {
	s := MustOpen(t, lazyAcks)
	for i := range 5 {
		mustAppend(t, s, fmt.Sprint("m", i), Target{Queue: "q"})
	}
	mustRead(t, s, "q", 5)
	mustAck(t, s, "q", 0, 2)
	mustAppend(t, s, "m5", Target{Queue: "q"}) // commits the ack of m0, m1
	mustAck(t, s, "q", 0, 4)                   // m2, m3: waiting
	committerPass(t, s)
	image := filepath.Join(t.TempDir(), "crash.db")
	if err := crashImage(s, image); err != nil {
		t.Fatal(err)
	}
	c, err := Open(Options{Path: image, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := check(c); err != nil {
		t.Fatal(err)
	}
	if got := bodies(readAll(t, c, "q")); !slices.Equal(got, []string{"m2", "m3", "m4", "m5"}) {
		t.Fatalf("after the crash q = %q, want m2..m5 (m2, m3 again: their ack was not committed)", got)
	}
}

// crashImage copies the last committed state of s's file to path, as a crash would leave
// it: bbolt writes only while committing, and a read transaction sees the last commit.
func crashImage(s *Store, path string) error {
	return s.db.View(func(tx *bolt.Tx) error { return tx.CopyFile(path, 0o600) })
}
