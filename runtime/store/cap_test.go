package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
)

func body100(s string) string { return fmt.Sprintf("%-100s", s) }

func TestCap_RejectNew(t *testing.T) {
	limit := 10 * Cost(100, 1)
	s := MustOpen(t, withMaxBytes(limit, RejectNew))
	for i := range 10 {
		mustAppend(t, s, body100(fmt.Sprint(i)), Target{Queue: "q"})
	}
	err := s.Append(t.Context(), []byte(body100("x")), []Target{{Queue: "q"}, {Queue: "r"}})
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Append over the cap = %v, want ErrFull", err)
	}
	st := s.Stats()
	if st.Refused != 1 || st.Messages != 10 || st.Bytes != limit || len(st.Queues) != 1 {
		t.Fatalf("stats = %+v", st)
	}
	// Delivery frees space.
	items := mustRead(t, s, "q", 2)
	mustAck(t, s, "q", 0, items[1].Seq)
	mustFlush(t, s)
	mustAppend(t, s, body100("fits"), Target{Queue: "q"})
	if err := checkLive(s); err != nil {
		t.Fatal(err)
	}
}

func TestCap_DropOldestLowestPriorityFirst(t *testing.T) {
	s := MustOpen(t, withMaxBytes(4*Cost(100, 1), DropOldest))
	mustAppend(t, s, body100("a0"), Target{Queue: "live", Priority: 0})
	mustAppend(t, s, body100("b0"), Target{Queue: "bulk", Priority: 5})
	mustAppend(t, s, body100("a1"), Target{Queue: "live", Priority: 0})
	mustAppend(t, s, body100("b1"), Target{Queue: "bulk", Priority: 5})
	for _, m := range []string{"a2", "a3", "a4"} {
		mustAppend(t, s, body100(m), Target{Queue: "live", Priority: 0})
	}
	trim := func(items []Item) []string {
		out := bodies(items)
		for i := range out {
			out[i] = out[i][:2]
		}
		return out
	}
	if got := trim(mustRead(t, s, "bulk", 10)); len(got) != 0 {
		t.Errorf("bulk = %q, want both dropped first", got)
	}
	if got := trim(mustRead(t, s, "live", 10)); !slices.Equal(got, []string{"a1", "a2", "a3", "a4"}) {
		t.Errorf("live = %q, want a0 dropped after the lower priority", got)
	}
	st := s.Stats()
	if st.Dropped[DropCap] != 3 || st.Refused != 0 || st.Bytes != 4*Cost(100, 1) {
		t.Errorf("stats = %+v", st)
	}
}

// TestCap_DropOldestSharedBody: dropping one entry of a shared body frees only that
// entry; the store keeps dropping until the new message fits.
func TestCap_DropOldestSharedBody(t *testing.T) {
	limit := Cost(100, 2) + Cost(100, 1)
	s := MustOpen(t, withMaxBytes(limit, DropOldest))
	mustAppend(t, s, body100("shared"), Target{Queue: "a"}, Target{Queue: "b"})
	mustAppend(t, s, body100("one"), Target{Queue: "a"})
	mustAppend(t, s, body100("new"), Target{Queue: "c"})
	st := s.Stats()
	if st.Bytes > limit || st.Dropped[DropCap] != 2 {
		t.Errorf("stats = %+v", st)
	}
	if err := checkLive(s); err != nil {
		t.Fatal(err)
	}
}

func TestCap_SurvivesRestart(t *testing.T) {
	o := Options{Path: filepath.Join(t.TempDir(), "s.db"), NoSync: true, MaxBytes: 3 * Cost(100, 1)}
	r := mustStart(t, o)
	for i := range 3 {
		mustAppend(t, r.Store, body100(fmt.Sprint(i)), Target{Queue: "q"})
	}
	r.stop()
	r = mustStart(t, o)
	defer r.stop()
	if err := r.Append(t.Context(), []byte(body100("x")), []Target{{Queue: "q"}}); !errors.Is(err, ErrFull) {
		t.Errorf("Append after reopen = %v, want ErrFull", err)
	}
}
