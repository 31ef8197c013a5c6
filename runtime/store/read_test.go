package store

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestRead_NoItemTwiceUntilRewind(t *testing.T) {
	s := MustOpen(t)
	for i := range 5 {
		mustAppend(t, s, fmt.Sprint("m", i), Target{Queue: "q"})
	}
	first := bodies(mustRead(t, s, "q", 3))
	second := bodies(mustRead(t, s, "q", 3))
	if !slices.Equal(first, []string{"m0", "m1", "m2"}) || !slices.Equal(second, []string{"m3", "m4"}) {
		t.Fatalf("reads = %q then %q", first, second)
	}
	if rest := mustRead(t, s, "q", 3); len(rest) != 0 {
		t.Fatalf("third read returned %d items", len(rest))
	}
	mustAck(t, s, "q", 0, 2) // m0, m1 delivered
	s.Rewind("q")
	if got := bodies(mustRead(t, s, "q", 10)); !slices.Equal(got, []string{"m2", "m3", "m4"}) {
		t.Errorf("after rewind = %q, want the unacked m2..m4", got)
	}
}

func TestAck_DeletesThroughSeq(t *testing.T) {
	s := MustOpen(t)
	for i := range 6 {
		mustAppend(t, s, fmt.Sprint("m", i), Target{Queue: "q"})
	}
	items := mustRead(t, s, "q", 6)
	mustAck(t, s, "q", 0, items[3].Seq) // acks m0..m3 at once
	mustAck(t, s, "q", 0, items[1].Seq) // earlier seq: no-op
	mustFlush(t, s)
	st := s.Stats()
	if len(st.Queues) != 1 || st.Queues[0].Len != 2 || st.Queues[0].Checkpoint != 4 || st.Acked != 4 || st.Messages != 2 {
		t.Fatalf("stats = %+v", st)
	}
	if st.Bytes != 2*Cost(2, 1) {
		t.Errorf("bytes = %d, want %d", st.Bytes, 2*Cost(2, 1))
	}
}

