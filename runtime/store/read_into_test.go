package store

import (
	"bytes"
	"fmt"
	"testing"
)

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
