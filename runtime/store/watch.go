package store

import (
	"maps"
	"slices"
	"strings"
)

// Watcher tells a consumer of many queues which of them may have items to read, so that it
// need not hold one Wait channel per queue (the hub's $upstream pump serves one queue per
// sender). It covers every queue whose name starts with its prefix, existing or created
// later. A queue is marked ready on the events that signal its Wait channel: a commit that
// appended to it, a Rewind, a Read that stopped early. C receives a value (coalesced,
// capacity 1) whenever a queue is marked; Take returns the marked queues and clears them.
//
// The consumer's loop is the one of Wait: read a queue until Read returns nothing, then
// forget it until Take names it again. A mark made between the consumer's last Read and its
// next Take is kept, so no wake-up is lost. Stop the Watcher when done with it.
type Watcher struct {
	s      *Store
	prefix string
	c      chan struct{}
	ready  map[string]struct{} // guarded by Store.mu
	done   bool                // stopped; guarded by Store.mu
}

// Watch returns a Watcher of the queues whose names start with prefix ("" watches every
// queue). Every existing queue of the prefix that has a lane on disk is marked at once, so
// that the first Take lists them.
func (s *Store) Watch(prefix string) *Watcher {
	w := &Watcher{s: s, prefix: prefix, c: make(chan struct{}, 1), ready: make(map[string]struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchers = append(s.watchers, w)
	for name, q := range s.queues {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		q.watchers = append(q.watchers, w)
		if len(q.prios) > 0 {
			w.mark(name)
		}
	}
	return w
}

// C returns the channel that receives a value after a queue was marked. It is the same for
// the life of the Watcher.
func (w *Watcher) C() <-chan struct{} { return w.c }

// Take returns the queues marked since the previous Take, sorted, and clears the marks.
func (w *Watcher) Take() []string {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if len(w.ready) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(w.ready))
	clear(w.ready)
	return names
}

// Stop detaches the Watcher from the store: no queue is marked any more. Calls after the
// first do nothing.
func (w *Watcher) Stop() {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.done {
		return
	}
	w.done = true
	s.watchers = slices.DeleteFunc(s.watchers, func(x *Watcher) bool { return x == w })
	for name, q := range s.queues {
		if strings.HasPrefix(name, w.prefix) {
			q.watchers = slices.DeleteFunc(q.watchers, func(x *Watcher) bool { return x == w })
		}
	}
	clear(w.ready)
}

// mark records that queue may have items to read and wakes the consumer (caller holds
// Store.mu).
func (w *Watcher) mark(queue string) {
	w.ready[queue] = struct{}{}
	select {
	case w.c <- struct{}{}:
	default:
	}
}