func TestAck_Errors(t *testing.T) {
	s := MustOpen(t)
	mustAppend(t, s, "a", Target{Queue: "q", Priority: 1})
	tests := []struct {
		name  string
		queue string
		prio  int
		seq   uint64
		want  error
	}{
		{"unknown queue", "nope", 1, 1, ErrNotFound},
		{"unknown priority", "q", 0, 1, ErrNotFound},
		{"seq zero", "q", 1, 0, ErrInvalid},
		{"seq never appended", "q", 1, 2, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Ack(tt.queue, tt.prio, tt.seq); !errors.Is(err, tt.want) {
				t.Errorf("Ack = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestWait_SignalledByAppendAndRewind(t *testing.T) {
	s := MustOpen(t)
	w := s.Wait("q") // before the queue exists
	select {
	case <-w:
		t.Fatal("signalled before anything happened")
	default:
	}
	mustAppend(t, s, "a", Target{Queue: "q"})
	select {
	case <-w:
	case <-time.After(10 * time.Second):
		t.Fatal("no signal after append")
	}
	mustRead(t, s, "q", 10)
	s.Rewind("q")
	select {
	case <-w:
	case <-time.After(10 * time.Second):
		t.Fatal("no signal after rewind")
	}
	if s.Wait("q") != w {
		t.Error("Wait returned a different channel")
	}
}

// TestRead_PrioritiesInterleave checks the scheduling rule end to end: a backlog at
// priority 5 gets one item after every 8 from priority 0, and the count survives
// separate Read calls.
func TestRead_PrioritiesInterleave(t *testing.T) {
	s := MustOpen(t)
	for i := range 3 {
		mustAppend(t, s, fmt.Sprint("low", i), Target{Queue: "q", Priority: 5})
	}
	for i := range 20 {
		mustAppend(t, s, fmt.Sprint("hi", i), Target{Queue: "q", Priority: 0})
	}
	var got []string
	for {
		items := mustRead(t, s, "q", 5) // batches cut across the burst
		if len(items) == 0 {
			break
		}
		got = append(got, bodies(items)...)
	}
	var want []string
	hi, low := 0, 0
	for hi < 20 || low < 3 {
		for k := 0; k < 8 && hi < 20; k++ {
			want = append(want, fmt.Sprint("hi", hi))
			hi++
		}
		if low < 3 {
			want = append(want, fmt.Sprint("low", low))
			low++
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("order =\n%q\nwant\n%q", got, want)
	}
}

func TestDeadLetter(t *testing.T) {
	s := MustOpen(t)
	for i := range 3 {
		mustAppend(t, s, fmt.Sprint("m", i), Target{Queue: "q"}, Target{Queue: "r"})
	}
	items := mustRead(t, s, "q", 3)
	if err := s.DeadLetter("q", 0, items[1].Seq, "rejected by receiver"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeadLetter("q", 0, items[1].Seq, "again"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeadLetter = %v, want ErrNotFound", err)
	}
	if err := s.DeadLetter("nope", 0, 1, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeadLetter on unknown queue = %v, want ErrNotFound", err)
	}
	s.Rewind("q")
	if got := bodies(mustRead(t, s, "q", 10)); !slices.Equal(got, []string{"m0", "m2"}) {
		t.Errorf("q after dead-letter = %q", got)
	}
	if got := bodies(mustRead(t, s, "r", 10)); !slices.Equal(got, []string{"m0", "m1", "m2"}) {
		t.Errorf("r must keep its copy: %q", got)
	}
	st := s.Stats()
	if st.Dropped[DropDeadLetter] != 1 || st.DeadLetters["rejected by receiver"] != 1 || st.Messages != 3 {
		t.Errorf("stats = %+v", st)
	}
}

func TestDeleteQueue(t *testing.T) {
	s := MustOpen(t)
	mustAppend(t, s, "both", Target{Queue: "gone"}, Target{Queue: "kept"})
	mustAppend(t, s, "only", Target{Queue: "gone", Priority: 3})
	if err := s.DeleteQueue("gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteQueue("never-existed"); err != nil {
		t.Errorf("DeleteQueue of a missing queue = %v", err)
	}
	if q := s.Queues(); !slices.Equal(q, []string{"kept"}) {
		t.Errorf("Queues = %q", q)
	}
	st := s.Stats()
	if st.Messages != 1 || st.Bytes != Cost(4, 1) || st.Dropped[DropDeleted] != 2 {
		t.Errorf("stats = %+v", st)
	}
	if items := mustRead(t, s, "gone", 10); len(items) != 0 {
		t.Errorf("deleted queue still reads %q", bodies(items))
	}
	// An append after the delete recreates the queue from seq 1.
	mustAppend(t, s, "new", Target{Queue: "gone"})
	items := mustRead(t, s, "gone", 10)
	if len(items) != 1 || items[0].Seq != 1 || string(items[0].Body) != "new" {
		t.Errorf("recreated queue = %+v", items)
	}
}

// TestReopen_Persistence closes and reopens: unacked items, checkpoints, seqs and
// counters must all come back.
func TestReopen_Persistence(t *testing.T) {
	o := Options{Path: filepath.Join(t.TempDir(), "s.db")}
	r := mustStart(t, o)
	for i := range 5 {
		mustAppend(t, r.Store, fmt.Sprint("m", i), Target{Queue: "q", Priority: 2}, Target{Queue: "r"})
	}
	items := mustRead(t, r.Store, "q", 2)
	mustAck(t, r.Store, "q", 2, items[1].Seq)
	mustRead(t, r.Store, "q", 10) // read but not acked: must come back
	mustFlush(t, r.Store)
	before := r.Stats()
	r.stop()

	r = mustStart(t, o)
	defer r.stop()
	after := r.Stats()
	if !slices.Equal(before.Queues, after.Queues) || before.Bytes != after.Bytes || before.Messages != after.Messages {
		t.Errorf("stats before close %+v, after reopen %+v", before, after)
	}
	if got := bodies(mustRead(t, r.Store, "q", 10)); !slices.Equal(got, []string{"m2", "m3", "m4"}) {
		t.Errorf("q after reopen = %q", got)
	}
	mustAppend(t, r.Store, "m5", Target{Queue: "q", Priority: 2})
	items = mustRead(t, r.Store, "q", 10)
	if len(items) != 1 || items[0].Seq != 6 {
		t.Errorf("seq after reopen = %+v, want 6", items)
	}
	if got := len(readAll(t, r.Store, "r")); got != 5 {
		t.Errorf("r has %d items, want 5", got)
	}
}

// TestRead_BeforeRun: Read works on a store whose Run has not started.
func TestRead_BeforeRun(t *testing.T) {
	o := Options{Path: filepath.Join(t.TempDir(), "s.db"), NoSync: true}
	r := mustStart(t, o)
	mustAppend(t, r.Store, "a", Target{Queue: "q"})
	r.stop()
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	items, err := s.Read("q", 10)
	if err != nil || len(items) != 1 {
		t.Fatalf("Read = %v, %v", items, err)
	}
	if _, err := s.Read("q", 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("Read max 0 = %v, want ErrInvalid", err)
	}
	if err := s.DeleteQueue(""); !errors.Is(err, ErrInvalid) {
		t.Errorf("DeleteQueue(\"\") = %v, want ErrInvalid", err)
	}
}

// TestReadInto_BodiesInTheCallersBuffer: ReadInto returns the same items as Read would,
// their bodies copied into the buffer passed, each capped to its own bytes; passing the
// buffer back reuses it, and a buffer too small for a batch is replaced without
// disturbing the items read into the old one.
func TestReadInto_BodiesInTheCallersBuffer(t *testing.T) {
	s := MustOpen(t)
	for i := range 10 {
		mustAppend(t, s, fmt.Sprintf("message %d", i), Target{Queue: "q"})
	}
	buf := make([]byte, 0, 1<<10)
	items, got, err := s.ReadInto("q", 4, buf)
	if err != nil || len(items) != 4 {
		t.Fatalf("ReadInto: %d items, %v", len(items), err)
	}
	if &got[:1][0] != &buf[:1][0] {
		t.Fatal("the bodies were not read into the buffer passed")
	}
	for i, it := range items {
		if want := fmt.Sprintf("message %d", i); string(it.Body) != want || cap(it.Body) != len(want) {
			t.Fatalf("item %d: body %q (cap %d), want %q capped to it", i, it.Body, cap(it.Body), want)
		}
	}
	mustAck(t, s, "q", 0, items[3].Seq)

	small := make([]byte, 0, 4)
	first, got, err := s.ReadInto("q", 3, small)
	if err != nil || len(first) != 3 {
		t.Fatalf("ReadInto: %d items, %v", len(first), err)
	}
	for i, it := range first {
		if want := fmt.Sprintf("message %d", i+4); string(it.Body) != want {
			t.Fatalf("item %d: body %q, want %q", i, it.Body, want)
		}
	}
	// The next batch reuses the buffer; the previous batch is done with.
	next, _, err := s.ReadInto("q", 3, got[:0])
	if err != nil || len(next) != 3 || !bytes.Equal(next[2].Body, []byte("message 9")) {
		t.Fatalf("ReadInto again: %d items, %v", len(next), err)
	}
	if empty, _, err := s.ReadInto("q", 3, nil); err != nil || len(empty) != 0 {
		t.Fatalf("ReadInto past the end: %d items, %v", len(empty), err)
	}
}
