package moduleclient

import (
	"testing"

	"github.com/outpost-edge/outpost/runtime/iothub"
)

func TestRIDSource_UniqueAndValid(t *testing.T) {
	s := newRIDSource()
	seen := map[string]bool{}
	for range 10000 {
		rid := s.next()
		if err := iothub.ValidateRequestID(rid); err != nil {
			t.Fatalf("next() = %q: %v", rid, err)
		}
		if seen[rid] {
			t.Fatalf("next() returned %q twice", rid)
		}
		seen[rid] = true
	}
}

func TestRIDSource_PrefixDiffersBetweenClients(t *testing.T) {
	a, b := newRIDSource(), newRIDSource()
	if a.prefix == b.prefix {
		t.Fatalf("two sources share the prefix %q", a.prefix)
	}
	if a.next() == b.next() {
		t.Fatal("first ids of two sources are equal")
	}
}

func TestRIDSource_SafeInTopics(t *testing.T) {
	rid := newRIDSource().next()
	for _, topic := range []string{iothub.TwinGetTopic(rid), iothub.TwinPatchReportedTopic(rid)} {
		got, err := iothub.ParseTopic(topic)
		if err != nil {
			t.Fatalf("ParseTopic(%q): %v", topic, err)
		}
		if got.RequestID != rid {
			t.Errorf("ParseTopic(%q).RequestID = %q, want %q", topic, got.RequestID, rid)
		}
	}
}
