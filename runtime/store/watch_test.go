package store

import (
	"slices"
	"testing"
	"time"
)

// waitMarked waits for the Watcher's channel and returns what Take then says.
func waitMarked(t *testing.T, w *Watcher) []string {
	t.Helper()
	select {
	case <-w.C():
	case <-time.After(10 * time.Second):
		t.Fatal("watcher not signalled within 10s")
	}
	return w.Take()
}

// noMark fails the test if the Watcher has a signal or marks pending.
func noMark(t *testing.T, w *Watcher, after string) {
	t.Helper()
	select {
	case <-w.C():
		t.Fatalf("watcher signalled after %s (marks %q)", after, w.Take())
	default:
	}
	if got := w.Take(); len(got) != 0 {
		t.Fatalf("marks %q after %s", got, after)
	}
}

func TestWatch_MarksTheQueuesOfItsPrefix(t *testing.T) {
	s := MustOpen(t)
	mustAppend(t, s, "old", Target{Queue: "up/b"}, Target{Queue: "other"})
	mustAppend(t, s, "old", Target{Queue: "up/a"})
	s.Wait("up/empty") // a queue known in memory but without lanes is not listed

	w := s.Watch("up/")
	defer w.Stop()
	if got := waitMarked(t, w); !slices.Equal(got, []string{"up/a", "up/b"}) {
		t.Fatalf("first Take = %q, want the existing queues of the prefix, sorted", got)
	}
	noMark(t, w, "Take")

	steps := []struct {
		name string
		do   func()
		want []string
	}{
		{"append to a queue of the prefix", func() { mustAppend(t, s, "x", Target{Queue: "up/a"}) }, []string{"up/a"}},
		{"append creating a queue of the prefix", func() { mustAppend(t, s, "x", Target{Queue: "up/new"}) }, []string{"up/new"}},
		{"one message to two of its queues", func() { mustAppend(t, s, "x", Target{Queue: "up/a"}, Target{Queue: "up/b"}) }, []string{"up/a", "up/b"}},
		{"rewind", func() { mustRead(t, s, "up/b", 10); s.Rewind("up/b") }, []string{"up/b"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do()
			if got := waitMarked(t, w); !slices.Equal(got, st.want) {
				t.Fatalf("Take = %q, want %q", got, st.want)
			}
		})
	}

	mustAppend(t, s, "x", Target{Queue: "other"})
	mustAppend(t, s, "x", Target{Queue: "upx"})
	noMark(t, w, "appends to queues outside the prefix")

	w.Stop()
	w.Stop() // idempotent
	mustAppend(t, s, "x", Target{Queue: "up/a"})
	noMark(t, w, "Stop")
}

func TestWatch_TruncatedReadMarks(t *testing.T) {
	c := newClock()
	s := MustOpen(t, withClock(c))
	for range maxSkip + 10 {
		mustAppend(t, s, "old", Target{Queue: "up/q", TTL: time.Second})
	}
	c.Add(time.Minute)
	w := s.Watch("up/")
	defer w.Stop()
	w.Take() // the initial mark
	if items := mustRead(t, s, "up/q", 10); len(items) != 0 {
		t.Fatalf("read %d items past expired ones", len(items))
	}
	if got := waitMarked(t, w); !slices.Equal(got, []string{"up/q"}) {
		t.Fatalf("Take after a Read stopped at its skip budget = %q", got)
	}
}
